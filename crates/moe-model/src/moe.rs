//! The Mixture-of-Experts layer that replaces a block's MLP (MOE-1 … MOE-12),
//! in the order a forward pass runs it:
//!
//! 1. **Router** — logits `z = x·W` in f32 whatever the model's dtype
//!    (MOE-2); routing decisions on `z + ε`, `ε ~ N(0, σ²)` drawn on the host
//!    from a seeded stream, σ annealed by [`noise_std_at`], while the clean
//!    `softmax(z)` feeds the losses and logs (MOE-3). Top-1 gates are
//!    `1 + (p_e − stopgrad(p_e))`: exactly 1 forward, the gradient of
//!    `p_e` (Switch with a straight-through estimator, MOE-4); top-k > 1
//!    renormalises the k probabilities (MOE-5). Probabilities are a softmax
//!    over all experts, never over the chosen ones only (that would make
//!    the top-1 gate a constant with zero gradient).
//! 2. **Dispatch** (MOE-7) — each assignment `a = t·top_k + j` (token `t`,
//!    choice `j`) gets the unique key `expert·A + (j·T + t)`; one `argsort`
//!    orders them by expert, first choices before second, then by token: a
//!    total order, so nothing depends on sort stability or thread count.
//!    Each expert runs once on its contiguous group; with a capacity `C`
//!    only the first `C` of each expert are kept (MOE-6). Only the group
//!    sizes travel to the host. The combine is a gather by the inverse
//!    permutation and a fixed-order sum over the choices: no scatter-add.
//! 3. **Losses** — Switch load balancing `N·Σ_i f_i·P_i` (f the top-1
//!    share, a constant for the gradient; P the mean clean probability)
//!    and the ST-MoE z-loss `mean_t(logsumexp(z_t)²)` (MOE-8, MOE-9), per
//!    layer, averaged over layers; over a whole optimizer step with
//!    [`LbAccumulator`] (global-batch balancing, MOE-10).
//! 4. **Record** — a [`LayerRouting`] per layer returned with the output
//!    (MOE-11), never collected through globals.
//!
//! Experts are the dense [`Mlp`], so upcycling copies the dense MLP into
//! each (MOE-12) and an upcycled model at zero noise equals its parent.
//!
//! Papers: Switch Transformer <https://arxiv.org/abs/2101.03961>, ST-MoE
//! <https://arxiv.org/abs/2202.08906>, global-batch balancing (Qiu et al.
//! 2025) <https://arxiv.org/abs/2501.11873>.

use std::collections::BTreeMap;
use std::sync::Arc;

use burn::module::{Module, Param, ParamId};
use burn::nn::Linear;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::config::MoeConfig;
use crate::init;
use crate::mlp::Mlp;
use crate::ops::cpu::is_cpu_backend;
pub use crate::ops::{combine_rows, dispatch_rows, grouped_mlp};
use crate::precision::Precision;
use crate::seeds::{NormalRng, Stream};

/// Standard deviation of a fresh router's weights (GPT-2's initializer range).
pub const ROUTER_INIT_STD: f64 = 0.02;

/// A Mixture-of-Experts feed-forward layer.
#[derive(Module, Debug)]
pub struct MoeLayer<B: Backend> {
    /// `d_model → n_experts` router.
    pub router: Router<B>,
    /// The experts, each a GPT-2 MLP.
    pub experts: Vec<Mlp<B>>,
    /// Experts per token.
    pub top_k: usize,
    /// Capacity factor, `None` for dropless.
    pub capacity_factor: Option<f64>,
    /// Rows each expert group is padded to a multiple of (MOE-16); `None`
    /// for the backend's default ([`default_group_alignment`]).
    pub group_alignment: Option<usize>,
    /// Block index (for the routing record).
    pub layer: usize,
}

impl<B: Backend> MoeLayer<B> {
    /// Fresh experts (GPT-2 init) and router, from `rng`.
    pub fn init(
        rng: &mut NormalRng,
        cfg: &MoeConfig,
        layer: usize,
        d_model: usize,
        d_ff: usize,
        proj_std: f64,
        device: &B::Device,
    ) -> Self {
        let router = Router::init(rng, d_model, cfg.n_experts, ROUTER_INIT_STD, device);
        let experts = (0..cfg.n_experts)
            .map(|_| Mlp::init(rng, d_model, d_ff, proj_std, device))
            .collect();
        Self::from_parts(router, experts, cfg, layer)
    }

