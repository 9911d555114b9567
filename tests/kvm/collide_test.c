// SPDX-License-Identifier: GPL-2.0
/*
 * The collision the MSI aperture exists for, with a real (small) VMM.
 *
 * A VMM built on the KVM selftests' library, as tests/kvm's others are,
 * whose guest RAM covers [0x7000000, 0x9000000), so it holds upstream's
 * software MSI window [0x8000000, 0x8100000) (MSI_IOVA_BASE in
 * drivers/iommu/arm/arm-smmu-v3). It assigns edu (1234:11e8) the way QEMU
 * does: every RAM slot mapped with VFIO_IOMMU_MAP_DMA at IOVA == GPA, edu's
 * BAR accesses trapped (KVM_EXIT_MMIO) and forwarded to the vfio-pci device
 * file, its MSI vector on an eventfd routed to the guest's ITS by an irqfd.
 * The guest (its code below) programs its ITS, has edu DMA a buffer at GPA
 * 0x8080000 (inside the window) to the device and back to 0x8090000, and
 * raises NR_MSIS interrupts, counting the LPIs.
 *
 *  - upstream vfio_iommu_type1: MAP_DMA of the RAM slot fails with EINVAL,
 *    so this VMM cannot assign the device (QEMU fails the same way);
 *  - vfio_type1x with its default aperture (the same window): the same;
 *  - vfio_type1x with VFIO_TYPE1X_SET_MSI_APERTURE above guest RAM, and
 *    separately with msi_base=: the map succeeds, the DMA round trip through
 *    the window's GPAs is intact, and NR_MSIS/NR_MSIS LPIs arrive through
 *    irqfd and kvm_vits (and, once, KVM's built-in ITS).
 *
 * The vGIC is not at the selftests' GPAs (their GITS_BASE_GPA is 0x8000000,
 * inside our RAM): the VMM places it at 0x10000000 and maps the selftests'
 * GIC virtual addresses there, so the library's guest GIC/ITS code runs
 * unchanged.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <linux/vfio_type1x.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>

#include "kvm_util.h"
#include "gic.h"
#include "gic_v3.h"
#include "gic_v3_its.h"
#include "processor.h"
#include "ucall.h"
#include "vgic.h"

#include "../guest/armsi_test.h"
#include "../guest/vfio_util.h"
#include "run_forked.h"
#include "../bench/stats.h"

#define VITS_KO		"/armsi/modules/kvm_vits.ko"
#define VITS_CREATED	"/sys/kernel/debug/kvm_vits/created"

/* Guest physical layout. */
#define RAM_SLOT	1
#define BAR_SLOT	2
#define RAM_GPA		0x7000000ULL	/* "bench": RAM_GPA_BENCH */
#define RAM_GPA_BENCH	0x9000000ULL	/* clear of the window */
#define RAM_SIZE	0x2000000ULL
#define WIN_START	0x8000000ULL	/* upstream's MSI_IOVA_BASE ... */
#define WIN_SIZE	0x100000ULL	/* ... and MSI_IOVA_LENGTH */
#define BUF_OFF		0x1080000ULL	/* DMA source in RAM; destination + 64 KiB */
#define BUF_GVA_OFF	0x40000000ULL	/* its guest virtual address: GPA + this */
#define GITS_GPA	0x10000000ULL
#define GICD_GPA	(GITS_GPA + KVM_VGIC_V3_ITS_SIZE)
#define GICR_GPA	(GICD_GPA + KVM_VGIC_V3_DIST_SIZE)
#define GIC_SIZE	(KVM_VGIC_V3_ITS_SIZE + KVM_VGIC_V3_DIST_SIZE + KVM_VGIC_V3_REDIST_SIZE)
#define EDU_GPA		0x11000000ULL

/* Where vfio_type1x's aperture goes instead: above guest RAM and MMIO. */
#define APERTURE	0x40000000ULL
#define APERTURE_SIZE	0x100000ULL

