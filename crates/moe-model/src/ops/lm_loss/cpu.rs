//! The fused LM head + cross-entropy on the CPU (MODEL-14, MODEL-15): the
//! losses and the gradients of their mean, computed in the forward pass and
//! attached by `lm_loss.rs`'s surrogate.

use burn::tensor::Shape;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::ops::cpu::{exp_f32, f32s, matmul, matmul_add, row_max, row_sum, tensor_of};

/// The fused LM head + cross-entropy on the CPU (MODEL-14, MODEL-15): each
/// token's loss and, with `with_grads`, the gradients of their mean.
pub(crate) struct LmLossParts {
    /// `[tokens]`
    pub per_token: FlexTensor,
    /// `∂x` `[tokens, d_model]` and `∂W` `[vocab, d_model]`.
    pub grads: Option<(FlexTensor, FlexTensor)>,
}

/// Cross-entropy of `targets` under `x·Wᵀ` for `x` `[tokens, d_model]`, `w`
/// `[vocab, d_model]`, `rows` tokens per chunk: per chunk one gemm for the
/// logits (into a buffer of our own, never zeroed), one parallel row pass
/// that turns them into `G = (softmax − onehot)/N` in place, and with
/// gradients `∂x = G·W` and `∂W += Gᵀ·x`.
///
/// # Panics
/// When a target is outside `0..vocab` or the shapes disagree.
pub(crate) fn lm_loss(
    x: &FlexTensor,
    w: &FlexTensor,
    targets: &[i64],
    rows: usize,
    with_grads: bool,
) -> LmLossParts {
    let (xs, ws) = (f32s(x), f32s(w));
    let (n, d, vocab) = (targets.len(), x.layout().shape()[1], w.layout().shape()[0]);
    assert_eq!(xs.len(), n * d, "one target per row of x");
    assert_eq!(ws.len(), vocab * d, "x and W share d_model");
    let rows = rows.clamp(1, n.max(1));
    let inv_n = 1.0 / n.max(1) as f32;
    let mut per_token = vec![0.0f32; n];
    let mut dx = Vec::with_capacity(if with_grads { n * d } else { 0 });
    let mut dw: Option<Vec<f32>> = None;
    for start in (0..n).step_by(rows) {
        let len = rows.min(n - start);
        let xc = &xs[start * d..(start + len) * d];
        let yc = &targets[start..start + len];
        let mut g = matmul(xc, false, ws, true, [len, vocab, d]); // logits [len, vocab]
        exp_rows_in_place(
            &mut g,
            vocab,
            yc,
            &mut per_token[start..start + len],
            with_grads.then_some(inv_n),
        );
        if with_grads {
            dx.extend(matmul(&g, false, ws, false, [len, d, vocab])); // G·W
            match &mut dw {
                Some(acc) => matmul_add(acc, &g, true, xc, false, [vocab, d, len]),
                None => dw = Some(matmul(&g, true, xc, false, [vocab, d, len])), // Gᵀ·x
            }
        }
    }
    LmLossParts {
        per_token: tensor_of(per_token, Shape::new([n])),
        grads: dw.map(|dw| {
            (
                tensor_of(dx, Shape::new([n, d])),
                tensor_of(dw, Shape::new([vocab, d])),
            )
        }),
    }
}

/// Per row of `buf` `[rows, vocab]` (logits), in place: `e = exp(logit −
/// max)`; `loss[r] = max − logit[target] + ln Σ e`. With `Some(1/N)`, the
/// row then becomes `G = e/(Σ e·N) − onehot(target)/N`. One row per task.
fn exp_rows_in_place(
    buf: &mut [f32],
    vocab: usize,
    targets: &[i64],
    loss: &mut [f32],
    grad_scale: Option<f32>,
) {
    buf.par_chunks_mut(vocab)
        .zip(loss.par_iter_mut())
        .zip(targets.par_iter())
        .for_each(|((row, loss), &target)| {
            let target = usize::try_from(target).expect("target ≥ 0");
            let picked = row[target];
            let max = row_max(row);
            for v in row.iter_mut() {
                *v = exp_f32(*v - max);
            }
            let sum = row_sum(row);
            *loss = (max - picked) + sum.ln();
            if let Some(inv_n) = grad_scale {
                let scale = inv_n / sum;
                for v in row.iter_mut() {
                    *v *= scale;
                }
                row[target] -= inv_n;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    // MODEL-15: losses and gradients are bit-identical on 1 and 3 threads
    // (chunks of 3 rows, so ∂W is accumulated).
    #[test]
    fn model_15_lm_loss_does_not_depend_on_threads() {
        let (rows, vocab, d) = (7, 9000, 64);
        let values: Vec<f32> = (0..vocab * d)
            .map(|i| ((i * 7919 % 10007) as f32 / 1000.0) - 5.0)
            .collect();
        let targets: Vec<i64> = (0..rows as i64).map(|r| r * 1000).collect();
        let run = |threads: usize| {
            crate::ops::cpu::on_threads(threads, || {
                let h = tensor_of(values[..rows * d].to_vec(), Shape::new([rows, d]));
                let w = tensor_of(values.clone(), Shape::new([vocab, d]));
                let out = lm_loss(&h, &w, &targets, 3, true);
                let (dx, dw) = out.grads.unwrap();
                [out.per_token, dx, dw].map(|t| f32s(&t).to_vec())
            })
        };
        assert_eq!(run(1), run(3));
    }
}
