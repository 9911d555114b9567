// SPDX-License-Identifier: GPL-2.0

//! The verdict text, per device and per IOMMU group, for debugfs and for the
//! exported query.
//!
//! Device line (one per PCI device, space-separated `key=value` after the
//! address; documented in Documentation/msi-isolation.rst):
//!
//! `<bdf> id=<vendor>:<device> group=<n|none> iommu=<dev|none>
//!  iommu-driver=<drv|none> dma=<translated|bypass|blocked|none|other>
//!  msi=<its|gicv2m|other|none> msi-node=<node|none> doorbell=<pa|none>
//!  msi-window=<sw:base+size|hw:base+size|none> doorbell-shared-groups=<n>
//!  verdict=<isolated|not-isolated> reason=<token> [evidence=<verdict>/<token>]`
//!
//! Group line: `group=<n> devices=<bdf>[,<bdf>...] verdict=<...> reason=<token>
//! [device=<bdf>]`, where `device` names the member that decided a negative
//! verdict.

use core::fmt::{
    self,
    Write, //
};

use kernel::prelude::*;

use crate::{
    ffi::{
        self,
        PciEvidence, //
    },
    policy,
    verdict::{
        self,
        Verdict, //
    },
};

/// The verdict for one device, after the module parameters' policy.
fn verdict_of(d: &PciEvidence) -> Verdict {
    let ov = policy::decide(
        ffi::assert_param(),
        ffi::deny_param(),
        d.name.as_str(),
        &ffi::machine_is_compatible,
    );
    d.evidence.verdict(ov)
}

fn write_device(f: &mut impl Write, d: &PciEvidence, all: &[PciEvidence]) -> fmt::Result {
    let e = &d.evidence;
    write!(
        f,
        "{} id={:04x}:{:04x} group=",
        d.name.as_str(),
        d.vendor,
        d.device
    )?;
    match e.iommu_group {
        Some(g) => write!(f, "{g}")?,
        None => f.write_str("none")?,
    }
    write!(
        f,
        " iommu={} iommu-driver={} dma={} msi={} msi-node={} doorbell=",
        d.iommu.as_str(),
        d.iommu_driver.as_str(),
        e.domain.token(),
        e.msi_controller.token(),
        d.msi_node.as_str(),
    )?;
    match e.doorbell {
        Some(db) => write!(f, "{db:#x}")?,
        None => f.write_str("none")?,
    }
    let shared = verdict::groups_sharing_doorbell(
        (e.iommu_group, e.doorbell),
        all.iter()
            .map(|x| (x.evidence.iommu_group, x.evidence.doorbell)),
    );
    write!(
        f,
        " msi-window={} doorbell-shared-groups={} {}",
        e.msi_window,
        shared,
        verdict_of(d)
    )
}

/// debugfs `devices`.
pub(crate) fn show_devices(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let all = match ffi::collect() {
        Ok(all) => all,
        Err(e) => return writeln!(f, "error={}", e.to_errno()),
    };
    for d in all.iter() {
        write_device(f, d, &all)?;
        f.write_char('\n')?;
    }
    Ok(())
}

/// debugfs `groups`: a group is isolated when every member is.
pub(crate) fn show_groups(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let all = match ffi::collect() {
        Ok(all) => all,
        Err(e) => return writeln!(f, "error={}", e.to_errno()),
    };
    let mut groups = KVec::new();
    for g in all.iter().filter_map(|d| d.evidence.iommu_group) {
        if !groups.contains(&g) && groups.push(g, GFP_KERNEL).is_err() {
            return writeln!(f, "error={}", ENOMEM.to_errno());
        }
    }
    groups.sort_unstable();
    for &g in groups.iter() {
        let members = || {
            all.iter()
                .filter(move |d| d.evidence.iommu_group == Some(g))
        };
        write!(f, "group={g} devices=")?;
        for (i, d) in members().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            f.write_str(d.name.as_str())?;
        }
        let culprit = members().find(|d| !verdict_of(d).isolated);
        match culprit {
            Some(d) => {
                let v = verdict_of(d);
                writeln!(
                    f,
                    " verdict=not-isolated reason={} device={}",
                    v.reason.token(),
                    d.name.as_str()
                )?;
            }
            None => {
                // PANIC: never; a group in `groups` has at least one member.
                let first = members().next().map(verdict_of);
                let reason = first.map_or("?", |v| v.reason.token());
                writeln!(f, " verdict=isolated reason={reason}")?;
            }
        }
    }
    Ok(())
}

/// Writes into a byte buffer, truncating, and keeps it NUL terminated.
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep the last byte for the NUL.
        let room = self.buf.len().saturating_sub(1).saturating_sub(self.pos);
        let n = room.min(s.len());
        self.buf[self.pos..self.pos + n].copy_from_slice(&s.as_bytes()[..n]);
        self.pos += n;
        if let Some(b) = self.buf.get_mut(self.pos) {
            *b = 0;
        }
        Ok(())
    }
}

/// The verdict for the PCI device `name`; its device line goes to `out`.
///
/// # Errors
///
/// `ENODEV` when no PCI device has that name, `ENOMEM` when the evidence
/// cannot be collected.
pub(crate) fn query(name: &str, out: &mut [u8]) -> Result<bool> {
    let all = ffi::collect()?;
    let d = all.iter().find(|d| d.name.as_str() == name).ok_or(ENODEV)?;
    let mut w = SliceWriter { buf: out, pos: 0 };
    // Writing to a `SliceWriter` cannot fail; it truncates.
    let _ = write_device(&mut w, d, &all);
    Ok(verdict_of(d).isolated)
}
