//! The tied LM head and the next-token cross-entropy as one op (MODEL-14).
//!
//! The forward pass works on detached tensors: logits `x·Wᵀ`, `e = exp(logit
//! − max)` per row and each token's loss `logsumexp − logit[target]`. Under autodiff it also
//! computes the gradients of the mean loss right there — `G = (softmax −
//! onehot)/N`, `∂x = G·W`, `∂W = Gᵀ·x` — and hands them to the graph through
//! a linear surrogate whose value is exactly zero:
//!
//! `mean = stopgrad(mean loss) + (S − stopgrad(S))`, `S = ⟨x, ∂x⟩ + ⟨W, ∂W⟩`
//! with `∂x`, `∂W` constants, so backward only scales `∂x` and `∂W` by the
//! incoming gradient. The `[tokens, vocab]` logits never enter the graph and
//! are freed before the op returns; the gradients cost the same two matmuls
//! the unfused backward would.
//!
//! Why a surrogate and not a `burn-autodiff` `Backward` op: the gradients
//! are already known when the forward pass ends, so generic tensor ops can
//! hand them over on every backend; a `Backward` op would exist only for
//! `Autodiff<B>` of one backend (the CPU's other ops are such ops,
//! reached through `cpu::on_flex`). On the CPU backends the forward pass
//! itself is one multithreaded kernel ([`cpu::lm_loss`], MODEL-15).
//!
//! The gradient is that of the *mean* over the tokens (what training
//! minimises); the per-token values are returned detached.

use burn::tensor::backend::Backend;
use burn::tensor::{IndexingUpdateOp, Int, Tensor};

use super::cpu::{from_flex, to_flex};
use super::{constant, cpu_or_generic};

pub(crate) mod cpu;

/// Most logits one chunk of tokens materialises (rows × vocab): bounds the
/// op's transient memory whatever the batch (64 MiB of f32).
const CHUNK_ELEMS: usize = 1 << 24;

/// Per-token cross-entropies and their differentiable mean.
#[derive(Debug, Clone)]
pub struct LmLoss<B: Backend> {
    /// Each token's cross-entropy, outside the autodiff graph. `[tokens]`
    pub per_token: Tensor<B, 1>,
    /// Mean over the tokens; under autodiff its gradient reaches the hidden
    /// states and the head. `[1]`
    pub mean: Tensor<B, 1>,
}

/// Cross-entropy of `targets` under the logits `hidden · headᵀ`, without
/// materialising the logits in the autodiff graph (MODEL-14). A bf16
/// `hidden` (mixed precision, MODEL-19) runs the products in bf16 and the
/// loss in `head`'s dtype.
///
/// # Shapes
/// - `hidden`: `[tokens, d_model]`, `head`: `[vocab, d_model]`,
///   `targets`: `[tokens]` (ids `< vocab`) → per-token `[tokens]`, mean `[1]`
pub fn lm_head_cross_entropy<B: Backend>(
    hidden: Tensor<B, 2>,
    head: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
) -> LmLoss<B> {
    let rows = CHUNK_ELEMS / head.dims()[0].max(1);
    cpu_or_generic(
        (hidden, head, targets),
        |(x, w, y)| on_cpu(x.clone(), w.clone(), y.clone(), rows).ok_or((x, w, y)),
        |(x, w, y)| fused(x, w, y, rows),
    )
}

/// The op on the CPU backends: one multithreaded kernel
/// ([`cpu::lm_loss`], MODEL-15) computes the losses and the gradients;
/// `None` on any other backend.
fn on_cpu<B: Backend>(
    hidden: Tensor<B, 2>,
    head: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    rows: usize,
) -> Option<LmLoss<B>> {
    let with_grads = B::ad_enabled(&hidden.device());
    let x = to_flex(constant(hidden.clone())).ok()?;
    let w = to_flex(constant(head.clone())).ok()?;
    let ids = targets
        .into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .expect("converted to i64");
    let parts = cpu::lm_loss(&x, &w, &ids, rows, with_grads);
    let per_token: Tensor<B, 1> = from_flex(parts.per_token);
    let grads = parts.grads.map(|(dx, dw)| (from_flex(dx), from_flex(dw)));
    Some(attach(per_token, hidden, head, grads))
}

