// SPDX-License-Identifier: GPL-2.0
/*
 * vits_lifetime_test - kvm_vits's module lifetime against hostile VMMs.
 *
 *   vits_lifetime_test
 *
 * a_fd_failure_pins_module: KVM_CREATE_DEVICE(ITS) fails with EMFILE under
 *   a low RLIMIT_NOFILE, so KVM destroys the new device while the VM lives.
 *   The VM chose kvm_vits as its ITS backend and keeps calling it (MSI
 *   injection), so the module must stay pinned until the VM is gone: rmmod
 *   is refused, KVM_SIGNAL_MSI and an irqfd MSI are answered without
 *   a crash, and once the VM is freed the module unloads.
 * b_fd_failure_beside_live_its: the same failure on a VM that already has
 *   an ITS with its frame registered; the live ITS keeps serving MSIs.
 * c_stress_vms_and_unload: three processes create and destroy VMs with
 *   ITSes (some creations failing as above), inject MSIs through
 *   KVM_SIGNAL_MSI and irqfds, while the main process loads and unloads
 *   kvm_vits over and over; at the end every VM is gone and the module
 *   unloads. KASAN, lockdep and kmemleak in the test kernel check the rest.
 *
 * Each case runs in a child process, so a failed assertion fails that case.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/sizes.h>

#include "kvm_util.h"
#include "gic.h"
#include "gic_v3.h"
#include "processor.h"
#include "ucall.h"
#include "vgic.h"
#include "kselftest.h"
#include "run_forked.h"

#define VITS_KO		"/armsi/modules/kvm_vits.ko"
#define VITS_REFCNT	"/sys/module/kvm_vits/refcnt"
#define TRANSLATER	(GITS_BASE_GPA + SZ_64K + 0x40)

static void guest_code(void)
{
	GUEST_DONE();
}

static bool vits_loaded(void)
{
	return access("/sys/module/kvm_vits", F_OK) == 0;
}

static long vits_refcnt(void)
{
	char buf[32] = {};
	int fd = open(VITS_REFCNT, O_RDONLY);

	if (fd < 0)
		return -1;
	if (read(fd, buf, sizeof(buf) - 1) <= 0)
		buf[0] = 0;
	close(fd);
	return strtol(buf, NULL, 10);
}

static int load_vits(void)
{
	int fd, ret;

	if (vits_loaded())
		return 0;
	fd = open(VITS_KO, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, "", 0) && errno != EEXIST ? -errno : 0;
	close(fd);
	return ret;
}

static int unload_vits(void)
{
	return syscall(SYS_delete_module, "kvm_vits", O_NONBLOCK) ? -errno : 0;
}

/* delete_module()'s answers for a module that is in use. */
static bool refused(int err)
{
	return err == -EWOULDBLOCK || err == -EBUSY;
}

/* Unloads kvm_vits, retrying while a dying VM still holds it (5 s). */
static int unload_vits_wait(void)
{
	int i, ret = 0;

	for (i = 0; i < 50 && vits_loaded(); i++) {
		ret = unload_vits();
		if (!ret || ret == -ENOENT)
			return 0;
		usleep(100000);
	}
	return vits_loaded() ? ret : 0;
}

/*
 * KVM_CREATE_DEVICE(ITS) with no free file descriptor: KVM creates the
 * device, fails to give it an fd and destroys it. Returns the errno.
 */
static int create_its_without_fd(struct kvm_vm *vm)
{
	struct rlimit old, rl;
	int fd, ret;

	TEST_ASSERT(!getrlimit(RLIMIT_NOFILE, &old), "getrlimit");
	fd = dup(0);
	TEST_ASSERT(fd >= 0, "dup");
	close(fd);
	/* Every descriptor from the lowest free one up is beyond the limit. */
	rl.rlim_cur = fd;
	rl.rlim_max = old.rlim_max;
	TEST_ASSERT(!setrlimit(RLIMIT_NOFILE, &rl), "setrlimit");
	ret = __kvm_create_device(vm, KVM_DEV_TYPE_ARM_VGIC_ITS);
	TEST_ASSERT(!setrlimit(RLIMIT_NOFILE, &old), "setrlimit restore");
	if (ret >= 0) {
		close(ret);
		return 0;
	}
	return errno;
}

