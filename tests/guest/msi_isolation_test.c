// SPDX-License-Identifier: GPL-2.0
/*
 * msi_isolation: the debugfs views agree with sysfs about every PCI device
 * and IOMMU group, the verdicts and their evidence are right for the machine
 * the test runs on (GICv3 ITS, GICv2m, or a root bus that bypasses the
 * SMMU), the module parameters override as documented, and the views follow
 * hot-unplug, rescan and driver unbind/rebind, and the views survive the
 * module being unloaded under their readers.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kselftest_harness.h"

#include "armsi_test.h"

#define DEVICES "/sys/kernel/debug/msi_isolation/devices"
#define QUERY_KO "/armsi/kmod/msi_query_test.ko"
#define QUERY_ANSWERS "/sys/kernel/debug/msi_query_test/answers"
#define GROUPS "/sys/kernel/debug/msi_isolation/groups"
#define EDU "1234:11e8"
#define MSI_ISO_KO "/armsi/modules/msi_isolation.ko"

/* The line of @text that starts with @key followed by a space, into @line. */
static int find_line(const char *text, const char *key, char *line, size_t len)
{
	const char *p = text;
	size_t klen = strlen(key);

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);

		if (l > klen && !strncmp(p, key, klen) && p[klen] == ' ') {
			snprintf(line, len, "%.*s", (int)l, p);
			return 1;
		}
		p = nl ? nl + 1 : NULL;
	}
	return 0;
}

/* The BDF of the first device with @ids ("vvvv:dddd") in the view, or 0. */
static int find_device(const char *ids, char *bdf, size_t len)
{
	const char *view = slurp(DEVICES), *p;
	char key[32];

	if (!view)
		return 0;
	snprintf(key, sizeof(key), " id=%s ", ids);
	p = strstr(view, key);
	if (!p)
		return 0;
	while (p > view && p[-1] != '\n')
		p--;
	snprintf(bdf, len, "%.*s", (int)(strchr(p, ' ') - p), p);
	return 1;
}

/* Is there a device-tree node "<what>@..." under the GIC's node? */
static int gic_has(const char *what)
{
	char path[PATH_MAX];
	struct dirent *de, *de2;
	size_t wl = strlen(what);
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
			if (!strncmp(de2->d_name, what, wl) && de2->d_name[wl] == '@')
				found = 1;
		if (d2)
			closedir(d2);
	}
	closedir(d);
	return found;
}

FIXTURE(iso) {
	char edu[32];
	int has_edu;
};

FIXTURE_SETUP(iso)
{
	/* vfio_type1x links against msi_isolation: it goes first. */
	mod_unload("vfio_type1x");
	mod_unload("msi_isolation");
	ASSERT_EQ(0, mod_load(MSI_ISO_KO, ""));
	self->has_edu = find_device(EDU, self->edu, sizeof(self->edu));
}

FIXTURE_TEARDOWN(iso)
{
	mod_unload("msi_isolation");
}

TEST_F(iso, every_pci_device_with_its_group)
{
	char line[512], expect[64];
	struct dirent *de;
	const char *view;
	int n = 0;
	DIR *d;

	view = slurp(DEVICES);
	ASSERT_NE(NULL, view) TH_LOG("%s: %s", DEVICES, strerror(errno));
	d = opendir("/sys/bus/pci/devices");
	ASSERT_NE(NULL, d);
	while ((de = readdir(d))) {
		int g;

		if (de->d_name[0] == '.')
			continue;
		n++;
		ASSERT_TRUE(find_line(view, de->d_name, line, sizeof(line)))
			TH_LOG("%s missing from the view", de->d_name);
		g = pci_group(de->d_name);
		if (g < 0)
			snprintf(expect, sizeof(expect), " group=none ");
		else
			snprintf(expect, sizeof(expect), " group=%d ", g);
		EXPECT_NE(NULL, strstr(line, expect)) TH_LOG("'%s' lacks '%s'", line, expect);
		if (g < 0) {
			EXPECT_NE(NULL, strstr(line, " iommu=none "));
			EXPECT_NE(NULL, strstr(line, " verdict=not-isolated reason=no-iommu"));
		} else {
			EXPECT_NE(NULL, strstr(line, " iommu-driver=arm-smmu-v3 ")) TH_LOG("%s", line);
			/* arm-smmu-v3 reserves 1 MiB at 0x8000000 for software MSIs. */
			EXPECT_NE(NULL, strstr(line, " msi-window=sw:0x8000000+0x100000 "))
				TH_LOG("%s", line);
		}
	}
	closedir(d);
	ASSERT_LT(0, n);
}

