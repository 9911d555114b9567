/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * kvm_vits: the ITS emulation module's additions to the KVM ITS device.
 *
 * An ITS device (KVM_DEV_TYPE_ARM_VGIC_ITS) created while the kvm_vits module
 * is loaded is served by it and accepts every attribute the built-in ITS
 * accepts (Documentation/virt/kvm/devices/arm-vgic-its.rst), plus the group
 * below. See Documentation/kvm-vits.rst in the armsi tree.
 */
#ifndef _UAPI_LINUX_KVM_VITS_H
#define _UAPI_LINUX_KVM_VITS_H

#include <linux/types.h>

/**
 * KVM_VITS_GRP_TRANSLATE - KVM_GET_DEVICE_ATTR group: translate an MSI
 *
 * The ITS's answer for one (DeviceID, EventID) pair, as an MSI would get
 * it, without delivering anything: the KVM_TRANSLATE_MSI query.
 * @attr: ((__u64)DeviceID << 32) | EventID.
 * @addr: user pointer to a struct kvm_vits_translation, filled in.
 *
 * Errors: ENOENT when the pair has no interrupt translation entry (unmapped
 * device or event), ENXIO when the ITS has no base address yet, EFAULT for
 * a bad @addr. KVM_HAS_DEVICE_ATTR answers 0 for this group.
 */
#define KVM_VITS_GRP_TRANSLATE		0x4b56

/** KVM_VITS_NO_VCPU - &kvm_vits_translation.vcpu when the collection is unmapped */
#define KVM_VITS_NO_VCPU		0xffffffffU

/**
 * struct kvm_vits_translation - one MSI's translation
 * @intid: the LPI's INTID (8192 and up)
 * @icid: the interrupt collection the entry names, or 0xffffffff when its
 *	collection was unmapped (MAPC with V=0) after the entry was made
 * @vcpu: vcpu_id of the redistributor that collection targets, or
 *	KVM_VITS_NO_VCPU when the collection is not mapped
 * @flags: zero; reserved for future use
 */
struct kvm_vits_translation {
	__u32 intid;
	__u32 icid;
	__u32 vcpu;
	__u32 flags;
};

#endif /* _UAPI_LINUX_KVM_VITS_H */