static int signal_msi(struct kvm_vm *vm, u32 devid, u32 ev)
{
	struct kvm_msi msi = {
		.address_lo = (u32)TRANSLATER,
		.address_hi = TRANSLATER >> 32,
		.data = ev,
		.flags = KVM_MSI_VALID_DEVID,
		.devid = devid,
	};

	return __vm_ioctl(vm, KVM_SIGNAL_MSI, &msi);
}

/* GSI 0 routed to an MSI (@devid, @ev) at the ITS, fed by a new irqfd. */
static int msi_irqfd(struct kvm_vm *vm, u32 devid, u32 ev)
{
	struct kvm_irq_routing *r = calloc(1, sizeof(*r) + sizeof(r->entries[0]));
	int efd = eventfd(0, EFD_NONBLOCK);

	TEST_ASSERT(r && efd >= 0, "calloc/eventfd");
	r->nr = 1;
	r->entries[0].gsi = 0;
	r->entries[0].type = KVM_IRQ_ROUTING_MSI;
	r->entries[0].flags = KVM_MSI_VALID_DEVID;
	r->entries[0].u.msi.address_lo = (u32)TRANSLATER;
	r->entries[0].u.msi.address_hi = TRANSLATER >> 32;
	r->entries[0].u.msi.data = ev;
	r->entries[0].u.msi.devid = devid;
	vm_ioctl(vm, KVM_SET_GSI_ROUTING, r);
	free(r);
	kvm_assign_irqfd(vm, 0, efd);
	return efd;
}

static void kick(int efd, int n)
{
	u64 one = 1;
	int i;

	for (i = 0; i < n; i++)
		TEST_ASSERT(write(efd, &one, sizeof(one)) == sizeof(one), "eventfd write");
}

static struct kvm_vm *new_vm(void)
{
	struct kvm_vcpu *vcpu;

	return vm_create_with_vcpus(1, guest_code, &vcpu);
}

static void case_fd_failure(void)
{
	struct kvm_vm *vm;
	int err, efd;

	TEST_ASSERT(!load_vits(), "load kvm_vits");
	vm = new_vm();
	TEST_ASSERT(vits_refcnt() == 0, "refcnt %ld with no ITS", vits_refcnt());
	err = create_its_without_fd(vm);
	TEST_ASSERT(err == EMFILE, "KVM_CREATE_DEVICE(ITS) without an fd: %s", strerror(err));
	/* The VM chose kvm_vits: it must hold the module until it dies. */
	TEST_ASSERT(vits_refcnt() == 1, "refcnt %ld after the failed create", vits_refcnt());
	err = unload_vits();
	TEST_ASSERT(refused(err), "rmmod kvm_vits under a VM that uses it: %s",
		    err ? strerror(-err) : "it was unloaded");
	/* No ITS frame: the MSIs go nowhere, and nothing crashes. */
	TEST_ASSERT(signal_msi(vm, 0, 0) < 0 && errno == EINVAL,
		    "KVM_SIGNAL_MSI without an ITS frame: %d", errno);
	efd = msi_irqfd(vm, 0, 0);
	kick(efd, 4);
	usleep(10000);
	close(efd);
	kvm_vm_free(vm);
	TEST_ASSERT(!unload_vits_wait(), "rmmod kvm_vits once the VM is gone");
	TEST_ASSERT(!load_vits(), "reload kvm_vits");
}

static void case_beside_live_its(void)
{
	struct kvm_vm *vm;
	int err, its, efd, i;

	TEST_ASSERT(!load_vits(), "load kvm_vits");
	vm = new_vm();
	its = vgic_its_setup(vm);
	TEST_ASSERT(vits_refcnt() >= 1, "refcnt %ld with an ITS", vits_refcnt());
	err = create_its_without_fd(vm);
	TEST_ASSERT(err == EMFILE, "second KVM_CREATE_DEVICE(ITS) without an fd: %s",
		    strerror(err));
	/*
	 * The live ITS still owns its frame and answers MSIs: EBUSY, as the
	 * guest has not enabled it (without an ITS at the doorbell: EINVAL).
	 */
	for (i = 0; i < 8; i++)
		TEST_ASSERT(signal_msi(vm, i, i) < 0 && errno == EBUSY,
			    "KVM_SIGNAL_MSI to the live, disabled ITS: %s", strerror(errno));
	efd = msi_irqfd(vm, 1, 1);
	kick(efd, 8);
	usleep(10000);
	close(efd);
	TEST_ASSERT(refused(unload_vits()), "rmmod kvm_vits with a live ITS");
	close(its);
	kvm_vm_free(vm);
	TEST_ASSERT(!unload_vits_wait(), "rmmod kvm_vits once the VM is gone");
	TEST_ASSERT(!load_vits(), "reload kvm_vits");
}

