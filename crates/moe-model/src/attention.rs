//! Causal multi-head self-attention as HF `GPT2Attention` computes it (MODEL-3).
//!
//! One fused `c_attn` projection to q, k, v; scores scaled by `1/sqrt(head_dim)`;
//! causal masking through Burn's `is_causal` attention option; `c_proj` back.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::init::{self, NormalRng};
use crate::mlp::linear_rows;

/// GPT-2 self-attention.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// `[d_model, 3 * d_model]`: q, k, v side by side (HF `c_attn`).
    pub c_attn: Linear<B>,
    /// `[d_model, d_model]` (HF `c_proj`).
    pub c_proj: Linear<B>,
    /// Number of heads.
    pub n_head: usize,
}

impl<B: Backend> Attention<B> {
    /// GPT-2 initialisation (see [`Mlp::init`](crate::mlp::Mlp::init)).
    pub fn init(
        rng: &mut NormalRng,
        d_model: usize,
        n_head: usize,
        proj_std: f64,
        device: &B::Device,
    ) -> Self {
        Self {
            c_attn: init::linear(rng, d_model, 3 * d_model, 0.02, true, device),
            c_proj: init::linear(rng, d_model, d_model, proj_std, true, device),
            n_head,
        }
    }

    /// Causal self-attention over the sequence.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, seq, d_model] = x.dims();
        let head_dim = d_model / self.n_head;
        let qkv = linear_rows(&self.c_attn, x); // [batch, seq, 3 * d_model]
        let heads = |i: usize| {
            qkv.clone()
                .narrow(2, i * d_model, d_model) // [batch, seq, d_model]
                .reshape([batch, seq, self.n_head, head_dim])
                .swap_dims(1, 2) // [batch, n_head, seq, head_dim]
        };
        let (q, k, v) = (heads(0), heads(1), heads(2));
        let options = AttentionModuleOptions {
            scale: None, // 1/sqrt(head_dim), as GPT-2's scale_attn_weights
            softcap: None,
            is_causal: true,
        };
        let y = attention(q, k, v, None, None, options); // [batch, n_head, seq, head_dim]
        let y = y.swap_dims(1, 2).reshape([batch, seq, d_model]); // [batch, seq, d_model]
        linear_rows(&self.c_proj, y)
    }
}