/// The per-token losses with their mean, carrying the gradients `(∂x, ∂W)`
/// of the mean, when given, through the zero-valued surrogate.
fn attach<B: Backend>(
    per_token: Tensor<B, 1>,
    hidden: Tensor<B, 2>,
    head: Tensor<B, 2>,
    grads: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
) -> LmLoss<B> {
    let value = per_token.clone().mean(); // [1]
    let mean = match grads {
        Some((dx, dw)) => {
            // In the gradients' dtype: a bf16 `hidden` (MODEL-19) gets its
            // gradient through the cast.
            let s = dot(hidden.cast(dx.dtype()), dx) + dot(head, dw); // [1]
            value + (s.clone() - s.detach())
        }
        None => value,
    };
    LmLoss { per_token, mean }
}

/// [`lm_head_cross_entropy`] with generic tensor ops (every backend but the
/// CPU's), at most `rows` tokens per chunk. The three products run in
/// `hidden`'s dtype (bf16 under mixed precision, MODEL-19); the logits'
/// row pass, the losses and the scaling of the gradients run in `head`'s
/// (the f32 master weight), and so do the returned gradients.
fn fused<B: Backend>(
    hidden: Tensor<B, 2>,
    head: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    rows: usize,
) -> LmLoss<B> {
    let [n, _] = hidden.dims();
    let with_grads = B::ad_enabled(&hidden.device());
    let (compute, exact) = (hidden.dtype(), head.dtype());
    let x = constant(hidden.clone());
    let w = constant(head.clone());
    let wc = w.clone().cast(compute); // the head in the products' dtype
    let rows = rows.clamp(1, n.max(1));
    let inv_n = 1.0 / n.max(1) as f64;
    let (mut losses, mut dx) = (Vec::new(), Vec::new());
    let mut dw: Option<Tensor<B, 2>> = None;
    for start in (0..n).step_by(rows) {
        let len = rows.min(n - start);
        let xc = x.clone().narrow(0, start, len); // [len, d_model]
        let yc = targets.clone().narrow(0, start, len); // [len]
        let logits = xc.clone().matmul(wc.clone().transpose()).cast(exact); // [len, vocab]
        let ExpRows { e, sum, loss } = exp_rows(logits, yc.clone());
        losses.push(loss);
        if with_grads {
            // softmax = e / sum; the division is applied to the [len, ·]
            // operands and results of the matmuls, never to e itself.
            let inv = sum.recip() * inv_n; // [len, 1]: 1 / (sum · N)
            let ec = e.cast(compute);
            let xe = xc.cast(exact); // [len, d_model]
            // (softmax − onehot)·W / N = (e·W)/(sum·N) − W[target]/N
            let dxc = ec.clone().matmul(wc.clone()).cast(exact) * inv.clone()
                - w.clone().select(0, yc.clone()) * inv_n;
            dx.push(dxc); // [len, d_model]
            // (softmax − onehot)ᵀ·x / N = eᵀ·(x/(sum·N)) − Σ_t onehot(target_t)·x_t/N
            let dwc = ec
                .transpose()
                .matmul((xe.clone() * inv).cast(compute))
                .cast(exact)
                .select_assign(0, yc, xe.neg() * inv_n, IndexingUpdateOp::Add); // [vocab, d_model]
            dw = Some(match dw {
                Some(acc) => acc + dwc,
                None => dwc,
            });
        }
    }
    let per_token = Tensor::cat(losses, 0); // [tokens]
    attach(
        per_token,
        hidden,
        head,
        dw.map(|dw| (Tensor::cat(dx, 0), dw)),
    )
}

/// A chunk's logits after the row pass: `e = exp(logit − max)` `[len,
/// vocab]`, `Σ e` `[len, 1]` and each token's loss `[len]`.
struct ExpRows<B: Backend> {
    e: Tensor<B, 2>,
    sum: Tensor<B, 2>,
    loss: Tensor<B, 1>,
}

