//! Load balance of one layer's top-1 choices (ANA-8): shares, coefficient of
//! variation against its sampling floor, dead experts, and the share of
//! tokens a capacity limit would drop.
//!
//! The CV floor √((N − 1) / T) is the CV of N multinomial counts of T tokens
//! under perfectly uniform routing. The would-drop rate applies capacity
//! ⌊factor · T / N⌋ to the whole val set's counts: per-batch capacity drops
//! at least this much (Σ_b max(0, x_b) ≥ max(0, Σ_b x_b)).

use crate::schema::Load;

/// Share under which an expert counts as dead.
pub const DEAD_THRESHOLD: f64 = 0.01;
/// The capacity factor of the would-drop rate.
pub const CAPACITY_FACTOR: f64 = 1.25;

/// Load statistics of per-expert token counts.
pub fn load_stats(counts: &[u64]) -> Load {
    let n = counts.len();
    let total: u64 = counts.iter().sum();
    let t = total.max(1) as f64;
    let shares: Vec<f64> = counts.iter().map(|&c| c as f64 / t).collect();
    let mean = t / n.max(1) as f64;
    let var = counts
        .iter()
        .map(|&c| (c as f64 - mean).powi(2))
        .sum::<f64>()
        / n.max(1) as f64;
    let capacity = (CAPACITY_FACTOR * total as f64 / n.max(1) as f64).floor() as u64;
    let over: u64 = counts.iter().map(|&c| c.saturating_sub(capacity)).sum();
    Load {
        cv: if total == 0 { 0.0 } else { var.sqrt() / mean },
        cv_floor: ((n.saturating_sub(1)) as f64 / t).sqrt(),
        dead_experts: shares
            .iter()
            .enumerate()
            .filter(|(_, s)| **s < DEAD_THRESHOLD)
            .map(|(e, _)| e)
            .collect(),
        shares,
        dead_threshold: DEAD_THRESHOLD,
        capacity_factor: CAPACITY_FACTOR,
        would_drop_rate: over as f64 / t,
    }
}
