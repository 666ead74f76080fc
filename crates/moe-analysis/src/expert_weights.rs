//! Expert weights (ANA-30): how far each expert of an MoE layer moved from
//! its step-0 weights, and how alike the experts are. An expert is one
//! vector, its `c_fc.weight`, `c_fc.bias`, `c_proj.weight` and
//! `c_proj.bias` flattened in that order ([`expert_vectors`] takes them
//! from a model). The math takes plain `f32` slices and sums in `f64` in
//! index order, so the same weights give the same bits on any host
//! (ANA-15).
//!
//! Convention for a zero vector (no real expert is one): its cosine
//! similarity is 1 with another zero vector and 0 with anything else.

use std::path::Path;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use moe_model::Gpt2;
use moe_model::model::{FeedForward, Mlp};

use crate::error::{AnalysisError, Result};
use crate::schema::{DriftPoint, ExpertWeights};

/// `Σ aᵢ·bᵢ` in `f64`, in index order (the shorter length when they differ).
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .fold(0.0, |acc, (&x, &y)| acc + f64::from(x) * f64::from(y))
}

/// `‖a‖₂` in `f64`.
pub fn norm(a: &[f32]) -> f64 {
    dot(a, a).sqrt()
}

/// `a·b / (‖a‖·‖b‖)`, clamped to [−1, 1] (see the module's zero-vector convention).
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f64 {
    let (na, nb) = (norm(a), norm(b));
    match (na > 0.0, nb > 0.0) {
        (true, true) => (dot(a, b) / (na * nb)).clamp(-1.0, 1.0),
        (false, false) => 1.0,
        _ => 0.0,
    }
}

/// `1 − cos(a, b)`: 0 for parallel vectors, 1 for orthogonal, 2 for opposite.
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    1.0 - cosine_similarity(a, b)
}

/// `‖w − w₀‖ / ‖w₀‖` (`None` when `w₀ = 0`).
pub fn relative_change(w0: &[f32], w: &[f32]) -> Option<f64> {
    let base = norm(w0);
    let diff = w0.iter().zip(w).fold(0.0, |acc, (&x, &y)| {
        let d = f64::from(y) - f64::from(x);
        acc + d * d
    });
    (base > 0.0).then(|| diff.sqrt() / base)
}

/// Each expert's cosine distance from its reference (`experts[e]` against `reference[e]`).
pub fn drift(reference: &[Vec<f32>], experts: &[Vec<f32>]) -> Vec<f64> {
    reference
        .iter()
        .zip(experts)
        .map(|(w0, w)| cosine_distance(w0, w))
        .collect()
}

/// The E × E cosine similarities of `experts`, computed once per pair and
/// mirrored, so the matrix is exactly symmetric.
pub fn similarity_matrix(experts: &[Vec<f32>]) -> Vec<Vec<f64>> {
    let n = experts.len();
    let mut m = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in i..n {
            let s = cosine_similarity(&experts[i], &experts[j]);
            m[i][j] = s;
            m[j][i] = s;
        }
    }
    m
}

/// Mean of the entries off the diagonal, row by row (`None` below 2 × 2).
pub fn mean_off_diagonal(m: &[Vec<f64>]) -> Option<f64> {
    let n = m.len();
    if n < 2 {
        return None;
    }
    let sum: f64 = (0..n)
        .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
        .map(|(i, j)| m[i][j])
        .sum();
    Some(sum / (n * (n - 1)) as f64)
}

/// One layer's [`ExpertWeights`]: `reference` at `reference_step`, the
/// distances already computed at other steps (`points`, the kept
/// checkpoints: [`drift`] of each), and the analysed model's experts at
/// `analysed_step`. The reference's own point and the analysed model's are
/// added (a point at a step already there is replaced by the analysed
/// model's), and the points sorted by step.
pub fn layer_weights(
    reference: &[Vec<f32>],
    reference_step: u64,
    points: Vec<DriftPoint>,
    analysed: &[Vec<f32>],
    analysed_step: Option<u64>,
) -> ExpertWeights {
    let distance = drift(reference, analysed);
    let mut drift_points: Vec<DriftPoint> = points
        .into_iter()
        .filter(|p| p.step != reference_step && Some(p.step) != analysed_step)
        .collect();
    if analysed_step != Some(reference_step) {
        drift_points.push(DriftPoint {
            step: reference_step,
            distance: drift(reference, reference),
        });
    }
    if let Some(step) = analysed_step {
        drift_points.push(DriftPoint {
            step,
            distance: distance.clone(),
        });
    }
    drift_points.sort_by_key(|p| p.step);
    let similarity = similarity_matrix(analysed);
    ExpertWeights {
        parameters: analysed.first().map_or(0, Vec::len),
        reference_step,
        drift: drift_points,
        analysed_step,
        distance,
        relative_change: reference
            .iter()
            .zip(analysed)
            .map(|(w0, w)| relative_change(w0, w))
            .collect(),
        mean_similarity: mean_off_diagonal(&similarity),
        reference_mean_similarity: mean_off_diagonal(&similarity_matrix(reference)),
        similarity,
    }
}

/// Per MoE block of `model` (block order): the block index and each
/// expert's flattened parameters.
pub fn expert_vectors<B: Backend>(model: &Gpt2<B>) -> Result<Vec<(usize, Vec<Vec<f32>>)>> {
    let mut out = Vec::new();
    for (i, block) in model.h.iter().enumerate() {
        if let FeedForward::Moe(moe) = &block.mlp {
            let experts = moe.experts.iter().map(flatten).collect::<Result<_>>()?;
            out.push((i, experts));
        }
    }
    Ok(out)
}

/// One expert's parameters, `c_fc` then `c_proj`, each weight then bias.
fn flatten<B: Backend>(mlp: &Mlp<B>) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for linear in [&mlp.c_fc, &mlp.c_proj] {
        out.extend(host(linear.weight.val())?);
        if let Some(b) = &linear.bias {
            out.extend(host(b.val())?);
        }
    }
    Ok(out)
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| AnalysisError::run(Path::new("expert weights"), format!("{e:?}")))
}