/* edu's DeviceID/EventID in the guest's ITS, and the LPI they map to. */
#define DEVID		0x10
#define EVENTID		0
#define LPI		8192
#define NR_MSIS		100
#define MAX_MSIS	1000

/* edu: 0x60 raise, 0x64 acknowledge; DMA 0x80 src, 0x88 dst, 0x90 count,
 * 0x98 command (bit 0 start, bit 1 device-to-RAM); its buffer at 0x40000. */
#define EDU_RAISE	0x60
#define EDU_ACK		0x64
#define EDU_DMA_SRC	0x80
#define EDU_DMA_DST	0x88
#define EDU_DMA_CNT	0x90
#define EDU_DMA_CMD	0x98
#define EDU_BUF		0x40000
#define DMA_LEN		0x1000

/* Set by the VMM before the guest runs. */
static struct {
	gpa_t dev_tbl, coll_tbl, cmdq, itt, prop, pend, buf;
	void *cmdq_va;
	u32 nr_msis;
	bool ours;	/* bench: vfio_type1x + kvm_vits, tbprof's phase B */
} g;

/* Written by the guest, read by the VMM when it is done. */
static struct {
	u32 lpis, other_irqs, timeouts, dma_ok;
	u64 irq_at;			/* counter at the last LPI's handler */
	u64 lat[MAX_MSIS];		/* raise -> handler, in counter ticks */
} r;

/* Guest ------------------------------------------------------------------- */

#define EDU ((volatile void *)EDU_GPA)

static u64 guest_us(void)
{
	return read_sysreg(cntvct_el0) / (read_sysreg(cntfrq_el0) / 1000000);
}

static void guest_irq_handler(struct ex_regs *regs)
{
	u32 intid = gic_get_and_ack_irq();

	if (intid == IAR_SPURIOUS)
		return;
	if (intid == LPI) {
		r.irq_at = read_sysreg(cntvct_el0);
		WRITE_ONCE(r.lpis, r.lpis + 1);
	}
	else
		WRITE_ONCE(r.other_irqs, r.other_irqs + 1);
	gic_set_eoi(intid);
}

/* One edu DMA transfer, polled; false if it does not finish within 5 s. */
static bool guest_edu_dma(u64 src, u64 dst, u64 len, bool to_ram)
{
	u64 until = guest_us() + 5000000;

	writeq(src, EDU + EDU_DMA_SRC);
	writeq(dst, EDU + EDU_DMA_DST);
	writeq(len, EDU + EDU_DMA_CNT);
	writeq(1 | (to_ram ? 2 : 0), EDU + EDU_DMA_CMD);
	while ((readq(EDU + EDU_DMA_CMD) & 1) && guest_us() < until)
		cpu_relax();
	return !(readq(EDU + EDU_DMA_CMD) & 1);
}

static void guest_code(void)
{
	volatile u8 *src = (volatile u8 *)(g.buf + BUF_GVA_OFF), *dst = src + 0x10000;
	u64 until, t0;
	u32 i;

	gic_init(GIC_V3, 1);
	gic_rdist_enable_lpis(g.prop, SZ_64K, g.pend);
	its_init(g.coll_tbl, SZ_64K, g.dev_tbl, SZ_64K, g.cmdq, SZ_64K);
	its_send_mapc_cmd(g.cmdq_va, 0, 0, true);
	its_send_mapd_cmd(g.cmdq_va, DEVID, g.itt, SZ_64K, true);
	its_send_mapti_cmd(g.cmdq_va, DEVID, EVENTID, 0, LPI);
	its_send_invall_cmd(g.cmdq_va, 0);
	its_send_sync_cmd(g.cmdq_va, 0);
	local_irq_enable();

	/* RAM (inside upstream's MSI window) -> edu -> RAM. */
	for (i = 0; i < DMA_LEN; i++) {
		src[i] = (u8)(i * 7 + 3);
		dst[i] = 0;
	}
	r.dma_ok = guest_edu_dma(g.buf, EDU_BUF, DMA_LEN, false) &&
		   guest_edu_dma(EDU_BUF, g.buf + 0x10000, DMA_LEN, true);
	for (i = 0; r.dma_ok && i < DMA_LEN; i++)
		if (dst[i] != src[i])
			r.dma_ok = 0;

	/*
	 * One MSI per raise, each waited for (5 s) and acknowledged. The hints
	 * are NOPs that switch tools/tbprof's phase for `make profile`.
	 */
	if (g.ours)
		asm volatile("hint #0x7e" ::: "memory");
	else
		asm volatile("hint #0x7d" ::: "memory");
	for (i = 0; i < g.nr_msis; i++) {
		until = guest_us() + 5000000;
		t0 = read_sysreg(cntvct_el0);
		writel(1, EDU + EDU_RAISE);
		while (READ_ONCE(r.lpis) <= i && guest_us() < until)
			cpu_relax();
		writel(1, EDU + EDU_ACK);
		if (READ_ONCE(r.lpis) <= i) {
			r.timeouts++;
			break;
		}
		r.lat[i] = r.irq_at - t0;
	}
	asm volatile("hint #0x7c" ::: "memory");
	GUEST_DONE();
}

