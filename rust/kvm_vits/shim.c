// SPDX-License-Identifier: GPL-2.0
/*
 * C side of kvm_vits: the KVM ITS backend registration, the device ops and
 * the MMIO frame (trampolines into Rust), and those calls of the Rust ITS
 * model into KVM that name a vCPU: kvm_get_vcpu_by_id() is a static inline,
 * so a vCPU id becomes a struct kvm_vcpu * here, for the backend helper the
 * KVM patches export. The other helpers (guest memory, LPI references, the
 * VM lock) ffi.rs declares and calls directly. The ITS logic itself is in
 * Rust; see ffi.rs for the other half.
 *
 * Needs the KVM ITS backend interface (patches/ in the armsi tree).
 */

#include <linux/hash.h>
#include <linux/kvm_host.h>
#include <linux/module.h>
#include <linux/rculist.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include <linux/irqchip/arm-gic-v3.h>

#include <kvm/arm_vgic.h>
#include <kvm/iodev.h>

#include <armsi/kvm_vits_shim.h>
#include <uapi/linux/kvm_vits.h>

/* The size rust/kvm_vits/ffi.rs asserts of its mirror. */
static_assert(sizeof(struct kvm_vits_translation) == 16);
/* The uAPI numbers rust/kvm_vits/attr.rs and its.rs use. */
static_assert(KVM_DEV_ARM_VGIC_GRP_ADDR == 0 && KVM_DEV_ARM_VGIC_GRP_CTRL == 4 &&
	      KVM_DEV_ARM_VGIC_GRP_ITS_REGS == 8 && KVM_VITS_GRP_TRANSLATE == 0x4b56);
static_assert(KVM_VGIC_ITS_ADDR_TYPE == 4 && KVM_DEV_ARM_VGIC_CTRL_INIT == 0 &&
	      KVM_DEV_ARM_ITS_SAVE_TABLES == 1 && KVM_DEV_ARM_ITS_RESTORE_TABLES == 2 &&
	      KVM_DEV_ARM_ITS_CTRL_RESET == 4);
static_assert(KVM_VGIC_ITS_NO_BASE == U64_MAX && KVM_VITS_NO_VCPU == U32_MAX);

/* One ITS device: the MMIO frame KVM dispatches to, and the Rust object. */
struct kvits_dev {
	struct kvm_io_device iodev;
	struct kvm_device *dev;
	struct kvm *kvm;
	void *its;
	gpa_t base;
	struct rcu_head rcu;
};

/* The core's ITS device ops, which every ITS device of our VMs carries. */
static const struct kvm_device_ops *kvits_core_ops;

static const struct kvm_io_device_ops kvits_io_ops;

/*
 * The MSI paths' shortcut from a VM to its ITS, skipping the I/O bus lookup
 * (an SRCU read section and a binary search per MSI): one RCU-protected
 * pointer per hash of the VM, naming an ITS whose frame is registered; the
 * first such ITS of a VM that finds its slot free takes it. A reader uses
 * the entry only if it is the VM's own and the doorbell is in its frame,
 * else it takes the bus lookup. That ITS lives as long as its VM (it has a
 * frame, so it got its file descriptor: KVM destroys it only with the VM),
 * and the injecting caller holds the VM. Another VM's entry is only
 * compared, under rcu_read_lock(); kvits_destroy() frees it after a grace
 * period.
 */
#define KVITS_VM_HASH_BITS	6
static struct kvits_dev __rcu *kvits_vms[1 << KVITS_VM_HASH_BITS];
static DEFINE_SPINLOCK(kvits_vms_lock);

static struct kvits_dev __rcu **kvits_vm_slot(struct kvm *kvm)
{
	return &kvits_vms[hash_ptr(kvm, KVITS_VM_HASH_BITS)];
}

static void kvits_vm_add(struct kvits_dev *kd)
{
	struct kvits_dev __rcu **slot = kvits_vm_slot(kd->kvm);

	guard(spinlock)(&kvits_vms_lock);
	if (!rcu_access_pointer(*slot))
		rcu_assign_pointer(*slot, kd);
}

static void kvits_vm_remove(struct kvits_dev *kd)
{
	struct kvits_dev __rcu **slot = kvits_vm_slot(kd->kvm);

	guard(spinlock)(&kvits_vms_lock);
	if (rcu_access_pointer(*slot) == kd)
		RCU_INIT_POINTER(*slot, NULL);
}

static struct kvits_dev *kvits_vm_lookup(struct kvm *kvm, u64 db)
{
	struct kvits_dev *kd;

	guard(rcu)();
	kd = rcu_dereference(*kvits_vm_slot(kvm));
	if (kd && kd->kvm == kvm && db - kd->base < KVM_VGIC_V3_ITS_SIZE)
		return kd;
	return NULL;
}

