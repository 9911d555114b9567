// SPDX-License-Identifier: GPL-2.0

//! The ITS model against a mock KVM: registers, commands, save/restore.

use armsi_logic::cmd::*;
use armsi_logic::env::*;
use armsi_logic::extra::*;
use armsi_logic::fuzz::{check_invariants, fail_alloc_after, MockEnv};
use armsi_logic::model::regs::*;
use armsi_logic::model::*;
use armsi_logic::table::*;

const DEV_TABLE: u64 = 0x10_0000;
const L2: u64 = 0x20_0000;
const COLL_TABLE: u64 = 0x30_0000;
const CMDQ: u64 = 0x40_0000;
const HOLE: u64 = 0x90_0000;
const VISIBLE: [(u64, u64); 1] = [(0, 0x80_0000)];

/// The collections as (ICID, target) pairs, in ICID order.
fn colls(its: &Its<MockEnv>) -> Vec<(u16, u32)> {
    its.collections().iter().map(|c| (c.id, c.target)).collect()
}

fn itt(dev: u32) -> u64 {
    0x50_0000 + (dev as u64 & 0xff) * 0x1000
}

fn dev_baser(indirect: bool) -> u64 {
    GITS_BASER_VALID | if indirect { GITS_BASER_INDIRECT } else { 0 } | DEV_TABLE
}

/// An enabled ITS with a flat (or 2-level) device table, 4 vCPUs.
fn setup(indirect: bool) -> (Its<MockEnv>, MockEnv) {
    let mut env = MockEnv::new(4, &VISIBLE);
    let mut its = Its::new();
    if indirect {
        env.poke64(DEV_TABLE, l1_encode(L2, true));
        env.poke64(DEV_TABLE + 8, l1_encode(L2 + 0x1_0000, true));
    }
    its.mmio_write(&mut env, GITS_BASER, 8, dev_baser(indirect));
    its.mmio_write(&mut env, GITS_BASER + 8, 8, GITS_BASER_VALID | COLL_TABLE);
    its.mmio_write(&mut env, GITS_CBASER, 8, GITS_CBASER_VALID | CMDQ);
    its.mmio_write(&mut env, GITS_CTLR, 4, 1);
    assert!(its.regs().enabled);
    (its, env)
}

fn run(its: &mut Its<MockEnv>, env: &mut MockEnv, c: Command) -> CmdResult {
    let r = its.run_command(env, &c.encode());
    check_invariants(its, env).unwrap();
    r
}

fn mapd(its: &mut Its<MockEnv>, env: &mut MockEnv, dev: u32, bits: u8) -> CmdResult {
    run(
        its,
        env,
        Command::Mapd {
            device_id: dev,
            num_eventid_bits: bits,
            itt_addr: itt(dev),
            valid: true,
        },
    )
}

fn mapc(its: &mut Its<MockEnv>, env: &mut MockEnv, icid: u16, target: u32) -> CmdResult {
    run(
        its,
        env,
        Command::Mapc {
            icid,
            target,
            valid: true,
        },
    )
}

fn mapti(its: &mut Its<MockEnv>, env: &mut MockEnv, d: u32, e: u32, p: u32, c: u16) -> CmdResult {
    run(
        its,
        env,
        Command::Mapti {
            device_id: d,
            event_id: e,
            pintid: p,
            icid: c,
        },
    )
}

fn finish(mut its: Its<MockEnv>, mut env: MockEnv) {
    check_invariants(&its, &env).unwrap();
    its.destroy(&mut env);
    assert_eq!(env.outstanding(), 0);
    assert!(env.lpis.is_empty());
    assert!(env.cache.stats().len == 0);
}

use CmdResult::{Errno as Err_, Its as E, Ok as OK};

// ---- registers ---------------------------------------------------------

#[test]
fn id_registers_and_initial_values() {
    let mut env = MockEnv::new(1, &VISIBLE);
    let mut its = Its::<MockEnv>::new();
    let rd = |its: &mut Its<MockEnv>, env: &mut MockEnv, off, len| its.mmio_read(env, off, len);
    assert_eq!(rd(&mut its, &mut env, GITS_TYPER, 8), 0x1ef71);
    assert_eq!(TYPER_VALUE, 0x1ef71);
    assert_eq!(rd(&mut its, &mut env, GITS_TYPER, 4), 0x1ef71);
    assert_eq!(rd(&mut its, &mut env, GITS_TYPER + 4, 4), 0);
    assert_eq!(rd(&mut its, &mut env, GITS_IIDR, 4), 0x4b00_043b);
    assert_eq!(rd(&mut its, &mut env, GITS_CTLR, 4), 0x8000_0000);
    assert_eq!(rd(&mut its, &mut env, GITS_PIDR0, 4), 0x92);
    assert_eq!(rd(&mut its, &mut env, GITS_PIDR1, 4), 0xb4);
    assert_eq!(rd(&mut its, &mut env, GITS_PIDR2, 4), 0x3b);
    assert_eq!(rd(&mut its, &mut env, GITS_PIDR4, 4), 0x40);
    assert_eq!(rd(&mut its, &mut env, 0xffd4, 4), 0);
    assert_eq!(rd(&mut its, &mut env, GITS_CIDR0, 4), 0x0d);
    assert_eq!(rd(&mut its, &mut env, GITS_CIDR1, 4), 0xf0);
    assert_eq!(rd(&mut its, &mut env, GITS_CIDR2, 4), 0x05);
    assert_eq!(rd(&mut its, &mut env, GITS_CIDR3, 4), 0xb1);
    // INITIAL_BASER_VALUE | type | entry size 8.
    assert_eq!(rd(&mut its, &mut env, GITS_BASER, 8), 0x1907_0000_0000_0600);
    assert_eq!(
        rd(&mut its, &mut env, GITS_BASER + 8, 8),
        0x1c07_0000_0000_0600
    );
    assert_eq!(rd(&mut its, &mut env, GITS_BASER + 12, 4), 0x1c07_0000);
    for i in 2..8 {
        assert_eq!(rd(&mut its, &mut env, GITS_BASER + i * 8, 8), 0);
    }
    assert_eq!(rd(&mut its, &mut env, GITS_CBASER, 8), 0);
    // Bad sizes, misalignment, unknown offsets: RAZ.
    assert_eq!(rd(&mut its, &mut env, GITS_CTLR, 8), 0);
    assert_eq!(rd(&mut its, &mut env, GITS_IIDR, 1), 0);
    assert_eq!(rd(&mut its, &mut env, GITS_PIDR2, 8), 0);
    assert_eq!(rd(&mut its, &mut env, GITS_BASER + 4, 8), 0);
    assert_eq!(rd(&mut its, &mut env, GITS_BASER + 2, 4), 0);
    assert_eq!(rd(&mut its, &mut env, 0x40, 4), 0);
    assert_eq!(rd(&mut its, &mut env, GITS_TRANSLATER, 4), 0);
    its.mmio_write(&mut env, GITS_TRANSLATER, 4, 0x2000);
    // Read-only registers ignore writes.
    its.mmio_write(&mut env, GITS_TYPER, 8, u64::MAX);
    its.mmio_write(&mut env, GITS_IIDR, 4, u64::MAX);
    its.mmio_write(&mut env, GITS_CREADR, 8, 0x40);
    assert_eq!(rd(&mut its, &mut env, GITS_TYPER, 8), 0x1ef71);
    assert_eq!(rd(&mut its, &mut env, GITS_IIDR, 4), 0x4b00_043b);
    assert_eq!(its.regs().creadr, 0);
    finish(its, env);
}

