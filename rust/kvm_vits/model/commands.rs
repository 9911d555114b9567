// SPDX-License-Identifier: GPL-2.0

//! The command queue and the commands (`vgic_its_handle_command()` and its
//! handlers): see [`Its::process_command`] and [`Its::next_command`].

use super::*;

/// The size of one command in the queue.
pub(super) const ITS_CMD_SIZE: u64 = 32;

/// The command at CREADR, as [`Its::next_command`] found it: where to read
/// it, and the queue state that must still hold to run it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextCommand {
    creadr: u64,
    cbaser: u64,
}

impl NextCommand {
    /// Reads the command from guest memory; `None` when the read fails.
    pub fn read<E: Env>(&self, env: &mut E) -> Option<[u64; 4]> {
        let mut buf = [0u8; ITS_CMD_SIZE as usize];
        env.read_guest(cbaser_addr(self.cbaser).wrapping_add(self.creadr), &mut buf)
            .ok()?;
        let mut cmd = [0u64; 4];
        for (w, b) in cmd.iter_mut().zip(buf.chunks_exact(8)) {
            let mut le = [0u8; 8];
            le.copy_from_slice(b);
            *w = u64::from_le_bytes(le);
        }
        Some(cmd)
    }
}

/// What a command leaves to run without the model's lock. INVALL and
/// MOVALL walk every LPI of the VM (an INVALL reads each LPI's
/// configuration from guest memory) and touch no table of the model, so a
/// caller that keeps the queue to itself runs them after dropping the
/// model's lock ([`Its::begin_command`]): an MSI that misses the
/// translation cache does not wait for them, where the built-in ITS holds
/// `its_lock` through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unlocked {
    /// INVALL: re-read the configuration of the LPIs targeting this vCPU.
    Invall(u32),
    /// MOVALL: retarget every LPI at `from` to `to`, then forget the cached
    /// translations.
    Movall {
        /// The vCPU the LPIs leave.
        from: u32,
        /// The vCPU they move to.
        to: u32,
    },
}

impl Unlocked {
    /// Does the work.
    pub fn run<E: Env>(self, env: &mut E) {
        match self {
            Unlocked::Invall(vcpu) => env.invall(vcpu),
            Unlocked::Movall { from, to } => {
                env.movall(from, to);
                env.cache_invalidate();
            }
        }
    }
}

/// What [`Its::begin_command`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The queue moved since [`Its::next_command`]: nothing ran.
    Moved,
    /// The command ran and CREADR advanced.
    Done,
    /// The command ran but left this work: run it, then
    /// [`Its::finish_command`] advances CREADR.
    Unlocked(Unlocked),
}

fn errno(r: Result<(), Errno>) -> CmdResult {
    match r {
        Ok(()) => CmdResult::Ok,
        Err(e) => CmdResult::Errno(e),
    }
}

