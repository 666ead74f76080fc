//! One micro-batch: forward, next-token loss, router losses (TRAIN-5).
//!
//! loss = LM + lb_coef · LB + z_coef · Z, each LM term a mean over the
//! micro-batch's predicted tokens; the caller divides by the number of
//! micro-batches so accumulated gradients equal one big batch's.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use moe_model::{ForwardOptions, Gpt2, RoutingRecord};

/// Per-token next-token cross-entropy of `tokens` under `model`.
///
/// # Shapes
/// - `tokens`: `[batch, seq]` → losses `[batch, seq - 1]`
pub fn token_losses<B: Backend>(
    model: &Gpt2<B>,
    tokens: Tensor<B, 2, Int>,
    options: &ForwardOptions,
) -> (
    Tensor<B, 2>,
    Vec<RoutingRecord<B>>,
    Option<moe_model::AuxLosses<B>>,
) {
    let [batch, seq] = tokens.dims();
    let inputs = tokens.clone().slice([0..batch, 0..seq - 1]); // [batch, seq-1]
    let targets = tokens.slice([0..batch, 1..seq]); // [batch, seq-1]
    let out = model.forward(inputs, options);
    let vocab = out.logits.dims()[2];
    let n = batch * (seq - 1);
    let logp = log_softmax(out.logits.reshape([n, vocab]), 1); // [n, vocab]
    let picked = logp.gather(1, targets.reshape([n, 1])); // [n, 1]
    (picked.neg().reshape([batch, seq - 1]), out.routing, out.aux)
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