#[test]
fn baser_sanitisation_and_read_only_fields() {
    let mut env = MockEnv::new(1, &VISIBLE);
    let mut its = Its::<MockEnv>::new();
    its.mmio_write(&mut env, GITS_BASER, 8, u64::MAX);
    // Type and entry size forced, outer cacheability to SameAsInner, 64K pages.
    assert_eq!(its.regs().baser_device_table, 0xf907_ffff_ffff_feff);
    its.mmio_write(&mut env, GITS_BASER + 8, 8, u64::MAX);
    // The collection table cannot be indirect.
    assert_eq!(its.regs().baser_coll_table, 0xbc07_ffff_ffff_feff);
    its.mmio_write(&mut env, GITS_BASER, 8, 0);
    // Inner non-cacheable becomes RaWb.
    assert_eq!(its.regs().baser_device_table, 0x1907_0000_0000_0200);
    // OuterShareable becomes InnerShareable; nC outer is kept.
    its.mmio_write(&mut env, GITS_BASER, 8, 2 << 10 | 1 << 53 | 5 << 59);
    assert_eq!(its.regs().baser_device_table, 0x2927_0000_0000_0600);
    // 32-bit halves.
    its.mmio_write(&mut env, GITS_BASER + 4, 4, 0x8000_0000);
    assert_eq!(its.regs().baser_device_table, 0x9907_0000_0000_0600);
    its.mmio_write(&mut env, GITS_BASER, 4, 0x0012_0003);
    assert_eq!(its.regs().baser_device_table, 0x9907_0000_0012_0203);
    // Other BASERs are WI.
    its.mmio_write(&mut env, GITS_BASER + 16, 8, u64::MAX);
    assert_eq!(its.mmio_read(&mut env, GITS_BASER + 16, 8), 0);

    its.mmio_write(&mut env, GITS_CBASER, 8, u64::MAX);
    assert_eq!(its.regs().cbaser, 0xff1f_ffff_ffff_0fff);
    its.mmio_write(&mut env, GITS_CBASER + 4, 4, 0);
    assert_eq!(its.regs().cbaser, 0x1800_0000_ffff_0fff);
    finish(its, env);
}

#[test]
fn baser_change_frees_lists_same_value_keeps_them() {
    let (mut its, mut env) = setup(false);
    assert_eq!(mapd(&mut its, &mut env, 1, 4), OK);
    assert_eq!(mapc(&mut its, &mut env, 0, 1), OK);
    assert_eq!(mapti(&mut its, &mut env, 1, 2, 8200, 0), OK);
    // Writes are ignored while enabled.
    its.mmio_write(&mut env, GITS_BASER, 8, 0);
    its.mmio_write(&mut env, GITS_CBASER, 8, 0);
    assert_eq!(
        its.regs().baser_device_table & GITS_BASER_VALID,
        GITS_BASER_VALID
    );
    assert_ne!(its.regs().cbaser, 0);
    its.mmio_write(&mut env, GITS_CTLR, 4, 0);
    // The driver rewrites unchanged values on resume.
    let r = its.regs();
    its.mmio_write(&mut env, GITS_BASER, 8, r.baser_device_table);
    its.mmio_write(&mut env, GITS_BASER + 8, 8, r.baser_coll_table);
    assert_eq!(its.devices().len(), 1);
    assert_eq!(its.collections().len(), 1);
    // A new collection table frees the collections; ITEs lose theirs.
    its.mmio_write(&mut env, GITS_BASER + 8, 8, r.baser_coll_table | 1);
    assert!(its.collections().is_empty());
    assert_eq!(its.devices()[0].ites[0].icid, None);
    check_invariants(&its, &env).unwrap();
    // A new device table frees the devices and their LPIs.
    its.mmio_write(
        &mut env,
        GITS_BASER + 4,
        4,
        r.baser_device_table >> 32 & !(1 << 31),
    );
    assert!(its.devices().is_empty());
    assert_eq!(env.outstanding(), 0);
    finish(its, env);
}

#[test]
fn ctlr_enable_needs_valid_tables() {
    let mut env = MockEnv::new(1, &VISIBLE);
    let mut its = Its::<MockEnv>::new();
    its.mmio_write(&mut env, GITS_CTLR, 4, 1);
    assert!(!its.regs().enabled);
    its.mmio_write(&mut env, GITS_BASER, 8, GITS_BASER_VALID | DEV_TABLE);
    its.mmio_write(&mut env, GITS_BASER + 8, 8, GITS_BASER_VALID | COLL_TABLE);
    its.mmio_write(&mut env, GITS_CTLR, 4, 1);
    assert!(!its.regs().enabled);
    its.mmio_write(&mut env, GITS_CBASER, 8, GITS_CBASER_VALID | CMDQ);
    its.mmio_write(&mut env, GITS_CTLR, 4, 1);
    assert!(its.regs().enabled);
    assert_eq!(its.mmio_read(&mut env, GITS_CTLR, 4), 0x8000_0001);
    // Disabling invalidates the translation cache.
    let before = env.invalidations;
    its.mmio_write(&mut env, GITS_CTLR, 4, 0);
    assert_eq!(env.invalidations, before + 1);
    finish(its, env);
}

// ---- command queue -----------------------------------------------------

fn put_cmd(env: &mut MockEnv, slot: u64, c: Command) {
    for (i, w) in c.encode().iter().enumerate() {
        env.poke64(CMDQ + slot * 32 + i as u64 * 8, *w);
    }
}

#[test]
fn command_queue_processing_and_wrap() {
    let (mut its, mut env) = setup(false);
    // CBASER size 0: one 4K page, 128 commands.
    put_cmd(
        &mut env,
        0,
        Command::Mapc {
            icid: 0,
            target: 1,
            valid: true,
        },
    );
    put_cmd(
        &mut env,
        1,
        Command::Mapc {
            icid: 1,
            target: 2,
            valid: true,
        },
    );
    its.mmio_write(&mut env, GITS_CWRITER, 8, 0x40);
    assert_eq!(its.regs().creadr, 0x40);
    assert_eq!(its.collections().len(), 2);
    assert_eq!(its.mmio_read(&mut env, GITS_CREADR, 8), 0x40);
    assert_eq!(its.mmio_read(&mut env, GITS_CTLR, 4), 0x8000_0001);
    // Offsets beyond the queue are ignored; low bits are masked.
    its.mmio_write(&mut env, GITS_CWRITER, 8, 0x1000);
    assert_eq!(its.regs().cwriter, 0x40);
    its.mmio_write(&mut env, GITS_CWRITER, 4, 0x5f);
    assert_eq!(its.regs().cwriter, 0x40);
    // Wrap around the end of the queue.
    put_cmd(
        &mut env,
        127,
        Command::Mapc {
            icid: 2,
            target: 3,
            valid: true,
        },
    );
    put_cmd(
        &mut env,
        0,
        Command::Mapc {
            icid: 3,
            target: 0,
            valid: true,
        },
    );
    its.uaccess_write(&mut env, GITS_CTLR, 0).unwrap();
    its.uaccess_write(&mut env, GITS_CREADR, 0xfe0).unwrap();
    its.uaccess_write(&mut env, GITS_CWRITER, 0xfe0).unwrap();
    assert_eq!(its.mmio_read(&mut env, GITS_CTLR, 4), 0x8000_0000);
    its.mmio_write(&mut env, GITS_CWRITER, 8, 0x20);
    // Disabled: nothing runs, not quiescent.
    assert_eq!(its.regs().creadr, 0xfe0);
    assert_eq!(its.mmio_read(&mut env, GITS_CTLR, 4), 0);
    // Enabling runs the pending commands.
    its.mmio_write(&mut env, GITS_CTLR, 4, 1);
    assert_eq!(its.regs().creadr, 0x20);
    assert_eq!(its.collections().len(), 4);
    assert_eq!(its.stats().commands[GITS_CMD_MAPC as usize], 4);
    finish(its, env);
}

/// A deferred write leaves the queue to the caller, who runs it one
/// command at a time (dropping the model's lock in between, in the kernel):
/// CREADR moves one command per step and the result is the inline one's.
#[test]
fn deferred_queue_runs_one_command_per_step() {
    let (mut its, mut env) = setup(false);
    for (slot, icid) in [(0u64, 0u16), (1, 1), (2, 2)] {
        put_cmd(
            &mut env,
            slot,
            Command::Mapc {
                icid,
                target: 1,
                valid: true,
            },
        );
    }
    assert!(its.mmio_write_deferred(&mut env, GITS_CWRITER, 8, 0x60));
    assert_eq!(its.regs().creadr, 0);
    assert_eq!(its.collections().len(), 0);
    // Not quiescent while commands wait.
    assert_eq!(its.mmio_read(&mut env, GITS_CTLR, 4), 0x1);
    assert!(its.step_command(&mut env));
    assert_eq!(its.regs().creadr, 0x20);
    assert_eq!(its.collections().len(), 1);
    assert!(its.step_command(&mut env));
    assert!(its.step_command(&mut env));
    assert!(!its.step_command(&mut env));
    assert_eq!(its.regs().creadr, 0x60);
    assert_eq!(its.collections().len(), 3);
    assert_eq!(its.mmio_read(&mut env, GITS_CTLR, 4), 0x8000_0001);
    // A write that does not start the queue says so; the bound holds.
    assert!(!its.mmio_write_deferred(&mut env, GITS_CBASER, 8, 0));
    assert_eq!(its.queue_slots(), 129);
    finish(its, env);
}

