//! The MoE router: logits in f32, optional Gaussian noise, top-k choice and gates.
//!
//! - Logits `z = x · W` with `W: [d_model, n_experts]`, computed in f32 whatever
//!   the model's float type (MOE-2).
//! - Routing decisions use `z + ε`, `ε ~ N(0, σ²)` with σ given by the caller
//!   (annealed by [`noise_std_at`]); the clean `softmax(z)` feeds the losses and
//!   the logs (MOE-3).
//! - top-1: gate `1 + (p_e − stopgrad(p_e))`: forward value exactly 1, gradient as
//!   if the expert output were scaled by `p_e` (Switch with a straight-through
//!   estimator, MOE-4). top-k > 1: the k probabilities renormalized to sum to 1 (MOE-5).
//!
//! Probabilities are a softmax over *all* experts, never over the chosen ones
//! only (that would make the top-1 gate a constant 1 with zero gradient).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Int, Tensor, TensorData};

use crate::init::{self, NormalRng};

/// The router of one MoE layer.
#[derive(Module, Debug)]
pub struct Router<B: Backend> {
    /// `[d_model, n_experts]`, no bias (saved as `h.{i}.mlp.router.weight`).
    pub linear: Linear<B>,
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
pub struct Routing<B: Backend> {
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
        }
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
        stream: u64,
    ) -> Routing<B> {
        let logits = self.logits(x); // [tokens, n_experts]
        let noise = (noise.std > 0.0).then(|| {
            let [tokens, n_experts] = logits.dims();
            let values = NormalRng::new(noise.seed, stream).samples(tokens * n_experts, noise.std);
            Tensor::<B, 2>::from_data(
                TensorData::new(values, [tokens, n_experts]),
                &logits.device(),
            )
        });
        route_logits(logits, noise, top_k)
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
) -> Routing<B> {
    let probs = softmax(logits.clone(), 1); // [tokens, n_experts]
    let routing_probs = match noise {
        Some(noise) => softmax(logits.clone() + noise, 1),
        None => probs.clone(),
    };
    // Indices from detached values; the gather below carries the gradient.
    let (_, expert_idx) = routing_probs.clone().detach().topk_with_indices(top_k, 1); // [tokens, top_k]
    let chosen = routing_probs.gather(1, expert_idx.clone()); // [tokens, top_k]
    let gate_prob = chosen.clone().detach();
    let gate = if top_k == 1 {
        // (p − stopgrad(p)) is exactly 0 in the forward pass, so the gate is exactly 1.
        (chosen.clone() - chosen.detach()) + 1.0
    } else {
        chosen.clone() / chosen.sum_dim(1) // [tokens, top_k]
    };
    Routing {
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
            let r = router.route(x.clone(), 1, RouterNoise { std: 3.0, seed }, 2);
            r.expert_idx.into_data().to_vec::<i32>().unwrap()
        };
        assert_eq!(route(7), route(7));
        assert_ne!(route(7), route(8));
    }
}
