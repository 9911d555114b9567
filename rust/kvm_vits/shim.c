// SPDX-License-Identifier: GPL-2.0
/*
 * C side of kvm_vits: the KVM ITS backend registration, the device ops and
 * the MMIO frame (trampolines into Rust), and the few operations on KVM's
 * own structures (guest memory, vCPUs, struct vgic_irq) the Rust ITS model
 * needs. The ITS logic itself is in Rust; see ffi.rs for the other half.
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

#include <asm/kvm_mmu.h>

#include "vgic.h"

#include <armsi/kvm_vits_shim.h>
#include <uapi/linux/kvm_vits.h>

/* One ITS device: the MMIO frame KVM dispatches to, and the Rust object. */
struct kvits_dev {
	struct kvm_io_device iodev;
	struct kvm_device *dev;
	void *its;
	gpa_t base;
};

/* The core's ITS device ops, which every ITS device of our VMs carries. */
static const struct kvm_device_ops *kvits_core_ops;

static const struct kvm_io_device_ops kvits_io_ops;

/*
 * The MSI paths' shortcut from a VM to its ITS, skipping the I/O bus lookup
 * (an SRCU read section and a binary search per MSI). One slot per hash of
 * the VM; a VM whose slot is taken by another VM, or that has more than one
 * ITS, is not listed and takes the bus lookup. Readers take no lock: a slot
 * names only live VMs (an entry is added once the ITS has a base address
 * and removed when it is destroyed, before the VM is freed), and a reader
 * only uses the entry of the VM it is injecting into, which cannot be
 * destroyed meanwhile.
 */
#define KVITS_VM_HASH_BITS	6
static struct kvits_vm_slot {
	struct kvm *kvm;
	struct kvits_dev *kd;	/* NULL: the VM has several ITSes */
} kvits_vms[1 << KVITS_VM_HASH_BITS];
static DEFINE_SPINLOCK(kvits_vms_lock);

static void kvits_vm_add(struct kvm *kvm, struct kvits_dev *kd)
{
	struct kvits_vm_slot *slot = &kvits_vms[hash_ptr(kvm, KVITS_VM_HASH_BITS)];

	guard(spinlock)(&kvits_vms_lock);
	if (slot->kvm == kvm) {
		WRITE_ONCE(slot->kd, NULL);
	} else if (!slot->kvm) {
		WRITE_ONCE(slot->kd, kd);
		smp_store_release(&slot->kvm, kvm);
	}
}

static void kvits_vm_remove(struct kvm *kvm)
{
	struct kvits_vm_slot *slot = &kvits_vms[hash_ptr(kvm, KVITS_VM_HASH_BITS)];

	guard(spinlock)(&kvits_vms_lock);
	if (slot->kvm == kvm) {
		WRITE_ONCE(slot->kvm, NULL);
		WRITE_ONCE(slot->kd, NULL);
	}
}

static struct kvits_dev *kvits_vm_lookup(struct kvm *kvm)
{
	struct kvits_vm_slot *slot = &kvits_vms[hash_ptr(kvm, KVITS_VM_HASH_BITS)];

	if (smp_load_acquire(&slot->kvm) != kvm)
		return NULL;
	return READ_ONCE(slot->kd);
}

#define KVITS_INITIAL_PROPBASER						\
	(GIC_BASER_CACHEABILITY(GICR_PROPBASER, INNER, RaWb)		| \
	 GIC_BASER_CACHEABILITY(GICR_PROPBASER, OUTER, SameAsInner)	| \
	 GIC_BASER_SHAREABILITY(GICR_PROPBASER, InnerShareable))

static struct kvm_vcpu *kvits_vcpu(struct kvm *kvm, s64 id)
{
	if (id < 0 || id > U32_MAX)
		return NULL;
	return kvm_get_vcpu_by_id(kvm, id);
}

/* --- guest memory, vCPUs ------------------------------------------------ */

int kvits_read_guest(struct kvm *kvm, u64 gpa, void *buf, unsigned long len)
{
	return kvm_read_guest_lock(kvm, gpa, buf, len);
}

int kvits_write_guest(struct kvm *kvm, u64 gpa, const void *buf, unsigned long len)
{
	return vgic_write_guest_lock(kvm, gpa, buf, len);
}

bool kvits_is_visible(struct kvm *kvm, u64 gpa)
{
	guard(srcu)(&kvm->srcu);
	return kvm_is_visible_gfn(kvm, gpa >> PAGE_SHIFT);
}

bool kvits_vcpu_exists(struct kvm *kvm, u32 vcpu_id)
{
	return kvits_vcpu(kvm, vcpu_id);
}