impl<E: Env> Its<E> {
    /// Execute one command (`vgic_its_handle_command()`), as the command
    /// queue does; `cmd` holds the four words in host order. The command is
    /// done once the caller has run the work it returns, if any (with or
    /// without the model's lock).
    pub fn process_command(
        &mut self,
        env: &mut E,
        cmd: &[u64; 4],
    ) -> (CmdResult, Option<Unlocked>) {
        let decoded = Command::decode(cmd);
        let mut work = None;
        let res = match decoded {
            Command::Mapd {
                device_id,
                num_eventid_bits,
                itt_addr,
                valid,
            } => self.cmd_mapd(env, device_id, num_eventid_bits, itt_addr, valid),
            Command::Mapc {
                icid,
                target,
                valid,
            } => self.cmd_mapc(env, icid, target, valid),
            Command::Mapti {
                device_id,
                event_id,
                pintid,
                icid,
            } => self.cmd_mapi(env, device_id, event_id, pintid, icid as u32),
            Command::Mapi {
                device_id,
                event_id,
                icid,
            } => self.cmd_mapi(env, device_id, event_id, event_id, icid as u32),
            Command::Movi {
                device_id,
                event_id,
                icid,
            } => self.cmd_movi(env, device_id, event_id, icid as u32),
            Command::Discard {
                device_id,
                event_id,
            } => self.cmd_discard(env, device_id, event_id),
            Command::Clear {
                device_id,
                event_id,
            } => match self.lpi_of(device_id, event_id) {
                Some(lpi) => errno(env.lpi_clear(lpi)),
                None => CmdResult::Its(E_ITS_CLEAR_UNMAPPED_INTERRUPT),
            },
            Command::Int {
                device_id,
                event_id,
            } => self.trigger_msi(env, device_id, event_id),
            Command::Inv {
                device_id,
                event_id,
            } => match self.lpi_of(device_id, event_id) {
                Some(lpi) => errno(env.lpi_inv(lpi)),
                None => CmdResult::Its(E_ITS_INV_UNMAPPED_INTERRUPT),
            },
            Command::Invall { icid } => match self.mapped_collection(Some(icid)) {
                Some(c) => {
                    work = Self::collection_vcpu(env, c).map(Unlocked::Invall);
                    CmdResult::Ok
                }
                None => CmdResult::Its(E_ITS_INVALL_UNMAPPED_COLLECTION),
            },
            Command::Movall { target1, target2 } => {
                if !env.vcpu_exists(target1) || !env.vcpu_exists(target2) {
                    CmdResult::Its(E_ITS_MOVALL_PROCNUM_OOR)
                } else if target1 == target2 {
                    CmdResult::Ok
                } else {
                    work = Some(Unlocked::Movall {
                        from: target1,
                        to: target2,
                    });
                    CmdResult::Ok
                }
            }
            // We are in sync all of the time.
            Command::Sync { .. } => CmdResult::Ok,
            Command::Unknown(_) => CmdResult::Errno(ENODEV),
        };

        let slot = match decoded {
            Command::Unknown(_) => None,
            _ => self.stats.commands.get_mut(Command::opcode(cmd) as usize),
        };
        match slot {
            Some(n) => *n += 1,
            None => self.stats.unknown += 1,
        }
        match res {
            CmdResult::Ok => {}
            CmdResult::Its(_) => self.stats.its_errors += 1,
            CmdResult::Errno(_) => self.stats.errno_errors += 1,
        }
        (res, work)
    }

    fn ite_lpi(&self, d: usize, i: usize) -> Option<&E::Lpi> {
        Some(&self.devices.get(d)?.ites.get(i)?.lpi)
    }

    /// The LPI the ITE of (`device_id`, `event_id`) maps, if there is one.
    fn lpi_of(&self, device_id: u32, event_id: u32) -> Option<&E::Lpi> {
        let (d, i) = self.find_ite(device_id, event_id)?;
        self.ite_lpi(d, i)
    }

    /// MAPD (`vgic_its_cmd_handle_mapd()`).
    fn cmd_mapd(
        &mut self,
        env: &mut E,
        device_id: u32,
        num_eventid_bits: u8,
        itt_addr: u64,
        valid: bool,
    ) -> CmdResult {
        let gpa = match Self::check_id(env, self.baser_device_table, device_id) {
            Some(gpa) => gpa,
            None => return CmdResult::Its(E_ITS_MAPD_DEVICE_OOR),
        };
        if valid && num_eventid_bits > VITS_TYPER_IDBITS {
            return CmdResult::Its(E_ITS_MAPD_ITTSIZE_OOR);
        }

        // Remapping a mapped device invalidates all its cached data: remove
        // the mapping and re-establish it.
        if let Some(d) = self.find_device(device_id) {
            self.free_device(env, d);
        }

        if !valid {
            return errno(Self::write_entry(env, gpa, 0));
        }

        let pos = match self.devices.binary_search_by_key(&device_id, |d| d.id) {
            Ok(p) | Err(p) => p,
        };
        let dev = Device {
            id: device_id,
            itt_addr,
            num_eventid_bits,
            ites: E::Vec::new_empty(),
        };
        match self.devices.try_insert(pos, dev) {
            Ok(()) => CmdResult::Ok,
            Err(_) => CmdResult::Errno(ENOMEM),
        }
    }