TEST_F(iso, every_group_with_its_members)
{
	char line[512], key[300], path[PATH_MAX];
	struct dirent *de, *de2;
	const char *view;
	DIR *d, *d2;
	int n = 0;

	view = slurp(GROUPS);
	ASSERT_NE(NULL, view);
	d = opendir("/sys/kernel/iommu_groups");
	ASSERT_NE(NULL, d);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%s/devices", de->d_name);
		d2 = opendir(path);
		ASSERT_NE(NULL, d2);
		snprintf(key, sizeof(key), "group=%s", de->d_name);
		while ((de2 = readdir(d2))) {
			if (de2->d_name[0] == '.' || strncmp(de2->d_name, "0000:", 5))
				continue;
			n++;
			ASSERT_TRUE(find_line(view, key, line, sizeof(line))) TH_LOG("%s missing", key);
			EXPECT_NE(NULL, strstr(line, de2->d_name)) TH_LOG("%s lacks %s", line, de2->d_name);
			EXPECT_NE(NULL, strstr(line, " verdict=")) TH_LOG("%s", line);
		}
		closedir(d2);
	}
	closedir(d);
	if (!n)
		SKIP(return, "no PCI device has an IOMMU group on this machine");
}

TEST_F(iso, its_machine_isolates_with_the_doorbell_named)
{
	char line[512];
	int passthrough;

	if (!gic_has("its"))
		SKIP(return, "this machine has no GICv3 ITS");
	if (!self->has_edu || pci_group(self->edu) < 0)
		SKIP(return, "no edu device behind the SMMU");
	passthrough = strstr(slurp("/proc/cmdline") ?: "", "iommu.passthrough=1") != NULL;
	ASSERT_TRUE(find_line(slurp(DEVICES), self->edu, line, sizeof(line)));
	if (!passthrough)
		EXPECT_NE(NULL, strstr(line, " dma=translated ")) TH_LOG("%s", line);
	EXPECT_NE(NULL, strstr(line, " msi=its msi-node=its@8080000 ")) TH_LOG("%s", line);
	/* GITS_TRANSLATER is at offset 0x10040 of the ITS frame. */
	EXPECT_NE(NULL, strstr(line, " doorbell=0x8090040 ")) TH_LOG("%s", line);
	EXPECT_NE(NULL, strstr(line, " verdict=isolated reason=its-deviceid")) TH_LOG("%s", line);
}

TEST_F(iso, gicv2m_machine_is_not_isolated_and_says_why)
{
	char line[512], key[64];
	const char *groups;
	int ngroups = 0;
	const char *p;

	if (!gic_has("v2m"))
		SKIP(return, "this machine has no GICv2m frame");
	if (!self->has_edu || pci_group(self->edu) < 0)
		SKIP(return, "no edu device behind the SMMU");
	/* slurp() reuses one buffer: keep a copy. */
	groups = strdup(slurp(GROUPS) ?: "");
	ASSERT_NE(NULL, groups);
	for (p = groups; (p = strstr(p, "group=")); p++)
		ngroups++;
	ASSERT_TRUE(find_line(slurp(DEVICES), self->edu, line, sizeof(line)));
	EXPECT_NE(NULL, strstr(line, " msi=gicv2m msi-node=v2m@8020000 ")) TH_LOG("%s", line);
	/* V2M_MSI_SETSPI_NS is at offset 0x40 of the frame. */
	EXPECT_NE(NULL, strstr(line, " doorbell=0x8020040 ")) TH_LOG("%s", line);
	/* Every other group's doorbell is the same frame. */
	snprintf(key, sizeof(key), " doorbell-shared-groups=%d ", ngroups - 1);
	EXPECT_NE(NULL, strstr(line, key)) TH_LOG("%s lacks %s", line, key);
	EXPECT_NE(NULL, strstr(line, " verdict=not-isolated reason=msi-controller-not-isolating"))
		TH_LOG("%s", line);
	snprintf(key, sizeof(key), "group=%d", pci_group(self->edu));
	ASSERT_TRUE(find_line(groups, key, line, sizeof(line)));
	EXPECT_NE(NULL, strstr(line, " verdict=not-isolated reason=msi-controller-not-isolating device="))
		TH_LOG("%s", line);
	free((void *)groups);
}

