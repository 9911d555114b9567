// SPDX-License-Identifier: GPL-2.0
/*
 * Test module: asks msi_isolation's exported armsi_msi_isolation_query()
 * about every PCI device, linking against it as the VFIO backend does (so
 * msi_isolation cannot be unloaded while this module is loaded), and
 * exposes the answers in debugfs msi_query_test/answers:
 *
 *   <bdf> ret=<1|0|-errno> <the verdict line the query wrote>
 *
 * tests/guest/msi_isolation_test.c compares them with the module's own view.
 */
#include <linux/debugfs.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/seq_file.h>

#include <armsi/msi_isolation_shim.h>

static struct dentry *dir;

static int answers_show(struct seq_file *m, void *unused)
{
	struct pci_dev *pdev = NULL;
	char *why;

	why = kmalloc(512, GFP_KERNEL);
	if (!why)
		return -ENOMEM;
	for_each_pci_dev(pdev) {
		int ret = armsi_msi_isolation_query(&pdev->dev, why, 512);

		seq_printf(m, "%s ret=%d %s\n", pci_name(pdev), ret, ret >= 0 ? why : "");
	}
	/* A too-small buffer truncates and stays NUL terminated. */
	pdev = pci_get_device(PCI_ANY_ID, PCI_ANY_ID, NULL);
	if (pdev) {
		why[8] = 'X';
		armsi_msi_isolation_query(&pdev->dev, why, 8);
		seq_printf(m, "truncated=%s len=%zu\n", why, strlen(why));
		pci_dev_put(pdev);
	}
	kfree(why);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(answers);

static int __init msi_query_test_init(void)
{
	dir = debugfs_create_dir("msi_query_test", NULL);
	debugfs_create_file("answers", 0444, dir, NULL, &answers_fops);
	return 0;
}

static void __exit msi_query_test_exit(void)
{
	debugfs_remove(dir);
}

module_init(msi_query_test_init);
module_exit(msi_query_test_exit);
MODULE_DESCRIPTION("Test module for armsi_msi_isolation_query()");
MODULE_LICENSE("GPL");