    /// Upcycling (MOE-12): every expert a copy of `dense` plus N(0, noise_std²)
    /// noise, router N(0, 0.02²); all draws from `seed`, layer and expert index.
    pub fn upcycle(
        dense: &Mlp<B>,
        cfg: &MoeConfig,
        layer: usize,
        noise_std: f64,
        seed: u64,
    ) -> Self {
        let [d_model, _] = dense.c_fc.weight.dims();
        let device = dense.c_fc.weight.device();
        let mut router_rng = NormalRng::for_stream(seed, Stream::UpcycledRouter(layer));
        let router = Router::init(
            &mut router_rng,
            d_model,
            cfg.n_experts,
            ROUTER_INIT_STD,
            &device,
        );
        let experts = (0..cfg.n_experts)
            .map(|expert| {
                let mut rng = NormalRng::for_stream(seed, Stream::UpcycledExpert { layer, expert });
                dense.perturbed_copy(&mut rng, noise_std)
            })
            .collect();
        Self::from_parts(router, experts, cfg, layer)
    }

    /// Assembles a layer from a router and experts (used by checkpoint loading).
    pub fn from_parts(
        router: Router<B>,
        experts: Vec<Mlp<B>>,
        cfg: &MoeConfig,
        layer: usize,
    ) -> Self {
        Self {
            router,
            experts,
            top_k: cfg.top_k,
            capacity_factor: cfg.capacity_factor,
            group_alignment: cfg.group_alignment,
            layer,
        }
    }

    /// Number of experts.
    pub fn n_experts(&self) -> usize {
        self.experts.len()
    }

    /// Routes, dispatches and combines; returns the output and the routing
    /// record. The router sees `x` as it is; the experts run in
    /// `precision`'s dtype and their outputs are cast back to `x`'s before
    /// the gate multiplies them (MODEL-19).
    ///
    /// # Shapes
    /// - `x`: `[tokens, d_model]` (tokens ≥ 1) → `[tokens, d_model]`
    pub fn forward(
        &self,
        x: Tensor<B, 2>,
        noise: impl Into<RouterNoise>,
        precision: Precision,
    ) -> (Tensor<B, 2>, LayerRouting<B>) {
        self.forward_masked(x, noise, precision, &[])
    }

    /// [`forward`](Self::forward) with the experts in `disabled` never
    /// chosen (MOE-14, eval only): see [`Router::route_masked`]. An empty
    /// `disabled` is `forward` exactly.
    ///
    /// # Shapes
    /// - `x`: `[tokens, d_model]` (tokens ≥ 1) → `[tokens, d_model]`
    pub fn forward_masked(
        &self,
        x: Tensor<B, 2>,
        noise: impl Into<RouterNoise>,
        precision: Precision,
        disabled: &[usize],
    ) -> (Tensor<B, 2>, LayerRouting<B>) {
        let [n_tokens, _] = x.dims();
        let n_experts = self.n_experts();
        let routing = self.router.route_masked(
            x.clone(),
            self.top_k,
            noise.into(),
            Stream::RouterNoise(self.layer),
            disabled,
        );
        let cap = self
            .capacity_factor
            .map(|cf| capacity(n_tokens, self.top_k, n_experts, cf));
        let alignment = self
            .group_alignment
            .unwrap_or_else(default_group_alignment::<B>);
        let plan = DispatchPlan::aligned(routing.expert_idx.clone(), n_experts, cap, alignment);
        let out_dtype = x.dtype();
        let gate = routing.gate.clone().cast(out_dtype); // [tokens, top_k]
        let y = dispatch_combine_grouped(precision.compute(x), gate, &plan, |x_sorted| {
            grouped_mlp(&self.experts, x_sorted, &plan).cast(out_dtype)
        });

        let top1 = routing
            .expert_idx
            .clone()
            .narrow(1, 0, 1)
            .reshape([n_tokens]); // [tokens]
        let f = expert_counts(top1, n_experts) / (n_tokens as f64); // [n_experts]
        let p_mean = routing.probs.clone().mean_dim(0).reshape([n_experts]); // [n_experts]
        let record = LayerRouting {
            layer: self.layer,
            entropy: entropy(routing.logits.clone(), routing.probs.clone()).detach(),
            lb_loss: load_balance_loss(f.clone(), p_mean.clone()),
            z_loss: z_loss(routing.logits),
            expert_idx: routing.expert_idx,
            gate_prob: routing.gate_prob,
            f,
            p_mean,
            tokens_per_expert: plan.counts.clone(),
            dropped: plan.dropped(),
            n_tokens,
        };
        (y, record)
    }
}

// ---------------------------------------------------------------------------
// 1. Router
// ---------------------------------------------------------------------------

/// The router of one MoE layer.
#[derive(Module, Debug)]
pub struct Router<B: Backend> {
    /// `[d_model, n_experts]`, no bias (saved as `h.{i}.mlp.router.weight`).
    pub linear: Linear<B>,
    /// The auxiliary-loss-free balancing bias (MOE-15): added to the
    /// logits for choosing the top-k only, never to the probabilities.
    /// Model state without a gradient, changed by the trainer after each
    /// optimizer step ([`Router::update_expert_bias`]); saved as
    /// `h.{i}.mlp.router.expert_bias` `[n_experts]`. `None` for a router
    /// that does not balance this way.
    pub expert_bias: Option<Param<Tensor<B, 1>>>,
}