/* VMM --------------------------------------------------------------------- */

static char edu_bdf[32];
static int edu_group;
static bool quiet;		/* benchmark rounds print only figures */

/* A backend pair: which VFIO IOMMU driver, where its aperture, which ITS. */
struct setup {
	bool type1x;
	const char *t1x_params;	/* extra vfio_type1x parameters */
	bool set_aperture;	/* VFIO_TYPE1X_SET_MSI_APERTURE above RAM */
	bool vits;
	bool refused;		/* the expected outcome: MAP_DMA of RAM fails */
	bool bench;		/* RAM clear of the window, BAR mapped, quiet */
	u32 nr_msis;
};

/* Loads kvm_vits for @s, or makes sure KVM's built-in ITS serves. */
static void use_its(const struct setup *s)
{
	int ret;

	mod_unload("kvm_vits");
	TEST_ASSERT(access("/sys/module/kvm_vits", F_OK), "kvm_vits does not unload");
	if (s->vits) {
		ret = mod_load(VITS_KO, "");
		TEST_ASSERT(!ret, "load kvm_vits: %s", strerror(-ret));
	}
}

static void print_iova_ranges(int container)
{
	static char buf[4096];
	struct vfio_iommu_type1_info *info = get_info(container, buf, sizeof(buf));
	struct vfio_iommu_type1_info_cap_iova_range *c = info ? iova_cap(info) : NULL;
	char line[512] = "";
	u32 i;

	for (i = 0; c && i < c->nr_iovas && strlen(line) < sizeof(line) - 48; i++)
		snprintf(line + strlen(line), sizeof(line) - strlen(line), " [%#llx-%#llx]",
			 (unsigned long long)c->iova_ranges[i].start,
			 (unsigned long long)c->iova_ranges[i].end);
	if (!quiet)
		printf("#   usable IOVA ranges:%s\n", c ? line : " (no capability)");
}

/* The doorbell pages vfio_type1x mapped; each must lie in [lo, lo + size). */
static u32 check_doorbells(int container, u64 lo, u64 size)
{
	static char buf[4096];
	struct vfio_iommu_type1_info *info = get_info(container, buf, sizeof(buf));
	struct vfio_iommu_type1x_info_cap_msi_aperture *ap;
	u32 i;

	TEST_ASSERT(info, "VFIO_IOMMU_GET_INFO: %s", strerror(errno));
	ap = find_cap(info, VFIO_IOMMU_TYPE1X_INFO_CAP_MSI_APERTURE);
	TEST_ASSERT(ap, "no MSI aperture capability in GET_INFO");
	TEST_ASSERT(ap->iova == lo && ap->size == size,
		    "aperture %#llx+%#llx, expected %#llx+%#llx", (unsigned long long)ap->iova,
		    (unsigned long long)ap->size, (unsigned long long)lo,
		    (unsigned long long)size);
	for (i = 0; i < ap->nr_doorbells; i++) {
		if (!quiet)
			printf("#   doorbell: IOVA %#llx -> %#llx\n",
		       (unsigned long long)ap->doorbells[i].iova,
		       (unsigned long long)ap->doorbells[i].phys);
		TEST_ASSERT(ap->doorbells[i].iova >= lo && ap->doorbells[i].iova < lo + size,
			    "doorbell outside the aperture");
	}
	return ap->nr_doorbells;
}

