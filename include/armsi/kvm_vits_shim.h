/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvm_vits: the interface between the C shim (rust/kvm_vits/shim.c), which
 * touches KVM's structures, and the Rust ITS emulation.
 *
 * Every pointer the shim hands to Rust is opaque there. "kvm" is a
 * struct kvm *, "irq" a counted struct vgic_irq *, "its" the Rust object of
 * one ITS device.
 */
#ifndef ARMSI_KVM_VITS_SHIM_H
#define ARMSI_KVM_VITS_SHIM_H

#include <linux/types.h>

struct kvm;
struct vgic_irq;
struct kvits_dev;

/* Backend registration. */
int kvits_register(void);
void kvits_unregister(void);

/* Guest memory and vCPUs. */
int kvits_read_guest(struct kvm *kvm, u64 gpa, void *buf, unsigned long len);
int kvits_write_guest(struct kvm *kvm, u64 gpa, const void *buf, unsigned long len);
bool kvits_is_visible(struct kvm *kvm, u64 gpa);
bool kvits_vcpu_exists(struct kvm *kvm, u32 vcpu_id);
bool kvits_lpis_enabled(struct kvm *kvm, u32 vcpu_id);
u32 kvits_max_lpis(struct kvm *kvm);

/* LPIs (target -1: none). */
int kvits_lpi_add(struct kvm *kvm, u32 intid, s64 target, struct vgic_irq **irq);
bool kvits_lpi_map(struct kvm *kvm, struct vgic_irq *irq, s64 target);
void kvits_lpi_release(struct kvm *kvm, struct vgic_irq *irq);
u32 kvits_lpi_intid(struct vgic_irq *irq);
int kvits_lpi_set_target(struct kvm *kvm, struct vgic_irq *irq, s64 from, u32 to);
int kvits_lpi_trigger(struct kvm *kvm, struct vgic_irq *irq);
void kvits_lpi_clear(struct vgic_irq *irq);
int kvits_lpi_inv(struct kvm *kvm, struct vgic_irq *irq);
void kvits_invall(struct kvm *kvm, u32 vcpu_id);
void kvits_movall(struct kvm *kvm, u32 from, u32 to);
bool kvits_inject_intid(struct kvm *kvm, u32 intid);

/* The device: its frame, and the VM locked as for the built-in ITS. */
int kvits_place_frame(struct kvits_dev *kd, u64 addr);
u64 kvits_frame_base(struct kvits_dev *kd);
int kvits_lock_vm(struct kvm *kvm);
void kvits_unlock_vm(struct kvm *kvm);

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