/// Router logit noise for one forward pass: its std and the seed of its draws.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RouterNoise {
    /// Std of the Gaussian noise (0 = none).
    pub std: f64,
    /// Seed of the host-side noise stream.
    pub seed: u64,
}

impl From<f64> for RouterNoise {
    /// Noise of std `std` with seed 0.
    fn from(std: f64) -> Self {
        Self { std, seed: 0 }
    }
}

/// What the router decided for a batch of tokens.
#[derive(Debug, Clone)]
pub struct RouterChoice<B: Backend> {
    /// Clean router logits, f32. `[tokens, n_experts]`
    pub logits: Tensor<B, 2>,
    /// Clean probabilities `softmax(logits)`. `[tokens, n_experts]`
    pub probs: Tensor<B, 2>,
    /// Chosen experts, best first. `[tokens, top_k]`
    pub expert_idx: Tensor<B, 2, Int>,
    /// Routing probability of each chosen expert (from the noisy logits when
    /// noise is on), detached. `[tokens, top_k]`
    pub gate_prob: Tensor<B, 2>,
    /// Combine weights (straight-through for top-1, renormalized for top-k). `[tokens, top_k]`
    pub gate: Tensor<B, 2>,
}

impl<B: Backend> Router<B> {
    /// N(0, std²) initialisation of the router weight.
    pub fn init(
        rng: &mut NormalRng,
        d_model: usize,
        n_experts: usize,
        std: f64,
        device: &B::Device,
    ) -> Self {
        Self {
            linear: init::linear(rng, d_model, n_experts, std, false, device),
            expert_bias: None,
        }
    }

    /// This router with a balancing bias of zeros (MOE-15), unless it has one.
    pub fn with_zero_bias(mut self) -> Self {
        if self.expert_bias.is_none() {
            let device = self.linear.weight.device();
            let zeros = Tensor::<B, 1>::zeros([self.n_experts()], &device);
            self.expert_bias = Some(Param::initialized(ParamId::new(), zeros));
        }
        self
    }

    /// The balancing bias on the host (`None` without one).
    pub fn bias_values(&self) -> Option<Vec<f32>> {
        self.expert_bias
            .as_ref()
            .map(|b| b.val().into_data().iter::<f32>().collect())
    }

    /// One update of the balancing bias from the assignments each expert
    /// received over an optimizer step's whole batch (MOE-15):
    /// `b_i ← b_i + rate · sign(mean load − load_i)`, in f32 on the host
    /// (the same bits on every backend). No-op without a bias.
    pub fn update_expert_bias(mut self, load: &[u64], rate: f64) -> Self {
        let Some(values) = self.bias_values() else {
            return self;
        };
        let n = values.len();
        assert_eq!(load.len(), n, "one load per expert");
        let mean = load.iter().sum::<u64>() as f64 / n as f64;
        let rate = rate as f32;
        let updated: Vec<f32> = values
            .iter()
            .zip(load)
            .map(|(&b, &l)| match (l as f64).partial_cmp(&mean) {
                Some(std::cmp::Ordering::Less) => b + rate,
                Some(std::cmp::Ordering::Greater) => b - rate,
                _ => b,
            })
            .collect();
        // Same parameter id, new values, still without a gradient.
        self.expert_bias = self
            .expert_bias
            .map(|p| p.map(|b| Tensor::from_data(TensorData::new(updated, [n]), &b.device())));
        self
    }

    /// Number of experts routed over.
    pub fn n_experts(&self) -> usize {
        self.linear.weight.dims()[1]
    }

    /// Clean router logits in f32.
    ///
    /// # Shapes
    /// - `x`: `[tokens, d_model]` → `[tokens, n_experts]`
    pub fn logits(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let x = x.cast(FloatDType::F32); // [tokens, d_model]
        let w = self.linear.weight.val().cast(FloatDType::F32); // [d_model, n_experts]
        x.matmul(w)
    }

    /// Routes each token to `top_k` experts. With `noise.std > 0` the logit
    /// noise is drawn on the host from a ChaCha8 stream of (`noise.seed`,
    /// `stream`), never from the backend's global RNG, so concurrent models
    /// cannot disturb each other and a seed gives the same noise on every
    /// backend (MOE-3).
    ///
    /// # Shapes
    /// - `x`: `[tokens, d_model]`
    pub fn route(
        &self,
        x: Tensor<B, 2>,
        top_k: usize,
        noise: RouterNoise,
        stream: Stream,
    ) -> RouterChoice<B> {
        self.route_masked(x, top_k, noise, stream, &[])
    }