/// The row pass over a chunk's constant `logits`.
fn exp_rows<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> ExpRows<B> {
    let [len, _] = logits.dims();
    let max = logits.clone().max_dim(1); // [len, 1]
    let picked = logits.clone().gather(1, targets.reshape([len, 1])); // [len, 1]
    let e = (logits - max.clone()).exp(); // [len, vocab]: exp(logit − max)
    let sum = e.clone().sum_dim(1); // [len, 1]
    // logsumexp − picked = (max − picked) + ln Σ exp(logit − max)
    let loss = ((max - picked) + sum.clone().log()).reshape([len]);
    ExpRows { e, sum, loss }
}

/// `⟨a, b⟩` as a `[1]` tensor, through a `[1, n] · [n, 1]` matmul: one read
/// of each operand, and a backward that writes only `∂/∂a = grad · b`.
fn dot<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>) -> Tensor<B, 1> {
    let n = a.shape().num_elements();
    a.reshape([1, n]).matmul(b.reshape([n, 1])).reshape([1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::NormalRng;
    use burn::tensor::TensorData;
    use burn::tensor::activation::log_softmax;
    use proptest::prelude::*;

    type Inner = crate::CpuBackend;
    type Ad = crate::CpuAutodiff;

    fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    /// Largest `|a − b|` over two equally long slices.
    fn max_abs(a: &[f32], b: &[f32]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (x as f64 - y as f64).abs())
            .fold(0.0, f64::max)
    }

    /// Largest `|v|`, at least 1.
    fn magnitude(v: &[f32]) -> f64 {
        v.iter().fold(1.0, |m, &x| m.max(x.abs() as f64))
    }

    struct Case {
        x: Vec<f32>,
        w: Vec<f32>,
        y: Vec<i64>,
        n: usize,
        d: usize,
        v: usize,
    }

    fn case(n: usize, d: usize, v: usize, scale: f64, seed: u64) -> Case {
        let mut rng = NormalRng::new(seed, 0);
        let x = rng.samples(n * d, scale);
        let w = rng.samples(v * d, scale);
        let y = (0..n)
            .map(|i| ((i as u64 * 7919 + seed) % v as u64) as i64)
            .collect();
        Case { x, w, y, n, d, v }
    }

    fn tensors<B: Backend>(c: &Case) -> (Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 1, Int>) {
        let dev = Default::default();
        (
            Tensor::from_data(TensorData::new(c.x.clone(), [c.n, c.d]), &dev),
            Tensor::from_data(TensorData::new(c.w.clone(), [c.v, c.d]), &dev),
            Tensor::from_data(TensorData::new(c.y.clone(), [c.n]), &dev),
        )
    }

    /// The unfused computation: logits in the graph, log-softmax, gather.
    fn reference<B: Backend>(
        x: Tensor<B, 2>,
        w: Tensor<B, 2>,
        y: Tensor<B, 1, Int>,
    ) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let n = y.dims()[0];
        let logp = log_softmax(x.matmul(w.transpose()), 1);
        let per_token = logp.gather(1, y.reshape([n, 1])).neg().reshape([n]);
        (per_token.clone(), per_token.mean())
    }

    /// The fused op with `rows` tokens per chunk.
    type Fused = fn(Tensor<Ad, 2>, Tensor<Ad, 2>, Tensor<Ad, 1, Int>, usize) -> LmLoss<Ad>;

    /// The CPU kernel's path and the generic one.
    const PATHS: [Fused; 2] = [cpu_path, fused];

    fn cpu_path(
        x: Tensor<Ad, 2>,
        w: Tensor<Ad, 2>,
        y: Tensor<Ad, 1, Int>,
        rows: usize,
    ) -> LmLoss<Ad> {
        on_cpu(x, w, y, rows).expect("the CPU backend")
    }

    /// (per-token, mean, ∂mean/∂x, ∂mean/∂w) of the fused op (`rows` per
    /// chunk, a path) or the reference (`None`).
    fn run(c: &Case, fused_with: Option<(usize, Fused)>) -> [Vec<f32>; 4] {
        let (x, w, y) = tensors::<Ad>(c);
        let (x, w) = (x.require_grad(), w.require_grad());
        let (per_token, mean) = match fused_with {
            Some((rows, path)) => {
                let out = path(x.clone(), w.clone(), y, rows);
                (out.per_token, out.mean)
            }
            None => reference(x.clone(), w.clone(), y),
        };
        let grads = mean.backward();
        [
            values(per_token),
            values(mean),
            values(x.grad(&grads).unwrap()),
            values(w.grad(&grads).unwrap()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        // MODEL-14, MODEL-15: per-token losses, their mean and the gradients
        // of the mean equal the unfused log-softmax + gather within 1e-6
        // relative to the magnitude of what is summed (the largest logit for
        // the losses, the largest |x| or |W| for the gradients), whatever the
        // chunking, on the CPU kernel's path and the generic one.
        #[test]
        fn model_14_fused_head_loss_equals_unfused(
            n in 1usize..24,
            d in 1usize..12,
            v in 2usize..80,
            rows in 1usize..30,
            scale in 0.01f64..3.0,
            seed in 0u64..1000,
        ) {
            let c = case(n, d, v, scale, seed);
            let want = run(&c, None);
            let (x, w) = (magnitude(&c.x), magnitude(&c.w));
            let tol = [x * w * d as f64, x * w * d as f64, x.max(w), x.max(w)].map(|m| 1e-6 * m);
            for (i_path, path) in PATHS.into_iter().enumerate() {
                let got = run(&c, Some((rows, path)));
                for (i, what) in ["per-token", "mean", "dx", "dw"].iter().enumerate() {
                    let err = max_abs(&got[i], &want[i]);
                    prop_assert!(err <= tol[i], "path {i_path}, {what}: error {err} > {}", tol[i]);
                }
            }
        }
    }

    // MODEL-14, MODEL-15: on both paths, at the scale of a GPT-2 head (unit-variance hidden states,
    // N(0, 0.02²) embeddings, a 2000-word vocabulary) everything agrees within
    // 1e-6 absolute.
    #[test]
    fn model_14_gpt2_scale_within_1e6() {
        let mut c = case(64, 32, 2000, 1.0, 11);
        c.w.iter_mut().for_each(|v| *v *= 0.02);
        let want = run(&c, None);
        for path in PATHS {
            let got = run(&c, Some((24, path)));
            for (what, (g, w)) in ["per-token", "mean", "dx", "dw"]
                .iter()
                .zip(got.iter().zip(&want))
            {
                let err = max_abs(g, w);
                assert!(err <= 1e-6, "{what}: error {err}");
            }
        }
    }

    // MODEL-14, MODEL-15: on both paths, without autodiff the same per-token values and mean come out,
    // and the fused op is identical run to run.
    #[test]
    fn model_14_inference_values_and_determinism() {
        let c = case(37, 16, 301, 1.5, 7);
        let (x, w, y) = tensors::<Inner>(&c);
        let (want, want_mean) = reference(x.clone(), w.clone(), y.clone());
        let (want, want_mean) = (values(want), values(want_mean));
        let cpu = |x, w, y, rows| on_cpu(x, w, y, rows).expect("the CPU backend");
        let paths: [fn(_, _, _, usize) -> LmLoss<Inner>; 2] = [cpu, fused];
        for path in paths {
            let out = path(x.clone(), w.clone(), y.clone(), 5);
            let again = path(x.clone(), w.clone(), y.clone(), 5);
            let (got, got_mean) = (values(out.per_token), values(out.mean));
            assert!(max_abs(&got, &want) <= 1e-5);
            assert!(max_abs(&got_mean, &want_mean) <= 1e-5);
            assert_eq!(got, values(again.per_token));
        }
    }

    // MODEL-14, MODEL-15: on both paths, logits 80 apart (softmax probabilities that underflow to 0)
    // still give finite, exact losses.
    #[test]
    fn model_14_extreme_logits_stay_finite() {
        let c = Case {
            x: vec![1.0, 0.0],
            w: vec![90.0, 0.0, 0.0, 1.0, -10.0, 0.0],
            y: vec![2],
            n: 1,
            d: 2,
            v: 3,
        };
        for path in PATHS {
            let [per_token, mean, dx, dw] = run(&c, Some((1, path)));
            // logsumexp(90, 0, −10) − (−10) = 100 + ln(1 + e⁻⁹⁰ + e⁻¹⁰⁰) = 100
            assert_eq!(per_token, vec![100.0]);
            assert_eq!(mean, vec![100.0]);
            assert!(dx.iter().chain(&dw).all(|g| g.is_finite()));
        }
    }
}