/// The command read between `next_command` and `complete_command` (the
/// kernel drops the model's lock for the read) runs only if the queue is
/// where it was: a command read before CREADR, CBASER or the enable moved
/// is dropped, not run against the new state.
#[test]
fn command_read_unlocked_runs_only_if_the_queue_stayed() {
    let (mut its, mut env) = setup(false);
    for slot in 0..2u64 {
        put_cmd(
            &mut env,
            slot,
            Command::Mapc {
                icid: slot as u16,
                target: 1,
                valid: true,
            },
        );
    }
    assert!(its.mmio_write_deferred(&mut env, GITS_CWRITER, 8, 0x40));
    let next = its.next_command().unwrap();
    let cmd = next.read(&mut env).unwrap();
    // Another step ran the same command meanwhile: CREADR moved.
    assert!(its.step_command(&mut env));
    assert!(!its.complete_command(&mut env, next, Some(&cmd)));
    assert_eq!(its.regs().creadr, 0x20);
    assert_eq!(its.collections().len(), 1);
    // The current one runs; a failed read (None) skips it but advances.
    let next = its.next_command().unwrap();
    assert!(its.complete_command(&mut env, next, None));
    assert_eq!(its.regs().creadr, 0x40);
    assert_eq!(its.collections().len(), 1);
    assert!(its.next_command().is_none());
    // Disabled: nothing is next.
    put_cmd(
        &mut env,
        2,
        Command::Mapc {
            icid: 2,
            target: 1,
            valid: true,
        },
    );
    assert!(its.mmio_write_deferred(&mut env, GITS_CWRITER, 8, 0x60));
    let next = its.next_command().unwrap();
    its.mmio_write(&mut env, GITS_CTLR, 4, 0);
    assert!(its.next_command().is_none());
    let cmd = next.read(&mut env);
    assert!(!its.complete_command(&mut env, next, cmd.as_ref()));
    assert_eq!(its.collections().len(), 1);
    finish(its, env);
}

/// INVALL and MOVALL leave their LPI walk for after the model's lock
/// (`begin_command`), and their command completes (CREADR passes it) only
/// at `finish_command`; every other command, and a failed check of these
/// two, completes in `begin_command`. A queue that moved in between is not
/// advanced twice.
#[test]
fn invall_and_movall_work_runs_before_the_command_completes() {
    use armsi_logic::model::commands::{Step, Unlocked};
    let (mut its, mut env) = setup(false);
    mapd(&mut its, &mut env, 1, 4);
    mapc(&mut its, &mut env, 0, 2);
    mapti(&mut its, &mut env, 1, 0, 8192, 0);
    let cmds = [
        Command::Invall { icid: 0 },
        Command::Movall {
            target1: 2,
            target2: 3,
        },
        Command::Invall { icid: 5 },
        Command::Movall {
            target1: 1,
            target2: 1,
        },
        Command::Sync { target: 0 },
        Command::Invall { icid: 0 },
    ];
    for (slot, c) in cmds.iter().enumerate() {
        put_cmd(&mut env, slot as u64, *c);
    }
    assert!(its.mmio_write_deferred(&mut env, GITS_CWRITER, 8, 0xc0));
    let step = |its: &mut Its<MockEnv>, env: &mut MockEnv| {
        let next = its.next_command().unwrap();
        let cmd = next.read(env).unwrap();
        (next, its.begin_command(env, next, Some(&cmd)))
    };

    // INVALL of a mapped collection: nothing walked yet, CREADR stays.
    let (next, s) = step(&mut its, &mut env);
    assert_eq!(s, Step::Unlocked(Unlocked::Invall(2)));
    assert!(env.invalls.is_empty());
    assert_eq!(its.regs().creadr, 0);
    assert_eq!(its.mmio_read(&mut env, GITS_CTLR, 4), 0x1);
    Unlocked::Invall(2).run(&mut env);
    assert_eq!(env.invalls, [2]);
    assert!(its.finish_command(next));
    assert_eq!(its.regs().creadr, 0x20);
    assert!(!its.finish_command(next));
    assert_eq!(its.regs().creadr, 0x20);

    // MOVALL: the move and the cache invalidation are the work.
    let inv = env.invalidations;
    let (next, s) = step(&mut its, &mut env);
    let work = Unlocked::Movall { from: 2, to: 3 };
    assert_eq!(s, Step::Unlocked(work));
    assert!(env.movalls.is_empty());
    assert_eq!(env.invalidations, inv);
    work.run(&mut env);
    assert_eq!(env.movalls, [(2, 3)]);
    assert_eq!(env.invalidations, inv + 1);
    assert_eq!(env.lpi(8192).unwrap().target, Some(3));
    assert!(its.finish_command(next));

    // An unmapped collection, a MOVALL to itself, a SYNC: done at once.
    for creadr in [0x60, 0x80, 0xa0] {
        assert_eq!(step(&mut its, &mut env).1, Step::Done);
        assert_eq!(its.regs().creadr, creadr);
    }
    assert_eq!(its.stats().its_errors, 1);
    assert_eq!(env.invalls, [2]);
    assert_eq!(env.movalls, [(2, 3)]);

    // The queue moved under the last INVALL's work: CREADR is not
    // advanced past a command it did not run.
    let (next, s) = step(&mut its, &mut env);
    assert_eq!(s, Step::Unlocked(Unlocked::Invall(2)));
    its.mmio_write(&mut env, GITS_CTLR, 4, 0);
    its.mmio_write(&mut env, GITS_CBASER, 8, GITS_CBASER_VALID | CMDQ);
    assert_eq!(its.regs().creadr, 0);
    assert!(!its.finish_command(next));
    assert_eq!(its.regs().creadr, 0);
    assert_eq!(its.begin_command(&mut env, next, None), Step::Moved);
    let s = its.stats();
    assert_eq!(s.commands[GITS_CMD_INVALL as usize], 3);
    assert_eq!(s.commands[GITS_CMD_MOVALL as usize], 2);
    finish(its, env);
}

#[test]
fn unreadable_commands_are_skipped() {
    let (mut its, _) = setup(false);
    // A 2-page queue whose second page is invisible.
    let mut env = MockEnv::new(4, &[(0, 0x7f_1000)]);
    its.mmio_write(&mut env, GITS_CTLR, 4, 0);
    let base = 0x7f_0000;
    its.mmio_write(&mut env, GITS_CBASER, 8, GITS_CBASER_VALID | base | 1);
    assert_eq!((its.regs().creadr, its.regs().cwriter), (0, 0));
    its.mmio_write(&mut env, GITS_CTLR, 4, 1);
    let c = Command::Mapc {
        icid: 5,
        target: 0,
        valid: true,
    }
    .encode();
    for (i, w) in c.iter().enumerate() {
        env.poke64(base + 0xfe0 + i as u64 * 8, *w);
    }
    its.mmio_write(&mut env, GITS_CWRITER, 8, 0x1020);
    assert_eq!(its.regs().creadr, 0x1020);
    assert_eq!(its.collections().len(), 1);
    assert_eq!(its.stats().commands[GITS_CMD_MAPC as usize], 1);
    finish(its, env);
}

// ---- userspace register access -----------------------------------------

