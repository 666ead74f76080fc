//! LayerNorm on the CPU as one op with a hand-written backward (MODEL-17).
//!
//! Forward, one row per task: `mean`, `rstd = 1/√(var + ε)` (biased
//! variance), `y = (x − mean)·rstd·γ + β`. Backward, with `x̂ = (x −
//! mean)·rstd` and `g' = g ⊙ γ`: `∂x = rstd·(g' − mean(g') − x̂·mean(g' ⊙
//! x̂))` per row; `∂γ = Σ g ⊙ x̂` and `∂β = Σ g` over the rows, summed in
//! fixed blocks of rows and the blocks in order, so no result depends on
//! the number of threads. Burn's autodiff would record the same as about a
//! dozen single-threaded element-wise ops each way.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::backend::Backend;
use burn::tensor::{Shape, Tensor};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::ops::cpu::{backward_parts, f32s, off_flex, on_flex, row_sum, run_op, tensor_of};

/// Rows per block of the parameter-gradient sums.
const ROWS_PER_BLOCK: usize = 16;

/// Per-row statistics of the forward pass.
#[derive(Clone)]
struct Stats {
    mean: Vec<f32>,
    rstd: Vec<f32>,
}

/// `y` and the row statistics for `x` `[rows, d]`.
fn forward(x: &FlexTensor, gamma: &[f32], beta: &[f32], eps: f32) -> (FlexTensor, Stats) {
    let xs = f32s(x);
    let d = gamma.len();
    let rows = xs.len() / d.max(1);
    let mut y = vec![0.0f32; xs.len()];
    let mut mean = vec![0.0f32; rows];
    let mut rstd = vec![0.0f32; rows];
    y.par_chunks_mut(d)
        .zip(xs.par_chunks(d))
        .zip(mean.par_iter_mut().zip(rstd.par_iter_mut()))
        .for_each(|((y, x), (mean, rstd))| {
            let m = row_sum(x) / d as f32;
            for (y, &x) in y.iter_mut().zip(x) {
                *y = x - m; // centred, squared below
            }
            let var = y.iter().map(|&c| c * c).sum::<f32>() / d as f32;
            let r = 1.0 / (var + eps).sqrt();
            for ((y, &g), &b) in y.iter_mut().zip(gamma).zip(beta) {
                *y = *y * r * g + b;
            }
            (*mean, *rstd) = (m, r);
        });
    (
        tensor_of(y, x.layout().shape().clone()),
        Stats { mean, rstd },
    )
}

/// `(∂x, ∂γ, ∂β)` from the output gradient `g` `[rows, d]`.
fn backward(x: &FlexTensor, gamma: &[f32], stats: &Stats, g: &FlexTensor) -> [FlexTensor; 3] {
    let g = g.to_contiguous();
    let (xs, gs) = (f32s(x), f32s(&g));
    let d = gamma.len();
    let mut dx = vec![0.0f32; xs.len()];
    dx.par_chunks_mut(d)
        .zip(xs.par_chunks(d).zip(gs.par_chunks(d)))
        .zip(stats.mean.par_iter().zip(&stats.rstd))
        .for_each(|((dx, (x, g)), (&mean, &rstd))| {
            let (mut a, mut b) = (0.0f32, 0.0f32);
            for ((&x, &g), &w) in x.iter().zip(g).zip(gamma) {
                let (gw, xhat) = (g * w, (x - mean) * rstd);
                a += gw;
                b += gw * xhat;
            }
            let (a, b) = (a / d as f32, b / d as f32);
            for (((dx, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(gamma) {
                let xhat = (x - mean) * rstd;
                *dx = rstd * (g * w - a - xhat * b);
            }
        });
    // Per block of rows: Σ g·x̂ then Σ g, side by side.
    let partials: Vec<Vec<f32>> = xs
        .par_chunks(ROWS_PER_BLOCK * d)
        .zip(gs.par_chunks(ROWS_PER_BLOCK * d))
        .enumerate()
        .map(|(block, (x, g))| {
            let mut acc = vec![0.0f32; 2 * d];
            let (dgamma, dbeta) = acc.split_at_mut(d);
            let first = block * ROWS_PER_BLOCK;
            for (r, (x, g)) in x.chunks_exact(d).zip(g.chunks_exact(d)).enumerate() {
                let (mean, rstd) = (stats.mean[first + r], stats.rstd[first + r]);
                for (((dg, db), &x), &g) in dgamma.iter_mut().zip(dbeta.iter_mut()).zip(x).zip(g) {
                    *dg += g * (x - mean) * rstd;
                    *db += g;
                }
            }
            acc
        })
        .collect();
    let mut sums = vec![0.0f32; 2 * d];
    for part in &partials {
        sums.iter_mut().zip(part).for_each(|(s, &p)| *s += p);
    }
    let dbeta = sums.split_off(d);
    [
        tensor_of(dx, x.layout().shape().clone()),
        tensor_of(sums, Shape::new([d])),
        tensor_of(dbeta, Shape::new([d])),
    ]
}

/// What backward needs.
#[derive(Clone)]
struct State {
    x: FlexTensor,
    gamma: Vec<f32>,
    stats: Stats,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("d", &self.gamma.len())
            .finish()
    }
}

/// The `burn-autodiff` op: parents `x`, `γ`, `β`.
#[derive(Debug)]
struct LayerNormOp;

impl Backward<Flex, 3> for LayerNormOp {
    type State = State;

    fn backward(self, ops: Ops<State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        backward_parts(ops, grads, |State { x, gamma, stats }, g| {
            backward(&x, &gamma, &stats, &g)
        });
    }
}

/// LayerNorm of `x` `[rows, d]` on a CPU backend, differentiable under
/// autodiff; `x` back unchanged on any other backend or without `β`.
pub(crate) fn layer_norm<B: Backend>(
    x: Tensor<B, 2>,
    gamma: Tensor<B, 1>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let Some(beta) = beta else { return Err(x) };
    let x = on_flex(x)?;
    let same = "x, γ and β share a backend";
    let inputs = [x, on_flex(gamma).expect(same), on_flex(beta).expect(same)];
    Ok(off_flex(run_op(
        LayerNormOp,
        inputs,
        |[x, g, b], tracked| {
            let gamma = f32s(&g).to_vec();
            let (y, stats) = forward(&x, &gamma, f32s(&b), eps as f32);
            (y, tracked.then(|| State { x, gamma, stats }))
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    // MODEL-17: forward and backward are bit-identical on 1 and 3 threads
    // (more rows than one block of the parameter sums).
    #[test]
    fn model_17_layer_norm_does_not_depend_on_threads() {
        let (rows, d) = (75, 96);
        let values = |n: usize, k: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * k % 1009) as f32 / 300.0) - 1.5)
                .collect()
        };
        let x = tensor_of(values(rows * d, 7919), Shape::new([rows, d]));
        let g = tensor_of(values(rows * d, 104_729), Shape::new([rows, d]));
        let (gamma, beta) = (values(d, 31), values(d, 37));
        let run = |threads: usize| {
            crate::ops::cpu::on_threads(threads, || {
                let (y, stats) = forward(&x, &gamma, &beta, 1e-5);
                let [dx, dg, db] = backward(&x, &gamma, &stats, &g);
                [y, dx, dg, db].map(|t| f32s(&t).to_vec())
            })
        };
        assert_eq!(run(1), run(3));
    }
}
