// SPDX-License-Identifier: GPL-2.0
/*
 * Every module loads and unloads cleanly, ten times in a row, and carries
 * the modinfo fields a packager and modinfo(8) rely on.
 *
 * The host side fails the whole run on any splat in the kernel log, so a
 * load/unload cycle that warns, leaks or trips lockdep fails here too.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "kselftest_harness.h"

#define MODDIR "/armsi/modules"

static int mod_load(const char *name, const char *params)
{
	char path[256];
	int fd, ret;

	snprintf(path, sizeof(path), MODDIR "/%s.ko", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(__NR_finit_module, fd, params, 0);
	ret = ret ? -errno : 0;
	close(fd);
	return ret;
}

static int mod_unload(const char *name)
{
	return syscall(__NR_delete_module, name, O_NONBLOCK) ? -errno : 0;
}

static int mod_present(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "/sys/module/%s", name);
	return access(path, F_OK) == 0;
}

/* Reads the .ko and returns a malloc'ed copy of its .modinfo section. */
static char *read_modinfo(const char *name, size_t *len)
{
	char path[256], *buf = NULL, *out = NULL;
	struct stat st;
	Elf64_Ehdr *eh;
	Elf64_Shdr *sh;
	const char *strtab;
	int fd, i;

	snprintf(path, sizeof(path), MODDIR "/%s.ko", name);
	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st))
		goto out;
	buf = malloc(st.st_size);
	if (!buf || read(fd, buf, st.st_size) != st.st_size)
		goto out;
	eh = (Elf64_Ehdr *)buf;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_shoff + (size_t)eh->e_shnum * sizeof(*sh) > (size_t)st.st_size)
		goto out;
	sh = (Elf64_Shdr *)(buf + eh->e_shoff);
	strtab = buf + sh[eh->e_shstrndx].sh_offset;
	for (i = 0; i < eh->e_shnum; i++) {
		if (strcmp(strtab + sh[i].sh_name, ".modinfo"))
			continue;
		out = malloc(sh[i].sh_size + 1);
		if (!out)
			goto out;
		memcpy(out, buf + sh[i].sh_offset, sh[i].sh_size);
		out[sh[i].sh_size] = 0;
		*len = sh[i].sh_size;
		break;
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return out;
}

/* The value of the first "key=value" in a .modinfo section, or NULL. */
static const char *modinfo_get(const char *info, size_t len, const char *key)
{
	size_t klen = strlen(key);
	const char *p = info;

	while (p < info + len) {
		if (!strncmp(p, key, klen) && p[klen] == '=')
			return p + klen + 1;
		p += strlen(p) + 1;
	}
	return NULL;
}

FIXTURE(module) {};

FIXTURE_VARIANT(module) {
	const char *name;
	const char *what;	/* a word the description must contain */
	const char *needs;	/* the module of ours it links against */
	const char *depends;	/* modinfo "depends=" exactly */
};

FIXTURE_VARIANT_ADD(module, msi_isolation) {
	.name = "msi_isolation",
	.what = "MSI isolation",
	.depends = "",
};

FIXTURE_VARIANT_ADD(module, vfio_type1x) {
	.name = "vfio_type1x",
	.what = "VFIO",
	.needs = "msi_isolation",
	.depends = "vfio,msi_isolation",
};

FIXTURE_VARIANT_ADD(module, kvm_vits) {
	.name = "kvm_vits",
	.what = "ITS",
	.depends = "",	/* arm64 KVM is built in */
};

FIXTURE_SETUP(module)
{
	/* Start from a clean slate whatever an earlier test left. */
	if (mod_present("vfio_type1x"))
		ASSERT_EQ(0, mod_unload("vfio_type1x"));
	if (mod_present(variant->name))
		ASSERT_EQ(0, mod_unload(variant->name));
	if (variant->needs && !mod_present(variant->needs))
		ASSERT_EQ(0, mod_load(variant->needs, ""));
}

FIXTURE_TEARDOWN(module)
{
	if (mod_present(variant->name))
		mod_unload(variant->name);
	if (variant->needs)
		mod_unload(variant->needs);
}

TEST_F(module, load_unload_10x)
{
	int i;

	for (i = 0; i < 10; i++) {
		ASSERT_EQ(0, mod_load(variant->name, "")) TH_LOG("load %d of %s", i, variant->name);
		ASSERT_TRUE(mod_present(variant->name));
		/* A second load of the same module is refused, not stacked. */
		ASSERT_EQ(-EEXIST, mod_load(variant->name, ""));
		/* What it links against stays while it is loaded. */
		if (variant->needs)
			ASSERT_EQ(-EWOULDBLOCK, mod_unload(variant->needs));
		ASSERT_EQ(0, mod_unload(variant->name)) TH_LOG("unload %d of %s", i, variant->name);
		ASSERT_FALSE(mod_present(variant->name));
	}
}

/* Do the comma-separated lists @a and @b name the same modules, in any order? */
static int same_modules(const char *a, const char *b)
{
	int n = 0, m = 0;
	const char *p;

	for (p = a; *p; p += strcspn(p, ","), p += !!*p) {
		size_t len = strcspn(p, ",");
		const char *q = b;

		n++;
		while (*q && !(strncmp(q, p, len) == 0 && (q[len] == ',' || !q[len])))
			q += strcspn(q, ","), q += !!*q;
		if (!*q)
			return 0;
	}
	for (p = b; *p; p += strcspn(p, ","), p += !!*p)
		m++;
	return n == m;
}

TEST_F(module, modinfo)
{
	struct utsname u;
	const char *v;
	size_t len = 0;
	char *info;

	info = read_modinfo(variant->name, &len);
	ASSERT_NE(NULL, info) TH_LOG("no .modinfo in %s.ko", variant->name);

	v = modinfo_get(info, len, "license");
	ASSERT_NE(NULL, v);
	EXPECT_STREQ("GPL", v);

	v = modinfo_get(info, len, "name");
	ASSERT_NE(NULL, v);
	EXPECT_STREQ(variant->name, v);

	v = modinfo_get(info, len, "author");
	ASSERT_NE(NULL, v);
	EXPECT_NE(0, strlen(v));

	/* What modprobe loads first (depmod reads this; modpost's order). */
	v = modinfo_get(info, len, "depends");
	ASSERT_NE(NULL, v);
	EXPECT_TRUE(same_modules(variant->depends, v))
		TH_LOG("depends=%s, expected %s", v, variant->depends);

	v = modinfo_get(info, len, "description");
	ASSERT_NE(NULL, v);
	EXPECT_NE(NULL, strstr(v, variant->what)) TH_LOG("description: %s", v);

	/* Built against the running kernel. */
	v = modinfo_get(info, len, "vermagic");
	ASSERT_NE(NULL, v);
	ASSERT_EQ(0, uname(&u));
	EXPECT_EQ(0, strncmp(v, u.release, strlen(u.release))) TH_LOG("vermagic %s, kernel %s", v, u.release);
	free(info);
}

TEST_HARNESS_MAIN