#[test]
fn uaccess_rules() {
    let mut env = MockEnv::new(2, &VISIBLE);
    let mut its = Its::<MockEnv>::new();
    assert_eq!(Its::<MockEnv>::has_reg(GITS_CTLR), Ok(()));
    assert_eq!(Its::<MockEnv>::has_reg(GITS_IIDR), Ok(()));
    assert_eq!(Its::<MockEnv>::has_reg(GITS_TYPER + 4), Err(EINVAL));
    assert_eq!(Its::<MockEnv>::has_reg(GITS_BASER + 4), Err(EINVAL));
    assert_eq!(Its::<MockEnv>::has_reg(GITS_BASER + 0x38), Ok(()));
    assert_eq!(Its::<MockEnv>::has_reg(GITS_BASER + 0x40), Err(ENXIO));
    assert_eq!(Its::<MockEnv>::has_reg(2), Err(EINVAL));
    assert_eq!(Its::<MockEnv>::has_reg(0x10), Err(ENXIO));
    assert_eq!(Its::<MockEnv>::has_reg(GITS_PIDR1), Ok(()));
    assert_eq!(Its::<MockEnv>::has_reg(0xfffe), Err(EINVAL));
    assert_eq!(Its::<MockEnv>::has_reg(GITS_TRANSLATER), Err(ENXIO));
    // vgic_find_mmio_region() takes an unsigned int offset.
    assert_eq!(Its::<MockEnv>::has_reg(0x1_0000_0000), Ok(()));
    assert_eq!(uaccess_align(0x104), Err(EINVAL));

    assert_eq!(its.uaccess_read(&mut env, GITS_TYPER), Ok(0x1ef71));
    assert_eq!(its.uaccess_read(&mut env, GITS_IIDR), Ok(0x4b00_043b));
    assert_eq!(its.uaccess_read(&mut env, GITS_BASER + 4), Err(EINVAL));
    assert_eq!(its.uaccess_read(&mut env, 0x18), Err(ENXIO));
    // IIDR: only revision 0 exists.
    assert_eq!(its.uaccess_write(&mut env, GITS_IIDR, 1 << 12), Err(EINVAL));
    assert_eq!(its.uaccess_write(&mut env, GITS_IIDR, 0xffff_0fff), Ok(()));
    assert_eq!(its.regs().abi_rev, 0);
    // CREADR: within the queue, only while disabled.
    assert_eq!(
        its.uaccess_write(&mut env, GITS_CREADR, 0x1000),
        Err(EINVAL)
    );
    assert_eq!(its.uaccess_write(&mut env, GITS_CREADR, 0xfff), Ok(()));
    assert_eq!(its.regs().creadr, 0xfe0);
    its.uaccess_write(&mut env, GITS_BASER, GITS_BASER_VALID | DEV_TABLE)
        .unwrap();
    its.uaccess_write(&mut env, GITS_BASER + 8, GITS_BASER_VALID | COLL_TABLE)
        .unwrap();
    its.uaccess_write(&mut env, GITS_CBASER, GITS_CBASER_VALID | CMDQ)
        .unwrap();
    assert_eq!(its.regs().creadr, 0);
    its.uaccess_write(&mut env, GITS_CTLR, 1).unwrap();
    assert_eq!(its.uaccess_write(&mut env, GITS_CREADR, 0x20), Err(EBUSY));
    // A CWRITER write through the device attribute runs the queue.
    put_cmd(
        &mut env,
        0,
        Command::Mapc {
            icid: 1,
            target: 1,
            valid: true,
        },
    );
    its.uaccess_write(&mut env, GITS_CWRITER, 0x20).unwrap();
    assert_eq!(its.uaccess_read(&mut env, GITS_CREADR), Ok(0x20));
    assert_eq!(its.collections().len(), 1);
    // Writes to read-only registers are accepted and ignored.
    assert_eq!(its.uaccess_write(&mut env, GITS_TYPER, 0), Ok(()));
    assert_eq!(its.uaccess_write(&mut env, GITS_PIDR2, 0), Ok(()));
    finish(its, env);
}

// ---- commands ----------------------------------------------------------

#[test]
fn mapd_errors_unmap_and_remap() {
    let (mut its, mut env) = setup(false);
    // One page of DTEs: 8192 IDs.
    assert_eq!(mapd(&mut its, &mut env, 8192, 4), E(E_ITS_MAPD_DEVICE_OOR));
    assert_eq!(mapd(&mut its, &mut env, 1, 17), E(E_ITS_MAPD_ITTSIZE_OOR));
    assert_eq!(mapd(&mut its, &mut env, 1, 16), OK);
    assert_eq!(mapd(&mut its, &mut env, 3, 4), OK);
    assert_eq!(mapc(&mut its, &mut env, 0, 0), OK);
    assert_eq!(mapti(&mut its, &mut env, 1, 1, 8192, 0), OK);
    assert_eq!(mapti(&mut its, &mut env, 1, 2, 8193, 0), OK);
    assert_eq!(env.outstanding(), 2);
    // Remapping drops the ITEs.
    assert_eq!(mapd(&mut its, &mut env, 1, 4), OK);
    assert!(its.devices()[0].ites.is_empty());
    assert_eq!(its.devices()[0].num_eventid_bits, 4);
    assert_eq!(env.outstanding(), 0);
    // Unmap writes a zero DTE, even with an oversized Size field.
    env.poke64(DEV_TABLE + 3 * 8, u64::MAX);
    let r = run(
        &mut its,
        &mut env,
        Command::Mapd {
            device_id: 3,
            num_eventid_bits: 32,
            itt_addr: 0,
            valid: false,
        },
    );
    assert_eq!(r, OK);
    assert_eq!(env.peek64(DEV_TABLE + 3 * 8), 0);
    assert_eq!(its.devices().len(), 1);
    // Unmapping an unmapped device is fine too.
    let r = run(
        &mut its,
        &mut env,
        Command::Mapd {
            device_id: 7,
            num_eventid_bits: 1,
            itt_addr: 0,
            valid: false,
        },
    );
    assert_eq!(r, OK);
    // A failed DTE write is reported.
    env.fail_writes = true;
    let r = run(
        &mut its,
        &mut env,
        Command::Mapd {
            device_id: 7,
            num_eventid_bits: 1,
            itt_addr: 0,
            valid: false,
        },
    );
    assert_eq!(r, Err_(EFAULT));
    env.fail_writes = false;
    // Out of memory.
    fail_alloc_after(Some(0));
    assert_eq!(mapd(&mut its, &mut env, 9, 4), Err_(ENOMEM));
    assert_eq!(its.devices().len(), 1);
    // An invisible DTE is out of range.
    its.mmio_write(&mut env, GITS_CTLR, 4, 0);
    its.mmio_write(&mut env, GITS_BASER, 8, GITS_BASER_VALID | 0x7f_0000 | 0xf);
    its.mmio_write(&mut env, GITS_CTLR, 4, 1);
    assert_eq!(mapd(&mut its, &mut env, 0x1fff, 4), OK);
    assert_eq!(
        mapd(&mut its, &mut env, 0x2000, 4),
        E(E_ITS_MAPD_DEVICE_OOR)
    );
    finish(its, env);
}

#[test]
fn mapd_on_two_level_table() {
    let (mut its, mut env) = setup(true);
    assert_eq!(mapd(&mut its, &mut env, 5, 4), OK);
    assert_eq!(mapd(&mut its, &mut env, 8192 + 5, 4), OK);
    // L1 entry 2 is not valid.
    assert_eq!(
        mapd(&mut its, &mut env, 2 * 8192, 4),
        E(E_ITS_MAPD_DEVICE_OOR)
    );
    assert_eq!(
        mapd(&mut its, &mut env, 0x1_0000, 4),
        E(E_ITS_MAPD_DEVICE_OOR)
    );
    let r = run(
        &mut its,
        &mut env,
        Command::Mapd {
            device_id: 8192 + 5,
            num_eventid_bits: 1,
            itt_addr: 0,
            valid: false,
        },
    );
    assert_eq!(r, OK);
    env.poke64(L2 + 0x1_0000 + 5 * 8, 0x1234);
    finish(its, env);
}

#[test]
fn mapc_errors_and_retarget() {
    let (mut its, mut env) = setup(false);
    assert_eq!(mapc(&mut its, &mut env, 0, 4), E(E_ITS_MAPC_PROCNUM_OOR));
    assert_eq!(
        mapc(&mut its, &mut env, 0, u32::MAX),
        E(E_ITS_MAPC_PROCNUM_OOR)
    );
    // The collection table has one page: 8192 entries.
    assert_eq!(
        mapc(&mut its, &mut env, 8192, 0),
        E(E_ITS_MAPC_COLLECTION_OOR)
    );
    assert_eq!(mapc(&mut its, &mut env, 8191, 0), OK);
    assert_eq!(mapc(&mut its, &mut env, 1, 0), OK);
    assert_eq!(mapd(&mut its, &mut env, 0, 4), OK);
    assert_eq!(mapti(&mut its, &mut env, 0, 0, 8192, 1), OK);
    assert_eq!(env.lpi(8192).unwrap().target, Some(0));
    // Remapping the collection retargets its LPIs.
    assert_eq!(mapc(&mut its, &mut env, 1, 3), OK);
    assert_eq!(env.lpi(8192).unwrap().target, Some(3));
    assert_eq!(its.translate(&env, 0, 0).unwrap().vcpu, Some(3));
    fail_alloc_after(Some(0));
    assert_eq!(mapc(&mut its, &mut env, 2, 0), Err_(ENOMEM));
    finish(its, env);
}