    /// MAPC (`vgic_its_cmd_handle_mapc()`).
    fn cmd_mapc(&mut self, env: &mut E, icid: u16, target: u32, valid: bool) -> CmdResult {
        if !valid {
            self.free_collection(icid);
            env.cache_invalidate();
            return CmdResult::Ok;
        }
        if !env.vcpu_exists(target) {
            return CmdResult::Its(E_ITS_MAPC_PROCNUM_OOR);
        }
        match self.collections.binary_search_by_key(&icid, |c| c.id) {
            Ok(i) => {
                if let Some(c) = self.collections.get_mut(i) {
                    c.target = target;
                }
                // update_affinity_collection()
                for dev in self.devices.iter() {
                    for ite in dev.ites.iter() {
                        if ite.icid == Some(icid) {
                            // The C ignores update_affinity()'s result here.
                            let _ = env.lpi_set_target(&ite.lpi, None, target);
                        }
                    }
                }
                CmdResult::Ok
            }
            Err(pos) => {
                if Self::check_id(env, self.baser_coll_table, icid as u32).is_none() {
                    return CmdResult::Its(E_ITS_MAPC_COLLECTION_OOR);
                }
                let c = Collection {
                    id: icid,
                    target,
                    seq: self.next_coll_seq,
                };
                match self.collections.try_insert(pos, c) {
                    Ok(()) => {
                        self.next_coll_seq += 1;
                        CmdResult::Ok
                    }
                    Err(_) => CmdResult::Errno(ENOMEM),
                }
            }
        }
    }

    /// MAPTI and MAPI (`vgic_its_cmd_handle_mapi()`).
    fn cmd_mapi(
        &mut self,
        env: &mut E,
        device_id: u32,
        event_id: u32,
        lpi_nr: u32,
        coll_id: u32,
    ) -> CmdResult {
        let d = match self.find_device(device_id) {
            Some(d) => d,
            None => return CmdResult::Its(E_ITS_MAPTI_UNMAPPED_DEVICE),
        };
        let (itt_addr, bits) = match self.devices.get(d) {
            Some(dev) => (dev.itt_addr, dev.num_eventid_bits),
            None => return CmdResult::Its(E_ITS_MAPTI_UNMAPPED_DEVICE),
        };
        if !Self::check_event_id(env, itt_addr, bits, event_id) {
            return CmdResult::Its(E_ITS_MAPTI_ID_OOR);
        }
        if lpi_nr < VGIC_MIN_LPI || lpi_nr >= env.max_lpis() {
            return CmdResult::Its(E_ITS_MAPTI_PHYSICALID_OOR);
        }

        // If there is an existing mapping, behavior is UNPREDICTABLE.
        let pos = match self.devices.get(d) {
            Some(dev) => match dev.ites.binary_search_by_key(&event_id, |i| i.event_id) {
                Ok(_) => return CmdResult::Ok,
                Err(pos) => pos,
            },
            None => return CmdResult::Ok,
        };

        let mut new_coll = false;
        let target = match self.find_collection(coll_id) {
            Some(c) => c.target,
            None => {
                if Self::check_id(env, self.baser_coll_table, coll_id).is_none() {
                    return CmdResult::Its(E_ITS_MAPC_COLLECTION_OOR);
                }
                if let Err(e) = self.alloc_collection(coll_id as u16, COLLECTION_NOT_MAPPED) {
                    return CmdResult::Errno(e);
                }
                new_coll = true;
                COLLECTION_NOT_MAPPED
            }
        };
        let vcpu = if target != COLLECTION_NOT_MAPPED && env.vcpu_exists(target) {
            Some(target)
        } else {
            None
        };

        let res = match env.lpi_add(lpi_nr, vcpu) {
            Err(e) => Err(e),
            Ok(lpi) => match env.lpi_map(lpi, vcpu) {
                None => Err(EEXIST),
                Some(lpi) => {
                    let ite = Ite {
                        event_id,
                        icid: Some(coll_id as u16),
                        lpi,
                    };
                    Self::insert_ite(env, self.devices.get_mut(d), pos, ite)
                }
            },
        };
        match res {
            Ok(()) => CmdResult::Ok,
            Err(e) => {
                if new_coll {
                    self.free_collection(coll_id as u16);
                }
                CmdResult::Errno(e)
            }
        }
    }

