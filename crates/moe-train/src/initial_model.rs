//! The model a run starts from (TRAIN-15): its [`ModelSource`], loaded or
//! initialised, upcycled to MoE. Training and analysis (the step-0 router)
//! build it here.

use burn::tensor::backend::Backend;
use moe_model::{Gpt2, ModelConfig, ModelSource, MoeConfig};

use crate::config::{Init, RunConfig};
use crate::error::{Result, TrainError};

/// `dense` upcycled into `moe` with expert noise `noise` and `seed`; as it
/// is without a MoE layout.
fn upcycled<B: Backend>(dense: Gpt2<B>, moe: Option<&MoeConfig>, noise: f64, seed: u64) -> Gpt2<B> {
    match moe {
        Some(moe) => dense.upcycle(moe, noise, seed),
        None => dense,
    }
}

/// Where a run's dense model comes from.
pub fn run_source(config: &RunConfig, dense: &ModelConfig) -> ModelSource {
    match (config.model.init, &config.model.hf_dir) {
        (Init::Scratch, _) => ModelSource::Scratch(dense.clone()),
        (Init::Pretrained, Some(dir)) => ModelSource::Dir(dir.clone()),
        (Init::Pretrained, None) => ModelSource::HubGpt2,
    }
}

/// The model a run starts from: fresh (`Gpt2::init(dense, run.seed)`) or
/// pretrained, then upcycled with `upcycle_noise` and `run.seed` when MoE,
/// with a zero balancing bias in every MoE block when `train.bias_rate > 0`.
pub fn initial_model<B: Backend>(
    config: &RunConfig,
    model_config: &ModelConfig,
    device: &B::Device,
) -> Result<Gpt2<B>> {
    let dense_config = ModelConfig {
        gpt2: model_config.gpt2.clone(),
        moe: None,
    };
    let source = run_source(config, &dense_config);
    let (loaded, dense) = source.load::<B>(config.run.seed, device)?;
    if loaded.gpt2 != dense_config.gpt2 {
        return Err(TrainError::Mismatch(format!(
            "{source}: weights are not the `{}` preset's shape",
            config.model.preset
        )));
    }
    let model = upcycled(
        dense,
        model_config.moe.as_ref(),
        config.model.upcycle_noise,
        config.run.seed,
    );
    // The balancing bias starts at zero (TRAIN-26).
    Ok(match config.train.bias_rate > 0.0 {
        true => model.with_expert_bias(),
        false => model,
    })
}
