// SPDX-License-Identifier: GPL-2.0

//! A VFIO container served by this backend: its IOMMU groups and the paging
//! domains they are attached to, each with an MSI cookie at the IOMMU's
//! software-MSI window so that ITS doorbells are mapped when vfio-pci sets
//! up MSI/MSI-X vectors.

use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Mutex,
    }, //
};

use crate::{
    ffi::{
        Domain,
        Group, //
    },
    iova::{
        self,
        Range,
        Ranges, //
    },
};

/// `T1X_RESV_SW_MSI`: the IOMMU's software-managed MSI window.
const RESV_SW_MSI: u32 = 4;

/// `VFIO_TYPE1_IOMMU` and `VFIO_TYPE1v2_IOMMU`.
pub(crate) const VFIO_TYPE1_IOMMU: usize = 1;
pub(crate) const VFIO_TYPE1V2_IOMMU: usize = 3;

/// Containers open now, for debugfs.
pub(crate) static OPEN: Atomic<i64> = Atomic::new(0);

/// A paging domain and the groups attached to it.
struct DomainEntry {
    /// The domain. Declared first so that `Drop` can detach the groups
    /// before the field drops and frees it.
    domain: Domain,
    /// Groups attached to `domain`.
    groups: KVec<Group>,
    /// Base of the MSI cookie installed on `domain`, if any.
    msi_base: Option<u64>,
}

impl Drop for DomainEntry {
    fn drop(&mut self) {
        for g in self.groups.iter() {
            self.domain.detach(*g);
        }
    }
}

/// The fields of [`Container`] protected by its mutex.
struct Inner {
    domains: KVec<DomainEntry>,
}

/// One container.
#[pin_data(PinnedDrop)]
pub(crate) struct Container {
    /// `VFIO_TYPE1v2_IOMMU` semantics (else `VFIO_TYPE1_IOMMU`).
    pub(crate) v2: bool,
    /// Groups and domains.
    #[pin]
    inner: Mutex<Inner>,
}

impl Container {
    /// `open`: a container of IOMMU type `kind`.
    pub(crate) fn new(kind: usize) -> Result<Pin<KBox<Container>>> {
        let v2 = match kind {
            VFIO_TYPE1_IOMMU => false,
            VFIO_TYPE1V2_IOMMU => true,
            _ => return Err(EINVAL),
        };
        let c = KBox::pin_init(
            try_pin_init!(Container {
                v2,
                inner <- new_mutex!(Inner { domains: KVec::new() }, "Container::inner"),
            }),
            GFP_KERNEL,
        )?;
        OPEN.fetch_add(1, Relaxed);
        Ok(c)
    }

    /// `attach_group`: checks the isolation policy, then attaches `group` to
    /// a compatible existing domain or to a new one with an MSI cookie.
    pub(crate) fn attach_group(&self, group: Group, emulated: bool) -> Result {
        let id = group.id();
        if emulated {
            pr_err!("group {id}: emulated-IOMMU (mdev) groups are not supported; use vfio_iommu_type1\n");
            return Err(EINVAL);
        }
        let mut why = [0u8; 512];
        let isolated = group.isolated(&mut why).inspect_err(|e| {
            pr_err!("group {id}: cannot tell whether its MSIs are isolated: {e:?}\n")
        })?;
        let why = cstr_prefix(&why);
        if !isolated {
            if !crate::module_parameters::allow_unsafe_interrupts.value() {
                pr_err!(
                    "group {id}: MSIs not isolated, refusing it: {why}; load vfio_type1x with allow_unsafe_interrupts=1 to accept it anyway\n"
                );
                return Err(EPERM);
            }
            pr_warn!(
                "group {id}: MSIs not isolated, accepted because allow_unsafe_interrupts=1: {why}\n"
            );
        }

        let regions = group.regions()?;
        let sw_msi = regions
            .iter()
            .find(|(_, kind)| *kind == RESV_SW_MSI)
            .map(|(r, _)| r.start);

        let mut inner = self.inner.lock();
        if inner.domains.iter().any(|d| d.groups.contains(&group)) {
            return Err(EINVAL);
        }
        // A domain already serving another group of the same IOMMU takes
        // this one too; the IOMMU core refuses an incompatible attach.
        for d in inner.domains.iter_mut() {
            if d.msi_base == sw_msi && d.domain.attach(group).is_ok() {
                d.groups
                    .push(group, GFP_KERNEL)
                    .inspect_err(|_| d.domain.detach(group))?;
                return Ok(());
            }
        }
        let domain = Domain::alloc(group)?;
        if let Some(base) = sw_msi {
            domain.msi_cookie(base).inspect_err(|e| {
                pr_err!("group {id}: cannot install the MSI cookie at {base:#x}: {e:?}\n")
            })?;
        }
        let mut groups = KVec::new();
        groups.push(group, GFP_KERNEL)?;
        domain.attach(group)?;
        // From here `DomainEntry::drop` detaches the group on error.
        let entry = DomainEntry {
            domain,
            groups,
            msi_base: sw_msi,
        };
        inner.domains.push(entry, GFP_KERNEL)?;
        Ok(())
    }

    /// `detach_group`.
    pub(crate) fn detach_group(&self, group: Group) {
        let mut inner = self.inner.lock();
        let Some(di) = inner.domains.iter().position(|d| d.groups.contains(&group)) else {
            return;
        };
        let d = &mut inner.domains[di];
        if let Some(gi) = d.groups.iter().position(|g| *g == group) {
            d.domain.detach(group);
            // `gi` is in bounds: it was just found.
            let _ = d.groups.remove(gi);
        }
        if d.groups.is_empty() {
            // Dropping the entry frees the domain (and its MSI cookie).
            drop(inner.domains.remove(di));
        }
    }

    /// The page sizes offered and the usable IOVA ranges: the intersection
    /// of the domains' apertures minus every group's reserved regions
    /// (which include the MSI window).
    pub(crate) fn iova_info(&self) -> Result<(u64, Ranges)> {
        let inner = self.inner.lock();
        let pgsizes = iova::effective_pgsizes(
            inner.domains.iter().map(|d| d.domain.info().1),
            kernel::page::PAGE_SIZE as u64,
        );
        let mut ranges = Ranges::new(Range {
            start: 0,
            last: u64::MAX,
        });
        for d in inner.domains.iter() {
            match d.domain.info().0 {
                Some(ap) => ranges.intersect(ap),
                None => return Err(EINVAL),
            }
            for g in d.groups.iter() {
                for (r, _) in g.regions()?.iter() {
                    ranges.exclude(*r).map_err(|_| ENOSPC)?;
                }
            }
        }
        Ok((pgsizes, ranges))
    }
}

#[pinned_drop]
impl PinnedDrop for Container {
    fn drop(self: Pin<&mut Self>) {
        OPEN.fetch_sub(1, Relaxed);
    }
}

/// The text before the first NUL of `buf`.
fn cstr_prefix(buf: &[u8]) -> &str {
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    core::str::from_utf8(&buf[..len]).unwrap_or("?")
}
