//! The model a run starts from (TRAIN-15): fresh or pretrained, upcycled
//! to MoE. Training, analysis (the step-0 router) and `moe model` build it
//! here, from a [`ModelSource`].

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use moe_model::{Gpt2, ModelConfig, MoeConfig};

use crate::config::{Init, RunConfig};
use crate::error::{Result, TrainError};

/// Where a dense model comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// Fresh weights of this shape (`Gpt2::init` from a seed).
    Scratch(ModelConfig),
    /// An HF-format model directory (`config.json` + `model.safetensors`).
    Dir(PathBuf),
    /// GPT-2 small at the pinned revision, from the HF cache or the Hub.
    HubGpt2,
}

impl ModelSource {
    /// Its config, without loading weights.
    pub fn config(&self) -> Result<ModelConfig> {
        let read = |dir: PathBuf| moe_model::hf_config::read_hf_config(&dir.join("config.json"));
        Ok(match self {
            ModelSource::Scratch(config) => config.clone(),
            ModelSource::Dir(dir) => read(dir.clone())?,
            ModelSource::HubGpt2 => read(moe_model::hub::fetch_gpt2()?)?,
        })
    }

    /// Loads the model, or initialises it from `seed`.
    pub fn load<B: Backend>(
        &self,
        seed: u64,
        device: &B::Device,
    ) -> Result<(ModelConfig, Gpt2<B>)> {
        Ok(match self {
            ModelSource::Scratch(config) => (config.clone(), Gpt2::<B>::init(config, seed, device)),
            ModelSource::Dir(dir) => moe_model::load_model_dir::<B>(dir, device)?,
            ModelSource::HubGpt2 => {
                moe_model::load_model_dir::<B>(&moe_model::hub::fetch_gpt2()?, device)?
            }
        })
    }
}

/// `dense` upcycled into `moe` with expert noise `noise` and `seed`; as it
/// is without a MoE layout.
pub fn upcycled<B: Backend>(
    dense: Gpt2<B>,
    moe: Option<&MoeConfig>,
    noise: f64,
    seed: u64,
) -> Gpt2<B> {
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
/// pretrained, then upcycled with `upcycle_noise` and `run.seed` when MoE.
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
        let from = match &source {
            ModelSource::Dir(dir) => dir.display().to_string(),
            ModelSource::HubGpt2 => "hub:gpt2".into(),
            ModelSource::Scratch(_) => "the preset".into(),
        };
        return Err(TrainError::Mismatch(format!(
            "{from}: weights are not the `{}` preset's shape",
            config.model.preset
        )));
    }
    Ok(upcycled(
        dense,
        model_config.moe.as_ref(),
        config.model.upcycle_noise,
        config.run.seed,
    ))
}
