//! The GPT-2 MLP (HF `GPT2MLP`, MODEL-3): `c_fc` → tanh-GELU → `c_proj`.
//! The dense blocks' feed-forward part and each MoE expert, so an upcycled
//! expert is literally a copy of the dense MLP (MOE-12).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::init;
use crate::ops::{gelu_new, linear_rows};
use crate::seeds::NormalRng;

/// Two linear maps around a tanh-approximated GELU (`gelu_new` in HF, fused:
/// MODEL-13).
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `[d_model, d_ff]` (HF `c_fc`, Conv1D layout `[in, out]`).
    pub c_fc: Linear<B>,
    /// `[d_ff, d_model]` (HF `c_proj`).
    pub c_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// GPT-2 initialisation: N(0, 0.02²) for `c_fc`, `proj_std` for `c_proj`, zero biases.
    pub fn init(
        rng: &mut NormalRng,
        d_model: usize,
        d_ff: usize,
        proj_std: f64,
        device: &B::Device,
    ) -> Self {
        Self {
            c_fc: init::linear(rng, d_model, d_ff, 0.02, true, device),
            c_proj: init::linear(rng, d_ff, d_model, proj_std, true, device),
        }
    }

    /// Applies the MLP to the last dimension.
    ///
    /// # Shapes
    /// - `x`: `[..., d_model]` → `[..., d_model]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let h = linear_rows(&self.c_fc, x); // [..., d_ff]
        linear_rows(&self.c_proj, gelu_new(h)) // [..., d_model]
    }

    /// A copy with fresh parameter ids, each weight plus N(0, noise_std²) from
    /// `rng` (no noise is drawn when `noise_std == 0`), detached from any graph.
    pub fn perturbed_copy(&self, rng: &mut NormalRng, noise_std: f64) -> Self {
        Self {
            c_fc: init::perturb_linear(&self.c_fc, rng, noise_std),
            c_proj: init::perturb_linear(&self.c_proj, rng, noise_std),
        }
    }
}
