// SPDX-License-Identifier: GPL-2.0

//! KVM vITS backend: the GICv3 Interrupt Translation Service a KVM guest
//! programs, emulated in Rust.
//!
//! This is the module's skeleton: it loads and unloads, and is not yet
//! registered with KVM (that needs the backend interface in `patches/`).
//! Until it is, guests get KVM's built-in ITS.

use kernel::prelude::*;

module! {
    type: KvmVits,
    name: "kvm_vits",
    authors: ["armsi developers"],
    description: "KVM GICv3 ITS emulation backend (skeleton)",
    license: "GPL",
}

struct KvmVits;

impl kernel::Module for KvmVits {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("skeleton loaded: not registered with KVM, guests use the built-in ITS\n");
        Ok(KvmVits)
    }
}

impl Drop for KvmVits {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