    /// MOVI (`vgic_its_cmd_handle_movi()`).
    fn cmd_movi(&mut self, env: &mut E, device_id: u32, event_id: u32, coll_id: u32) -> CmdResult {
        let (d, i) = match self.find_ite(device_id, event_id) {
            Some(x) => x,
            None => return CmdResult::Its(E_ITS_MOVI_UNMAPPED_INTERRUPT),
        };
        let cur = match self.devices.get(d).and_then(|dev| dev.ites.get(i)) {
            Some(ite) => ite.icid,
            None => return CmdResult::Its(E_ITS_MOVI_UNMAPPED_INTERRUPT),
        };
        if self.mapped_collection(cur).is_none() {
            return CmdResult::Its(E_ITS_MOVI_UNMAPPED_COLLECTION);
        }
        let (icid, vcpu) = match self.find_collection(coll_id) {
            Some(c) if c.target != COLLECTION_NOT_MAPPED => (c.id, Self::collection_vcpu(env, c)),
            _ => return CmdResult::Its(E_ITS_MOVI_UNMAPPED_COLLECTION),
        };
        let lpi = match self.devices.get_mut(d).and_then(|dev| dev.ites.get_mut(i)) {
            Some(ite) => {
                ite.icid = Some(icid);
                &ite.lpi
            }
            None => return CmdResult::Its(E_ITS_MOVI_UNMAPPED_INTERRUPT),
        };

        env.cache_invalidate();

        match vcpu {
            Some(v) => errno(env.lpi_set_target(lpi, None, v)),
            None => CmdResult::Ok,
        }
    }

    /// DISCARD (`vgic_its_cmd_handle_discard()`).
    fn cmd_discard(&mut self, env: &mut E, device_id: u32, event_id: u32) -> CmdResult {
        if let Some((d, i)) = self.find_ite(device_id, event_id) {
            let (itt_addr, icid) = match self.devices.get(d) {
                Some(dev) => (dev.itt_addr, dev.ites.get(i).and_then(|ite| ite.icid)),
                None => (0, None),
            };
            if self.mapped_collection(icid).is_some() {
                let gpa = itt_addr.wrapping_add(event_id as u64 * ABI_0_ESZ);
                // The pending state is a property of the ITE we free.
                env.cache_invalidate();
                if let Some(dev) = self.devices.get_mut(d) {
                    if i < dev.ites.len() {
                        let ite = dev.ites.remove_at(i);
                        env.lpi_release(ite.lpi);
                    }
                }
                return errno(Self::write_entry(env, gpa, 0));
            }
        }
        CmdResult::Its(E_ITS_DISCARD_UNMAPPED_INTERRUPT)
    }

    /// `vgic_its_resolve_lpi()`: caches the translation on success.
    fn resolve_lpi(&self, env: &mut E, devid: u32, eventid: u32) -> Result<&E::Lpi, CmdResult> {
        if !self.enabled {
            return Err(CmdResult::Errno(EBUSY));
        }
        let unmapped = CmdResult::Its(E_ITS_INT_UNMAPPED_INTERRUPT);
        let (d, i) = self.find_ite(devid, eventid).ok_or(unmapped)?;
        let ite = self
            .devices
            .get(d)
            .and_then(|dev| dev.ites.get(i))
            .ok_or(unmapped)?;
        let c = self.mapped_collection(ite.icid).ok_or(unmapped)?;
        let vcpu = Self::collection_vcpu(env, c).ok_or(unmapped)?;
        if !env.lpis_enabled(vcpu) {
            return Err(CmdResult::Errno(EBUSY));
        }
        env.cache_insert(devid, eventid, &ite.lpi);
        Ok(&ite.lpi)
    }

    /// `vgic_its_trigger_msi()`.
    fn trigger_msi(&mut self, env: &mut E, devid: u32, eventid: u32) -> CmdResult {
        match self.resolve_lpi(env, devid, eventid) {
            Ok(lpi) => errno(env.lpi_trigger(lpi)),
            Err(r) => r,
        }
    }