TEST_F(iso, untranslated_device_is_reported_as_such)
{
	const char *cmdline = slurp("/proc/cmdline");
	char line[512];

	ASSERT_NE(NULL, cmdline);
	if (!self->has_edu)
		SKIP(return, "no edu device");
	if (pci_group(self->edu) < 0) {
		/* Not behind any IOMMU: nothing checks its writes. */
		ASSERT_TRUE(find_line(slurp(DEVICES), self->edu, line, sizeof(line)));
		EXPECT_NE(NULL, strstr(line, " group=none iommu=none iommu-driver=none dma=none "))
			TH_LOG("%s", line);
		EXPECT_NE(NULL, strstr(line, " verdict=not-isolated reason=no-iommu")) TH_LOG("%s", line);
		return;
	}
	if (!strstr(cmdline, "iommu.passthrough=1"))
		SKIP(return, "edu is translated on this machine");
	/*
	 * Identity default domain: the DMA bypasses translation, which is
	 * reported; the MSI verdict still follows the MSI controller, since VFIO
	 * replaces the domain before a user gets the device.
	 */
	ASSERT_TRUE(find_line(slurp(DEVICES), self->edu, line, sizeof(line)));
	EXPECT_NE(NULL, strstr(line, " dma=bypass ")) TH_LOG("%s", line);
}

TEST_F(iso, assert_and_deny_override_and_show_the_evidence)
{
	char line[512], params[128];
	const char *view;

	if (!self->has_edu || pci_group(self->edu) < 0)
		SKIP(return, "no edu device behind the SMMU");
	mod_unload("msi_isolation");
	snprintf(params, sizeof(params), "assert_isolated=%s", self->edu);
	ASSERT_EQ(0, mod_load(MSI_ISO_KO, params));
	view = slurp(DEVICES);
	ASSERT_TRUE(find_line(view, self->edu, line, sizeof(line)));
	EXPECT_NE(NULL, strstr(line, " verdict=isolated reason=asserted-by-parameter evidence="))
		TH_LOG("%s", line);

	mod_unload("msi_isolation");
	/* deny wins over assert, and a platform entry names every device. */
	snprintf(params, sizeof(params),
		 "assert_isolated=%s deny_isolated=platform:linux,dummy-virt", self->edu);
	ASSERT_EQ(0, mod_load(MSI_ISO_KO, params));
	view = slurp(DEVICES);
	ASSERT_TRUE(find_line(view, self->edu, line, sizeof(line)));
	EXPECT_NE(NULL, strstr(line, " verdict=not-isolated reason=denied-by-parameter evidence="))
		TH_LOG("%s", line);
	EXPECT_EQ(NULL, strstr(view, "verdict=isolated")) TH_LOG("%s", view);

	mod_unload("msi_isolation");
	snprintf(params, sizeof(params), "deny_isolated=platform:some,other-board");
	ASSERT_EQ(0, mod_load(MSI_ISO_KO, params));
	ASSERT_TRUE(find_line(slurp(DEVICES), self->edu, line, sizeof(line)));
	EXPECT_EQ(NULL, strstr(line, "by-parameter")) TH_LOG("%s", line);
}