    /// [`route`](Self::route) with the experts in `disabled` masked out
    /// (MOE-14): their logits are set to [`MASKED_LOGIT`] before the noise,
    /// the softmax and the top-k, so they are never chosen while another
    /// expert is left, their tokens take their next choice, and the
    /// probabilities (gates, losses, entropy) are the router's softmax over
    /// the remaining experts. An empty `disabled` changes nothing: the logits
    /// are not touched. `disabled` should leave at least `top_k` experts;
    /// a choice beyond the remaining ones gets probability 0 (and weight 0).
    ///
    /// # Shapes
    /// - `x`: `[tokens, d_model]`
    pub fn route_masked(
        &self,
        x: Tensor<B, 2>,
        top_k: usize,
        noise: RouterNoise,
        stream: Stream,
        disabled: &[usize],
    ) -> RouterChoice<B> {
        let logits = mask_logits(self.logits(x), disabled); // [tokens, n_experts]
        let noise = (noise.std > 0.0).then(|| {
            let [tokens, n_experts] = logits.dims();
            let values =
                NormalRng::for_stream(noise.seed, stream).samples(tokens * n_experts, noise.std);
            Tensor::<B, 2>::from_data(
                TensorData::new(values, [tokens, n_experts]),
                &logits.device(),
            )
        });
        let bias = self.expert_bias.as_ref().map(|b| b.val().detach());
        route_logits_biased(logits, noise, bias, top_k)
    }
}

/// The logit a masked expert gets (MOE-14): −∞ in effect (`exp` of it minus
/// any real logit is exactly 0 in f32), but finite, so that the entropy's
/// `p · z` is `0 · z = 0` rather than `0 · ∞ = NaN`.
pub const MASKED_LOGIT: f32 = -1.0e30;

/// `logits` with the columns in `disabled` set to [`MASKED_LOGIT`]; `logits`
/// itself when `disabled` is empty. Experts beyond `n_experts` are ignored.
///
/// # Shapes
/// - `logits`: `[tokens, n_experts]` → `[tokens, n_experts]`
pub fn mask_logits<B: Backend>(logits: Tensor<B, 2>, disabled: &[usize]) -> Tensor<B, 2> {
    if disabled.is_empty() {
        return logits;
    }
    let [tokens, n_experts] = logits.dims();
    let flags: Vec<f32> = (0..n_experts)
        .map(|e| if disabled.contains(&e) { 1.0 } else { 0.0 })
        .collect();
    let masked = Tensor::<B, 1>::from_floats(flags.as_slice(), &logits.device())
        .reshape([1, n_experts])
        .repeat_dim(0, tokens) // [tokens, n_experts], 1 where masked
        .equal_elem(1.0); // [tokens, n_experts], bool
    logits.mask_fill(masked, MASKED_LOGIT)
}

/// Which experts are disabled in which MoE block, for an eval-only forward
/// pass (MOE-14). Empty (the default) disables nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpertMask {
    disabled: BTreeMap<usize, Vec<usize>>,
}

impl ExpertMask {
    /// A mask disabling `experts` in block `layer`.
    pub fn layer(layer: usize, experts: impl IntoIterator<Item = usize>) -> Self {
        let mut mask = Self::default();
        mask.disable(layer, experts);
        mask
    }

    /// Also disables `experts` in block `layer`.
    pub fn disable(&mut self, layer: usize, experts: impl IntoIterator<Item = usize>) {
        let set = self.disabled.entry(layer).or_default();
        for e in experts {
            if !set.contains(&e) {
                set.push(e);
            }
        }
        set.sort_unstable();
    }

    /// The experts disabled in block `layer` (empty when none).
    pub fn disabled_in(&self, layer: usize) -> &[usize] {
        self.disabled.get(&layer).map_or(&[], Vec::as_slice)
    }

    /// Whether nothing is disabled.
    pub fn is_empty(&self) -> bool {
        self.disabled.values().all(Vec::is_empty)
    }
}

/// Routing from given logits and optional additive noise (the pure core of
/// [`Router::route`], also used by the tests).
///
/// # Shapes
/// - `logits`, `noise`: `[tokens, n_experts]`
pub fn route_logits<B: Backend>(
    logits: Tensor<B, 2>,
    noise: Option<Tensor<B, 2>>,
    top_k: usize,
) -> RouterChoice<B> {
    route_logits_biased(logits, noise, None, top_k)
}

