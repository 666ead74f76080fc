//! The next-token losses of one batch of blocks, through the fused LM head +
//! loss (MODEL-14), with the routing records and router losses of the same
//! forward pass (TRAIN-5).

use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor};
use moe_model::model::AuxLosses;
use moe_model::{ForwardOptions, Gpt2, LayerRouting, LmOutput};

use crate::sampler::MicroBatch;

/// A micro-batch's next-token losses: per token, and their mean with the
/// gradient (the fused head + loss of MODEL-14 computes the gradient of the
/// mean, so the per-token values carry none).
#[derive(Debug, Clone)]
pub struct TokenLosses<B: Backend> {
    values: Tensor<B, 2>,
    mean: Tensor<B, 1>,
}

impl<B: Backend> TokenLosses<B> {
    /// Mean over all predicted tokens; differentiable under autodiff. `[1]`
    pub fn mean(&self) -> Tensor<B, 1> {
        self.mean.clone()
    }

    /// Each token's loss, outside the autodiff graph. `[batch, seq - 1]`
    pub fn values(&self) -> Tensor<B, 2> {
        self.values.clone()
    }

    /// `[batch, seq - 1]`
    pub fn dims(&self) -> [usize; 2] {
        self.values.dims()
    }
}

/// What one forward pass over a batch gives the trainer.
#[derive(Debug, Clone)]
pub struct BatchLosses<B: Backend> {
    /// The next-token losses.
    pub lm: TokenLosses<B>,
    /// One record per MoE layer (empty for a dense model).
    pub routing: Vec<LayerRouting<B>>,
    /// The router losses averaged over the MoE layers; `None` when dense.
    pub aux: Option<AuxLosses<B>>,
}

/// Next-token cross-entropy of `batch` under `model`: each token predicts
/// the next one, through the fused LM head + loss (MODEL-14).
///
/// # Shapes
/// - `batch`: `[rows, seq]` → losses `[rows, seq - 1]`
pub fn batch_losses<B: Backend>(
    model: &Gpt2<B>,
    batch: &MicroBatch,
    options: &ForwardOptions,
    device: &B::Device,
) -> BatchLosses<B> {
    let tokens = batch.tensor::<B>(device);
    let [batch, seq] = tokens.dims();
    let inputs = tokens.clone().slice([0..batch, 0..seq - 1]); // [batch, seq-1]
    let targets = tokens.slice([0..batch, 1..seq]); // [batch, seq-1]
    let LmOutput { loss, routing, aux } = model.lm_loss(inputs, targets, options);
    let lm = TokenLosses {
        values: loss.per_token.reshape([batch, seq - 1]),
        mean: loss.mean,
    };
    BatchLosses { lm, routing, aux }
}

/// A scalar tensor's value as f64.
pub fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_scalar().elem::<f64>()
}
