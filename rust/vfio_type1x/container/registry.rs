// SPDX-License-Identifier: GPL-2.0

//! The containers this module serves, for VFIO's `data` handles and for
//! debugfs.

use super::*;

kernel::sync::global_lock! {
    // SAFETY: `init` is called in the module initialiser, before a container
    // can exist.
    pub(crate) unsafe(uninit) static CONTAINERS: Mutex<Registry> = Registry {
        handles: KVec::new(),
        next_id: 0,
    };
}

/// Every [`Handle`] VFIO was given, until module exit; those that still
/// hold a container are the containers alive now (debugfs).
pub(crate) struct Registry {
    handles: KVec<Pin<KBox<Handle>>>,
    next_id: u64,
}

/// What VFIO holds as a container's `iommu_data`.
///
/// VFIO reads `iommu_data` and calls our ioctl without a lock, while the
/// last group's detach may call `release` on another thread: a reference
/// taken in our ioctl would come too late if `data` were the container
/// itself. So `data` is a handle that stays allocated until the module
/// exits (one small object per container opened) and gives out references
/// to its container until `release` takes it away.
#[pin_data]
pub(crate) struct Handle {
    /// The container, until `release`. A leaf lock.
    #[pin]
    container: SpinLock<Option<Arc<Container>>>,
}

impl Handle {
    /// `open`: a new container of IOMMU type `kind` and its handle, which
    /// lives until [`drop_handles`].
    pub(crate) fn open(kind: usize) -> Result<*const Handle> {
        let mut reg = CONTAINERS.lock();
        reg.handles.reserve(1, GFP_KERNEL_ACCOUNT)?;
        let c = Container::new(kind, reg.next_id)?;
        let h = KBox::pin_init(
            pin_init!(Handle {
                container <- new_spinlock!(Some(c), "Handle::container"),
            }),
            GFP_KERNEL_ACCOUNT,
        )?;
        let p: *const Handle = &*h;
        // Room was reserved above.
        reg.handles.push_within_capacity(h).map_err(|_| ENOMEM)?;
        reg.next_id += 1;
        SERVED.fetch_add(1, Relaxed);
        Ok(p)
    }

    /// A reference to the container, unless it was released.
    pub(crate) fn get(&self) -> Option<Arc<Container>> {
        self.container.lock().clone()
    }

    /// `release`: the container goes; later calls through the handle find
    /// none.
    pub(crate) fn release(&self) {
        let c = self.container.lock().take();
        if let Some(c) = c {
            Container::release(c);
        }
    }
}

/// Frees every handle, at module exit: VFIO released every container (it
/// holds a module reference while one uses this backend).
pub(crate) fn drop_handles() {
    let handles = core::mem::take(&mut CONTAINERS.lock().handles);
    drop(handles);
}

/// How many containers are alive now, for debugfs `containers`.
pub(crate) fn open_count() -> usize {
    let reg = CONTAINERS.lock();
    reg.handles.iter().filter(|h| h.get().is_some()).count()
}

/// debugfs `apertures`: one line per container,
/// `container=<n> type=<type1|type1v2> groups=<g>[,<g>...] mappings=<n>
/// aperture=<iova>+<size>|none doorbells=<iova>-><pa>[,...]|none`.
pub(crate) fn show_apertures(f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let reg = CONTAINERS.lock();
    for c in reg.handles.iter().filter_map(|h| h.get()) {
        let id = c.id;
        let inner = c.inner.lock();
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