/// [`route_logits`] with an optional balancing bias (MOE-15): the top-k are
/// chosen by `logits + noise + bias`, while the probabilities, gates and
/// losses are those of `logits + noise` (and the clean `logits`), as
/// without the bias. `None` is `route_logits` exactly.
///
/// # Shapes
/// - `logits`, `noise`: `[tokens, n_experts]`; `bias`: `[n_experts]`
pub fn route_logits_biased<B: Backend>(
    logits: Tensor<B, 2>,
    noise: Option<Tensor<B, 2>>,
    bias: Option<Tensor<B, 1>>,
    top_k: usize,
) -> RouterChoice<B> {
    let probs = softmax(logits.clone(), 1); // [tokens, n_experts]
    let noisy = noise.map(|noise| logits.clone() + noise);
    let routing_probs = match &noisy {
        Some(noisy) => softmax(noisy.clone(), 1),
        None => probs.clone(),
    };
    // Indices from detached values; the gather below carries the gradient.
    let (_, expert_idx) = match bias {
        None => routing_probs.clone().detach().topk_with_indices(top_k, 1),
        Some(bias) => {
            let n_experts = bias.dims()[0];
            let scores =
                noisy.unwrap_or_else(|| logits.clone()).detach() + bias.reshape([1, n_experts]); // [tokens, n_experts]
            scores.topk_with_indices(top_k, 1)
        }
    }; // [tokens, top_k]
    let chosen = routing_probs.gather(1, expert_idx.clone()); // [tokens, top_k]
    let gate_prob = chosen.clone().detach();
    let gate = if top_k == 1 {
        // (p − stopgrad(p)) is exactly 0 in the forward pass, so the gate is exactly 1.
        (chosen.clone() - chosen.detach()) + 1.0
    } else {
        chosen.clone() / chosen.sum_dim(1) // [tokens, top_k]
    };
    RouterChoice {
        logits,
        probs,
        expert_idx,
        gate_prob,
        gate,
    }
}

/// Router noise std at `step` of `total_steps`: `std0` falling linearly to 0 at
/// `anneal_fraction * total_steps`, 0 afterwards (MOE-3).
pub fn noise_std_at(step: u64, total_steps: u64, std0: f64, anneal_fraction: f64) -> f64 {
    let end = anneal_fraction * total_steps as f64;
    if end <= 0.0 || step as f64 >= end {
        return 0.0;
    }
    std0 * (1.0 - step as f64 / end)
}

// ---------------------------------------------------------------------------
// 2. Dispatch
// ---------------------------------------------------------------------------

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

/// The default group alignment (MOE-16) of the GPU backends: a multiple of
/// the matmul tiles, so a run meets at most `tokens / 128` group shapes.
pub const GPU_GROUP_ALIGNMENT: usize = 128;

/// The group alignment a layer without one uses on backend `B`: 1 (no
/// padding) on the CPU backends, [`GPU_GROUP_ALIGNMENT`] elsewhere.
pub fn default_group_alignment<B: Backend>() -> usize {
    if is_cpu_backend::<B>() {
        1
    } else {
        GPU_GROUP_ALIGNMENT
    }
}

/// Marks an assignment without a row (dropped by the capacity limit) or a
/// row without an assignment (padding) in a [`DispatchPlan`].
pub const NO_ROW: u32 = u32::MAX;

/// How a batch's assignments are laid out by expert (MOE-7), on the host.
///
/// Assignment `a = t·top_k + j` (token `t`, choice `j`) gets a row of the
/// expert-sorted buffer: the experts' groups one after another, each in the
/// order first choices before second choices, then by token (a counting
/// sort: a total order, so nothing depends on sort stability or thread
/// count). With a capacity `C` only the first `C` of each expert get a row
/// (MOE-6). Each non-empty group is padded with rows holding no assignment
/// up to a multiple of `alignment` (MOE-16), so a backend that compiles a
/// kernel per shape meets few shapes; an empty group takes no rows and its
/// expert is not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchPlan {
    /// Assignments per expert, before capacity. `[n_experts]`
    pub counts: Vec<usize>,
    /// Assignments per expert that are processed (`min(count, capacity)`). `[n_experts]`
    pub kept: Vec<usize>,
    /// Rows of each expert's group: `kept` rounded up to a multiple of
    /// `alignment` (0 for an empty group). `[n_experts]`
    pub group_rows: Vec<usize>,
    /// The padding multiple of the groups (1: no padding).
    pub alignment: usize,
    /// Tokens in the batch.
    pub n_tokens: usize,
    /// Choices per token.
    pub top_k: usize,
    /// The row of each assignment, [`NO_ROW`] when dropped. `[A]`
    row_of_assignment: Arc<[u32]>,
    /// The assignment in each row, [`NO_ROW`] for padding. `[rows]`
    assignment_of_row: Arc<[u32]>,
}

impl DispatchPlan {
    /// Plans the dispatch of `expert_idx` (values in `0..n_experts`), keeping
    /// at most `capacity` assignments per expert when given, without padding.
    /// Reads the expert ids to the host (one device→host copy per MoE layer:
    /// the group sizes decide the shapes the experts run at).
    ///
    /// # Shapes
    /// - `expert_idx`: `[tokens, top_k]`
    pub fn new<B: Backend>(
        expert_idx: Tensor<B, 2, Int>,
        n_experts: usize,
        capacity: Option<usize>,
    ) -> Self {
        Self::aligned(expert_idx, n_experts, capacity, 1)
    }

