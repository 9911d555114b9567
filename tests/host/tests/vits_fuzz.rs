// SPDX-License-Identifier: GPL-2.0

//! Random ITS command streams (the generator of `src/fuzz.rs`): no panic,
//! invariants hold after every operation, no LPI reference outstanding after
//! destroy.

use armsi_logic::fuzz::Fuzzer;

#[test]
fn random_streams() {
    let mut delivered = 0;
    let mut restores = 0;
    for seed in 0..300u64 {
        let mut f = Fuzzer::new(seed);
        if let Err(e) = f.stream(300) {
            panic!("seed {seed}: {e}");
        }
        delivered += f.stats.delivered;
        restores += f.stats.restores;
    }
    // The streams reach the interesting states.
    assert!(delivered > 0);
    assert!(restores > 0);
}