bool kvits_lpis_enabled(struct kvm *kvm, u32 vcpu_id)
{
	struct kvm_vcpu *vcpu = kvits_vcpu(kvm, vcpu_id);

	return vcpu && vgic_lpis_enabled(vcpu);
}

u32 kvits_max_lpis(struct kvm *kvm)
{
	int nr_idbits = (READ_ONCE(kvm->arch.vgic.propbaser) & 0x1f) + 1;

	return 1U << min(nr_idbits, INTERRUPT_ID_BITS_ITS);
}

/* --- LPIs --------------------------------------------------------------- */

int kvits_lpi_add(struct kvm *kvm, u32 intid, s64 target, struct vgic_irq **out)
{
	struct vgic_irq *irq = vgic_add_lpi(kvm, intid, kvits_vcpu(kvm, target));

	if (IS_ERR(irq))
		return PTR_ERR(irq);
	*out = irq;
	return 0;
}

/* Mapping one LPI from two events is UNPREDICTABLE: the first ITE keeps it. */
bool kvits_lpi_map(struct kvm *kvm, struct vgic_irq *irq, s64 target)
{
	struct kvm_vcpu *vcpu = kvits_vcpu(kvm, target);

	scoped_guard(raw_spinlock_irqsave, &irq->irq_lock) {
		if (!irq->mapped) {
			irq->mapped = true;
			irq->target_vcpu = vcpu;
			return true;
		}
	}
	vgic_put_irq(kvm, irq);
	return false;
}

void kvits_lpi_release(struct kvm *kvm, struct vgic_irq *irq)
{
	scoped_guard(raw_spinlock_irqsave, &irq->irq_lock)
		irq->mapped = false;
	vgic_put_irq(kvm, irq);
}

u32 kvits_lpi_intid(struct vgic_irq *irq)
{
	return irq->intid;
}

int kvits_lpi_set_target(struct kvm *kvm, struct vgic_irq *irq, s64 from, u32 to)
{
	struct kvm_vcpu *from_vcpu = kvits_vcpu(kvm, from);

	guard(raw_spinlock_irqsave)(&irq->irq_lock);
	if (from >= 0 && irq->target_vcpu != from_vcpu)
		return 0;
	irq->target_vcpu = kvits_vcpu(kvm, to);
	return 0;
}

int kvits_lpi_trigger(struct kvm *kvm, struct vgic_irq *irq)
{
	unsigned long flags;

	raw_spin_lock_irqsave(&irq->irq_lock, flags);
	irq->pending_latch = true;
	vgic_queue_irq_unlock(kvm, irq, flags);
	return 0;
}

void kvits_lpi_clear(struct vgic_irq *irq)
{
	guard(raw_spinlock_irqsave)(&irq->irq_lock);
	irq->pending_latch = false;
}

int kvits_lpi_inv(struct kvm *kvm, struct vgic_irq *irq)
{
	return vgic_its_inv_lpi(kvm, irq);
}

void kvits_invall(struct kvm *kvm, u32 vcpu_id)
{
	struct kvm_vcpu *vcpu = kvits_vcpu(kvm, vcpu_id);

	if (vcpu)
		vgic_its_invall(vcpu);
}

/* MOVALL: every LPI of the VM targeting @from now targets @to. */
void kvits_movall(struct kvm *kvm, u32 from, u32 to)
{
	struct kvm_vcpu *v1 = kvits_vcpu(kvm, from), *v2 = kvits_vcpu(kvm, to);
	struct vgic_dist *dist = &kvm->arch.vgic;
	struct vgic_irq *irq;
	unsigned long intid;

	xa_for_each(&dist->lpi_xa, intid, irq) {
		irq = vgic_get_irq(kvm, intid);
		if (!irq)
			continue;
		scoped_guard(raw_spinlock_irqsave, &irq->irq_lock) {
			if (irq->target_vcpu == v1)
				irq->target_vcpu = v2;
		}
		vgic_put_irq(kvm, irq);
	}
}

/*
 * The MSI fast path, atomic context: make LPI @intid pending if it exists.
 * The translation cache holds INTIDs; the LPI table is RCU-protected and
 * refcounted, as for the built-in ITS's cache.
 */
bool kvits_inject_intid(struct kvm *kvm, u32 intid)
{
	struct vgic_irq *irq = vgic_get_irq(kvm, intid);

	if (!irq)
		return false;
	kvits_lpi_trigger(kvm, irq);
	vgic_put_irq(kvm, irq);
	return true;
}

/* --- the MMIO frame ----------------------------------------------------- */