    /// [`new`](Self::new) with each group padded to a multiple of
    /// `alignment` rows (MOE-16).
    ///
    /// # Shapes
    /// - `expert_idx`: `[tokens, top_k]`
    pub fn aligned<B: Backend>(
        expert_idx: Tensor<B, 2, Int>,
        n_experts: usize,
        capacity: Option<usize>,
        alignment: usize,
    ) -> Self {
        let [n_tokens, top_k] = expert_idx.dims();
        let ids: Vec<usize> = expert_idx
            .into_data()
            .iter::<i64>()
            .map(|e| usize::try_from(e).unwrap_or(usize::MAX))
            .collect();
        Self::from_ids(&ids, [n_tokens, top_k], n_experts, capacity, alignment)
    }

    /// The plan of host expert ids `ids` (`[tokens, top_k]` row-major).
    ///
    /// # Panics
    /// When an id is not below `n_experts`, `ids` is not `tokens · top_k`
    /// long, or `alignment` is 0.
    pub fn from_ids(
        ids: &[usize],
        [n_tokens, top_k]: [usize; 2],
        n_experts: usize,
        capacity: Option<usize>,
        alignment: usize,
    ) -> Self {
        assert_eq!(ids.len(), n_tokens * top_k, "one expert id per assignment");
        assert!(alignment > 0, "the group alignment is at least 1");
        let mut counts = vec![0usize; n_experts];
        for &e in ids {
            assert!(e < n_experts, "expert id {e} out of range 0..{n_experts}");
            counts[e] += 1;
        }
        let kept: Vec<usize> = counts
            .iter()
            .map(|&c| capacity.map_or(c, |cap| c.min(cap)))
            .collect();
        let group_rows: Vec<usize> = kept
            .iter()
            .map(|&k| k.next_multiple_of(alignment))
            .collect();
        let mut next_row: Vec<usize> = group_rows
            .iter()
            .scan(0, |start, &rows| {
                let s = *start;
                *start += rows;
                Some(s)
            })
            .collect();
        let group_end: Vec<usize> = next_row.iter().zip(&kept).map(|(s, k)| s + k).collect();
        let rows: usize = group_rows.iter().sum();
        let mut row_of_assignment = vec![NO_ROW; ids.len()];
        let mut assignment_of_row = vec![NO_ROW; rows];
        for j in 0..top_k {
            for t in 0..n_tokens {
                let a = t * top_k + j;
                let e = ids[a];
                if next_row[e] < group_end[e] {
                    row_of_assignment[a] = next_row[e] as u32;
                    assignment_of_row[next_row[e]] = a as u32;
                    next_row[e] += 1;
                }
            }
        }
        Self {
            counts,
            kept,
            group_rows,
            alignment,
            n_tokens,
            top_k,
            row_of_assignment: row_of_assignment.into(),
            assignment_of_row: assignment_of_row.into(),
        }
    }

    /// Assignments dropped by the capacity limit.
    pub fn dropped(&self) -> usize {
        self.counts.iter().zip(&self.kept).map(|(c, k)| c - k).sum()
    }

    /// Rows of the expert-sorted buffer (kept assignments and padding).
    pub fn rows(&self) -> usize {
        self.assignment_of_row.len()
    }

    /// The row of each assignment `t·top_k + j`, [`NO_ROW`] when dropped.
    pub fn row_of_assignment(&self) -> &[u32] {
        &self.row_of_assignment
    }

    /// The assignment in each row, [`NO_ROW`] for padding.
    pub fn assignment_of_row(&self) -> &[u32] {
        &self.assignment_of_row
    }

    /// The non-empty groups as `(expert, first row, rows)`, in row order.
    pub fn groups(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        self.group_rows
            .iter()
            .enumerate()
            .scan(0, |start, (e, &rows)| {
                let s = *start;
                *start += rows;
                Some((e, s, rows))
            })
            .filter(|&(_, _, rows)| rows > 0)
    }
}

/// Runs `expert(e, x_e)` once per expert on its group of rows and combines the
/// results weighted by `gate`: `y[t] = Σ_j gate[t, j] · expert_{idx[t, j]}(x[t])`,
/// with dropped assignments contributing 0. Padding rows (MOE-16) reach the
/// experts as zeros and their outputs are never read.
///
/// # Shapes
/// - `x`: `[tokens, d_model]`, `gate`: `[tokens, top_k]` → `[tokens, d_model]`
/// - `expert` maps `[rows, d_model]` → `[rows, d_model]`, in `gate`'s dtype
///   (`x` may be in another: mixed precision, MODEL-19)
pub fn dispatch_combine<B, F>(
    x: Tensor<B, 2>,
    gate: Tensor<B, 2>,
    plan: &DispatchPlan,
    mut expert: F,
) -> Tensor<B, 2>
where
    B: Backend,
    F: FnMut(usize, Tensor<B, 2>) -> Tensor<B, 2>,
{
    dispatch_combine_grouped(x, gate, plan, |xs| by_groups(xs, plan, &mut expert))
}

