//! One micro-batch: forward, next-token loss, router losses (TRAIN-5).
//!
//! loss = LM + lb_coef · LB + z_coef · Z, each LM term a mean over the
//! micro-batch's predicted tokens; the caller divides by the number of
//! micro-batches so accumulated gradients equal one big batch's.

use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use moe_model::{ForwardOptions, Gpt2, LmOutput, RoutingRecord};

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

/// Next-token cross-entropy of `tokens` under `model`: each token predicts
/// the next one, through the fused LM head + loss (MODEL-14).
///
/// # Shapes
/// - `tokens`: `[batch, seq]` → losses `[batch, seq - 1]`
pub fn token_losses<B: Backend>(
    model: &Gpt2<B>,
    tokens: Tensor<B, 2, Int>,
    options: &ForwardOptions,
) -> (
    TokenLosses<B>,
    Vec<RoutingRecord<B>>,
    Option<moe_model::AuxLosses<B>>,
) {
    let [batch, seq] = tokens.dims();
    let inputs = tokens.clone().slice([0..batch, 0..seq - 1]); // [batch, seq-1]
    let targets = tokens.slice([0..batch, 1..seq]); // [batch, seq-1]
    let LmOutput { loss, routing, aux } = model.lm_loss(inputs, targets, options);
    let losses = TokenLosses {
        values: loss.per_token.reshape([batch, seq - 1]),
        mean: loss.mean,
    };
    (losses, routing, aux)
}

/// A `[batch, seq]` Int tensor from flat i64 tokens.
pub fn tokens_tensor<B: Backend>(
    flat: Vec<i64>,
    batch: usize,
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    let seq = flat.len() / batch.max(1);
    Tensor::from_data(TensorData::new(flat, [batch, seq]), device)
}

/// A scalar tensor's value as f64.
pub fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_scalar().elem::<f64>()
}
