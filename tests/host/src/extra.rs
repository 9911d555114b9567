// SPDX-License-Identifier: GPL-2.0

//! What only the host tests need from the ITS model's files: encoders (a
//! command's four words, table fields), constants the module has no use
//! for, and conveniences over the model's API. Kept here so that nothing
//! the module does not use ships in kvm_vits.ko.

use crate::cmd::*;
use crate::env::{Env, Errno};
use crate::model::{CmdResult, IteInfo, Its};
use crate::table::l1_addr;

/// Permission denied.
pub const EACCES: Errno = Errno::new(13);
/// Bad address.
pub const EFAULT: Errno = Errno::new(14);
/// No such entry.
pub const ENOENT: Errno = Errno::new(2);

/// `GITS_TRANSLATER` (not emulated: MSIs arrive through KVM_SIGNAL_MSI).
pub const GITS_TRANSLATER: u64 = 0x10040;
/// `GITS_BASER_PAGE_SIZE_SHIFT`.
pub const GITS_BASER_PAGE_SIZE_SHIFT: u32 = 8;
/// `VITS_MAX_EVENTID`: GITS_TYPER.IDbits is 16.
pub const VITS_MAX_EVENTID: u32 = (1 << 16) - 1;

/// `GITS_BASER_PHYS_52_to_48()`: encode a 64 KiB aligned address.
pub fn baser_phys(phys: u64) -> u64 {
    (phys & 0x0000_ffff_ffff_0000) | ((phys >> 48) & 0xf) << 12
}

/// Encode a level-1 entry pointing at the 64 KiB level-2 table `addr`.
pub fn l1_encode(addr: u64, valid: bool) -> u64 {
    l1_addr(addr) | (valid as u64) << 63
}

/// A command as a driver queues it.
pub trait Encode {
    /// Encode the command into the four words a driver would queue; fields
    /// wider than the command format are truncated. `decode(encode(c))` gives
    /// back `c` for every in-range command.
    fn encode(&self) -> [u64; 4];
}

impl Encode for Command {
    fn encode(&self) -> [u64; 4] {
        fn dev_ev(op: u8, dev: u32, ev: u32) -> [u64; 4] {
            [op as u64 | (dev as u64) << 32, ev as u64, 0, 0]
        }
        match *self {
            Command::Mapd {
                device_id,
                num_eventid_bits,
                itt_addr,
                valid,
            } => [
                GITS_CMD_MAPD as u64 | (device_id as u64) << 32,
                (num_eventid_bits.wrapping_sub(1) & 0x1f) as u64,
                (itt_addr & 0x000f_ffff_ffff_ff00) | (valid as u64) << 63,
                0,
            ],
            Command::Mapc {
                icid,
                target,
                valid,
            } => [
                GITS_CMD_MAPC as u64,
                0,
                icid as u64 | (target as u64) << 16 | (valid as u64) << 63,
                0,
            ],
            Command::Mapti {
                device_id,
                event_id,
                pintid,
                icid,
            } => [
                GITS_CMD_MAPTI as u64 | (device_id as u64) << 32,
                event_id as u64 | (pintid as u64) << 32,
                icid as u64,
                0,
            ],
            Command::Mapi {
                device_id,
                event_id,
                icid,
            } => [
                GITS_CMD_MAPI as u64 | (device_id as u64) << 32,
                event_id as u64,
                icid as u64,
                0,
            ],
            Command::Movi {
                device_id,
                event_id,
                icid,
            } => [
                GITS_CMD_MOVI as u64 | (device_id as u64) << 32,
                event_id as u64,
                icid as u64,
                0,
            ],
            Command::Discard {
                device_id,
                event_id,
            } => dev_ev(GITS_CMD_DISCARD, device_id, event_id),
            Command::Clear {
                device_id,
                event_id,
            } => dev_ev(GITS_CMD_CLEAR, device_id, event_id),
            Command::Int {
                device_id,
                event_id,
            } => dev_ev(GITS_CMD_INT, device_id, event_id),
            Command::Inv {
                device_id,
                event_id,
            } => dev_ev(GITS_CMD_INV, device_id, event_id),
            Command::Invall { icid } => [GITS_CMD_INVALL as u64, 0, icid as u64, 0],
            Command::Movall { target1, target2 } => [
                GITS_CMD_MOVALL as u64,
                0,
                (target1 as u64) << 16,
                (target2 as u64) << 16,
            ],
            Command::Sync { target } => [GITS_CMD_SYNC as u64, 0, (target as u64) << 16, 0],
            Command::Unknown(op) => [op as u64, 0, 0, 0],
        }
    }
}

/// The model driven as a guest and a VMM see it, on the model's API.
pub trait ItsExt<E: Env> {
    /// A guest write of the frame that runs the command queue at once, as
    /// the kernel does a command at a time.
    fn mmio_write(&mut self, env: &mut E, offset: u64, len: u32, val: u64);
    /// Execute one command and the work it leaves, if any.
    fn run_command(&mut self, env: &mut E, cmd: &[u64; 4]) -> CmdResult;
    /// Call `f` for every ITE, in (DeviceID, EventID) order.
    fn for_each_ite(&self, env: &E, f: impl FnMut(IteInfo));
}

impl<E: Env> ItsExt<E> for Its<E> {
    fn mmio_write(&mut self, env: &mut E, offset: u64, len: u32, val: u64) {
        if self.mmio_write_deferred(env, offset, len, val) {
            for _ in 0..self.queue_slots() {
                if !self.step_command(env) {
                    break;
                }
            }
        }
    }

    fn run_command(&mut self, env: &mut E, cmd: &[u64; 4]) -> CmdResult {
        let (res, work) = self.process_command(env, cmd);
        if let Some(work) = work {
            work.run(env);
        }
        res
    }

    fn for_each_ite(&self, env: &E, mut f: impl FnMut(IteInfo)) {
        let mut buf = [IteInfo::EMPTY; 16];
        let mut after = None;
        loop {
            let n = self.ites_after(env, after, &mut buf);
            for i in &buf[..n] {
                f(*i);
            }
            match buf[..n].last() {
                Some(last) if n == buf.len() => after = Some((last.devid, last.eventid)),
                _ => break,
            }
        }
    }
}
