//! The models, tokens and training step of the step bench, shared with
//! `examples/step_time.rs` so both time the same thing.

use burn::tensor::{Int, Tensor, TensorData};
use moe_model::{CpuAutodiff as B, ForwardOptions, Gpt2, ModelConfig, MoeConfig};

/// Sequences per step.
pub const BATCH: usize = 2;
/// Tokens per sequence.
pub const SEQ: usize = 128;

/// The model config of a bench group: `tiny_fwd_bwd` (the `tiny` preset:
/// GPT-2 vocabulary, width 128, 4 blocks, 4 heads) or `d512_fwd_bwd` (width
/// 512, 8 heads, d_ff 2048, 4 blocks, a 96-token vocabulary: the blocks'
/// matmuls dominate instead of the LM head).
pub fn config(group: &str) -> ModelConfig {
    let tiny = ModelConfig::preset("tiny").expect("preset");
    match group {
        "tiny_fwd_bwd" => tiny,
        "d512_fwd_bwd" => {
            let mut c = tiny;
            c.gpt2.vocab_size = 96;
            c.gpt2.d_model = 512;
            c.gpt2.n_head = 8;
            c.gpt2.d_ff = 2048;
            c
        }
        other => panic!("unknown group {other}: tiny_fwd_bwd or d512_fwd_bwd"),
    }
}

/// The dense model (seed 0) and its upcycle with every block 8 experts, top-1
/// (equal active parameters).
pub fn models(config: &ModelConfig) -> (Gpt2<B>, Gpt2<B>) {
    let dense = Gpt2::<B>::init(config, 0, &Default::default());
    let moe = dense
        .clone()
        .upcycle(&MoeConfig::default_for(config.gpt2.n_layer), 1e-3, 0);
    (dense, moe)
}

/// Inputs and next-token targets `[BATCH, SEQ]`: ids `(i · 7919) mod vocab`.
pub fn tokens(vocab: usize) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let ids: Vec<i64> = (0..BATCH * (SEQ + 1))
        .map(|i| ((i * 7919) % vocab) as i64)
        .collect();
    let all =
        Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [BATCH, SEQ + 1]), &Default::default());
    (all.clone().narrow(1, 0, SEQ), all.narrow(1, 1, SEQ))
}

/// One forward + backward of the training loss: LM (fused head + loss,
/// MODEL-12) + 0.01·LB + 0.001·z.
pub fn step(model: &Gpt2<B>, input: &Tensor<B, 2, Int>, target: &Tensor<B, 2, Int>) {
    let out = model.lm_loss(input.clone(), target.clone(), &ForwardOptions::default());
    let mut loss = out.loss.mean;
    if let Some(aux) = out.aux {
        loss = loss + aux.lb * 0.01 + aux.z * 0.001;
    }
    let _grads = loss.backward();
}
