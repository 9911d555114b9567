// SPDX-License-Identifier: GPL-2.0
/*
 * msi_isolation's debugfs view agrees with what sysfs says about every PCI
 * device, and a device behind the SMMUv3 on a GICv3 ITS machine is isolated.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kselftest_harness.h"

#define VIEW "/sys/kernel/debug/msi_isolation/devices"

static char *slurp(const char *path)
{
	static char buf[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return NULL;
	buf[n] = 0;
	return buf;
}

/* The view's line for @bdf, copied into @line, or 0 when absent. */
static int find_line(const char *view, const char *bdf, char *line, size_t len)
{
	const char *p = view;
	size_t blen = strlen(bdf);

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);

		if (l > blen && !strncmp(p, bdf, blen) && p[blen] == ' ') {
			snprintf(line, len, "%.*s", (int)l, p);
			return 1;
		}
		p = nl ? nl + 1 : NULL;
	}
	return 0;
}

static int sysfs_group(const char *bdf)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -1;
	target[n] = 0;
	return atoi(strrchr(target, '/') + 1);
}

/* Does the device tree describe a GICv3 ITS (compatible "arm,gic-v3-its")? */
static int machine_has_its(void)
{
	char path[PATH_MAX];
	struct dirent *de, *de2;
	int found = 0;
	DIR *d, *d2;

	d = opendir("/proc/device-tree");
	if (!d)
		return 0;
	while (!found && (de = readdir(d))) {
		if (strncmp(de->d_name, "intc@", 5))
			continue;
		snprintf(path, sizeof(path), "/proc/device-tree/%s", de->d_name);
		d2 = opendir(path);
		while (d2 && (de2 = readdir(d2)))
			if (!strncmp(de2->d_name, "its@", 4))
				found = 1;
		if (d2)
			closedir(d2);
	}
	closedir(d);
	return found;
}

FIXTURE(view) {
	int loaded_here;
};

FIXTURE_SETUP(view)
{
	int fd;

	self->loaded_here = 0;
	if (access("/sys/module/msi_isolation", F_OK)) {
		fd = open("/armsi/modules/msi_isolation.ko", O_RDONLY);
		ASSERT_LE(0, fd);
		ASSERT_EQ(0, syscall(__NR_finit_module, fd, "", 0));
		close(fd);
		self->loaded_here = 1;
	}
}

FIXTURE_TEARDOWN(view)
{
	if (self->loaded_here)
		syscall(__NR_delete_module, "msi_isolation", O_NONBLOCK);
}

TEST_F(view, every_pci_device_with_its_group)
{
	char line[256], expect[64];
	struct dirent *de;
	const char *view;
	int n = 0;
	DIR *d;

	view = slurp(VIEW);
	ASSERT_NE(NULL, view) TH_LOG("%s: %s", VIEW, strerror(errno));
	d = opendir("/sys/bus/pci/devices");
	ASSERT_NE(NULL, d);
	while ((de = readdir(d))) {
		int g;

		if (de->d_name[0] == '.')
			continue;
		n++;
		ASSERT_TRUE(find_line(view, de->d_name, line, sizeof(line)))
			TH_LOG("%s missing from the view", de->d_name);
		g = sysfs_group(de->d_name);
		if (g < 0)
			snprintf(expect, sizeof(expect), " group=none ");
		else
			snprintf(expect, sizeof(expect), " group=%d ", g);
		EXPECT_NE(NULL, strstr(line, expect)) TH_LOG("'%s' lacks '%s'", line, expect);
		/* No group means nothing translates its DMA: never isolated. */
		if (g < 0)
			EXPECT_NE(NULL, strstr(line, "not-isolated reason=no-iommu"));
	}
	closedir(d);
	ASSERT_LT(0, n);
}

TEST_F(view, edu_isolated_behind_smmu_and_its)
{
	char line[256];
	const char *view;
	struct dirent *de;
	int found = 0;
	DIR *d;

	if (!machine_has_its())
		SKIP(return, "this machine has no GICv3 ITS");
	view = slurp(VIEW);
	ASSERT_NE(NULL, view);
	d = opendir("/sys/bus/pci/devices");
	ASSERT_NE(NULL, d);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !find_line(view, de->d_name, line, sizeof(line)))
			continue;
		if (!strstr(line, " 1234:11e8 "))
			continue;
		found = 1;
		EXPECT_NE(NULL, strstr(line, " isolated")) TH_LOG("%s", line);
	}
	closedir(d);
	if (!found)
		SKIP(return, "no edu device on this machine");
}

TEST_HARNESS_MAIN