#[test]
fn mapc_unmap_keeps_ites_without_collection() {
    let (mut its, mut env) = setup(false);
    mapd(&mut its, &mut env, 0, 4);
    mapc(&mut its, &mut env, 1, 2);
    assert_eq!(mapti(&mut its, &mut env, 0, 3, 8200, 1), OK);
    assert_eq!(its.inject(&mut env, 0, 3), Ok(true));
    assert_eq!(env.cache.stats().len, 1);
    let inv = env.invalidations;
    let r = run(
        &mut its,
        &mut env,
        Command::Mapc {
            icid: 1,
            target: 99,
            valid: false,
        },
    );
    assert_eq!(r, OK);
    assert_eq!(env.invalidations, inv + 1);
    assert!(env.cache.stats().len == 0);
    assert!(its.collections().is_empty());
    let t = its.translate(&env, 0, 3).unwrap();
    assert_eq!((t.intid, t.icid, t.vcpu), (8200, None, None));
    assert_eq!(its.inject(&mut env, 0, 3), Ok(false));
    let int = Command::Int {
        device_id: 0,
        event_id: 3,
    };
    assert_eq!(
        run(&mut its, &mut env, int),
        E(E_ITS_INT_UNMAPPED_INTERRUPT)
    );
    let discard = Command::Discard {
        device_id: 0,
        event_id: 3,
    };
    assert_eq!(
        run(&mut its, &mut env, discard),
        E(E_ITS_DISCARD_UNMAPPED_INTERRUPT)
    );
    let movi = Command::Movi {
        device_id: 0,
        event_id: 3,
        icid: 1,
    };
    assert_eq!(
        run(&mut its, &mut env, movi),
        E(E_ITS_MOVI_UNMAPPED_COLLECTION)
    );
    // CLEAR and INV only need the ITE.
    let clear = Command::Clear {
        device_id: 0,
        event_id: 3,
    };
    assert_eq!(run(&mut its, &mut env, clear), OK);
    let inv = Command::Inv {
        device_id: 0,
        event_id: 3,
    };
    assert_eq!(run(&mut its, &mut env, inv), OK);
    // The ITE saves as an invalid (zero) entry.
    env.poke64(itt(0) + 3 * 8, u64::MAX);
    its.save_tables(&mut env).unwrap();
    assert_eq!(env.peek64(itt(0) + 3 * 8), 0);
    let mut seen = Vec::new();
    its.for_each_ite(&env, |i| seen.push(i));
    assert_eq!(
        seen,
        [IteInfo {
            devid: 0,
            eventid: 3,
            intid: 8200,
            icid: None,
            target: None
        }]
    );
    finish(its, env);
}

#[test]
fn mapti_mapi_errors() {
    let (mut its, mut env) = setup(false);
    env.max_lpis = 8192 + 64;
    assert_eq!(
        mapti(&mut its, &mut env, 1, 0, 8192, 0),
        E(E_ITS_MAPTI_UNMAPPED_DEVICE)
    );
    mapd(&mut its, &mut env, 1, 2);
    assert_eq!(
        mapti(&mut its, &mut env, 1, 4, 8192, 0),
        E(E_ITS_MAPTI_ID_OOR)
    );
    assert_eq!(
        mapti(&mut its, &mut env, 1, 0, 8191, 0),
        E(E_ITS_MAPTI_PHYSICALID_OOR)
    );
    assert_eq!(
        mapti(&mut its, &mut env, 1, 0, 8192 + 64, 0),
        E(E_ITS_MAPTI_PHYSICALID_OOR)
    );
    assert_eq!(
        mapti(&mut its, &mut env, 1, 0, u32::MAX, 0),
        E(E_ITS_MAPTI_PHYSICALID_OOR)
    );
    assert_eq!(
        mapti(&mut its, &mut env, 1, 0, 8192, 8192),
        E(E_ITS_MAPC_COLLECTION_OOR)
    );
    // MAPI uses the EventID as the LPI number.
    let mapi = Command::Mapi {
        device_id: 1,
        event_id: 3,
        icid: 0,
    };
    assert_eq!(run(&mut its, &mut env, mapi), E(E_ITS_MAPTI_PHYSICALID_OOR));
    // An unmapped collection is created on the fly.
    assert_eq!(mapti(&mut its, &mut env, 1, 0, 8192, 7), OK);
    assert_eq!(colls(&its), [(7, COLLECTION_NOT_MAPPED)]);
    assert_eq!(env.lpi(8192).unwrap().target, None);
    // An existing mapping is UNPREDICTABLE: nothing happens.
    assert_eq!(mapti(&mut its, &mut env, 1, 0, 8193, 0), OK);
    assert_eq!(its.translate(&env, 1, 0).unwrap().intid, 8192);
    assert!(env.lpi(8193).is_none());
    // One LPI for two events: the first ITE keeps it, the new collection goes.
    assert_eq!(mapti(&mut its, &mut env, 1, 1, 8192, 3), Err_(EEXIST));
    assert_eq!(its.collections().len(), 1);
    assert_eq!(env.lpi(8192).unwrap().refs, 1);
    // lpi_add failure (config read) frees the new collection.
    env.fail_lpi_add.insert(8194);
    assert_eq!(mapti(&mut its, &mut env, 1, 1, 8194, 4), Err_(EFAULT));
    assert_eq!(its.collections().len(), 1);
    // Allocation failures: the collection, then the ITE.
    fail_alloc_after(Some(0));
    assert_eq!(mapti(&mut its, &mut env, 1, 1, 8195, 4), Err_(ENOMEM));
    fail_alloc_after(Some(1));
    assert_eq!(mapti(&mut its, &mut env, 1, 1, 8195, 4), Err_(ENOMEM));
    assert_eq!(its.collections().len(), 1);
    assert!(env.lpi(8195).is_none());
    // An invisible ITT slot is out of range.
    let r = run(
        &mut its,
        &mut env,
        Command::Mapd {
            device_id: 2,
            num_eventid_bits: 4,
            itt_addr: HOLE,
            valid: true,
        },
    );
    assert_eq!(r, OK);
    assert_eq!(
        mapti(&mut its, &mut env, 2, 0, 8196, 7),
        E(E_ITS_MAPTI_ID_OOR)
    );
    finish(its, env);
}

#[test]
fn movi_retargets_and_invalidates() {
    let (mut its, mut env) = setup(false);
    mapd(&mut its, &mut env, 1, 4);
    mapc(&mut its, &mut env, 0, 0);
    mapc(&mut its, &mut env, 1, 2);
    let movi = |e, c| Command::Movi {
        device_id: 1,
        event_id: e,
        icid: c,
    };
    assert_eq!(
        run(&mut its, &mut env, movi(0, 1)),
        E(E_ITS_MOVI_UNMAPPED_INTERRUPT)
    );
    mapti(&mut its, &mut env, 1, 0, 8192, 0);
    assert_eq!(
        run(&mut its, &mut env, movi(0, 5)),
        E(E_ITS_MOVI_UNMAPPED_COLLECTION)
    );
    // An ITE in a collection that was created but never mapped.
    mapti(&mut its, &mut env, 1, 1, 8193, 6);
    assert_eq!(
        run(&mut its, &mut env, movi(1, 1)),
        E(E_ITS_MOVI_UNMAPPED_COLLECTION)
    );
    assert_eq!(
        run(&mut its, &mut env, movi(0, 6)),
        E(E_ITS_MOVI_UNMAPPED_COLLECTION)
    );
    assert_eq!(its.inject(&mut env, 1, 0), Ok(true));
    assert_eq!(env.cache.stats().len, 1);
    assert_eq!(run(&mut its, &mut env, movi(0, 1)), OK);
    assert!(env.cache.stats().len == 0);
    assert_eq!(env.lpi(8192).unwrap().target, Some(2));
    let t = its.translate(&env, 1, 0).unwrap();
    assert_eq!((t.icid, t.vcpu), (Some(1), Some(2)));
    finish(its, env);
}