#define STRESS_WORKERS	3
#define STRESS_SECONDS	12

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void stress_worker(unsigned int seed, double until)
{
	unsigned long vms = 0, msis = 0;

	while (now() < until) {
		struct kvm_vm *vm = new_vm();
		int its = -1, efd, i, n;

		if (rand_r(&seed) % 4 == 0)
			create_its_without_fd(vm);
		if (rand_r(&seed) % 4)
			its = vgic_its_setup(vm);
		if (rand_r(&seed) % 4 == 0)
			create_its_without_fd(vm);
		n = rand_r(&seed) % 32;
		for (i = 0; i < n; i++)
			signal_msi(vm, rand_r(&seed) % 4, rand_r(&seed) % 4);
		efd = msi_irqfd(vm, rand_r(&seed) % 4, rand_r(&seed) % 4);
		kick(efd, n);
		msis += 2 * n;
		if (rand_r(&seed) & 1)
			usleep(rand_r(&seed) % 20000);
		close(efd);
		if (its >= 0)
			close(its);
		kvm_vm_free(vm);
		vms++;
	}
	printf("# worker %u: %lu VMs, %lu MSIs\n", getpid(), vms, msis);
	fflush(stdout);
}

static void case_stress(void)
{
	double until = now() + STRESS_SECONDS;
	unsigned long loads = 0, unloads = 0, busy = 0;
	pid_t pids[STRESS_WORKERS];
	int i, status, ret;

	TEST_ASSERT(!load_vits(), "load kvm_vits");
	for (i = 0; i < STRESS_WORKERS; i++) {
		pids[i] = fork();
		TEST_ASSERT(pids[i] >= 0, "fork");
		if (!pids[i]) {
			stress_worker(0x1234 + i, until);
			_exit(0);
		}
	}
	while (now() < until) {
		if (vits_loaded()) {
			ret = unload_vits();
			if (!ret)
				unloads++;
			else if (refused(ret))
				busy++;
			else
				TEST_FAIL("rmmod kvm_vits: %s", strerror(-ret));
		} else {
			TEST_ASSERT(!load_vits(), "load kvm_vits");
			loads++;
		}
		usleep(5000 + rand() % 20000);
	}
	for (i = 0; i < STRESS_WORKERS; i++) {
		TEST_ASSERT(waitpid(pids[i], &status, 0) == pids[i], "waitpid");
		TEST_ASSERT(WIFEXITED(status) && !WEXITSTATUS(status), "worker %d failed", i);
	}
	printf("# %lu loads, %lu unloads, %lu refused (in use)\n", loads, unloads, busy);
	TEST_ASSERT(!unload_vits_wait(), "rmmod kvm_vits once every VM is gone");
	TEST_ASSERT(!load_vits(), "reload kvm_vits");
	TEST_ASSERT(vits_refcnt() == 0, "refcnt %ld with no VM", vits_refcnt());
}

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
	{ "a_fd_failure_pins_module", case_fd_failure },
	{ "b_fd_failure_beside_live_its", case_beside_live_its },
	{ "c_stress_vms_and_unload", case_stress },
};

int main(int argc, char **argv)
{
	int i, status, fails = 0;

	ksft_print_header();
	ksft_set_plan(ARRAY_SIZE(cases));
	if (!kvm_supports_vgic_v3())
		ksft_exit_skip("no GICv3 in KVM\n");
	if (access(VITS_KO, F_OK))
		ksft_exit_fail_msg("%s missing\n", VITS_KO);

	for (i = 0; i < (int)ARRAY_SIZE(cases); i++) {
		status = run_forked(cases[i].fn);
		fails += report_forked(cases[i].name, status);
	}
	ksft_print_cnts();
	return fails ? KSFT_FAIL : KSFT_PASS;
}