/* MAP_DMA of one memslot at IOVA == GPA: 0 or -errno. */
static int map_slot(int container, struct kvm_vm *vm, u32 slot)
{
	struct userspace_mem_region *rg = memslot2region(vm, slot);
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = rg->region.userspace_addr,
		.iova = rg->region.guest_phys_addr,
		.size = rg->region.memory_size,
	};
	int ret = ioctl(container, VFIO_IOMMU_MAP_DMA, &map) ? -errno : 0;

	if (!quiet)
		printf("#   MAP_DMA guest RAM [%#llx-%#llx] at IOVA == GPA: %s\n",
	       (unsigned long long)map.iova, (unsigned long long)(map.iova + map.size - 1),
	       ret ? strerror(-ret) : "ok");
	return ret;
}

static void vgic_create(struct kvm_vm *vm, int *gic_fd, int *its_fd)
{
	u32 nr_irqs = 64;
	u64 addr;

	*gic_fd = kvm_create_device(vm, KVM_DEV_TYPE_ARM_VGIC_V3);
	kvm_device_attr_set(*gic_fd, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &nr_irqs);
	addr = GICD_GPA;
	kvm_device_attr_set(*gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, &addr);
	addr = REDIST_REGION_ATTR_ADDR(1, GICR_GPA, 0, 0);
	kvm_device_attr_set(*gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR,
			    KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION, &addr);
	kvm_device_attr_set(*gic_fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL);

	*its_fd = kvm_create_device(vm, KVM_DEV_TYPE_ARM_VGIC_ITS);
	addr = GITS_GPA;
	kvm_device_attr_set(*its_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, &addr);
	kvm_device_attr_set(*its_fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL);

	/* The library's guest GIC code uses its own addresses: map them here. */
	virt_map(vm, (u64)GITS_BASE_GVA, GITS_GPA, GIC_SIZE / vm->page_size);
}

static gpa_t alloc_64k(struct kvm_vm *vm, gpa_t ram)
{
	return vm_phy_pages_alloc(vm, SZ_64K / vm->page_size, ram, RAM_SLOT);
}

/* Routes @efd to the guest's ITS as DeviceID DEVID, EventID EVENTID. */
static void route_msi(struct kvm_vm *vm, int efd)
{
	struct {
		struct kvm_irq_routing r;
		struct kvm_irq_routing_entry e;
	} rt = {
		.r.nr = 1,
		.e = {
			.gsi = 0,
			.type = KVM_IRQ_ROUTING_MSI,
			.flags = KVM_MSI_VALID_DEVID,
			.u.msi = {
				.address_lo = (u32)(GITS_GPA + GITS_TRANSLATER),
				.address_hi = (GITS_GPA + GITS_TRANSLATER) >> 32,
				.data = EVENTID,
				.devid = DEVID,
			},
		},
	};

	vm_ioctl(vm, KVM_SET_GSI_ROUTING, &rt.r);
	kvm_assign_irqfd(vm, 0, efd);
}

static void edu_msi(int dev, int efd, bool on)
{
	char buf[sizeof(struct vfio_irq_set) + sizeof(int)];
	struct vfio_irq_set *irq = (void *)buf;

	irq->argsz = on ? sizeof(buf) : sizeof(*irq);
	irq->flags = VFIO_IRQ_SET_ACTION_TRIGGER |
		     (on ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE);
	irq->index = VFIO_PCI_MSI_IRQ_INDEX;
	irq->start = 0;
	irq->count = on ? 1 : 0;
	memcpy(irq->data, &efd, sizeof(efd));
	TEST_ASSERT(!ioctl(dev, VFIO_DEVICE_SET_IRQS, irq), "VFIO_DEVICE_SET_IRQS (MSI %s): %s",
		    on ? "on" : "off", strerror(errno));
}