#[test]
fn movall_invall_inv_clear_sync_unknown() {
    let (mut its, mut env) = setup(false);
    mapd(&mut its, &mut env, 1, 4);
    mapc(&mut its, &mut env, 0, 0);
    mapti(&mut its, &mut env, 1, 0, 8192, 0);
    mapti(&mut its, &mut env, 1, 1, 8193, 0);
    let movall = |a, b| Command::Movall {
        target1: a,
        target2: b,
    };
    assert_eq!(
        run(&mut its, &mut env, movall(0, 4)),
        E(E_ITS_MOVALL_PROCNUM_OOR)
    );
    assert_eq!(
        run(&mut its, &mut env, movall(9, 1)),
        E(E_ITS_MOVALL_PROCNUM_OOR)
    );
    let inv = env.invalidations;
    assert_eq!(run(&mut its, &mut env, movall(2, 2)), OK);
    assert_eq!(env.invalidations, inv);
    assert_eq!(run(&mut its, &mut env, movall(0, 3)), OK);
    assert_eq!(env.invalidations, inv + 1);
    assert_eq!(env.movalls, [(0, 3)]);
    assert_eq!(env.lpi(8193).unwrap().target, Some(3));

    assert_eq!(
        run(&mut its, &mut env, Command::Invall { icid: 1 }),
        E(E_ITS_INVALL_UNMAPPED_COLLECTION)
    );
    assert_eq!(run(&mut its, &mut env, Command::Invall { icid: 0 }), OK);
    assert_eq!(env.invalls, [0]);

    let reads = env.lpi(8192).unwrap().config_reads;
    let inv = |e| Command::Inv {
        device_id: 1,
        event_id: e,
    };
    assert_eq!(run(&mut its, &mut env, inv(0)), OK);
    assert_eq!(env.lpi(8192).unwrap().config_reads, reads + 1);
    assert_eq!(
        run(&mut its, &mut env, inv(5)),
        E(E_ITS_INV_UNMAPPED_INTERRUPT)
    );

    let int = Command::Int {
        device_id: 1,
        event_id: 0,
    };
    assert_eq!(run(&mut its, &mut env, int), OK);
    assert!(env.lpi(8192).unwrap().pending);
    let clear = |e| Command::Clear {
        device_id: 1,
        event_id: e,
    };
    assert_eq!(run(&mut its, &mut env, clear(0)), OK);
    assert!(!env.lpi(8192).unwrap().pending);
    assert_eq!(
        run(&mut its, &mut env, clear(2)),
        E(E_ITS_CLEAR_UNMAPPED_INTERRUPT)
    );

    assert_eq!(run(&mut its, &mut env, Command::Sync { target: 77 }), OK);
    assert_eq!(
        run(&mut its, &mut env, Command::Unknown(0x2a)),
        Err_(ENODEV)
    );
    assert_eq!(
        run(&mut its, &mut env, Command::Unknown(0x02)),
        Err_(ENODEV)
    );
    let s = its.stats();
    assert_eq!(s.unknown, 2);
    assert_eq!(s.commands[GITS_CMD_MOVALL as usize], 4);
    assert_eq!(s.commands[GITS_CMD_SYNC as usize], 1);
    assert_eq!(s.its_errors, 5);
    assert_eq!(s.errno_errors, 2);
    finish(its, env);
}

#[test]
fn discard_frees_and_zeroes_the_ite() {
    let (mut its, mut env) = setup(false);
    mapd(&mut its, &mut env, 1, 4);
    mapc(&mut its, &mut env, 0, 1);
    mapti(&mut its, &mut env, 1, 5, 8192, 0);
    its.save_tables(&mut env).unwrap();
    assert_ne!(env.peek64(itt(1) + 5 * 8), 0);
    assert_eq!(its.inject(&mut env, 1, 5), Ok(true));
    let d = |e| Command::Discard {
        device_id: 1,
        event_id: e,
    };
    assert_eq!(
        run(&mut its, &mut env, d(4)),
        E(E_ITS_DISCARD_UNMAPPED_INTERRUPT)
    );
    assert_eq!(run(&mut its, &mut env, d(5)), OK);
    assert_eq!(env.peek64(itt(1) + 5 * 8), 0);
    assert_eq!(env.outstanding(), 0);
    assert!(its.translate(&env, 1, 5).is_none());
    assert_eq!(
        run(&mut its, &mut env, d(5)),
        E(E_ITS_DISCARD_UNMAPPED_INTERRUPT)
    );
    finish(its, env);
}

#[test]
fn int_and_inject() {
    let (mut its, mut env) = setup(false);
    mapd(&mut its, &mut env, 1, 4);
    mapc(&mut its, &mut env, 0, 1);
    mapti(&mut its, &mut env, 1, 0, 8192, 0);
    assert_eq!(its.inject(&mut env, 1, 1), Ok(false));
    assert_eq!(its.inject(&mut env, 2, 0), Ok(false));
    assert_eq!(its.inject(&mut env, 1, 0), Ok(true));
    assert_eq!(env.lpi(8192).unwrap().triggers, 1);
    // The translation was cached.
    assert_eq!(env.cache_lookup(1, 0), Some(8192));
    assert_eq!(env.lpi(8192).unwrap().refs, 1);
    env.lpis_disabled.insert(1);
    assert_eq!(its.inject(&mut env, 1, 0), Err(EBUSY));
    let int = Command::Int {
        device_id: 1,
        event_id: 0,
    };
    assert_eq!(run(&mut its, &mut env, int), Err_(EBUSY));
    env.lpis_disabled.clear();
    its.mmio_write(&mut env, GITS_CTLR, 4, 0);
    assert!(env.cache.stats().len == 0);
    assert_eq!(its.inject(&mut env, 1, 0), Err(EBUSY));
    assert_eq!(run(&mut its, &mut env, int), Err_(EBUSY));
    finish(its, env);
}

// ---- save / restore ----------------------------------------------------

/// Two devices, three ITEs, two collections.
fn populate(its: &mut Its<MockEnv>, env: &mut MockEnv, dev2: u32) {
    assert_eq!(mapc(its, env, 1, 2), OK);
    assert_eq!(mapc(its, env, 0, 0), OK);
    assert_eq!(mapd(its, env, 1, 4), OK);
    assert_eq!(mapd(its, env, dev2, 2), OK);
    assert_eq!(mapti(its, env, 1, 3, 8200, 1), OK);
    assert_eq!(mapti(its, env, 1, 0, 8192, 0), OK);
    assert_eq!(mapti(its, env, dev2, 1, 8300, 0), OK);
}

fn snapshot(its: &Its<MockEnv>, env: &MockEnv) -> Vec<IteInfo> {
    let mut v = Vec::new();
    its.for_each_ite(env, |i| v.push(i));
    v
}

/// Reset, restore the BASERs as userspace does, restore the tables.
fn migrate(its: &mut Its<MockEnv>, env: &mut MockEnv) -> Result<(), Errno> {
    let r = its.regs();
    its.reset(env);
    assert_eq!(env.outstanding(), 0);
    its.uaccess_write(env, GITS_BASER, r.baser_device_table)
        .unwrap();
    its.uaccess_write(env, GITS_BASER + 8, r.baser_coll_table)
        .unwrap();
    its.restore_tables(env)
}

/// An all-zero `IteInfo`, to fill buffers with.
const NO_ITE: IteInfo = IteInfo {
    devid: 0,
    eventid: 0,
    intid: 0,
    icid: None,
    target: None,
};

/// Walk every ITE `step` at a time with `ites_after`, as debugfs `state`
/// does (one step per lock hold).
fn walk(its: &Its<MockEnv>, env: &MockEnv, step: usize) -> Vec<IteInfo> {
    let mut got = Vec::new();
    let mut after = None;
    loop {
        let mut buf = vec![NO_ITE; step];
        let k = its.ites_after(env, after, &mut buf);
        assert!(k <= step);
        got.extend_from_slice(&buf[..k]);
        if k < step {
            return got;
        }
        after = Some((buf[k - 1].devid, buf[k - 1].eventid));
    }
}