static int kvits_mmio_read(struct kvm_vcpu *vcpu, struct kvm_io_device *this,
			   gpa_t addr, int len, void *val)
{
	struct kvits_dev *kd = container_of(this, struct kvits_dev, iodev);
	u64 data = kvits_rs_mmio_read(kd->its, addr - kd->base, len);

	switch (len) {
	case 1:
		*(u8 *)val = data;
		break;
	case 2:
		*(__le16 *)val = cpu_to_le16(data);
		break;
	case 4:
		*(__le32 *)val = cpu_to_le32(data);
		break;
	case 8:
		*(__le64 *)val = cpu_to_le64(data);
		break;
	default:
		memset(val, 0, len);
	}
	return 0;
}

static int kvits_mmio_write(struct kvm_vcpu *vcpu, struct kvm_io_device *this,
			    gpa_t addr, int len, const void *val)
{
	struct kvits_dev *kd = container_of(this, struct kvits_dev, iodev);
	u64 data;

	switch (len) {
	case 1:
		data = *(u8 *)val;
		break;
	case 2:
		data = le16_to_cpu(*(__le16 *)val);
		break;
	case 4:
		data = le32_to_cpu(*(__le32 *)val);
		break;
	case 8:
		data = le64_to_cpu(*(__le64 *)val);
		break;
	default:
		return 0;
	}
	kvits_rs_mmio_write(kd->its, addr - kd->base, len, data);
	return 0;
}

static const struct kvm_io_device_ops kvits_io_ops = {
	.read = kvits_mmio_read,
	.write = kvits_mmio_write,
};

static int kvits_set_base(struct kvm *kvm, struct kvits_dev *kd, u64 addr)
{
	int ret;

	ret = vgic_check_iorange(kvm, kd->base, addr, SZ_64K, KVM_VGIC_V3_ITS_SIZE);
	if (ret)
		return ret;

	guard(mutex)(&kvm->slots_lock);
	if (!IS_VGIC_ADDR_UNDEF(kd->base))
		return -EBUSY;

	kvm_iodevice_init(&kd->iodev, &kvits_io_ops);
	kd->base = addr;
	ret = kvm_io_bus_register_dev(kvm, KVM_MMIO_BUS, addr, KVM_VGIC_V3_ITS_SIZE,
				      &kd->iodev);
	if (ret) {
		kd->base = VGIC_ADDR_UNDEF;
		return ret;
	}
	kvits_rs_set_base(kd->its, addr);
	kvits_vm_add(kvm, kd);
	return 0;
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
	kd->base = VGIC_ADDR_UNDEF;

	scoped_guard(mutex, &kvm->arch.config_lock)
		kvm->arch.vgic.propbaser = KVITS_INITIAL_PROPBASER;

	WRITE_ONCE(kvits_core_ops, dev->ops);
	dev->private = kd;
	return 0;
}

/* Called when the VM dies, after its I/O buses are gone. */
static void kvits_destroy(struct kvm_device *dev)
{
	struct kvits_dev *kd = dev->private;

	kvits_vm_remove(dev->kvm);
	kvits_rs_destroy(kd->its);
	kfree(kd);
	kfree(dev); /* allocated by kvm_ioctl_create_device(), freed by .destroy */
}

/* The built-in ITS's locking for attributes that change state. */
static int kvits_lock_vm(struct kvm *kvm)
{
	mutex_lock(&kvm->lock);
	if (kvm_trylock_all_vcpus(kvm)) {
		mutex_unlock(&kvm->lock);
		return -EBUSY;
	}
	mutex_lock(&kvm->arch.config_lock);
	return 0;
}

static void kvits_unlock_vm(struct kvm *kvm)
{
	mutex_unlock(&kvm->arch.config_lock);
	kvm_unlock_all_vcpus(kvm);
	mutex_unlock(&kvm->lock);
}

static int kvits_reg_align(u64 offset)
{
	/* 32-bit GITS_CTLR, GITS_IIDR and ID registers; 64-bit the others. */
	return (offset < GITS_TYPER || offset >= GITS_PIDR4) ? 0x3 : 0x7;
}

static int kvits_regs_access(struct kvits_dev *kd, u64 offset, u64 *reg, bool write)
{
	struct kvm *kvm = kd->dev->kvm;
	int ret;

	if (offset & kvits_reg_align(offset))
		return -EINVAL;

	ret = kvits_lock_vm(kvm);
	if (ret)
		return ret;
	if (IS_VGIC_ADDR_UNDEF(kd->base))
		ret = -ENXIO;
	else if (write)
		ret = kvits_rs_reg_write(kd->its, offset, *reg);
	else
		ret = kvits_rs_reg_read(kd->its, offset, reg);
	kvits_unlock_vm(kvm);
	return ret;
}