    /// Inject an MSI after a translation cache miss (the slow path of
    /// `vgic_its_inject_msi()`): `Ok(true)` when delivered, `Ok(false)` when
    /// the mapping blocks it (KVM_SIGNAL_MSI returns 0), `Err(EBUSY)` when the
    /// ITS or the target's LPIs are disabled.
    pub fn inject(&mut self, env: &mut E, devid: u32, eventid: u32) -> Result<bool, Errno> {
        match self.trigger_msi(env, devid, eventid) {
            CmdResult::Ok => Ok(true),
            CmdResult::Its(_) => Ok(false),
            CmdResult::Errno(e) => Err(e),
        }
    }

    /// `vgic_its_process_commands()`: run the queue from CREADR to CWRITER.
    pub(super) fn process_commands(&mut self, env: &mut E) {
        // CREADR and CWRITER are always 32-byte aligned and below the queue
        // size, so this ends within one turn of the queue; the bound only
        // guards against a broken invariant.
        let mut budget = self.queue_slots();
        while budget > 0 && self.step_command(env) {
            budget -= 1;
        }
    }

    /// How many commands the queue holds: a bound on the
    /// [`Its::step_command`] calls that drain it while CWRITER stays.
    pub fn queue_slots(&self) -> u64 {
        cmd_buffer_size(self.cbaser) / ITS_CMD_SIZE + 1
    }

    /// Runs the command at CREADR, if the ITS is enabled and the queue is
    /// not empty, and advances CREADR; whether it ran one.
    pub fn step_command(&mut self, env: &mut E) -> bool {
        match self.next_command() {
            Some(next) => {
                let cmd = next.read(env);
                self.complete_command(env, next, cmd.as_ref())
            }
            None => false,
        }
    }

    /// Where the command at CREADR is, if the ITS is enabled and the queue
    /// is not empty. The caller reads it with [`NextCommand::read`], which
    /// needs no access to the model, and hands it to
    /// [`Its::complete_command`]: upstream reads a command holding only its
    /// command lock, and so can a caller that drops this model's lock
    /// around the read.
    pub fn next_command(&self) -> Option<NextCommand> {
        if !self.enabled || self.cwriter == self.creadr {
            return None;
        }
        Some(NextCommand {
            creadr: self.creadr,
            cbaser: self.cbaser,
        })
    }

    /// Runs the command read for `next` (`None`: the read failed, which
    /// skips the command, GICv3 spec 6.3.2) and advances CREADR. False,
    /// running nothing, when the queue moved since [`Its::next_command`]
    /// (a caller that lets another writer in between).
    pub fn complete_command(
        &mut self,
        env: &mut E,
        next: NextCommand,
        cmd: Option<&[u64; 4]>,
    ) -> bool {
        match self.begin_command(env, next, cmd) {
            Step::Moved => false,
            Step::Done => true,
            Step::Unlocked(work) => {
                work.run(env);
                self.finish_command(next)
            }
        }
    }

    /// [`Its::complete_command`] for a caller that drops the model's lock
    /// for the work a command leaves ([`Unlocked`]): runs the command read
    /// for `next` unless the queue moved, and advances CREADR unless work is
    /// left. The caller must keep the queue's other writers out until it
    /// has run the work and called [`Its::finish_command`], so the command
    /// completes (CREADR passes it) only after its work.
    pub fn begin_command(
        &mut self,
        env: &mut E,
        next: NextCommand,
        cmd: Option<&[u64; 4]>,
    ) -> Step {
        if self.next_command() != Some(next) {
            return Step::Moved;
        }
        if let Some((_, Some(work))) = cmd.map(|cmd| self.process_command(env, cmd)) {
            return Step::Unlocked(work);
        }
        self.advance();
        Step::Done
    }

    /// Completes the command of `next` after its [`Unlocked`] work: advances
    /// CREADR past it. False when the queue moved meanwhile (a caller that
    /// let another writer in), which leaves CREADR alone.
    pub fn finish_command(&mut self, next: NextCommand) -> bool {
        if self.next_command() != Some(next) {
            return false;
        }
        self.advance();
        true
    }

    fn advance(&mut self) {
        self.creadr += ITS_CMD_SIZE;
        if self.creadr >= cmd_buffer_size(self.cbaser) {
            self.creadr = 0;
        }
    }
}