/// `ites_after` returns every ITE exactly once whatever the step, and
/// resumes right after its cursor even when ITEs or devices went away.
#[test]
fn ites_after_walks_every_ite_in_bounded_steps() {
    let (mut its, mut env) = setup(false);
    populate(&mut its, &mut env, 5);
    assert_eq!(mapd(&mut its, &mut env, 2, 4), OK);
    for e in 0..10 {
        assert_eq!(mapti(&mut its, &mut env, 2, e, 8400 + e, 0), OK);
    }
    let all = snapshot(&its, &env);
    assert_eq!(all.len(), 13);
    for step in 1..=all.len() + 1 {
        assert_eq!(walk(&its, &env, step), all, "step {step}");
    }
    let mut buf = [NO_ITE; 2];
    assert_eq!(its.ites_after(&env, None, &mut []), 0);
    assert_eq!(its.ites_after(&env, None, &mut buf), 2);
    assert_eq!(
        buf.map(|i| (i.devid, i.eventid, i.intid, i.icid, i.target)),
        [
            (1, 0, 8192, Some(0), Some(0)),
            (1, 3, 8200, Some(1), Some(2))
        ]
    );
    // The cursor's ITE was discarded: the next one.
    let discard = Command::Discard {
        device_id: 2,
        event_id: 4,
    };
    assert_eq!(run(&mut its, &mut env, discard), OK);
    assert_eq!(its.ites_after(&env, Some((2, 4)), &mut buf), 2);
    assert_eq!(buf.map(|i| (i.devid, i.eventid)), [(2, 5), (2, 6)]);
    // The cursor's device was unmapped: the next device's first ITEs.
    let unmap = Command::Mapd {
        device_id: 1,
        num_eventid_bits: 0,
        itt_addr: 0,
        valid: false,
    };
    assert_eq!(run(&mut its, &mut env, unmap), OK);
    assert_eq!(its.ites_after(&env, Some((1, 0)), &mut buf), 2);
    assert_eq!(buf.map(|i| (i.devid, i.eventid)), [(2, 0), (2, 1)]);
    // The last ITE of a device, then past the end.
    assert_eq!(its.ites_after(&env, Some((2, 9)), &mut buf), 1);
    assert_eq!((buf[0].devid, buf[0].eventid), (5, 1));
    assert_eq!(its.ites_after(&env, Some((5, 1)), &mut buf), 0);
    assert_eq!(
        its.ites_after(&env, Some((u32::MAX, u32::MAX)), &mut buf),
        0
    );
    finish(its, env);
}

#[test]
fn save_restore_flat_exact_bytes() {
    let (mut its, mut env) = setup(false);
    populate(&mut its, &mut env, 5);
    let before = snapshot(&its, &env);
    its.save_tables(&mut env).unwrap();
    // DTE 1: V, next 4, ITT 0x501000, size 3.
    assert_eq!(env.peek64(DEV_TABLE + 8), 0x8008_0000_000a_0203);
    // DTE 5: last.
    assert_eq!(env.peek64(DEV_TABLE + 5 * 8), 0x8000_0000_000a_0a01);
    // ITEs of device 1: event 0 (next 3, LPI 8192, ICID 0), event 3.
    assert_eq!(env.peek64(itt(1)), 0x0003_0000_2000_0000);
    assert_eq!(env.peek64(itt(1) + 3 * 8), 0x0000_0000_2008_0001);
    assert_eq!(env.peek64(itt(5) + 8), 0x0000_0000_206c_0000);
    // CTEs in creation order as the built-in ITS's list (ICID 1 was
    // mapped first), then an invalid one.
    assert_eq!(env.peek64(COLL_TABLE), 0x8000_0000_0002_0001);
    assert_eq!(env.peek64(COLL_TABLE + 8), 0x8000_0000_0000_0000);
    env.poke64(COLL_TABLE + 16, u64::MAX);
    its.save_tables(&mut env).unwrap();
    assert_eq!(env.peek64(COLL_TABLE + 16), 0);

    migrate(&mut its, &mut env).unwrap();
    check_invariants(&its, &env).unwrap();
    assert_eq!(snapshot(&its, &env), before);
    assert_eq!(colls(&its), [(0, 0), (1, 2)]);
    assert_eq!(env.lpi(8200).unwrap().target, Some(2));
    // The ITS comes back disabled until userspace restores CBASER and CTLR.
    assert_eq!(its.inject(&mut env, 5, 1), Err(EBUSY));
    its.uaccess_write(&mut env, GITS_CBASER, GITS_CBASER_VALID | CMDQ)
        .unwrap();
    its.uaccess_write(&mut env, GITS_CTLR, 1).unwrap();
    assert_eq!(its.inject(&mut env, 5, 1), Ok(true));
    finish(its, env);
}

#[test]
fn save_restore_two_level() {
    let (mut its, mut env) = setup(true);
    populate(&mut its, &mut env, 8195);
    let before = snapshot(&its, &env);
    its.save_tables(&mut env).unwrap();
    // Device 1 in the first L2 page, next offset 8194.
    assert_eq!(env.peek64(L2 + 8), 0x8000_0000_000a_0203 | 8194 << 49);
    // Device 8195: index 3 of the second L2 page, last.
    assert_eq!(
        env.peek64(L2 + 0x1_0000 + 3 * 8),
        Dte {
            valid: true,
            next: 0,
            itt_addr: itt(8195),
            num_eventid_bits: 2
        }
        .encode()
    );
    migrate(&mut its, &mut env).unwrap();
    assert_eq!(snapshot(&its, &env), before);
    check_invariants(&its, &env).unwrap();
    finish(its, env);
}

#[test]
fn save_next_offsets_skip_invisible_devices_and_unmapped_ites() {
    let (mut its, mut env) = setup(true);
    mapc(&mut its, &mut env, 0, 0);
    for d in [1, 3, 8192 + 2] {
        assert_eq!(mapd(&mut its, &mut env, d, 4), OK);
    }
    mapti(&mut its, &mut env, 1, 0, 8192, 0);
    mapti(&mut its, &mut env, 1, 1, 8193, 5);
    mapti(&mut its, &mut env, 1, 2, 8194, 0);
    // ICID 5 is unmapped: its ITE saves as zero and is skipped by "next".
    run(
        &mut its,
        &mut env,
        Command::Mapc {
            icid: 5,
            target: 0,
            valid: false,
        },
    );
    // Hide device 3's L2 page... by invalidating the L1 entry for 8192+.
    env.poke64(DEV_TABLE + 8, 0);
    its.save_tables(&mut env).unwrap();
    assert_eq!(Itte::decode(env.peek64(itt(1))).next, 2);
    assert_eq!(env.peek64(itt(1) + 8), 0);
    assert_eq!(Dte::decode(env.peek64(L2 + 8)).next, 2);
    assert_eq!(Dte::decode(env.peek64(L2 + 3 * 8)).next, 0);
    // A restore drops the ITE without collection and the hidden device.
    migrate(&mut its, &mut env).unwrap();
    let ids: Vec<u32> = its.devices().iter().map(|d| d.id).collect();
    assert_eq!(ids, [1, 3]);
    let evs: Vec<u32> = its.devices()[0].ites.iter().map(|i| i.event_id).collect();
    assert_eq!(evs, [0, 2]);
    finish(its, env);
}

#[test]
fn restore_hand_built_tables() {
    let (mut its, mut env) = setup(false);
    its.mmio_write(&mut env, GITS_CTLR, 4, 0);
    // Collections 3 -> vCPU 1, 4 -> unmapped, then the end.
    env.poke64(
        COLL_TABLE,
        Cte {
            valid: true,
            target: 1,
            icid: 3,
        }
        .encode(),
    );
    env.poke64(
        COLL_TABLE + 8,
        Cte {
            valid: true,
            target: COLLECTION_NOT_MAPPED,
            icid: 4,
        }
        .encode(),
    );
    // Device 2 (next 7) and device 9 (last); device 16 is past the end.
    let dte = |next, dev, bits| Dte {
        valid: true,
        next,
        itt_addr: itt(dev),
        num_eventid_bits: bits,
    };
    env.poke64(DEV_TABLE + 2 * 8, dte(7, 2, 3).encode());
    env.poke64(DEV_TABLE + 9 * 8, dte(0, 9, 1).encode());
    env.poke64(DEV_TABLE + 16 * 8, dte(0, 16, 1).encode());
    // Device 2: events 1 (-> 5) and 6 (last), invalid entries elsewhere.
    env.poke64(
        itt(2) + 8,
        Itte {
            next: 5,
            pintid: 8300,
            icid: 3,
        }
        .encode(),
    );
    env.poke64(
        itt(2) + 6 * 8,
        Itte {
            next: 0,
            pintid: 8301,
            icid: 4,
        }
        .encode(),
    );
    // Device 9: event 0 is invalid, event 1 maps LPI 8400.
    env.poke64(
        itt(9) + 8,
        Itte {
            next: 0,
            pintid: 8400,
            icid: 3,
        }
        .encode(),
    );
    its.restore_tables(&mut env).unwrap();
    check_invariants(&its, &env).unwrap();
    assert_eq!(
        snapshot(&its, &env),
        [
            IteInfo {
                devid: 2,
                eventid: 1,
                intid: 8300,
                icid: Some(3),
                target: Some(1)
            },
            IteInfo {
                devid: 2,
                eventid: 6,
                intid: 8301,
                icid: Some(4),
                target: None
            },
            IteInfo {
                devid: 9,
                eventid: 1,
                intid: 8400,
                icid: Some(3),
                target: Some(1)
            },
        ]
    );
    assert_eq!(env.lpi(8300).unwrap().target, Some(1));
    assert_eq!(env.lpi(8301).unwrap().target, None);
    // A second restore finds collection 3 again.
    assert_eq!(its.restore_tables(&mut env), Err(EEXIST));
    assert!(its.collections().is_empty());
    check_invariants(&its, &env).unwrap();
    finish(its, env);
}