/* --- the model's calls that name a vCPU --------------------------------- */

/*
 * A vCPU id (-1: none) as the helpers take it: kvm_get_vcpu_by_id() is a
 * static inline, so Rust cannot look a vCPU up. The helpers that take no
 * vCPU ffi.rs calls directly.
 */
static struct kvm_vcpu *kvits_vcpu(struct kvm *kvm, s64 id)
{
	if (id < 0 || id > U32_MAX)
		return NULL;
	return kvm_get_vcpu_by_id(kvm, id);
}

bool kvits_vcpu_exists(struct kvm *kvm, u32 vcpu_id)
{
	return kvits_vcpu(kvm, vcpu_id);
}

bool kvits_lpis_enabled(struct kvm *kvm, u32 vcpu_id)
{
	struct kvm_vcpu *vcpu = kvits_vcpu(kvm, vcpu_id);

	return vcpu && kvm_vgic_lpis_enabled(vcpu);
}

/* Also decodes the ERR_PTR() (IS_ERR() and PTR_ERR() are static inlines). */
int kvits_lpi_add(struct kvm *kvm, u32 intid, s64 target, struct vgic_irq **out)
{
	struct vgic_irq *irq = kvm_vgic_lpi_get(kvm, intid, kvits_vcpu(kvm, target));

	if (IS_ERR(irq))
		return PTR_ERR(irq);
	*out = irq;
	return 0;
}

bool kvits_lpi_map(struct kvm *kvm, struct vgic_irq *irq, s64 target)
{
	return kvm_vgic_lpi_claim(kvm, irq, kvits_vcpu(kvm, target));
}

int kvits_lpi_set_target(struct kvm *kvm, struct vgic_irq *irq, s64 from, u32 to)
{
	struct kvm_vcpu *from_vcpu = kvits_vcpu(kvm, from);

	/* Only if it targets @from now: a vCPU that does not exist it cannot. */
	if (from >= 0 && !from_vcpu)
		return 0;
	kvm_vgic_lpi_set_target(irq, from_vcpu, kvits_vcpu(kvm, to));
	return 0;
}

void kvits_invall(struct kvm *kvm, u32 vcpu_id)
{
	struct kvm_vcpu *vcpu = kvits_vcpu(kvm, vcpu_id);

	if (vcpu)
		kvm_vgic_lpi_invall(vcpu);
}

/* MOVALL: every LPI of the VM targeting @from now targets @to. */
void kvits_movall(struct kvm *kvm, u32 from, u32 to)
{
	kvm_vgic_lpi_movall(kvm, kvits_vcpu(kvm, from), kvits_vcpu(kvm, to));
}

/* --- the MMIO frame ----------------------------------------------------- */

/* The frame's accesses, sized and decoded in Rust (kvits_rs_mmio_*). */
static int kvits_mmio_read(struct kvm_vcpu *vcpu, struct kvm_io_device *this,
			   gpa_t addr, int len, void *val)
{
	struct kvits_dev *kd = container_of(this, struct kvits_dev, iodev);

	kvits_rs_mmio_read(kd->its, addr - kd->base, len, val);
	return 0;
}

static int kvits_mmio_write(struct kvm_vcpu *vcpu, struct kvm_io_device *this,
			    gpa_t addr, int len, const void *val)
{
	struct kvits_dev *kd = container_of(this, struct kvits_dev, iodev);

	kvits_rs_mmio_write(kd->its, addr - kd->base, len, val);
	return 0;
}

static const struct kvm_io_device_ops kvits_io_ops = {
	.read = kvits_mmio_read,
	.write = kvits_mmio_write,
};

/*
 * Places @kd's frame at @addr (kvm_vgic_its_register_frame() takes KVM's
 * locks and checks the address) and lists it for the MSI paths.
 */
int kvits_place_frame(struct kvits_dev *kd, u64 addr)
{
	int ret;

	kvm_iodevice_init(&kd->iodev, &kvits_io_ops);
	ret = kvm_vgic_its_register_frame(kd->kvm, &kd->iodev, &kd->base, addr);
	if (ret)
		return ret;
	kvits_vm_add(kd);
	return 0;
}

/* Where the frame is: KVM_VGIC_ITS_NO_BASE (all ones) until placed. */
u64 kvits_frame_base(struct kvits_dev *kd)
{
	return READ_ONCE(kd->base);
}

/* --- device ops --------------------------------------------------------- */

static int kvits_create(struct kvm_device *dev, u32 type)
{
	struct kvm *kvm = dev->kvm;
	struct kvits_dev *kd;

	if (type != KVM_DEV_TYPE_ARM_VGIC_ITS)
		return -ENODEV;

	kd = kzalloc(sizeof(*kd), GFP_KERNEL_ACCOUNT);
	if (!kd)
		return -ENOMEM;

	kd->its = kvits_rs_create(kvm);
	if (!kd->its) {
		kfree(kd);
		return -ENOMEM;
	}
	kd->dev = dev;
	kd->kvm = kvm;
	kd->base = KVM_VGIC_ITS_NO_BASE;

	WRITE_ONCE(kvits_core_ops, dev->ops);
	dev->private = kd;
	return 0;
}

