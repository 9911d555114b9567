// SPDX-License-Identifier: GPL-2.0

//! Save and restore of the ITS tables in guest memory, ABI revision 0
//! (`vgic_its_save_tables_v0()`, `vgic_its_restore_tables_v0()`).

use super::*;

/// Where a table scan is: which entries `scan_its_table()` walks.
#[derive(Clone, Copy)]
enum Scan {
    /// Level-1 device table entries (`handle_l1_dte`).
    L1,
    /// Device table entries (`vgic_its_restore_dte`).
    Dte,
    /// The ITT of a device (`vgic_its_restore_ite`).
    Ite(u32),
}

impl<E: Env> Its<E> {
    /// KVM_DEV_ARM_ITS_SAVE_TABLES (`vgic_its_save_tables_v0()`).
    pub fn save_tables(&mut self, env: &mut E) -> Result<(), Errno> {
        self.save_device_tables(env)?;
        self.save_collection_table(env)
    }

    fn save_device_tables(&mut self, env: &mut E) -> Result<(), Errno> {
        let baser = self.baser_device_table;
        if !baser_valid(baser) {
            return Ok(());
        }
        for (n, dev) in self.devices.iter().enumerate() {
            // Don't fail a save that userspace must be able to issue.
            let eaddr = match Self::check_id(env, baser, dev.id) {
                Some(a) => a,
                None => continue,
            };

            // vgic_its_save_itt()
            for (k, ite) in dev.ites.iter().enumerate() {
                let gpa = dev.itt_addr.wrapping_add(ite.event_id as u64 * ABI_0_ESZ);
                let val = match ite.icid {
                    // MAPC V=0 dropped the ICID: save an invalid entry.
                    None => 0,
                    Some(icid) => {
                        let next = dev
                            .ites
                            .get(k + 1..)
                            .and_then(|rest| rest.iter().find(|n| n.icid.is_some()))
                            .map(|n| {
                                n.event_id
                                    .wrapping_sub(ite.event_id)
                                    .min(VITS_ITE_MAX_EVENTID_OFFSET)
                            })
                            .unwrap_or(0);
                        Itte {
                            next,
                            pintid: env.lpi_intid(&ite.lpi),
                            icid,
                        }
                        .encode()
                    }
                };
                Self::write_entry(env, gpa, val)?;
            }

            // vgic_its_save_dte(), compute_next_devid_offset()
            let mut next = 0;
            if let Some(rest) = self.devices.get(n + 1..) {
                for nd in rest.iter() {
                    if Self::check_id(env, baser, nd.id).is_some() {
                        next = nd.id.wrapping_sub(dev.id).min(VITS_DTE_MAX_DEVID_OFFSET);
                        break;
                    }
                }
            }
            let dte = Dte {
                valid: true,
                next,
                itt_addr: dev.itt_addr,
                num_eventid_bits: dev.num_eventid_bits,
            };
            Self::write_entry(env, eaddr, dte.encode())?;
        }
        Ok(())
    }

    fn save_collection_table(&mut self, env: &mut E) -> Result<(), Errno> {
        let baser = self.baser_coll_table;
        if !baser_valid(baser) {
            return Ok(());
        }
        let mut gpa = baser_addr(baser);
        let max_size = baser_table_size(baser);
        let mut filled = 0u64;
        // In creation order, as the built-in ITS's list.
        let mut order: E::Vec<(u64, u16)> = E::Vec::new_empty();
        for c in self.collections.iter() {
            let pos = order.partition_point(|&(seq, _)| seq < c.seq);
            order.try_insert(pos, (c.seq, c.id)).map_err(|_| ENOMEM)?;
        }
        for &(_, id) in order.iter() {
            let Ok(i) = self.collections.binary_search_by_key(&id, |c| c.id) else {
                continue;
            };
            let Some(c) = self.collections.get(i) else {
                continue;
            };
            let cte = Cte {
                valid: true,
                target: c.target,
                icid: c.id,
            };
            Self::write_entry(env, gpa, cte.encode())?;
            gpa = gpa.wrapping_add(ABI_0_ESZ);
            filled += ABI_0_ESZ;
        }
        if filled == max_size {
            return Ok(());
        }
        // The table is not full: end it with an invalid entry.
        Self::write_entry(env, gpa, 0)
    }

