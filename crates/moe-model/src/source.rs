//! Where a dense model comes from: fresh weights, an HF-format directory, or
//! GPT-2 small from the Hub (TRAIN-15). Training, analysis (the step-0
//! router) and `moe model` all load through it.

use std::fmt;
use std::path::PathBuf;

use burn::tensor::backend::Backend;

use crate::config::ModelConfig;
use crate::error::Result;
use crate::hf_config::read_hf_config;
use crate::hub::fetch_gpt2;
use crate::model::Gpt2;
use crate::weights::load_model_dir;

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
        let read = |dir: PathBuf| read_hf_config(&dir.join("config.json"));
        match self {
            ModelSource::Scratch(config) => Ok(config.clone()),
            ModelSource::Dir(dir) => read(dir.clone()),
            ModelSource::HubGpt2 => read(fetch_gpt2()?),
        }
    }

    /// Loads the model, or initialises it from `seed`.
    pub fn load<B: Backend>(
        &self,
        seed: u64,
        device: &B::Device,
    ) -> Result<(ModelConfig, Gpt2<B>)> {
        match self {
            ModelSource::Scratch(config) => {
                Ok((config.clone(), Gpt2::<B>::init(config, seed, device)))
            }
            ModelSource::Dir(dir) => load_model_dir::<B>(dir, device),
            ModelSource::HubGpt2 => load_model_dir::<B>(&fetch_gpt2()?, device),
        }
    }
}

impl fmt::Display for ModelSource {
    /// The directory, `hub:gpt2`, or "the preset".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Dir(dir) => write!(f, "{}", dir.display()),
            ModelSource::HubGpt2 => f.write_str("hub:gpt2"),
            ModelSource::Scratch(_) => f.write_str("the preset"),
        }
    }
}
