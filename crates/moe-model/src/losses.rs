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
//! `lb_scope = "step"` the [`LbAccumulator`] sums f and P over the micro-batches
//! of an optimizer step.

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

/// Running sums of f and P for one layer (detached: for values and for the f of
/// step-scope balancing).
#[derive(Debug, Clone)]
struct LayerSums<B: Backend> {
    counts: Tensor<B, 1>,   // [n_experts], top-1 token counts
    prob_sum: Tensor<B, 1>, // [n_experts], Σ_t p_t
    tokens: usize,
}

/// Sums routing statistics over the micro-batches of one optimizer step.
#[derive(Debug, Clone, Default)]
pub struct LbAccumulator<B: Backend> {
    layers: Vec<LayerSums<B>>,
}

impl<B: Backend> LbAccumulator<B> {
    /// An empty accumulator (start one per optimizer step).
    pub fn new() -> Self {
        Self { layers: Vec::new() }
    }

    /// Adds a micro-batch's routing records (one per MoE layer, same order each time).
    pub fn push(&mut self, records: &[RoutingRecord<B>]) {
        for (i, r) in records.iter().enumerate() {
            let counts = r.f.clone() * (r.n_tokens as f64);
            let prob_sum = r.p_mean.clone().detach() * (r.n_tokens as f64);
            match self.layers.get_mut(i) {
                Some(s) => {
                    s.counts = s.counts.clone() + counts;
                    s.prob_sum = s.prob_sum.clone() + prob_sum;
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

    /// f of layer `i` over everything pushed so far. `[n_experts]`
    pub fn f(&self, i: usize) -> Option<Tensor<B, 1>> {
        let s = self.layers.get(i)?;
        Some(s.counts.clone() / (s.tokens.max(1) as f64))
    }

    /// P of layer `i` over everything pushed so far. `[n_experts]`
    pub fn p(&self, i: usize) -> Option<Tensor<B, 1>> {
        let s = self.layers.get(i)?;
        Some(s.prob_sum.clone() / (s.tokens.max(1) as f64))
    }

    /// The step's load-balancing loss value, averaged over layers (detached). `[1]`
    pub fn value(&self) -> Option<Tensor<B, 1>> {
        let per_layer = (0..self.layers.len())
            .filter_map(|i| Some(load_balance_loss(self.f(i)?, self.p(i)?)))
            .collect::<Vec<_>>();
        mean_of(per_layer)
    }

    /// The differentiable step-scope loss of one micro-batch: `N Σ f_i P_i`
    /// with f accumulated so far (push the micro-batch first) and P the
    /// micro-batch's own, averaged over layers. Dividing by the number of
    /// micro-batches like the LM loss makes the gradients sum to the step
    /// loss's gradient when f has settled. `[1]`
    pub fn micro_loss(&self, records: &[RoutingRecord<B>]) -> Option<Tensor<B, 1>> {
        let per_layer = records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some(load_balance_loss(self.f(i)?, r.p_mean.clone())))
            .collect::<Vec<_>>();
        mean_of(per_layer)
    }
}

/// Mean of `[1]` tensors; `None` for an empty list.
pub fn mean_of<B: Backend>(values: Vec<Tensor<B, 1>>) -> Option<Tensor<B, 1>> {
    let n = values.len();
    (n > 0).then(|| Tensor::cat(values, 0).sum() / (n as f64))
}
