//! Checkpoints (TRAIN-8): [`RunDir::checkpoint_dir`] holds the model
//! with HF-style names (`config.json` + `model.safetensors`, loadable by
//! `transformers` when dense), Burn records of the model and optimizer for an
//! exact resume, and `state.json` (step, run, collapse detector). A
//! checkpoint is written into a temporary directory and renamed, so a kill at
//! any moment leaves either the whole checkpoint or none.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::Optimizer;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder, RecorderError};
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
        .map_err(|e| bad(record_error(e)))?;
    Recorder::<B>::record(&recorder(), optim.to_record(), dir.join(OPTIM_RECORD))
        .map_err(|e| bad(record_error(e)))?;
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
        .map_err(|e| bad(record_error(e)))?;
    let record = Recorder::<B>::load(&recorder(), dir.join(OPTIM_RECORD), device)
        .map_err(|e| bad(record_error(e)))?;
    Ok((model, optim.load_record(record), state))
}

/// A Burn record error as one readable sentence: Burn prints its Debug
/// form, with a hint about a feature flag that does not apply to our
/// checkpoints, and wraps I/O errors (a full disk) in `Unknown("Io …")`.
fn record_error(e: RecorderError) -> String {
    match e {
        RecorderError::FileNotFound(file) => format!("{file}: missing"),
        RecorderError::DeserializeError(text) => {
            let first = text.lines().next().unwrap_or_default();
            format!("unreadable record (damaged, or written by another version): {first}")
        }
        RecorderError::Unknown(text) => io_message(&text).unwrap_or(text),
    }
}

/// The OS message inside a Debug-printed `std::io::Error`
/// (`… message: "No space left on device" …`).
fn io_message(debug: &str) -> Option<String> {
    let start = debug.find("message: \"")? + "message: \"".len();
    let len = debug[start..].find('"')?;
    let code = debug
        .find("code: ")
        .and_then(|i| debug[i + 6..].split(|c: char| !c.is_ascii_digit()).next())
        .filter(|c| !c.is_empty());
    let message = &debug[start..start + len];
    Some(match code {
        Some(code) => format!("{message} (os error {code})"),
        None => message.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checks: TRAIN-24
    #[test]
    fn train_24_record_errors_read_as_one_sentence() {
        let full = RecorderError::Unknown(
            r#"Io(Os { code: 28, kind: StorageFull, message: "No space left on device" })"#.into(),
        );
        assert_eq!(record_error(full), "No space left on device (os error 28)");
        let old = RecorderError::DeserializeError(
            "UnexpectedEnd\nThe internal data format has changed … `record-backward-compat` …"
                .into(),
        );
        let text = record_error(old);
        assert!(
            text.contains("UnexpectedEnd") && !text.contains("backward-compat"),
            "{text}"
        );
        assert_eq!(
            record_error(RecorderError::FileNotFound("x.bin".into())),
            "x.bin: missing"
        );
    }
}