/* A trapped access to edu's BAR, forwarded to the vfio-pci device file. */
static void edu_mmio(struct kvm_run *run, int dev, u64 bar_off)
{
	off_t off = bar_off + run->mmio.phys_addr - EDU_GPA;
	ssize_t n = run->mmio.is_write ? pwrite(dev, run->mmio.data, run->mmio.len, off)
				       : pread(dev, run->mmio.data, run->mmio.len, off);

	TEST_ASSERT(n == run->mmio.len, "edu BAR %s at %#llx (%u bytes): %s",
		    run->mmio.is_write ? "write" : "read",
		    (unsigned long long)run->mmio.phys_addr, run->mmio.len, strerror(errno));
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The L1 IRQ that vfio-pci requested for edu's MSI, from /proc/interrupts. */
static int edu_irq(void)
{
	char line[1024];
	int irq = -1;
	FILE *f = fopen("/proc/interrupts", "r");

	TEST_ASSERT(f, "/proc/interrupts: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "vfio-msi[0]") && strstr(line, edu_bdf)) {
			irq = atoi(line);
			break;
		}
	fclose(f);
	TEST_ASSERT(irq > 0, "no vfio-msi IRQ for %s in /proc/interrupts", edu_bdf);
	return irq;
}

static int irq_cpu(int irq)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/irq/%d/effective_affinity_list", irq);
	return read_long(path);
}

static long vits_created(void)
{
	return access(VITS_CREATED, F_OK) ? 0 : read_long(VITS_CREATED);
}

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

/*
 * Runs the VMM once with @s's backends; returns the median raise-to-handler
 * latency of the guest's MSIs in ns (0 when MAP_DMA was refused).
 */
