// SPDX-License-Identifier: GPL-2.0

//! Dirty page tracking: vfio_iommu_type1's argument checks and the words
//! its update_user_bitmap() writes, bit for bit.

use armsi_logic::dirty::{
    bitmap_bytes, check_dirty_pages, check_get_bitmap, check_get_bitmap_container, page_shift,
    pages, state_words, verify_bitmap_size, DirtyOp, DirtyRefusal, Report, BITMAP_SIZE_MAX,
    FLAG_GET_BITMAP, FLAG_START, FLAG_STOP,
};

/// A mapping as upstream keeps it while tracking: its place and its
/// bitmap, bit by bit (an independent model of the C: bitmap_set, then
/// __bitmap_shift_left over nbits + shift bits, bitmap_or of the user's
/// word, a copy of DIRTY_BITMAP_BYTES(nbits + shift), bitmap_clear).
struct Model {
    iova: u64,
    pages: u64,
    bits: Vec<bool>,
}

impl Model {
    fn new(iova: u64, pages: u64) -> Self {
        Model {
            iova,
            pages,
            bits: vec![false; ((pages.div_ceil(64) + 1) * 64) as usize],
        }
    }

    fn report(&mut self, user: &mut [u64], base: u64) {
        let nbits = self.pages as usize;
        let off = ((self.iova - base) / 4096) as usize;
        let (first, shift) = (off / 64, off % 64);
        let lim = (nbits + shift).div_ceil(64);
        for b in 0..nbits {
            self.bits[b] = true;
        }
        if shift != 0 {
            let old = self.bits.clone();
            for i in 0..lim * 64 {
                self.bits[i] = i >= shift && old[i - shift];
            }
            let leftover = user[first];
            for i in 0..64 {
                self.bits[i] |= leftover >> i & 1 == 1;
            }
        }
        for w in 0..lim {
            let mut word = 0u64;
            for i in 0..64 {
                word |= (self.bits[w * 64 + i] as u64) << i;
            }
            user[first + w] = word;
        }
        for b in 0..nbits {
            self.bits[b] = false;
        }
    }
}

/// The same through `Report`, with its state.
struct Ours {
    iova: u64,
    pages: u64,
    state: Vec<u64>,
}

impl Ours {
    fn new(iova: u64, pages: u64) -> Self {
        Ours {
            iova,
            pages,
            state: vec![0; state_words(pages) as usize],
        }
    }

    fn report(&mut self, user: &mut [u64], base: u64) {
        let r = Report::new((self.iova - base) / 4096, self.pages);
        let leftover = if r.needs_leftover() {
            user[r.first as usize]
        } else {
            0
        };
        r.fill(&mut self.state, leftover);
        let first = r.first as usize;
        user[first..first + r.count].copy_from_slice(&self.state[..r.count]);
        r.clear(&mut self.state);
    }
}

/// What upstream vfio_iommu_type1 wrote in the test guest (debug kernel
/// 7.3.4, armsi/vfio_fidelity_test): mappings A (3 pages at 0x100000),
/// B (5 at 0x103000), C (70 at 0x120000); reports of A+B, A+B again, B
/// alone, then A..C, into a bitmap filled with a pattern each time. The
/// second report of B carries the bits its first one shifted out.
#[test]
fn reports_match_upstream_in_the_guest() {
    let pattern = |i: u64| 0xa5a5_5a5a_0ff0_f00fu64 ^ (i << 56);
    let mut maps = [
        Ours::new(0x100000, 3),
        Ours::new(0x103000, 5),
        Ours::new(0x120000, 70),
    ];
    let mut user = [0u64; 8];
    let mut run = |maps: &mut [Ours], which: &[usize], base: u64| {
        for (i, w) in user.iter_mut().enumerate() {
            *w = pattern(i as u64);
        }
        for &m in which {
            maps[m].report(&mut user, base);
        }
        user
    };
    assert_eq!(run(&mut maps, &[0, 1], 0x100000)[0], 0xff);
    assert_eq!(run(&mut maps, &[0, 1], 0x100000)[0], 0x7ff);
    assert_eq!(run(&mut maps, &[1], 0x103000)[0], 0x7ff);
    assert_eq!(
        run(&mut maps, &[0, 1, 2], 0x100000)[0],
        0xffff_ffff_0000_3fff
    );
}

