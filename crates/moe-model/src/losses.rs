//! Router losses: Switch load balancing and ST-MoE z-loss (MOE-8, MOE-9, MOE-10).
//!
//! - Load balancing `N · Σ_i f_i · P_i` ([Switch Transformer](https://arxiv.org/abs/2101.03961)):
//!   `f_i` the fraction of tokens whose top-1 expert is `i` (a constant for the
//!   gradient), `P_i` the mean clean router probability of `i`. 1 under
//!   perfectly uniform routing, `N` when all tokens go to one expert with p = 1.
//! - z-loss `mean_t(logsumexp(z_t)²)` ([ST-MoE](https://arxiv.org/abs/2202.08906)),
//!   with a max-shifted logsumexp (Burn has no `logsumexp` op).
//!
//! Both are computed per MoE layer and averaged over layers. For
//! `lb_scope = "step"` the [`LbAccumulator`] sums f over the micro-batches of
//! an optimizer step (global-batch balancing, Qiu et al. 2025,
//! <https://arxiv.org/abs/2501.11873>).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::dispatch::bincount;
use crate::routing::RoutingRecord;

/// Over which tokens the load-balancing statistics are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LbScope {
    /// Each micro-batch on its own.
    #[default]
    Micro,
    /// All micro-batches of an optimizer step (the global batch).
    Step,
}

/// `log Σ_j exp(z[t, j])`, shifted by the row maximum so it never overflows.
///
/// # Shapes
/// - `z`: `[tokens, n]` → `[tokens]`
pub fn logsumexp<B: Backend>(z: Tensor<B, 2>) -> Tensor<B, 1> {
    let [tokens, _] = z.dims();
    let max = z.clone().max_dim(1).detach(); // [tokens, 1]; shift is gradient-free
    let sum = (z - max.clone()).exp().sum_dim(1); // [tokens, 1]
    (sum.log() + max).reshape([tokens])
}

/// ST-MoE z-loss `mean(logsumexp(z)²)`. `[tokens, n_experts]` → `[1]`
pub fn z_loss<B: Backend>(logits: Tensor<B, 2>) -> Tensor<B, 1> {
    logsumexp(logits).powi_scalar(2).mean()
}

/// Switch load-balancing loss `N · Σ_i f_i · P_i`. `f`, `p`: `[n_experts]` → `[1]`
pub fn load_balance_loss<B: Backend>(f: Tensor<B, 1>, p: Tensor<B, 1>) -> Tensor<B, 1> {
    let [n_experts] = f.dims();
    (f.detach() * p).sum() * (n_experts as f64)
}

/// Tokens per expert as floats (a detached count). `[tokens]` → `[n_experts]`
pub fn expert_counts<B: Backend>(top1: Tensor<B, 1, Int>, n_experts: usize) -> Tensor<B, 1> {
    bincount(top1, n_experts).float()
}

/// Entropy of each row of `softmax(z)` in nats: `logsumexp(z) − Σ p·z`.
///
/// # Shapes
/// - `logits`, `probs`: `[tokens, n]` → `[tokens]`
pub fn entropy<B: Backend>(logits: Tensor<B, 2>, probs: Tensor<B, 2>) -> Tensor<B, 1> {
    let [tokens, _] = logits.dims();
    let expected = (probs * logits.clone()).sum_dim(1).reshape([tokens]); // [tokens]
    logsumexp(logits) - expected
}

/// Running sums of f and P for one layer, on the host.
#[derive(Debug, Clone)]
struct LayerSums {
    counts: Vec<f64>,   // [n_experts], top-1 token counts
    prob_sum: Vec<f64>, // [n_experts], Σ_t p_t
    tokens: usize,
}