static double run_vmm(const struct setup *s)
{
	struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
	gpa_t ram = s->bench ? RAM_GPA_BENCH : RAM_GPA, buf = ram + BUF_OFF;
	u32 nr_msis = s->nr_msis ?: NR_MSIS;
	struct vfio v = { -1, -1 };
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int gic_fd, its_fd, dev, efd, ret, irq = -1;
	double t0, median = 0;
	void *bar_va = NULL;
	long created0;
	struct ucall uc;
	u8 *hsrc, *hdst;

	use_its(s);
	created0 = vits_created();
	ret = vfio_backend(&v, edu_group, VFIO_TYPE1v2_IOMMU, s->type1x, s->t1x_params);
	TEST_ASSERT(!ret, "VFIO set-up (%s): %s", s->type1x ? "vfio_type1x" : "upstream",
		    strerror(-ret));
	if (s->set_aperture) {
		struct vfio_type1x_msi_aperture a = {
			.argsz = sizeof(a), .iova = APERTURE, .size = APERTURE_SIZE,
		};

		TEST_ASSERT(!ioctl(v.container, VFIO_TYPE1X_SET_MSI_APERTURE, &a),
			    "VFIO_TYPE1X_SET_MSI_APERTURE: %s", strerror(errno));
		if (!quiet)
			printf("#   VFIO_TYPE1X_SET_MSI_APERTURE [%#llx-%#llx]: ok\n", APERTURE,
			       APERTURE + APERTURE_SIZE - 1);
	}
	print_iova_ranges(v.container);
	/*
	 * For `make profile` (tests/profile/prof_msi_rtt.sh): where the modules
	 * are now, and which phase the guest's MSI loop will mark.
	 */
	if (getenv("TBPROF_SYMS")) {
		fflush(stdout);
		TEST_ASSERT(!system("sed -rn '/\\[(kvm_vits|vfio_type1x|msi_isolation)\\]/"
				    "s/^/# ks /p' /proc/kallsyms"), "kallsyms");
		printf("# tbprof %c\n", s->type1x ? 'B' : 'A');
		fflush(stdout);
	}

	test_disable_default_vgic();
	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	vm_init_descriptor_tables(vm);
	vcpu_init_descriptor_tables(vcpu);
	vm_install_exception_handler(vm, VECTOR_IRQ_CURRENT, guest_irq_handler);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, ram, RAM_SLOT,
				    RAM_SIZE / vm->page_size, 0);
	vgic_create(vm, &gic_fd, &its_fd);

	g.dev_tbl = alloc_64k(vm, ram);
	g.coll_tbl = alloc_64k(vm, ram);
	g.cmdq = alloc_64k(vm, ram);
	g.itt = alloc_64k(vm, ram);
	g.prop = alloc_64k(vm, ram);
	g.pend = alloc_64k(vm, ram);
	TEST_ASSERT(g.pend + SZ_64K <= buf, "ITS tables run into the DMA buffer");
	virt_map(vm, g.cmdq, g.cmdq, SZ_64K / vm->page_size);
	g.cmdq_va = (void *)g.cmdq;
	*(u8 *)addr_gpa2hva(vm, g.prop) = 0xa0 | LPI_PROP_GROUP1 | LPI_PROP_ENABLED;
	g.nr_msis = nr_msis;
	g.ours = s->type1x;
	g.buf = buf;
	sync_global_to_guest(vm, g);
	virt_map(vm, buf + BUF_GVA_OFF, buf, 0x20000 / vm->page_size);

	/* All guest RAM, 1:1, as QEMU maps it. */
	TEST_ASSERT(!map_slot(v.container, vm, 0), "MAP_DMA of the selftests' slot 0");
	ret = map_slot(v.container, vm, RAM_SLOT);
	if (s->refused) {
		TEST_ASSERT(ret == -EINVAL, "MAP_DMA over the MSI window: %s, expected EINVAL",
			    ret ? strerror(-ret) : "ok");
		printf("#   => refused: the MSI window [%#llx-%#llx] lies in guest RAM; the device cannot be assigned, the guest gets no MSI\n",
		       WIN_START, WIN_START + WIN_SIZE - 1);
		goto out_vm;
	}
	TEST_ASSERT(!ret, "MAP_DMA of guest RAM [%#llx-%#llx]", (unsigned long long)ram,
		    (unsigned long long)(ram + RAM_SIZE - 1));

	dev = ioctl(v.group, VFIO_GROUP_GET_DEVICE_FD, edu_bdf);
	TEST_ASSERT(dev >= 0, "VFIO_GROUP_GET_DEVICE_FD %s: %s", edu_bdf, strerror(errno));
	TEST_ASSERT(!ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &bar), "BAR0 region info");
	TEST_ASSERT(!enable_bus_master(dev), "bus mastering");
	if (s->bench) {
		/* As QEMU does: the BAR's mmap as a memslot, no exit per access. */
		bar_va = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev, bar.offset);
		TEST_ASSERT(bar_va != MAP_FAILED, "mmap of edu's BAR0: %s", strerror(errno));
		vm_set_user_memory_region(vm, BAR_SLOT, 0, EDU_GPA, bar.size, bar_va);
	}
	virt_map(vm, EDU_GPA, EDU_GPA, bar.size / vm->page_size);
	efd = eventfd(0, 0);
	TEST_ASSERT(efd >= 0, "eventfd");
	edu_msi(dev, efd, true);
	route_msi(vm, efd);
	if (s->bench) {
		char path[64];
		cpu_set_t cpu0;

		/*
		 * Both sides run with the same placement: the vCPU's thread
		 * and edu's MSI on CPU 0. Left to the scheduler, the rounds
		 * split into a fast and a slow mode (about 1.5x) that either
		 * side gets at random, and the interval spans 0.75 to 1.0.
		 */
		CPU_ZERO(&cpu0);
		CPU_SET(0, &cpu0);
		TEST_ASSERT(!sched_setaffinity(0, sizeof(cpu0), &cpu0), "sched_setaffinity: %s",
			    strerror(errno));
		irq = edu_irq();
		snprintf(path, sizeof(path), "/proc/irq/%d/smp_affinity_list", irq);
		ret = write_str(path, "0");
		TEST_ASSERT(!ret, "%s: %s", path, strerror(-ret));
	}
	if (s->type1x)
		check_doorbells(v.container, s->t1x_params || s->set_aperture ? APERTURE : WIN_START,
				APERTURE_SIZE);

	t0 = now();
	for (;;) {
		vcpu_run(vcpu);
		if (vcpu->run->exit_reason == KVM_EXIT_MMIO &&
		    vcpu->run->mmio.phys_addr - EDU_GPA < bar.size) {
			edu_mmio(vcpu->run, dev, bar.offset);
			continue;
		}
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_DONE:
			goto done;
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
			break;
		default:
			TEST_FAIL("unexpected exit %s, ucall %lu",
				  exit_reason_str(vcpu->run->exit_reason), uc.cmd);
		}
	}
