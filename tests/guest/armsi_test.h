/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the guest tests: sysfs/debugfs files, module loading,
 * PCI device lookup.
 */
#ifndef ARMSI_TEST_LIB_H
#define ARMSI_TEST_LIB_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The contents of @path (up to 64 KiB) in a buffer reused by every call. */
static inline char *slurp(const char *path)
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

static inline int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	close(fd);
	return n < 0 ? -errno : 0;
}

/* The number in @path, or -1. */
static inline long read_long(const char *path)
{
	const char *s = slurp(path);

	return s ? strtol(s, NULL, 0) : -1;
}

/* finit_module(@path, @params): 0 or -errno. */
static inline int mod_load(const char *path, const char *params)
{
	int fd = open(path, O_RDONLY), ret;

	if (fd < 0)
		return -errno;
	ret = syscall(__NR_finit_module, fd, params, 0) ? -errno : 0;
	close(fd);
	return ret;
}

/* Unloads module @name if it is loaded. */
static inline void mod_unload(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/module/%s", name);
	if (!access(path, F_OK))
		syscall(__NR_delete_module, name, O_NONBLOCK);
}

/* The IOMMU group number of PCI device @bdf, or -1. */
static inline int pci_group(const char *bdf)
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

/* The address of the first PCI device @vendor:@device into @bdf; 0 if none. */
static inline int pci_find(unsigned int vendor, unsigned int device, char *bdf, size_t len)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir("/sys/bus/pci/devices");
	int found = 0;

	while (d && !found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", de->d_name);
		if (read_long(path) != vendor)
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", de->d_name);
		if (read_long(path) != device)
			continue;
		snprintf(bdf, len, "%s", de->d_name);
		found = 1;
	}
	if (d)
		closedir(d);
	return found;
}

/* Binds PCI device @bdf to vfio-pci; 0 or -errno. */
static inline int bind_vfio(const char *bdf)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
	if (!access(path, F_OK)) {
		char unbind[PATH_MAX];

		snprintf(unbind, sizeof(unbind), "%s/unbind", path);
		write_str(unbind, bdf);
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", bdf);
	if (write_str(path, "vfio-pci"))
		return -1;
	return write_str("/sys/bus/pci/drivers_probe", bdf);
}

#endif