/// Dispatch (MOE-7): `x`'s rows gathered into the expert-sorted buffer,
/// `experts` run on the whole buffer at once, and the combine by the gate.
/// On the CPU backend dispatch and combine are kernels with a hand-written
/// backward (MODEL-20), elsewhere generic gathers.
///
/// # Shapes
/// - `x`: `[tokens, d_model]`, `gate`: `[tokens, top_k]` → `[tokens, d_model]`
/// - `experts` maps the sorted `[plan.rows(), d_model]` to the same shape,
///   in `gate`'s dtype
pub fn dispatch_combine_grouped<B: Backend>(
    x: Tensor<B, 2>,
    gate: Tensor<B, 2>,
    plan: &DispatchPlan,
    experts: impl FnOnce(Tensor<B, 2>) -> Tensor<B, 2>,
) -> Tensor<B, 2> {
    let x_sorted = dispatch_rows(x, plan); // [rows, d_model]
    let y_sorted = experts(x_sorted); // [rows, d_model]
    combine_rows(y_sorted, gate, plan) // [tokens, d_model]
}

/// `expert(e, group)` on each non-empty group of the sorted rows, the
/// results concatenated back in row order (the generic grouping: one
/// `narrow` per group, one `cat`).
///
/// # Shapes
/// - `x_sorted`: `[plan.rows(), d]` → `[plan.rows(), d]`
pub fn by_groups<B, F>(x_sorted: Tensor<B, 2>, plan: &DispatchPlan, mut expert: F) -> Tensor<B, 2>
where
    B: Backend,
    F: FnMut(usize, Tensor<B, 2>) -> Tensor<B, 2>,
{
    let pieces: Vec<Tensor<B, 2>> = plan
        .groups()
        .map(|(e, start, rows)| expert(e, x_sorted.clone().narrow(0, start, rows)))
        .collect();
    if pieces.len() == 1 {
        return pieces.into_iter().next().expect("one piece");
    }
    Tensor::cat(pieces, 0)
}