done:
	if (s->bench)
		TEST_ASSERT(irq_cpu(irq) == 0 && sched_getcpu() == 0,
			    "edu's MSI (IRQ %d) on CPU %d, the vCPU on CPU %d: not both on CPU 0", irq,
			    irq_cpu(irq), sched_getcpu());
	sync_global_from_guest(vm, r);
	hsrc = addr_gpa2hva(vm, buf);
	hdst = addr_gpa2hva(vm, buf + 0x10000);
	if (!quiet)
		printf("#   guest: edu DMA GPA %#llx -> device -> GPA %#llx: %s; MSIs %u/%u as LPI %u (%u other IRQs) in %.1f s\n",
		       (unsigned long long)buf, (unsigned long long)buf + 0x10000,
		       r.dma_ok ? "intact" : "FAILED", r.lpis, nr_msis, LPI, r.other_irqs,
		       now() - t0);
	TEST_ASSERT(r.dma_ok && !memcmp(hsrc, hdst, DMA_LEN), "DMA round trip through the window");
	TEST_ASSERT(r.lpis == nr_msis && !r.timeouts, "%u of %u MSIs arrived", r.lpis, nr_msis);
	TEST_ASSERT(!r.other_irqs, "%u unexpected interrupts", r.other_irqs);
	if (s->vits)
		TEST_ASSERT(vits_created() > created0, "the guest's ITS did not come from kvm_vits");
	qsort(r.lat, nr_msis, sizeof(r.lat[0]), cmp_u64);
	median = r.lat[nr_msis / 2] * 1e9 / read_sysreg(cntfrq_el0);
	edu_msi(dev, efd, false);
	close(efd);
	if (bar_va) {
		vm_set_user_memory_region(vm, BAR_SLOT, 0, EDU_GPA, 0, NULL);
		munmap(bar_va, bar.size);
	}
	close(dev);
out_vm:
	close(its_fd);
	close(gic_fd);
	kvm_vm_free(vm);
	vfio_teardown(&v);
	return median;
}

static const struct setup upstream = { .refused = true, .vits = true };
static const struct setup t1x_default = { .type1x = true, .refused = true, .vits = true };
static const struct setup t1x_ioctl = { .type1x = true, .set_aperture = true, .vits = true };
static const struct setup t1x_param = {
	.type1x = true, .t1x_params = "msi_base=0x40000000", .vits = true,
};
static const struct setup t1x_builtin = { .type1x = true, .set_aperture = true };

static void case_upstream(void) { run_vmm(&upstream); }
static void case_t1x_default(void) { run_vmm(&t1x_default); }
static void case_t1x_ioctl(void) { run_vmm(&t1x_ioctl); }
static void case_t1x_param(void) { run_vmm(&t1x_param); }
static void case_t1x_builtin(void) { run_vmm(&t1x_builtin); }

