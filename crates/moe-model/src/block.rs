//! One pre-LayerNorm transformer block: `x + attn(ln_1(x))`, then
//! `x + ffn(ln_2(x))`, where the feed-forward part is the dense MLP or an MoE
//! layer (MODEL-3, MOE-1).

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::attention::Attention;
use crate::mlp::Mlp;
use crate::moe::MoeLayer;
use crate::norm::LayerNorm;
use crate::precision::Precision;
use crate::router::RouterNoise;
use crate::routing::RoutingRecord;

/// The feed-forward half of a block.
#[derive(Module, Debug)]
pub enum FeedForward<B: Backend> {
    /// GPT-2's MLP.
    Dense(Mlp<B>),
    /// A Mixture-of-Experts layer.
    Moe(MoeLayer<B>),
}

/// A GPT-2 block (HF `GPT2Block`).
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// LayerNorm before attention.
    pub ln_1: LayerNorm<B>,
    /// Causal self-attention.
    pub attn: Attention<B>,
    /// LayerNorm before the feed-forward part.
    pub ln_2: LayerNorm<B>,
    /// Dense MLP or MoE layer.
    pub mlp: FeedForward<B>,
}

impl<B: Backend> Block<B> {
    /// Applies the block; an MoE block also returns its routing record.
    /// Attention and the feed-forward part run in `precision`'s dtype, the
    /// residual stream and the LayerNorms in `x`'s (MODEL-19).
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        noise: RouterNoise,
        precision: Precision,
    ) -> (Tensor<B, 3>, Option<RoutingRecord<B>>) {
        let stream = x.dtype();
        let a = self
            .attn
            .forward(precision.compute(self.ln_1.forward(x.clone()))); // [batch, seq, d_model]
        let x = x + a.cast(stream); // [batch, seq, d_model]
        let h = self.ln_2.forward(x.clone()); // [batch, seq, d_model]
        match &self.mlp {
            FeedForward::Dense(mlp) => (x + mlp.forward(precision.compute(h)).cast(stream), None),
            FeedForward::Moe(moe) => {
                let [batch, seq, d_model] = h.dims();
                let flat = h.reshape([batch * seq, d_model]); // [tokens, d_model]
                let (y, record) = moe.forward(flat, noise, precision);
                (x + y.reshape([batch, seq, d_model]), Some(record))
            }
        }
    }
}