TEST_F(iso, malformed_parameters_refuse_to_load)
{
	mod_unload("msi_isolation");
	EXPECT_EQ(-EINVAL, mod_load(MSI_ISO_KO, "assert_isolated=eth0"));
	EXPECT_EQ(-EINVAL, mod_load(MSI_ISO_KO, "deny_isolated=platform:"));
	/* Entries are separated by ';', never ','. */
	EXPECT_EQ(-EINVAL, mod_load(MSI_ISO_KO, "assert_isolated=0000:00:01.0,0000:00:02.0"));
	EXPECT_NE(0, access("/sys/module/msi_isolation", F_OK));
}

TEST_F(iso, follows_unplug_rescan_unbind_and_rebind)
{
	char line[512], path[PATH_MAX], drv[PATH_MAX];
	ssize_t n;

	if (!self->has_edu)
		SKIP(return, "no edu device");
	/* Hot-unplug: the entry goes. */
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", self->edu);
	ASSERT_EQ(0, write_str(path, "1"));
	EXPECT_FALSE(find_line(slurp(DEVICES), self->edu, line, sizeof(line)));
	/* Rescan: it comes back with a verdict. */
	ASSERT_EQ(0, write_str("/sys/bus/pci/rescan", "1"));
	ASSERT_TRUE(find_line(slurp(DEVICES), self->edu, line, sizeof(line)));
	EXPECT_NE(NULL, strstr(line, " verdict=")) TH_LOG("%s", line);

	/* Bind it to vfio-pci when that driver is there, then unbind it. */
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", self->edu);
	if (access("/sys/bus/pci/drivers/vfio-pci", F_OK))
		SKIP(return, "vfio-pci not loaded: bind/unbind not exercised");
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", self->edu);
	ASSERT_EQ(0, write_str(path, "vfio-pci"));
	ASSERT_EQ(0, write_str("/sys/bus/pci/drivers_probe", self->edu));
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", self->edu);
	n = readlink(path, drv, sizeof(drv) - 1);
	ASSERT_LT(0, n);
	drv[n] = 0;
	EXPECT_NE(NULL, strstr(drv, "vfio-pci"));
	ASSERT_TRUE(find_line(slurp(DEVICES), self->edu, line, sizeof(line)));
	EXPECT_NE(NULL, strstr(line, " verdict=")) TH_LOG("%s", line);
	ASSERT_EQ(0, write_str("/sys/bus/pci/drivers/vfio-pci/unbind", self->edu));
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", self->edu);
	write_str(path, "\n");
	ASSERT_TRUE(find_line(slurp(DEVICES), self->edu, line, sizeof(line)));
}

/*
 * The exported armsi_msi_isolation_query(), linked against as the VFIO
 * backend links against it, answers exactly what the view shows and
 * truncates safely; msi_isolation cannot be unloaded while a module using
 * the query is loaded, and goes with its views once that module has gone.
 */
TEST_F(iso, kernel_query_matches_the_view)
{
	char line[512], answer[600], key[300];
	struct dirent *de;
	char *view, *answers;
	DIR *d;
	int n = 0;

	ASSERT_EQ(0, mod_load("/armsi/kmod/msi_query_test.ko", ""));
	view = strdup(slurp(DEVICES) ?: "");
	answers = strdup(slurp("/sys/kernel/debug/msi_query_test/answers") ?: "");
	d = opendir("/sys/bus/pci/devices");
	ASSERT_NE(NULL, d);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		n++;
		ASSERT_TRUE(find_line(view, de->d_name, line, sizeof(line)));
		ASSERT_TRUE(find_line(answers, de->d_name, answer, sizeof(answer)))
			TH_LOG("no answer for %s in:\n%s", de->d_name, answers);
		snprintf(key, sizeof(key), "%s ret=%d ", de->d_name,
			 strstr(line, " verdict=isolated ") ? 1 : 0);
		EXPECT_EQ(0, strncmp(answer, key, strlen(key))) TH_LOG("%s vs %s", answer, key);
		EXPECT_STREQ(line, answer + strlen(key));
	}
	closedir(d);
	EXPECT_LT(0, n);
	EXPECT_NE(NULL, strstr(answers, "\ntruncated=")) TH_LOG("%s", answers);
	EXPECT_NE(NULL, strstr(answers, " len=7\n")) TH_LOG("%s", answers);

	/* The user of the query holds msi_isolation. */
	EXPECT_NE(0, syscall(__NR_delete_module, "msi_isolation", O_NONBLOCK));
	EXPECT_EQ(EWOULDBLOCK, errno);
	EXPECT_EQ(0, access(DEVICES, F_OK));
	EXPECT_EQ(0, syscall(__NR_delete_module, "msi_query_test", O_NONBLOCK));
	EXPECT_EQ(0, syscall(__NR_delete_module, "msi_isolation", O_NONBLOCK));
	/* Unloading removes the views. */
	EXPECT_NE(0, access(DEVICES, F_OK));
	EXPECT_NE(0, access(GROUPS, F_OK));
	free(view);
	free(answers);
}

