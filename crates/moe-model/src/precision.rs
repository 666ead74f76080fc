//! Mixed-precision training without AMP (MODEL-19): where the model casts.
//!
//! Burn has no autocast; its tensors carry their dtype at run time and
//! `cast` is differentiable (its backward casts the gradient back). Under
//! [`Precision::Bf16`] the model keeps every parameter in f32 (the master
//! weights the optimizer updates; their gradients arrive in f32 through the
//! casts) and casts at these points only:
//!
//! - each block's LayerNorm output → bf16 before attention and the MLP (or
//!   the MoE experts); their outputs → the residual stream's dtype before
//!   the residual add. The residual stream, the embeddings and LayerNorm's
//!   statistics stay f32;
//! - a `Linear` runs in its input's dtype: the weight and bias are cast to
//!   it ([`linear_rows`](crate::ops::linear_rows));
//! - attention on bf16 inputs multiplies `q·kᵀ` and `softmax·v` in bf16 but
//!   scales, masks and normalises the scores in f32
//!   ([`attention_by_ops`](crate::ops::attention::attention_by_ops));
//! - the router sees the f32 LayerNorm output and computes its logits,
//!   softmax, load-balancing and z-losses in f32; only the experts see bf16,
//!   and their outputs are cast back before the gate multiplies them;
//! - the LM head multiplies in bf16; the cross-entropy, its softmax and the
//!   gradients' scaling are f32 ([`lm_head_cross_entropy`](crate::lm_head_cross_entropy)).
//!
//! This is PyTorch autocast's split for these ops (matmuls in bf16;
//! LayerNorm, softmax and losses in f32), except that our router stays f32
//! throughout. Under [`Precision::F32`] nothing is cast and the model
//! computes exactly what it computed before this option existed.

use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Tensor};
use serde::{Deserialize, Serialize};

/// The dtype the blocks' matmuls and activations run in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in the backend's float type (f32 on every backend we run).
    #[default]
    F32,
    /// bf16 matmuls and activations, f32 master weights, residual stream,
    /// LayerNorm statistics, router and losses.
    Bf16,
}

impl Precision {
    /// `x` in the compute dtype: unchanged under `F32`, cast to bf16 under
    /// `Bf16`.
    pub fn compute<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Precision::F32 => x,
            Precision::Bf16 => x.cast(FloatDType::BF16),
        }
    }
}