#[test]
fn restore_errors_free_everything() {
    type Poke = fn(&mut MockEnv);
    let cte_ok = Cte {
        valid: true,
        target: 0,
        icid: 0,
    }
    .encode();
    let cases: Vec<(Poke, Errno)> = vec![
        // A CTE for a vCPU that does not exist.
        (
            |e| {
                e.poke64(
                    COLL_TABLE + 8,
                    Cte {
                        valid: true,
                        target: 4,
                        icid: 1,
                    }
                    .encode(),
                )
            },
            EINVAL,
        ),
        // A duplicate collection.
        (
            |e| {
                e.poke64(
                    COLL_TABLE + 8,
                    Cte {
                        valid: true,
                        target: 0,
                        icid: 0,
                    }
                    .encode(),
                )
            },
            EEXIST,
        ),
        // An ICID beyond the collection table.
        (
            |e| {
                e.poke64(
                    COLL_TABLE + 8,
                    Cte {
                        valid: true,
                        target: 0,
                        icid: 9000,
                    }
                    .encode(),
                )
            },
            EINVAL,
        ),
        // A DTE with too many EventID bits.
        (
            |e| e.poke64(DEV_TABLE + 8, 0x8000_0000_0000_0010 | (itt(1) >> 8) << 5),
            EINVAL,
        ),
        // An ITE below the LPI range.
        (
            |e| {
                e.poke64(
                    itt(1) + 16,
                    Itte {
                        next: 0,
                        pintid: 8191,
                        icid: 0,
                    }
                    .encode(),
                )
            },
            EINVAL,
        ),
        // An ITE in a missing collection.
        (
            |e| {
                e.poke64(
                    itt(1) + 16,
                    Itte {
                        next: 0,
                        pintid: 9001,
                        icid: 7,
                    }
                    .encode(),
                )
            },
            EINVAL,
        ),
        // An ITE whose next offset leaves the ITT.
        (
            |e| {
                e.poke64(
                    itt(1) + 16,
                    Itte {
                        next: 15,
                        pintid: 9000,
                        icid: 0,
                    }
                    .encode(),
                )
            },
            EINVAL,
        ),
        // An ITT in invisible memory.
        (
            |e| {
                e.poke64(
                    DEV_TABLE + 8,
                    Dte {
                        valid: true,
                        next: 0,
                        itt_addr: HOLE,
                        num_eventid_bits: 2,
                    }
                    .encode(),
                )
            },
            EFAULT,
        ),
        // The LPI cannot be created.
        (
            |e| {
                e.fail_lpi_add.insert(9001);
            },
            EFAULT,
        ),
    ];
    for (i, (poke, err)) in cases.into_iter().enumerate() {
        let (mut its, mut env) = setup(false);
        its.mmio_write(&mut env, GITS_CTLR, 4, 0);
        env.poke64(COLL_TABLE, cte_ok);
        env.poke64(
            DEV_TABLE + 8,
            Dte {
                valid: true,
                next: 0,
                itt_addr: itt(1),
                num_eventid_bits: 4,
            }
            .encode(),
        );
        env.poke64(
            itt(1),
            Itte {
                next: 2,
                pintid: 9000,
                icid: 0,
            }
            .encode(),
        );
        env.poke64(
            itt(1) + 16,
            Itte {
                next: 0,
                pintid: 9001,
                icid: 0,
            }
            .encode(),
        );
        poke(&mut env);
        assert_eq!(its.restore_tables(&mut env), Err(err), "case {i}");
        assert!(its.devices().is_empty(), "case {i}");
        assert!(its.collections().is_empty(), "case {i}");
        assert_eq!(env.outstanding(), 0, "case {i}");
        finish(its, env);
    }
}

#[test]
fn restore_duplicate_lpi_drops_the_second_ite() {
    let (mut its, mut env) = setup(false);
    its.mmio_write(&mut env, GITS_CTLR, 4, 0);
    env.poke64(
        COLL_TABLE,
        Cte {
            valid: true,
            target: 0,
            icid: 0,
        }
        .encode(),
    );
    env.poke64(
        DEV_TABLE,
        Dte {
            valid: true,
            next: 0,
            itt_addr: itt(0),
            num_eventid_bits: 4,
        }
        .encode(),
    );
    env.poke64(
        itt(0),
        Itte {
            next: 1,
            pintid: 9000,
            icid: 0,
        }
        .encode(),
    );
    env.poke64(
        itt(0) + 8,
        Itte {
            next: 0,
            pintid: 9000,
            icid: 0,
        }
        .encode(),
    );
    its.restore_tables(&mut env).unwrap();
    assert_eq!(snapshot(&its, &env).len(), 1);
    assert_eq!(env.lpi(9000).unwrap().refs, 1);
    finish(its, env);
}

/// Every allocation of a restore failing in turn: each failure (the ITE
/// insert included, which must hand its LPI reference back) leaves nothing
/// behind, and with enough memory the restore gives the same ITEs.
#[test]
fn restore_allocation_failures_give_every_reference_back() {
    let (mut its, mut env) = setup(false);
    populate(&mut its, &mut env, 5);
    let before = snapshot(&its, &env);
    its.save_tables(&mut env).unwrap();
    let mut failures = 0;
    for n in 0.. {
        fail_alloc_after(Some(n));
        let r = migrate(&mut its, &mut env);
        fail_alloc_after(None);
        check_invariants(&its, &env).unwrap();
        match r {
            Err(e) => {
                assert_eq!(e, ENOMEM, "allocation {n}");
                assert!(its.devices().is_empty(), "allocation {n}");
                assert_eq!(env.outstanding(), 0, "allocation {n}");
                assert!(env.lpis.is_empty(), "allocation {n}");
                failures += 1;
            }
            Ok(()) => break,
        }
    }
    // 2 collections, 2 devices, 3 ITEs.
    assert_eq!(failures, 7);
    assert_eq!(snapshot(&its, &env), before);
    assert_eq!(env.outstanding(), 3);
    finish(its, env);
}

#[test]
fn save_errors_and_invalid_tables() {
    let (mut its, mut env) = setup(false);
    populate(&mut its, &mut env, 5);
    env.fail_writes = true;
    assert_eq!(its.save_tables(&mut env), Err(EFAULT));
    env.fail_writes = false;
    // Invalid BASERs save and restore nothing.
    its.mmio_write(&mut env, GITS_CTLR, 4, 0);
    its.reset(&mut env);
    assert_eq!(its.regs().baser_device_table, 0x1907_0000_0010_0200);
    assert_eq!(its.regs().cbaser, 0);
    assert_eq!(its.save_tables(&mut env), Ok(()));
    assert_eq!(its.restore_tables(&mut env), Ok(()));
    assert!(its.devices().is_empty());
    finish(its, env);
}

#[test]
fn full_collection_table_has_no_trailing_entry() {
    let (mut its, mut env) = setup(false);
    // 8192 collections fill the one-page table.
    for i in 0..8192u16 {
        assert_eq!(mapc(&mut its, &mut env, i, 0), OK);
    }
    env.poke64(COLL_TABLE + 0x1_0000, 0x55);
    its.save_tables(&mut env).unwrap();
    assert_eq!(env.peek64(COLL_TABLE + 0xfff8), 0x8000_0000_0000_1fff);
    assert_eq!(env.peek64(COLL_TABLE + 0x1_0000), 0x55);
    migrate(&mut its, &mut env).unwrap();
    assert_eq!(its.collections().len(), 8192);
    finish(its, env);
}

#[test]
fn destroy_releases_every_reference() {
    let (mut its, mut env) = setup(false);
    populate(&mut its, &mut env, 5);
    for (d, e) in [(1, 0), (1, 3), (5, 1)] {
        assert_eq!(its.inject(&mut env, d, e), Ok(true));
    }
    // One reference per ITE; the cache holds INTIDs, no references.
    assert_eq!(env.outstanding(), 3);
    assert_eq!(env.cache.stats().len, 3);
    its.destroy(&mut env);
    assert_eq!(env.cache.stats().len, 0);
    assert_eq!(env.outstanding(), 0);
    assert!(env.lpis.is_empty());
}
