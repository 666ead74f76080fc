//! Grouped expert dispatch: sort the (token, choice) assignments by expert, run
//! each expert once on its contiguous group, put the results back (MOE-7).
//!
//! Every assignment `a = t * top_k + j` (token `t`, its `j`-th choice) gets the
//! unique key `expert * A + (j * T + t)`. One `argsort` of the keys orders
//! assignments by expert and, within an expert, first choices before second
//! choices and then by token: a total order, so the result never depends on sort
//! stability or thread count. With a capacity `C`, the first `C` assignments of
//! each expert in that order are kept and the rest dropped (their output is 0).
//!
//! Only the per-expert counts (`n_experts` integers) travel to the host, to cut
//! the groups. Gathers use permutations (`select` with each index once), the
//! combine is a gather by the inverse permutation followed by a sum over the
//! `top_k` choices in a fixed order: no scatter-add anywhere, in the forward
//! pass or in its gradient.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

/// How a batch of assignments is grouped by expert.
#[derive(Debug, Clone)]
pub struct DispatchPlan<B: Backend> {
    /// Assignment ids `t * top_k + j` in dispatch order. `[A]`
    pub order: Tensor<B, 1, Int>,
    /// Dispatch position of each assignment (inverse of `order`). `[A]`
    pub inverse: Tensor<B, 1, Int>,
    /// Assignments per expert, before capacity. `[n_experts]`
    pub counts: Vec<usize>,
    /// Assignments per expert that are processed (`min(count, capacity)`). `[n_experts]`
    pub kept: Vec<usize>,
    /// Tokens in the batch.
    pub n_tokens: usize,
    /// Choices per token.
    pub top_k: usize,
}

/// How many entries of `idx` equal each of `0..n` (Burn has no `bincount`).
///
/// # Shapes
/// - `idx`: `[len]` → `[n]`
pub fn bincount<B: Backend>(idx: Tensor<B, 1, Int>, n: usize) -> Tensor<B, 1, Int> {
    let [len] = idx.dims();
    if n == 1 {
        // one_hot needs at least two classes; with one, everything is class 0.
        return Tensor::full([1], len as i64, &idx.device());
    }
    idx.one_hot::<2>(n) // [len, n]
        .sum_dim(0) // [1, n]
        .reshape([n])
}

/// Expert capacity for a batch: `ceil(factor * tokens * top_k / n_experts)`.
pub fn capacity(n_tokens: usize, top_k: usize, n_experts: usize, factor: f64) -> usize {
    (factor * (n_tokens * top_k) as f64 / n_experts as f64).ceil() as usize
}

impl<B: Backend> DispatchPlan<B> {
    /// Plans the dispatch of `expert_idx` (values in `0..n_experts`), keeping at
    /// most `capacity` assignments per expert when given.
    ///
    /// # Shapes
    /// - `expert_idx`: `[tokens, top_k]`
    pub fn new(expert_idx: Tensor<B, 2, Int>, n_experts: usize, capacity: Option<usize>) -> Self {
        let [n_tokens, top_k] = expert_idx.dims();
        let n_assign = n_tokens * top_k;
        let device = expert_idx.device();
        let experts = expert_idx.reshape([n_assign]); // [A]
        let token = Tensor::<B, 1, Int>::arange(0..n_tokens as i64, &device)
            .reshape([n_tokens, 1])
            .repeat_dim(1, top_k)
            .reshape([n_assign]); // [A]
        let choice = Tensor::<B, 1, Int>::arange(0..top_k as i64, &device)
            .reshape([1, top_k])
            .repeat_dim(0, n_tokens)
            .reshape([n_assign]); // [A]
        let priority = choice * (n_tokens as i64) + token; // [A], unique per assignment
        let key = experts.clone() * (n_assign as i64) + priority; // [A], unique
        let order = key.argsort(0); // [A]
        let inverse = order.clone().argsort(0); // [A]
        let counts: Vec<usize> = bincount(experts, n_experts)
            .into_data()
            .iter::<i64>()
            .map(|c| c as usize)
            .collect();
        let kept = counts
            .iter()
            .map(|&c| capacity.map_or(c, |cap| c.min(cap)))
            .collect();
        Self {
            order,
            inverse,
            counts,
            kept,
            n_tokens,
            top_k,
        }
    }

    /// Assignments dropped by the capacity limit.
    pub fn dropped(&self) -> usize {
        self.counts.iter().zip(&self.kept).map(|(c, k)| c - k).sum()
    }
}

/// Runs `expert(e, x_e)` once per expert on its group of rows and combines the
/// results weighted by `gate`: `y[t] = Σ_j gate[t, j] · expert_{idx[t, j]}(x[t])`,
/// with dropped assignments contributing 0.
///
/// # Shapes
/// - `x`: `[tokens, d_model]`, `gate`: `[tokens, top_k]` → `[tokens, d_model]`
/// - `expert` maps `[rows, d_model]` → `[rows, d_model]`, in `gate`'s dtype
///   (`x` may be in another: mixed precision, MODEL-19)
pub fn dispatch_combine<B, F>(
    x: Tensor<B, 2>,
    gate: Tensor<B, 2>,
    plan: &DispatchPlan<B>,
    mut expert: F,
) -> Tensor<B, 2>
where
    B: Backend,
    F: FnMut(usize, Tensor<B, 2>) -> Tensor<B, 2>,
{
    let [n_tokens, d_model] = x.dims();
    let top_k = plan.top_k;
    let n_assign = n_tokens * top_k;
    let x_assign = if top_k == 1 {
        x // [A = tokens, d_model]: no copy needed
    } else {
        x.unsqueeze_dim::<3>(1) // [tokens, 1, d_model]
            .repeat_dim(1, top_k) // [tokens, top_k, d_model]
            .reshape([n_assign, d_model]) // [A, d_model]
    };
    let x_sorted = x_assign.select(0, plan.order.clone()); // [A, d_model], grouped by expert
    let mut pieces = Vec::with_capacity(2 * plan.counts.len());
    let mut start = 0;
    for (e, (&count, &kept)) in plan.counts.iter().zip(&plan.kept).enumerate() {
        if kept > 0 {
            let group = x_sorted.clone().narrow(0, start, kept); // [kept, d_model]
            pieces.push(expert(e, group));
        }
        if count > kept {
            let zeros = (&x_sorted.device(), gate.dtype());
            pieces.push(Tensor::zeros([count - kept, d_model], zeros));
        }
        start += count;
    }
    let y_sorted = Tensor::cat(pieces, 0); // [A, d_model]
    let y_assign = y_sorted.select(0, plan.inverse.clone()); // [A, d_model], assignment order
    let weighted = y_assign * gate.reshape([n_assign, 1]); // [A, d_model]
    if top_k == 1 {
        return weighted; // [tokens, d_model]
    }
    weighted
        .reshape([n_tokens, top_k, d_model])
        .sum_dim(1) // [tokens, 1, d_model]
        .reshape([n_tokens, d_model])
}
