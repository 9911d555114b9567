/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvm_vits: the interface between the C shim (rust/kvm_vits/shim.c), which
 * touches KVM's structures, and the Rust ITS emulation.
 *
 * Every pointer the shim hands to Rust is opaque there. "kvm" is a
 * struct kvm *, "irq" a counted struct vgic_irq *, "its" the Rust object of
 * one ITS device.
 *
 * Only what Rust cannot do itself is here. The backend helpers of
 * include/kvm/arm_vgic.h (patch 0002) that take no struct kvm_vcpu * and
 * return no ERR_PTR() are exported to this module, and ffi.rs declares and
 * calls them directly: kvm_vgic_its_read_guest(), kvm_vgic_its_write_guest(),
 * kvm_vgic_its_gpa_visible(), kvm_vgic_its_max_lpis(),
 * kvm_vgic_its_lock_vm(), kvm_vgic_its_unlock_vm(), kvm_vgic_lpi_release(),
 * kvm_vgic_lpi_intid(), kvm_vgic_lpi_set_pending(),
 * kvm_vgic_lpi_clear_pending(), kvm_vgic_lpi_inv(), kvm_vgic_lpi_inject().
 */
#ifndef ARMSI_KVM_VITS_SHIM_H
#define ARMSI_KVM_VITS_SHIM_H

#include <linux/types.h>

struct kvm;
struct vgic_irq;
struct kvits_dev;

/*
 * Backend registration: struct kvm_vgic_its_backend and the device and
 * MMIO ops tables it points to are static C structures.
 */
int kvits_register(void);
void kvits_unregister(void);

/*
 * The calls that name a vCPU (an id; target -1: none): the helpers take a
 * struct kvm_vcpu *, and kvm_get_vcpu_by_id() is a static inline.
 * kvits_lpi_add() also decodes the helper's ERR_PTR() (static inlines).
 * kvits_lpi_set_target() does nothing when @from is a vCPU that does not
 * exist: the helper's NULL @from means "whatever it targets".
 */
bool kvits_vcpu_exists(struct kvm *kvm, u32 vcpu_id);
bool kvits_lpis_enabled(struct kvm *kvm, u32 vcpu_id);
int kvits_lpi_add(struct kvm *kvm, u32 intid, s64 target, struct vgic_irq **irq);
bool kvits_lpi_map(struct kvm *kvm, struct vgic_irq *irq, s64 target);
int kvits_lpi_set_target(struct kvm *kvm, struct vgic_irq *irq, s64 from, u32 to);
void kvits_invall(struct kvm *kvm, u32 vcpu_id);
void kvits_movall(struct kvm *kvm, u32 from, u32 to);

/*
 * The device's MMIO frame: struct kvits_dev and its struct kvm_io_device
 * are C (kvm_iodevice_init() is a static inline, the frame is listed in
 * the shim's kvits_vms[] for the MSI paths, and the base is read with
 * READ_ONCE()).
 */
int kvits_place_frame(struct kvits_dev *kd, u64 addr);
u64 kvits_frame_base(struct kvits_dev *kd);

/* Implemented in Rust (ffi.rs). */
void *kvits_rs_create(struct kvm *kvm);
void kvits_rs_destroy(void *its);
void kvits_rs_mmio_read(void *its, u64 offset, int len, void *val);
void kvits_rs_mmio_write(void *its, u64 offset, int len, const void *val);
int kvits_rs_set_attr(void *its, struct kvits_dev *kd, u32 group, u64 attr, u64 addr);
int kvits_rs_get_attr(void *its, struct kvits_dev *kd, u32 group, u64 attr, u64 addr);
int kvits_rs_has_attr(u32 group, u64 attr);
int kvits_rs_inject(void *its, u32 devid, u32 eventid);
int kvits_rs_inject_cached(void *its, u32 devid, u32 eventid);
void kvits_rs_invalidate_cache(void *its);

#endif /* ARMSI_KVM_VITS_SHIM_H */
