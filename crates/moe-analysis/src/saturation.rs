//! Router saturation over training (OLMoE; ANA-29): from the run's routing
//! probe (TRAIN-27), the share of the probe's tokens whose top-1 expert at
//! each recorded step is already the one the analysed model gives them,
//! against the agreement two independent routers with those loads would
//! have by chance, and the first step before the analysed one above a
//! threshold (the analysed step itself agrees fully by definition).

use moe_train::probe::ProbeRow;

use crate::schema::{LayerSaturation, Saturation};

/// The agreement a layer must exceed to count as saturated.
pub const SATURATION_THRESHOLD: f64 = 0.9;

/// Saturation of every MoE block of `n_experts` experts from `rows`
/// against the row of `reference_step` (the analysed model's step; the
/// last row when `None`); `None` without rows, when no row has that step,
/// or when a row's shape differs from the reference's or names an expert
/// out of range (a probe of another run).
pub fn saturation(
    rows: &[ProbeRow],
    reference_step: Option<u64>,
    n_experts: usize,
) -> Option<Saturation> {
    let reference = match reference_step {
        Some(step) => rows.iter().rev().find(|r| r.step == step)?,
        None => rows.last()?,
    };
    let mut layers = Vec::new();
    for (slot, ref_layer) in reference.layers.iter().enumerate() {
        let final_top1 = ref_layer.experts()?;
        let mut out = LayerSaturation {
            layer: ref_layer.layer,
            steps: Vec::new(),
            agreement: Vec::new(),
            chance: Vec::new(),
            first_step_above: None,
        };
        for row in rows.iter().filter(|r| r.step <= reference.step) {
            let layer = row.layers.get(slot)?;
            let top1 = layer.experts()?;
            let in_range = |t: &[usize]| t.iter().all(|&e| e < n_experts);
            if layer.layer != ref_layer.layer
                || top1.len() != final_top1.len()
                || !in_range(&top1)
                || !in_range(&final_top1)
            {
                return None;
            }
            let (agree, chance) = agreement(&top1, &final_top1, n_experts);
            let before = row.step < reference.step;
            if before && agree > SATURATION_THRESHOLD && out.first_step_above.is_none() {
                out.first_step_above = Some(row.step);
            }
            out.steps.push(row.step);
            out.agreement.push(agree);
            out.chance.push(chance);
        }
        layers.push(out);
    }
    Some(Saturation {
        probe_tokens: reference.layers.first().map_or(0, |l| l.top1.len() as u64),
        reference_step: reference.step,
        threshold: SATURATION_THRESHOLD,
        layers,
    })
}

/// The share of positions where `a` and `b` agree, and the agreement of two
/// independent routers with `a`'s and `b`'s loads, `Σ_e p_a(e) · p_b(e)`
/// (every expert id below `n_experts`).
pub fn agreement(a: &[usize], b: &[usize], n_experts: usize) -> (f64, f64) {
    if a.is_empty() {
        return (0.0, 0.0);
    }
    let n = a.len() as f64;
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count() as f64;
    let mut ca = vec![0u64; n_experts];
    let mut cb = vec![0u64; n_experts];
    for (&x, &y) in a.iter().zip(b) {
        ca[x] += 1;
        cb[y] += 1;
    }
    let chance = ca
        .iter()
        .zip(&cb)
        .map(|(&x, &y)| (x as f64 / n) * (y as f64 / n))
        .sum();
    (same / n, chance)
}
