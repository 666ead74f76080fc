//! Checkpoints (TRAIN-8): [`RunDir::checkpoint_dir`] holds the model
//! with HF-style names (`config.json` + `model.safetensors`, loadable by
//! `transformers` when dense), Burn records of the model and optimizer for an
//! exact resume, and `state.json` (step, run, collapse detector). A
//! checkpoint is written into a temporary directory and renamed, so a kill at
//! any moment leaves either the whole checkpoint or none.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::Optimizer;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use moe_model::{Gpt2, ModelConfig, save_model_dir};
use serde::{Deserialize, Serialize};

use crate::collapse::CollapseDetector;
use crate::error::{Result, TrainError};
use crate::run_dir::{CHECKPOINT_STATE as STATE, RunDir};

/// `state.json` of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointState {
    /// Optimizer steps done.
    pub step: u64,
    /// Run name.
    pub run: String,
    /// sha256 of the resolved run config, to refuse resuming another run.
    pub config_sha256: String,
    /// Collapse detector streaks.
    pub collapse: CollapseDetector,
}

const MODEL_RECORD: &str = "model-record";
const OPTIM_RECORD: &str = "optimizer-record";

fn recorder() -> BinFileRecorder<FullPrecisionSettings> {
    BinFileRecorder::<FullPrecisionSettings>::new()
}

/// Writes a checkpoint atomically and prunes old ones down to `keep` (0 = keep all).
pub fn save<B, O>(
    run: &RunDir,
    model: &Gpt2<B>,
    config: &ModelConfig,
    optim: &O,
    state: &CheckpointState,
    keep: usize,
) -> Result<PathBuf>
where
    B: AutodiffBackend,
    O: Optimizer<Gpt2<B>, B>,
{
    let dir = run.checkpoint_dir(state.step);
    let tmp = run.checkpoint_tmp_dir(state.step);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    write_into(&tmp, model, config, optim, state)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| TrainError::io(&dir, e))?;
    prune(run, keep)?;
    Ok(dir)
}

fn write_into<B, O>(
    dir: &Path,
    model: &Gpt2<B>,
    config: &ModelConfig,
    optim: &O,
    state: &CheckpointState,
) -> Result<()>
where
    B: AutodiffBackend,
    O: Optimizer<Gpt2<B>, B>,
{
    let bad = |reason: String| TrainError::Checkpoint {
        path: dir.to_path_buf(),
        reason,
    };
    save_model_dir(model, config, dir)?;
    model
        .clone()
        .save_file(dir.join(MODEL_RECORD), &recorder())
        .map_err(|e| bad(e.to_string()))?;
    Recorder::<B>::record(&recorder(), optim.to_record(), dir.join(OPTIM_RECORD))
        .map_err(|e| bad(e.to_string()))?;
    let path = dir.join(STATE);
    let json = serde_json::to_string_pretty(state).unwrap_or_default();
    std::fs::write(&path, json).map_err(|e| TrainError::io(&path, e))
}

fn prune(run: &RunDir, keep: usize) -> Result<()> {
    let steps = run.checkpoints();
    if keep == 0 || steps.len() <= keep {
        return Ok(());
    }
    for step in &steps[..steps.len() - keep] {
        let dir = run.checkpoint_dir(*step);
        std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    }
    Ok(())
}

/// Reads `state.json` of the checkpoint of `step` (no model, no optimizer).
pub fn read_state(run: &RunDir, step: u64) -> Result<CheckpointState> {
    let path = run.checkpoint_dir(step).join(STATE);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint {
        path: path.clone(),
        reason: format!("state.json: {e}"),
    })
}

/// Loads the checkpoint of `step` into `model` (built with the same config) and `optim`.
pub fn load<B, O>(
    run: &RunDir,
    step: u64,
    model: Gpt2<B>,
    optim: O,
    device: &B::Device,
) -> Result<(Gpt2<B>, O, CheckpointState)>
where
    B: AutodiffBackend,
    O: Optimizer<Gpt2<B>, B>,
{
    let dir = run.checkpoint_dir(step);
    let bad = |reason: String| TrainError::Checkpoint {
        path: dir.clone(),
        reason,
    };
    let state = read_state(run, step)?;
    let model = model
        .load_file(dir.join(MODEL_RECORD), &recorder(), device)
        .map_err(|e| bad(e.to_string()))?;
    let record = Recorder::<B>::load(&recorder(), dir.join(OPTIM_RECORD), device)
        .map_err(|e| bad(e.to_string()))?;
    Ok((model, optim.load_record(record), state))
}
