//! The model a run starts from (TRAIN-15): fresh or pretrained, upcycled
//! to MoE. Training and analysis (the step-0 router) build it here.

use moe_model::{Gpt2, ModelConfig};

use crate::config::{Init, RunConfig};
use crate::error::{Result, TrainError};

/// The model a run starts from: fresh (`Gpt2::init(dense, run.seed)`) or
/// pretrained, then upcycled with `upcycle_noise` and `run.seed` when MoE.
pub fn initial_model<B: burn::tensor::backend::Backend>(
    config: &RunConfig,
    model_config: &ModelConfig,
    device: &B::Device,
) -> Result<Gpt2<B>> {
    let dense_config = ModelConfig {
        gpt2: model_config.gpt2.clone(),
        moe: None,
    };
    let dense = match config.model.init {
        Init::Scratch => Gpt2::<B>::init(&dense_config, config.run.seed, device),
        Init::Pretrained => {
            let dir = match &config.model.hf_dir {
                Some(dir) => dir.clone(),
                None => moe_model::hub::fetch_gpt2()?,
            };
            let (loaded, model) = moe_model::load_model_dir::<B>(&dir, device)?;
            if loaded.gpt2 != dense_config.gpt2 {
                return Err(TrainError::Mismatch(format!(
                    "{}: weights are not the `{}` preset's shape",
                    dir.display(),
                    config.model.preset
                )));
            }
            model
        }
    };
    Ok(match &model_config.moe {
        Some(moe) => dense.upcycle(moe, config.model.upcycle_noise, config.run.seed),
        None => dense,
    })
}
