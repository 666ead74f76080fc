//! Running a list of training runs into one directory, skipping those whose
//! outputs already exist and match their config (used by `moe demo` and
//! `moe reproduce`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use moe_train::metrics::{Event, read_events};
use moe_train::{RunConfig, TrainSummary};

use crate::cmd_train::{Device, TrainArgs, run_quiet};

/// One run of a study.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The run config file.
    pub config: PathBuf,
    /// The run directory.
    pub out: PathBuf,
}

/// A run is complete when its resolved config matches and it either saved
/// `final/` or stopped early (collapse) with a checkpoint.
pub fn is_complete(plan: &RunPlan) -> Result<bool> {
    let config = RunConfig::load(&plan.config)?;
    let resolved = toml::to_string(&config)?;
    let on_disk = std::fs::read_to_string(plan.out.join("config.toml")).unwrap_or_default();
    if on_disk != resolved {
        return Ok(false);
    }
    let events = read_events(&plan.out.join("metrics.jsonl")).unwrap_or_default();
    let stopped = events.iter().any(|e| matches!(e, Event::Stop { .. }));
    Ok(plan.out.join("final/model.safetensors").is_file() || stopped)
}

/// Trains `plan` unless it is complete; resumes a run that was interrupted.
pub fn ensure_run(
    plan: &RunPlan,
    data: &Path,
    device: Device,
    progress: bool,
) -> Result<Option<TrainSummary>> {
    if is_complete(plan)? {
        return Ok(None);
    }
    let resume = plan.out.join("metrics.jsonl").exists();
    let args = TrainArgs {
        config: plan.config.clone(),
        data: data.to_path_buf(),
        out: plan.out.clone(),
        resume,
        device,
        max_steps: None,
    };
    let summary =
        run_quiet(&args, progress).with_context(|| format!("run {}", plan.config.display()))?;
    Ok(Some(summary))
}

/// The last event of `kind` in a run's metrics.
pub fn last_event(run_dir: &Path, pick: fn(&Event) -> bool) -> Option<Event> {
    read_events(&run_dir.join("metrics.jsonl"))
        .ok()?
        .into_iter()
        .rev()
        .find(pick)
}