/* One stress reader: reads @path whole, over and over, until told. */
struct reader {
	const char *path;
	volatile int *stop;
	unsigned long reads;
};

static void *reader_run(void *arg)
{
	struct reader *r = arg;
	char buf[8192];

	while (!*r->stop) {
		int fd = open(r->path, O_RDONLY);

		if (fd >= 0) {
			while (read(fd, buf, sizeof(buf)) > 0)
				;
			close(fd);
			r->reads++;
		}
		/* Gaps, so that an unload finds the files closed now and then. */
		usleep(r->reads % 3 * 1000);
	}
	return NULL;
}

/*
 * Unloads @name, waiting while a reader holding one of its files open holds
 * it: 0 or the errno.
 */
static int unload_waiting(const char *name)
{
	int err, tries = 0;

	do {
		err = syscall(__NR_delete_module, name, O_NONBLOCK) ? errno : 0;
		if (err == EWOULDBLOCK || err == EBUSY)
			usleep(1000);
	} while ((err == EWOULDBLOCK || err == EBUSY) && ++tries < 5000);
	return err;
}

/*
 * Four threads read the two views and the kernel query's answers (through
 * msi_query_test, which links against the query as vfio_type1x does) while
 * the main thread, 30 times, tries to unload msi_isolation under the query's
 * user (refused: the loader keeps what a loaded module links against),
 * unloads the user, unloads msi_isolation and loads both again. Nothing may
 * crash or leak (KASAN, kmemleak); every reload comes back with the views.
 * (When the query was taken with symbol_get(), a query racing the unload
 * could hit the BUG_ON in the kernel's strong_try_module_get(), which saw
 * the module UNFORMED while free_module() tore it down.)
 */
TEST_F_TIMEOUT(iso, stress_views_and_query_racing_unload, 180)
{
	static const char *const paths[] = { DEVICES, GROUPS, QUERY_ANSWERS, QUERY_ANSWERS };
	struct reader r[4];
	volatile int stop = 0;
	unsigned long reads = 0;
	pthread_t t[4];
	int i, round;

	for (i = 0; i < 4; i++) {
		r[i] = (struct reader){ .path = paths[i], .stop = &stop };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, reader_run, &r[i]));
	}
	for (round = 0; round < 30; round++) {
		int err;

		ASSERT_EQ(0, mod_load(QUERY_KO, "")) TH_LOG("round %d", round);
		usleep(20000);
		ASSERT_NE(0, syscall(__NR_delete_module, "msi_isolation", O_NONBLOCK));
		ASSERT_EQ(EWOULDBLOCK, errno) TH_LOG("round %d", round);
		err = unload_waiting("msi_query_test");
		ASSERT_EQ(0, err) TH_LOG("round %d: %s", round, strerror(err));
		err = unload_waiting("msi_isolation");
		ASSERT_EQ(0, err) TH_LOG("round %d: %s", round, strerror(err));
		usleep(10000);
		ASSERT_EQ(0, mod_load(MSI_ISO_KO, "")) TH_LOG("round %d", round);
		EXPECT_EQ(0, access(DEVICES, F_OK));
	}
	stop = 1;
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		reads += r[i].reads;
	}
	TH_LOG("%lu reads across 30 unloads", reads);
	EXPECT_LT(0, reads);
}

TEST_HARNESS_MAIN