/// Sums routing statistics over the micro-batches of one optimizer step, for
/// `lb_scope = "step"` (global-batch balancing, MOE-10).
///
/// The trainer pushes the records of a gradient-free routing pass over every
/// micro-batch of the step first, so that f is the whole step's; then each
/// micro-batch's [`LbAccumulator::micro_loss`] `N Σ_i f_i P_{m,i}` uses that
/// f with the micro-batch's own differentiable P. With equal micro-batches
/// the mean of the micro losses equals the step's loss `N Σ f_i P_i`, and so
/// do its accumulated gradients (P is linear in the micro-batches' P).
#[derive(Debug, Clone, Default)]
pub struct LbAccumulator {
    layers: Vec<LayerSums>,
}

impl LbAccumulator {
    /// An empty accumulator (start one per optimizer step).
    pub fn new() -> Self {
        Self { layers: Vec::new() }
    }

    /// Adds a micro-batch's routing records (one per MoE layer, same order
    /// each time); copies f and P to the host.
    pub fn push<B: Backend>(&mut self, records: &[RoutingRecord<B>]) {
        for (i, r) in records.iter().enumerate() {
            let n = r.n_tokens as f64;
            let counts: Vec<f64> = host(&r.f).into_iter().map(|f| f * n).collect();
            let prob_sum: Vec<f64> = host(&r.p_mean).into_iter().map(|p| p * n).collect();
            match self.layers.get_mut(i) {
                Some(s) => {
                    add_into(&mut s.counts, &counts);
                    add_into(&mut s.prob_sum, &prob_sum);
                    s.tokens += r.n_tokens;
                }
                None => self.layers.push(LayerSums {
                    counts,
                    prob_sum,
                    tokens: r.n_tokens,
                }),
            }
        }
    }

    /// f of layer `i` over everything pushed so far.
    pub fn f(&self, i: usize) -> Option<Vec<f64>> {
        let s = self.layers.get(i)?;
        let n = s.tokens.max(1) as f64;
        Some(s.counts.iter().map(|c| c / n).collect())
    }

    /// P of layer `i` over everything pushed so far.
    pub fn p(&self, i: usize) -> Option<Vec<f64>> {
        let s = self.layers.get(i)?;
        let n = s.tokens.max(1) as f64;
        Some(s.prob_sum.iter().map(|c| c / n).collect())
    }

    /// The load-balancing loss `N Σ f_i P_i` of everything pushed, averaged
    /// over layers.
    pub fn value(&self) -> Option<f64> {
        let per_layer: Vec<f64> = (0..self.layers.len())
            .filter_map(|i| {
                let (f, p) = (self.f(i)?, self.p(i)?);
                Some(f.len() as f64 * f.iter().zip(&p).map(|(f, p)| f * p).sum::<f64>())
            })
            .collect();
        (!per_layer.is_empty()).then(|| per_layer.iter().sum::<f64>() / per_layer.len() as f64)
    }

    /// The differentiable loss of one micro-batch, `N Σ_i f_i P_{m,i}` with
    /// f accumulated here and P the micro-batch's own, averaged over layers. `[1]`
    pub fn micro_loss<B: Backend>(&self, records: &[RoutingRecord<B>]) -> Option<Tensor<B, 1>> {
        let per_layer = records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let f: Vec<f32> = self.f(i)?.into_iter().map(|v| v as f32).collect();
                let f = Tensor::<B, 1>::from_floats(f.as_slice(), &r.p_mean.device());
                Some(load_balance_loss(f, r.p_mean.clone()))
            })
            .collect::<Vec<_>>();
        mean_of(per_layer)
    }
}

fn host<B: Backend>(t: &Tensor<B, 1>) -> Vec<f64> {
    t.to_data().iter::<f32>().map(f64::from).collect()
}

fn add_into(acc: &mut [f64], x: &[f64]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

/// Mean of `[1]` tensors; `None` for an empty list.
pub fn mean_of<B: Backend>(values: Vec<Tensor<B, 1>>) -> Option<Tensor<B, 1>> {
    let n = values.len();
    (n > 0).then(|| Tensor::cat(values, 0).sum() / (n as f64))
}
