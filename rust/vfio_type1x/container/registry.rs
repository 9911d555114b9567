// SPDX-License-Identifier: GPL-2.0

//! The containers this module serves, for VFIO's `data` handles and for
//! debugfs.

use super::*;

kernel::sync::global_lock! {
    // SAFETY: `init` is called in the module initialiser, before a container
    // can exist.
    pub(crate) unsafe(uninit) static CONTAINERS: Mutex<Registry> = Registry {
        containers: KVec::new(),
        next_id: 0,
    };
}

/// Every [`Container`] VFIO was given, until module exit; those not
/// released yet are the containers alive now (debugfs).
pub(crate) struct Registry {
    containers: KVec<Pin<KBox<Container>>>,
    next_id: u64,
}

impl Container {
    /// `open`: a new container of IOMMU type `kind`, which stays allocated
    /// until [`drop_containers`].
    pub(crate) fn open(kind: usize) -> Result<*const Container> {
        let mut reg = CONTAINERS.lock();
        reg.containers.reserve(1, GFP_KERNEL_ACCOUNT)?;
        let c = Container::new(kind, reg.next_id)?;
        let p: *const Container = &*c;
        // Room was reserved above.
        reg.containers.push_within_capacity(c).map_err(|_| ENOMEM)?;
        reg.next_id += 1;
        SERVED.fetch_add(1, Relaxed);
        Ok(p)
    }
}

/// Frees every container, at module exit: VFIO released every one (it
/// holds a module reference while one uses this backend).
pub(crate) fn drop_containers() {
    let containers = core::mem::take(&mut CONTAINERS.lock().containers);
    drop(containers);
}

/// How many containers are alive now, for debugfs `containers`.
pub(crate) fn open_count() -> usize {
    let reg = CONTAINERS.lock();
    reg.containers.iter().filter(|c| c.is_live()).count()
}

/// debugfs `apertures`: one line per container,
/// `container=<n> type=<type1|type1v2> groups=<g>[,<g>...] mappings=<n>
/// aperture=<iova>+<size>|none doorbells=<iova>-><pa>[,...]|none`.
pub(crate) fn show_apertures(f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let reg = CONTAINERS.lock();
    for c in reg.containers.iter() {
        let id = c.id;
        let guard = c.inner.lock();
        let Some(inner) = guard.as_deref() else {
            continue;
        };
        write!(
            f,
            "container={id} type={} groups=",
            if c.v2 { "type1v2" } else { "type1" }
        )?;
        let mut first = true;
        for g in inner.domains.iter().flat_map(|d| d.groups().iter()) {
            write!(f, "{}{}", if first { "" } else { "," }, g.id())?;
            first = false;
        }
        write!(f, " mappings={}", inner.dmas.iter().count())?;
        match inner.aperture {
            Some(a) => write!(f, " aperture={:#x}+{:#x}", a.start, a.last - a.start + 1)?,
            None => write!(f, " aperture=none")?,
        }
        let doorbells = inner.doorbells().map_err(|_| core::fmt::Error)?;
        if doorbells.is_empty() {
            writeln!(f, " doorbells=none")?;
        } else {
            f.write_str(" doorbells=")?;
            for (i, (iova, pa)) in doorbells.iter().enumerate() {
                write!(f, "{}{iova:#x}->{pa:#x}", if i > 0 { "," } else { "" })?;
            }
            writeln!(f)?;
        }
    }
    Ok(())
}