static int kvits_ctrl(struct kvits_dev *kd, u64 attr)
{
	struct kvm *kvm = kd->dev->kvm;
	int ret;

	if (attr == KVM_DEV_ARM_VGIC_CTRL_INIT)
		return 0;

	ret = kvits_lock_vm(kvm);
	if (ret)
		return ret;
	ret = kvits_rs_ctrl(kd->its, attr);
	kvits_unlock_vm(kvm);
	return ret;
}

static int kvits_translate(struct kvits_dev *kd, u64 attr, u64 __user *uaddr)
{
	struct kvm_vits_translation t = {};
	s64 vcpu;
	int ret;

	if (IS_VGIC_ADDR_UNDEF(kd->base))
		return -ENXIO;
	ret = kvits_rs_translate(kd->its, attr >> 32, (u32)attr, &t.intid, &t.icid,
				 &vcpu);
	if (ret)
		return ret;
	t.vcpu = vcpu < 0 ? KVM_VITS_NO_VCPU : vcpu;
	if (copy_to_user(uaddr, &t, sizeof(t)))
		return -EFAULT;
	return 0;
}

static int kvits_set_attr(struct kvm_device *dev, struct kvm_device_attr *attr)
{
	struct kvits_dev *kd = dev->private;
	u64 __user *uaddr = u64_to_user_ptr(attr->addr);
	u64 val;

	switch (attr->group) {
	case KVM_DEV_ARM_VGIC_GRP_ADDR:
		if (attr->attr != KVM_VGIC_ITS_ADDR_TYPE)
			return -ENODEV;
		if (copy_from_user(&val, uaddr, sizeof(val)))
			return -EFAULT;
		return kvits_set_base(dev->kvm, kd, val);
	case KVM_DEV_ARM_VGIC_GRP_CTRL:
		return kvits_ctrl(kd, attr->attr);
	case KVM_DEV_ARM_VGIC_GRP_ITS_REGS:
		if (get_user(val, uaddr))
			return -EFAULT;
		return kvits_regs_access(kd, attr->attr, &val, true);
	}
	return -ENXIO;
}

static int kvits_get_attr(struct kvm_device *dev, struct kvm_device_attr *attr)
{
	struct kvits_dev *kd = dev->private;
	u64 __user *uaddr = u64_to_user_ptr(attr->addr);
	u64 val;
	int ret;

	switch (attr->group) {
	case KVM_DEV_ARM_VGIC_GRP_ADDR:
		if (attr->attr != KVM_VGIC_ITS_ADDR_TYPE)
			return -ENODEV;
		val = kd->base;
		return copy_to_user(uaddr, &val, sizeof(val)) ? -EFAULT : 0;
	case KVM_DEV_ARM_VGIC_GRP_ITS_REGS:
		ret = kvits_regs_access(kd, attr->attr, &val, false);
		if (ret)
			return ret;
		return put_user(val, uaddr);
	case KVM_VITS_GRP_TRANSLATE:
		return kvits_translate(kd, attr->attr, uaddr);
	}
	return -ENXIO;
}

static int kvits_has_attr(struct kvm_device *dev, struct kvm_device_attr *attr)
{
	switch (attr->group) {
	case KVM_DEV_ARM_VGIC_GRP_ADDR:
		return attr->attr == KVM_VGIC_ITS_ADDR_TYPE ? 0 : -ENXIO;
	case KVM_DEV_ARM_VGIC_GRP_CTRL:
		switch (attr->attr) {
		case KVM_DEV_ARM_VGIC_CTRL_INIT:
		case KVM_DEV_ARM_ITS_CTRL_RESET:
		case KVM_DEV_ARM_ITS_SAVE_TABLES:
		case KVM_DEV_ARM_ITS_RESTORE_TABLES:
			return 0;
		}
		return -ENXIO;
	case KVM_DEV_ARM_VGIC_GRP_ITS_REGS:
		if (attr->attr & kvits_reg_align(attr->attr))
			return -EINVAL;
		return kvits_rs_has_reg(attr->attr);
	case KVM_VITS_GRP_TRANSLATE:
		return 0;
	}
	return -ENXIO;
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
	kd = kvits_vm_lookup(kvm);
	if (kd && db - kd->base < KVM_VGIC_V3_ITS_SIZE)
		return kd;

	guard(srcu)(&kvm->srcu);
	iodev = kvm_io_bus_get_dev(kvm, KVM_MMIO_BUS, db);
	if (!iodev || iodev->ops != &kvits_io_ops)
		return ERR_PTR(-EINVAL);
	/* ITS devices live as long as the VM. */
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
