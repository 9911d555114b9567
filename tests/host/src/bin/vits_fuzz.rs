// SPDX-License-Identifier: GPL-2.0

//! Deterministic ITS command-stream fuzzer:
//! `cargo run --release --bin vits_fuzz -- <seed> <iterations>`.
//!
//! Each iteration runs one random stream (setup, a few hundred operations,
//! destroy) and checks the model's invariants and that every LPI reference
//! came back.

use armsi_logic::fuzz::Fuzzer;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let iterations: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let start = Instant::now();
    let mut total = armsi_logic::fuzz::FuzzStats::default();
    for i in 0..iterations {
        let s = seed.wrapping_mul(0x1_0000_0001).wrapping_add(i);
        let mut f = Fuzzer::new(s);
        let len = 50 + (s % 400) as usize;
        if let Err(e) = f.stream(len) {
            eprintln!("seed {seed} iteration {i} (stream seed {s}, len {len}): {e}");
            std::process::exit(1);
        }
        total.ops += f.stats.ops;
        total.commands += f.stats.commands;
        total.delivered += f.stats.delivered;
        total.saves += f.stats.saves;
        total.restores += f.stats.restores;
        total.restore_errors += f.stats.restore_errors;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{iterations} streams, {} ops, {} commands in {secs:.2}s ({:.0} ops/s); \
         {} MSIs delivered, {} saves, {} restores ok, {} failed",
        total.ops,
        total.commands,
        total.ops as f64 / secs,
        total.delivered,
        total.saves,
        total.restores,
        total.restore_errors
    );
}