// ---------------------------------------------------------------------------
// 3. Losses
// ---------------------------------------------------------------------------

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
    pub fn push<B: Backend>(&mut self, records: &[LayerRouting<B>]) {
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
    pub fn micro_loss<B: Backend>(&self, records: &[LayerRouting<B>]) -> Option<Tensor<B, 1>> {
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

// ---------------------------------------------------------------------------
// 4. The routing record
// ---------------------------------------------------------------------------

/// What one MoE layer did with one batch.
#[derive(Debug, Clone)]
pub struct LayerRouting<B: Backend> {
    /// Block index of the layer.
    pub layer: usize,
    /// Chosen experts, best first. `[tokens, top_k]`
    pub expert_idx: Tensor<B, 2, Int>,
    /// Router probability of each chosen expert (detached). `[tokens, top_k]`
    pub gate_prob: Tensor<B, 2>,
    /// Entropy of the clean router distribution, nats (detached). `[tokens]`
    pub entropy: Tensor<B, 1>,
    /// f: fraction of tokens whose top-1 is each expert (detached). `[n_experts]`
    pub f: Tensor<B, 1>,
    /// P: mean clean router probability of each expert (differentiable). `[n_experts]`
    pub p_mean: Tensor<B, 1>,
    /// Load-balancing loss of this layer, `N Σ f P`. `[1]`
    pub lb_loss: Tensor<B, 1>,
    /// z-loss of this layer. `[1]`
    pub z_loss: Tensor<B, 1>,
    /// Assignments per expert before capacity (all `top_k` choices).
    pub tokens_per_expert: Vec<usize>,
    /// Assignments dropped by the capacity limit (0 when dropless).
    pub dropped: usize,
    /// Tokens routed (batch × sequence).
    pub n_tokens: usize,
}

/// A [`LayerRouting`] copied to the host, serializable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostLayerRouting {
    /// Block index of the layer.
    pub layer: usize,
    /// Chosen experts per token, best first.
    pub expert_idx: Vec<Vec<u32>>,
    /// Router probability of each chosen expert.
    pub gate_prob: Vec<Vec<f32>>,
    /// Clean router entropy per token (nats).
    pub entropy: Vec<f32>,
    /// Top-1 fraction per expert.
    pub f: Vec<f32>,
    /// Mean clean probability per expert.
    pub p_mean: Vec<f32>,
    /// Load-balancing loss.
    pub lb_loss: f32,
    /// z-loss.
    pub z_loss: f32,
    /// Assignments per expert before capacity.
    pub tokens_per_expert: Vec<usize>,
    /// Dropped assignments.
    pub dropped: usize,
}

impl<B: Backend> LayerRouting<B> {
    /// Copies the record to the host (a device sync; for logging, not the hot path).
    pub fn to_host(&self) -> HostLayerRouting {
        let [_, top_k] = self.expert_idx.dims();
        let rows = |flat: Vec<f32>| flat.chunks(top_k.max(1)).map(<[f32]>::to_vec).collect();
        let idx: Vec<u32> = self
            .expert_idx
            .to_data()
            .iter::<i64>()
            .map(|v| v as u32)
            .collect();
        HostLayerRouting {
            layer: self.layer,
            expert_idx: idx.chunks(top_k.max(1)).map(<[u32]>::to_vec).collect(),
            gate_prob: rows(floats(&self.gate_prob.to_data())),
            entropy: floats(&self.entropy.to_data()),
            f: floats(&self.f.to_data()),
            p_mean: floats(&self.p_mean.to_data()),
            lb_loss: floats(&self.lb_loss.to_data())
                .first()
                .copied()
                .unwrap_or(f32::NAN),
            z_loss: floats(&self.z_loss.to_data())
                .first()
                .copied()
                .unwrap_or(f32::NAN),
            tokens_per_expert: self.tokens_per_expert.clone(),
            dropped: self.dropped,
        }
    }
}

fn floats(data: &burn::tensor::TensorData) -> Vec<f32> {
    data.iter::<f32>().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // MOE-3
    #[test]
    fn moe_3_noise_anneals_linearly_to_zero() {
        assert_eq!(noise_std_at(0, 100, 0.1, 0.25), 0.1);
        assert!((noise_std_at(10, 100, 0.1, 0.25) - 0.06).abs() < 1e-12);
        assert_eq!(noise_std_at(25, 100, 0.1, 0.25), 0.0);
        assert_eq!(noise_std_at(90, 100, 0.1, 0.25), 0.0);
        assert_eq!(noise_std_at(0, 100, 0.1, 0.0), 0.0);
    }

    // MOE-3: noise comes from the given seed, not from a global RNG.
    #[test]
    fn moe_3_noise_is_a_function_of_its_seed() {
        type B = crate::CpuBackend;
        let device = Default::default();
        let mut rng = NormalRng::new(1, 0);
        let router = Router::<B>::init(&mut rng, 8, 4, 0.02, &device);
        let x =
            Tensor::<B, 2>::from_data(TensorData::new(rng.samples(64 * 8, 1.0), [64, 8]), &device);
        let route = |seed| {
            let r = router.route(
                x.clone(),
                1,
                RouterNoise { std: 3.0, seed },
                Stream::RouterNoise(2),
            );
            r.expert_idx.into_data().to_vec::<i32>().unwrap()
        };
        assert_eq!(route(7), route(7));
        assert_ne!(route(7), route(8));
    }

    // MOE-7, MOE-16: the plan's layout: groups in expert order, each padded
    // to the alignment (an empty one takes no rows), within a group first
    // choices before second, then by token; the two maps are inverse; the
    // capacity keeps the earliest assignments.
    #[test]
    fn moe_16_plan_pads_groups_and_orders_rows() {
        // 5 tokens, top-2, 4 experts; expert 3 gets nothing.
        let ids = [0, 1, 1, 0, 0, 2, 1, 0, 2, 1];
        let plan = DispatchPlan::from_ids(&ids, [5, 2], 4, Some(3), 4);
        assert_eq!(plan.counts, vec![4, 4, 2, 0]);
        assert_eq!(plan.kept, vec![3, 3, 2, 0]);
        assert_eq!(plan.group_rows, vec![4, 4, 4, 0]);
        assert_eq!(plan.dropped(), 2);
        let groups: Vec<_> = plan.groups().collect();
        assert_eq!(groups, vec![(0, 0, 4), (1, 4, 4), (2, 8, 4)]);
        // Expert 0: first choices of tokens 0, 2 (a = 0, 4), then token 1's
        // second choice (a = 3); token 3's (a = 7) is dropped by capacity 3.
        let a = |r: usize| plan.assignment_of_row()[r];
        assert_eq!([a(0), a(1), a(2), a(3)], [0, 4, 3, NO_ROW]);
        // Expert 1: first choices of tokens 1, 3 (a = 2, 6), then token 0's
        // second choice (a = 1); token 4's second choice (a = 9) dropped.
        assert_eq!([a(4), a(5), a(6), a(7)], [2, 6, 1, NO_ROW]);
        // Expert 2: token 4's first choice (a = 8), token 2's second (a = 5).
        assert_eq!([a(8), a(9), a(10), a(11)], [8, 5, NO_ROW, NO_ROW]);
        for (assignment, &row) in plan.row_of_assignment().iter().enumerate() {
            if row != NO_ROW {
                assert_eq!(plan.assignment_of_row()[row as usize], assignment as u32);
            }
        }
        let dropped: Vec<usize> = (0..10)
            .filter(|&a| plan.row_of_assignment()[a] == NO_ROW)
            .collect();
        assert_eq!(dropped, vec![7, 9]);
    }
}