#[test]
fn reports_match_the_model_of_the_c() {
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..300 {
        // A few mappings, adjacent or with gaps, in page units.
        let mut layout = Vec::new();
        let mut at = rnd() % 130;
        for _ in 0..(1 + rnd() % 5) {
            let n = 1 + rnd() % 150;
            layout.push((at, n));
            at += n + rnd() % 3 * (rnd() % 70);
        }
        let mut model: Vec<Model> = layout
            .iter()
            .map(|&(a, n)| Model::new(a * 4096, n))
            .collect();
        let mut ours: Vec<Ours> = layout
            .iter()
            .map(|&(a, n)| Ours::new(a * 4096, n))
            .collect();
        let words = (at as usize).div_ceil(64) + 2;
        // Several reports, each from some mapping on, over a user bitmap
        // filled with something else each time: the state carries over.
        for _ in 0..6 {
            let from = (rnd() % layout.len() as u64) as usize;
            let base = layout[from].0 * 4096;
            let fill = rnd();
            let mut a = vec![fill; words];
            let mut b = a.clone();
            for m in from..layout.len() {
                model[m].report(&mut a, base);
                ours[m].report(&mut b, base);
            }
            assert_eq!(a, b, "{layout:?} from {from}");
        }
    }
}

#[test]
fn dirty_pages_header() {
    use DirtyRefusal::*;
    assert_eq!(check_dirty_pages(false, 8, FLAG_START), Err(NotV2));
    assert_eq!(check_dirty_pages(true, 7, FLAG_START), Err(Invalid));
    assert_eq!(check_dirty_pages(true, 8, 1 << 3), Err(Invalid));
    assert_eq!(check_dirty_pages(true, 8, 0), Err(Invalid));
    assert_eq!(
        check_dirty_pages(true, 8, FLAG_START | FLAG_STOP),
        Err(Invalid)
    );
    assert_eq!(check_dirty_pages(true, 8, FLAG_START), Ok(DirtyOp::Start));
    assert_eq!(check_dirty_pages(true, 8, FLAG_STOP), Ok(DirtyOp::Stop));
    assert_eq!(
        check_dirty_pages(true, 8, FLAG_GET_BITMAP),
        Ok(DirtyOp::GetBitmap)
    );
}

#[test]
fn bitmap_sizes() {
    assert_eq!(bitmap_bytes(1), 8);
    assert_eq!(bitmap_bytes(64), 8);
    assert_eq!(bitmap_bytes(65), 16);
    assert_eq!(BITMAP_SIZE_MAX, 0x1000_0000);
    assert!(verify_bitmap_size(64, 8).is_ok());
    assert!(verify_bitmap_size(65, 8).is_err());
    assert!(verify_bitmap_size(0, 8).is_err());
    assert!(verify_bitmap_size(1, 0).is_err());
    assert!(verify_bitmap_size(1, BITMAP_SIZE_MAX + 8).is_err());
    // __ffs(0) is 64 on arm64 and the shift wraps to 0.
    assert_eq!(page_shift(0), 64);
    assert_eq!(pages(0x3000, page_shift(0)), 0x3000);
    assert_eq!(pages(0x3000, page_shift(0x1000)), 3);
}

#[test]
fn get_bitmap_checks_in_type1_order() {
    use DirtyRefusal::*;
    assert_eq!(check_get_bitmap(0, 0, 4096, 8, true), Err(Invalid));
    assert_eq!(check_get_bitmap(u64::MAX, 2, 4096, 8, true), Err(Overflow));
    assert_eq!(check_get_bitmap(0, 4096, 4096, 8, false), Err(Invalid));
    assert_eq!(check_get_bitmap(0, 65 * 4096, 4096, 8, true), Err(Invalid));
    assert_eq!(check_get_bitmap(0x1000, 4096, 4096, 8, true), Ok(0x1fff));
    assert_eq!(
        check_get_bitmap_container(0, 4096, 8192, 4096, true),
        Err(Invalid)
    );
    assert_eq!(
        check_get_bitmap_container(0x800, 4096, 4096, 4096, true),
        Err(Invalid)
    );
    assert_eq!(
        check_get_bitmap_container(0, 0x1800, 4096, 4096, true),
        Err(Invalid)
    );
    assert_eq!(
        check_get_bitmap_container(0, 4096, 4096, 4096, false),
        Err(Invalid)
    );
    assert_eq!(
        check_get_bitmap_container(0, 4096, 4096, 4096, true),
        Ok(())
    );
}