    // ---- restore -------------------------------------------------------

    /// KVM_DEV_ARM_ITS_RESTORE_TABLES (`vgic_its_restore_tables_v0()`).
    pub fn restore_tables(&mut self, env: &mut E) -> Result<(), Errno> {
        self.restore_collection_table(env)?;
        let r = self.restore_device_tables(env);
        if r.is_err() {
            self.free_collection_list();
        }
        r
    }

    /// `vgic_its_restore_cte()`: `Ok(false)` at the end of the table.
    fn restore_cte(&mut self, env: &mut E, gpa: u64) -> Result<bool, Errno> {
        let cte = Cte::decode(Self::read_entry(env, gpa)?);
        if !cte.valid {
            return Ok(false);
        }
        if cte.target != COLLECTION_NOT_MAPPED && !env.vcpu_exists(cte.target) {
            return Err(EINVAL);
        }
        if self.find_collection(cte.icid as u32).is_some() {
            return Err(EEXIST);
        }
        if Self::check_id(env, self.baser_coll_table, cte.icid as u32).is_none() {
            return Err(EINVAL);
        }
        self.alloc_collection(cte.icid, cte.target)?;
        Ok(true)
    }

    fn restore_collection_table(&mut self, env: &mut E) -> Result<(), Errno> {
        let baser = self.baser_coll_table;
        if !baser_valid(baser) {
            return Ok(());
        }
        let mut gpa = baser_addr(baser);
        let max_size = baser_table_size(baser);
        let mut read = 0;
        while read < max_size {
            match self.restore_cte(env, gpa) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => {
                    self.free_collection_list();
                    return Err(e);
                }
            }
            gpa = gpa.wrapping_add(ABI_0_ESZ);
            read += ABI_0_ESZ;
        }
        Ok(())
    }

    fn restore_device_tables(&mut self, env: &mut E) -> Result<(), Errno> {
        let baser = self.baser_device_table;
        if !baser_valid(baser) {
            return Ok(());
        }
        let kind = if baser & GITS_BASER_INDIRECT != 0 {
            Scan::L1
        } else {
            Scan::Dte
        };
        let r = self.scan_table(env, baser_addr(baser), baser_table_size(baser), 0, kind);
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                self.free_device_list(env);
                Err(e)
            }
        }
    }

    /// `scan_its_table()` over 8-byte entries: `Ok(false)` when an entry
    /// said it was the last, `Ok(true)` when the table ran out. The walk
    /// nests at most three deep (L1 -> DTE -> ITE).
    fn scan_table(
        &mut self,
        env: &mut E,
        base: u64,
        size: u64,
        start_id: u32,
        kind: Scan,
    ) -> Result<bool, Errno> {
        let esz = ABI_0_ESZ;
        let mut len = size;
        let mut id = start_id;
        let mut gpa = base;
        loop {
            let entry = Self::read_entry(env, gpa)?;
            let next = match kind {
                Scan::L1 => self.restore_l1(env, id, entry)?,
                Scan::Dte => self.restore_dte(env, id, entry)?,
                Scan::Ite(devid) => self.restore_ite(env, devid, id, entry)?,
            };
            if next == 0 {
                return Ok(false);
            }
            let byte_offset = next as u64 * esz;
            if byte_offset >= len {
                return Ok(true);
            }
            id = id.wrapping_add(next);
            gpa = gpa.wrapping_add(byte_offset);
            len -= byte_offset;
        }
    }

    /// `handle_l1_dte()`: 0 once the last DTE was found, else 1.
    fn restore_l1(&mut self, env: &mut E, index: u32, entry: u64) -> Result<u32, Errno> {
        let l2_start_id = index.wrapping_mul((SZ_64K / ABI_0_ESZ) as u32);
        if !table::l1_valid(entry) {
            return Ok(1);
        }
        let more = self.scan_table(env, table::l1_addr(entry), SZ_64K, l2_start_id, Scan::Dte)?;
        Ok(more as u32)
    }

    /// `vgic_its_restore_dte()`: the DeviceID offset to the next DTE.
    fn restore_dte(&mut self, env: &mut E, id: u32, entry: u64) -> Result<u32, Errno> {
        let dte = Dte::decode(entry);
        if !dte.valid {
            return Ok(1);
        }
        // Mimic the MAPD behaviour and reject invalid EID bits.
        if dte.num_eventid_bits > VITS_TYPER_IDBITS {
            return Err(EINVAL);
        }
        if Self::check_id(env, self.baser_device_table, id).is_none() {
            return Err(EINVAL);
        }
        // The C would add a second device with the same ID; refuse it.
        let pos = match self.devices.binary_search_by_key(&id, |d| d.id) {
            Ok(_) => return Err(EEXIST),
            Err(pos) => pos,
        };
        let dev = Device {
            id,
            itt_addr: dte.itt_addr,
            num_eventid_bits: dte.num_eventid_bits,
            ites: E::Vec::new_empty(),
        };
        self.devices.try_insert(pos, dev).map_err(|_| ENOMEM)?;

        // vgic_its_restore_itt()
        let max_size = (1u64 << dte.num_eventid_bits) * ABI_0_ESZ;
        if let Err(e) = self.scan_table(env, dte.itt_addr, max_size, 0, Scan::Ite(id)) {
            if let Some(d) = self.find_device(id) {
                self.free_device(env, d);
            }
            return Err(e);
        }
        Ok(dte.next)
    }

    /// `vgic_its_restore_ite()`: the EventID offset to the next ITE.
    fn restore_ite(
        &mut self,
        env: &mut E,
        devid: u32,
        event_id: u32,
        entry: u64,
    ) -> Result<u32, Errno> {
        let ite = Itte::decode(entry);
        if ite.pintid == 0 {
            // Invalid entry: no choice but to scan the next one.
            return Ok(1);
        }
        if ite.pintid < VGIC_MIN_LPI {
            return Err(EINVAL);
        }
        let d = self.find_device(devid).ok_or(EINVAL)?;
        let (itt_addr, bits) = match self.devices.get(d) {
            Some(dev) => (dev.itt_addr, dev.num_eventid_bits),
            None => return Err(EINVAL),
        };
        let limit = 1u64.checked_shl(bits as u32).unwrap_or(u64::MAX);
        if event_id as u64 + ite.next as u64 >= limit {
            return Err(EINVAL);
        }
        let target = match self.find_collection(ite.icid as u32) {
            Some(c) => c.target,
            None => return Err(EINVAL),
        };
        if !Self::check_event_id(env, itt_addr, bits, event_id) {
            return Err(EINVAL);
        }
        let pos = match self.devices.get(d) {
            Some(dev) => match dev.ites.binary_search_by_key(&event_id, |i| i.event_id) {
                Ok(_) => return Err(EEXIST),
                Err(pos) => pos,
            },
            None => return Err(EINVAL),
        };
        let vcpu = if target != COLLECTION_NOT_MAPPED && env.vcpu_exists(target) {
            Some(target)
        } else {
            None
        };
        let lpi = env.lpi_add(ite.pintid, vcpu)?;
        // Drop an ITE whose LPI another ITE maps, as MAPTI does.
        let Some(lpi) = env.lpi_map(lpi, vcpu) else {
            return Ok(ite.next);
        };
        let new = Ite {
            event_id,
            icid: Some(ite.icid),
            lpi,
        };
        Self::insert_ite(env, self.devices.get_mut(d), pos, new)?;
        Ok(ite.next)
    }
}