/*
 * Called when the VM dies, after its I/O buses are gone; or while it lives,
 * when KVM could not give a new device a file descriptor (then it has no
 * frame, is in no slot, and KVM unlisted it after a grace period).
 */
static void kvits_destroy(struct kvm_device *dev)
{
	struct kvits_dev *kd = dev->private;

	kvits_vm_remove(kd);
	kvits_rs_destroy(kd->its);
	/* A reader of another VM's slot may still be comparing kd->kvm. */
	kfree_rcu(kd, rcu);
	kfree(dev); /* allocated by kvm_ioctl_create_device(), freed by .destroy */
}

/* The attributes: groups, checks and errnos are decided in Rust (attr.rs). */
static int kvits_set_attr(struct kvm_device *dev, struct kvm_device_attr *attr)
{
	struct kvits_dev *kd = dev->private;

	return kvits_rs_set_attr(kd->its, kd, attr->group, attr->attr, attr->addr);
}

static int kvits_get_attr(struct kvm_device *dev, struct kvm_device_attr *attr)
{
	struct kvits_dev *kd = dev->private;

	return kvits_rs_get_attr(kd->its, kd, attr->group, attr->attr, attr->addr);
}

static int kvits_has_attr(struct kvm_device *dev, struct kvm_device_attr *attr)
{
	return kvits_rs_has_attr(attr->group, attr->attr);
}

static const struct kvm_device_ops kvits_device_ops = {
	.name = "kvm-vits",
	.create = kvits_create,
	.destroy = kvits_destroy,
	.set_attr = kvits_set_attr,
	.get_attr = kvits_get_attr,
	.has_attr = kvits_has_attr,
};

/* --- MSI injection ------------------------------------------------------ */

static struct kvits_dev *kvits_msi_to_its(struct kvm *kvm, struct kvm_msi *msi)
{
	struct kvm_io_device *iodev;
	struct kvits_dev *kd;
	u64 db;

	if (!(msi->flags & KVM_MSI_VALID_DEVID))
		return ERR_PTR(-EINVAL);

	db = (u64)msi->address_hi << 32 | msi->address_lo;
	kd = kvits_vm_lookup(kvm, db);
	if (kd)
		return kd;

	iodev = kvm_vgic_its_frame_at(kvm, db);
	if (!iodev || iodev->ops != &kvits_io_ops)
		return ERR_PTR(-EINVAL);
	/* An ITS with a frame lives as long as the VM (see kvits_vms). */
	return container_of(iodev, struct kvits_dev, iodev);
}

/* KVM_SIGNAL_MSI and the irqfd slow path: 1 delivered, 0 blocked, -errno. */
static int kvits_inject_msi(struct kvm *kvm, struct kvm_msi *msi)
{
	struct kvits_dev *kd = kvits_msi_to_its(kvm, msi);

	if (IS_ERR(kd))
		return PTR_ERR(kd);
	return kvits_rs_inject(kd->its, msi->devid, msi->data);
}

/* The irqfd fast path, in atomic context: 0 or -EWOULDBLOCK. */
static int kvits_inject_msi_cached(struct kvm *kvm, struct kvm_msi *msi)
{
	struct kvits_dev *kd = kvits_msi_to_its(kvm, msi);

	if (IS_ERR(kd))
		return -EWOULDBLOCK;
	return kvits_rs_inject_cached(kd->its, msi->devid, msi->data);
}

static void kvits_invalidate_caches(struct kvm *kvm)
{
	const struct kvm_device_ops *ops = READ_ONCE(kvits_core_ops);
	struct kvm_device *dev;

	/* Every ITS device of a VM using this backend is ours. */
	rcu_read_lock();
	list_for_each_entry_rcu(dev, &kvm->devices, vm_node) {
		if (dev->ops == ops && dev->private)
			kvits_rs_invalidate_cache(((struct kvits_dev *)dev->private)->its);
	}
	rcu_read_unlock();
}

static const struct kvm_vgic_its_backend kvits_backend = {
	.owner = THIS_MODULE,
	.ops = &kvits_device_ops,
	.inject_msi = kvits_inject_msi,
	.inject_msi_cached = kvits_inject_msi_cached,
	.invalidate_caches = kvits_invalidate_caches,
};

int kvits_register(void)
{
	return kvm_vgic_its_register_backend(&kvits_backend);
}

void kvits_unregister(void)
{
	kvm_vgic_its_unregister_backend(&kvits_backend);
}
