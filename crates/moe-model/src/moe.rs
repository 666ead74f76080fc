//! The MoE layer that replaces a block's MLP: router, experts, grouped dispatch,
//! per-layer losses and the routing record (MOE-1 … MOE-11).
//!
//! Experts are [`Mlp`]s, so upcycling copies the dense MLP into each (MOE-12).

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::config::MoeConfig;
use crate::dispatch::{DispatchPlan, capacity, dispatch_combine};
use crate::init::NormalRng;
use crate::losses::{entropy, expert_counts, load_balance_loss, z_loss};
use crate::mlp::Mlp;
use crate::precision::Precision;
use crate::router::Router;
use crate::router::RouterNoise;
use crate::routing::RoutingRecord;

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
        let stream = |e: u64| ((layer as u64) << 32) | e;
        let mut router_rng = NormalRng::new(seed, stream(u32::MAX as u64));
        let router = Router::init(
            &mut router_rng,
            d_model,
            cfg.n_experts,
            ROUTER_INIT_STD,
            &device,
        );
        let experts = (0..cfg.n_experts)
            .map(|e| dense.perturbed_copy(&mut NormalRng::new(seed, stream(e as u64)), noise_std))
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
    ) -> (Tensor<B, 2>, RoutingRecord<B>) {
        let [n_tokens, _] = x.dims();
        let n_experts = self.n_experts();
        let routing = self
            .router
            .route(x.clone(), self.top_k, noise.into(), self.layer as u64);
        let cap = self
            .capacity_factor
            .map(|cf| capacity(n_tokens, self.top_k, n_experts, cf));
        let plan = DispatchPlan::new(routing.expert_idx.clone(), n_experts, cap);
        let out_dtype = x.dtype();
        let gate = routing.gate.clone().cast(out_dtype); // [tokens, top_k]
        let y = dispatch_combine(precision.compute(x), gate, &plan, |e, xe| {
            self.experts[e].forward(xe).cast(out_dtype)
        });

        let top1 = routing
            .expert_idx
            .clone()
            .narrow(1, 0, 1)
            .reshape([n_tokens]); // [tokens]
        let f = expert_counts(top1, n_experts) / (n_tokens as f64); // [n_experts]
        let p_mean = routing.probs.clone().mean_dim(0).reshape([n_experts]); // [n_experts]
        let record = RoutingRecord {
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