static const struct {
	const char *name;
	const char *story;
	void (*fn)(void);
} cases[] = {
	{ "upstream_refuses_guest_ram_over_its_window",
	  "upstream vfio_iommu_type1 (MSI window fixed at 0x8000000)", case_upstream },
	{ "type1x_default_aperture_refuses_like_upstream",
	  "vfio_type1x, default aperture (the same window)", case_t1x_default },
	{ "type1x_aperture_moved_by_ioctl_dma_and_msis_work",
	  "vfio_type1x, VFIO_TYPE1X_SET_MSI_APERTURE above guest RAM, kvm_vits", case_t1x_ioctl },
	{ "type1x_aperture_moved_by_msi_base_dma_and_msis_work",
	  "vfio_type1x msi_base=0x40000000, kvm_vits", case_t1x_param },
	{ "type1x_aperture_moved_with_builtin_its",
	  "vfio_type1x, SET_MSI_APERTURE, KVM's built-in ITS", case_t1x_builtin },
};

static u32 bench_msis;

/*
 * One benchmark VM: upstream's stack (0: vfio_iommu_type1, KVM's ITS) or
 * ours (1: vfio_type1x, kvm_vits), guest RAM clear of the window.
 */
static double bench_side(int ours)
{
	struct setup s = {
		.bench = true, .nr_msis = bench_msis, .type1x = ours, .vits = ours,
	};

	return run_vmm(&s);
}

/*
 * make bench: the assigned edu's MSI round trip seen from the guest (raise
 * to handler), the upstream C stack (vfio_iommu_type1 + KVM's ITS) against
 * ours (vfio_type1x + kvm_vits), alternating which goes first, @rounds
 * pairs of one VM each. Prints every round, then the median ratio
 * upstream/ours (a speed ratio: above 1, ours is faster) with its 95%
 * bootstrap interval.
 */
static int bench(int rounds, u32 nr_msis)
{
	struct stats_ratio q;
	double up, ours;

	TEST_ASSERT(rounds > 0 && rounds <= STATS_MAX_ROUNDS && nr_msis && nr_msis <= MAX_MSIS,
		    "bad arguments");
	quiet = true;
	bench_msis = nr_msis;
	q = stats_time_rounds("msi-rtt", rounds, bench_side, &up, &ours);
	printf("# msi-rtt (guest raise -> LPI handler, median of %u MSIs a round, %d rounds) upstream %.0f ns, ours %.0f ns: ratio (speed) ours/upstream %.3f [95%% %.3f, %.3f] %s\n",
	       nr_msis, rounds, up, ours, q.median, q.lo, q.hi, stats_verdict(q));
	mod_unload("vfio_type1x");
	mod_unload("kvm_vits");
	return 0;
}

/*
 *   collide_test              the cases above (TAP)
 *   collide_test bench [rounds [msis]]   the MSI round-trip benchmark
 */
int main(int argc, char **argv)
{
	int i, status, fails = 0;

	bool is_bench = argc > 1 && !strcmp(argv[1], "bench");
	const char *why;
	int fail;

	if (!is_bench) {
		ksft_print_header();
		ksft_set_plan(ARRAY_SIZE(cases));
	}
	if (!kvm_supports_vgic_v3())
		ksft_exit_skip("no GICv3 in KVM\n");
	why = edu_vfio_ready(edu_bdf, sizeof(edu_bdf), &edu_group, &fail);
	if (why && fail)
		ksft_exit_fail_msg("%s\n", why);
	if (why)
		ksft_exit_skip("%s\n", why);
	if (is_bench)
		return bench(argc > 2 ? atoi(argv[2]) : 9, argc > 3 ? atoi(argv[3]) : 200);
	printf("# guest RAM [%#llx-%#llx] covers the MSI window [%#llx-%#llx]; edu %s (group %d) assigned\n",
	       RAM_GPA, RAM_GPA + RAM_SIZE - 1, WIN_START, WIN_START + WIN_SIZE - 1, edu_bdf,
	       edu_group);

	for (i = 0; i < (int)ARRAY_SIZE(cases); i++) {
		printf("# %s:\n", cases[i].story);
		status = run_forked(cases[i].fn);
		fails += report_forked(cases[i].name, status);
	}
	mod_unload("vfio_type1x");
	mod_unload("kvm_vits");
	ksft_print_cnts();
	return fails ? KSFT_FAIL : KSFT_PASS;
}
