//! Balancing and shuffling whole blocks (BAL-*): balancing keeps the same
//! number of train blocks per domain, chosen by seeded shuffle (never by
//! cutting the end); shuffling permutes a shard's blocks. Both only drop and
//! permute whole blocks.

use crate::pack::Packed;
use crate::seeded::permutation;

/// The blocks of `packed` in a seeded order, keeping the first `keep` (all when `None`).
pub fn choose_and_shuffle(
    packed: &Packed,
    keep: Option<usize>,
    seed: u64,
    purpose: &str,
) -> Vec<u16> {
    let order = permutation(packed.n_blocks(), seed, purpose);
    let n = keep.unwrap_or(order.len()).min(order.len());
    let mut out = Vec::with_capacity(n * packed.block_size);
    for &i in &order[..n] {
        out.extend_from_slice(packed.block(i));
    }
    out
}

/// The seeded-stream purpose of a shard's block order; the audit recomputes
/// the same order from it.
pub fn shuffle_purpose(split: crate::split::Split, domain: &str) -> String {
    format!("shuffle/{split}/{domain}")
}

/// Largest over smallest; `f64::INFINITY` when the smallest is 0.
pub fn ratio(counts: &[u64]) -> f64 {
    let (Some(&max), Some(&min)) = (counts.iter().max(), counts.iter().min()) else {
        return 1.0;
    };
    if min == 0 {
        f64::INFINITY
    } else {
        max as f64 / min as f64
    }
}
