//! `metrics.jsonl`: one JSON object per event (TRAIN-7). The schema is in
//! `specs/training.md`; every row has `event` and `step`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// How one MoE layer routed some tokens, as logged (`metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingSummary {
    /// Block index.
    pub layer: usize,
    /// Share of tokens whose top-1 expert is each expert.
    pub shares: Vec<f64>,
    /// Largest share.
    pub max_share: f64,
    /// Mean entropy (nats) of the clean router probabilities.
    pub entropy: f64,
    /// Tokens dropped by capacity.
    pub dropped: u64,
    /// The layer's balancing bias per expert after the step (train events
    /// of runs with `bias_rate > 0`, TRAIN-26; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias: Option<Vec<f64>>,
}

/// Eval results of one domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainEval {
    /// Mean next-token cross-entropy (nats).
    pub loss: f64,
    /// `exp(loss)`.
    pub ppl: f64,
    /// Predicted tokens.
    pub tokens: u64,
    /// Routing of this domain's tokens (MoE only).
    pub routing: Vec<RoutingSummary>,
    /// Mean loss of each val block, in block order (the same blocks for
    /// every run on the same data, so two runs pair block by block: ANA-21).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block_losses: Vec<f64>,
}

/// Why a run stopped before the end of its schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StopReason {
    /// One expert held more than `threshold` of a layer's tokens at `checks`
    /// consecutive checks (TRAIN-6). A finished result of the run.
    Collapse {
        /// Block index.
        layer: usize,
        /// The expert.
        expert: usize,
        /// Its share at the last check.
        share: f64,
        /// The consecutive checks.
        checks: u32,
    },
    /// The loss was NaN or infinite (TRAIN-10). A failed run.
    NonFiniteLoss {
        /// The step whose loss was not finite (1-based).
        failed_step: u64,
        /// The last good checkpoint, relative to the run directory.
        last_checkpoint: Option<String>,
    },
}

impl StopReason {
    /// Whether the stop is a result of the study (a collapse) rather than a failure.
    pub fn is_result(&self) -> bool {
        matches!(self, StopReason::Collapse { .. })
    }

    /// The reason in words.
    pub fn message(&self) -> String {
        match self {
            StopReason::Collapse {
                layer,
                expert,
                share,
                checks,
            } => format!(
                "routing collapse: expert {expert} took {:.0}% of block {layer}'s tokens at {checks} consecutive checks",
                100.0 * share
            ),
            StopReason::NonFiniteLoss {
                failed_step,
                last_checkpoint,
            } => format!(
                "non-finite loss at step {failed_step}; the last good checkpoint is {}",
                last_checkpoint.as_deref().unwrap_or("none")
            ),
        }
    }
}

/// One row of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// The run (re)started.
    Start {
        /// First step this process runs.
        step: u64,
        /// Total optimizer steps of the run.
        total_steps: u64,
        /// Tokens per optimizer step.
        tokens_per_step: u64,
        /// Parameters in the model.
        params_total: u64,
        /// Parameters a token passes through.
        params_active: u64,
        /// Backend name.
        device: String,
        /// Whether this start resumed a checkpoint.
        resumed: bool,
    },
    /// Training statistics after optimizer step `step` (1-based count of steps done).
    Train {
        /// Steps done.
        step: u64,
        /// Total loss (LM + coefficients × router losses), mean over micro-batches.
        loss: f64,
        /// LM cross-entropy.
        lm_loss: f64,
        /// Load-balancing loss (MoE).
        lb_loss: Option<f64>,
        /// z-loss (MoE).
        z_loss: Option<f64>,
        /// Learning rate used.
        lr: f64,
        /// Global gradient norm before clipping.
        grad_norm: f64,
        /// Router noise std used.
        noise_std: f64,
        /// Tokens per second over the steps since the last train event.
        tok_per_s: f64,
        /// Routing of this step's tokens (MoE).
        routing: Vec<RoutingSummary>,
        /// Device memory in use after the step, bytes (GPU backends only,
        /// TRAIN-20).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device_bytes: Option<u64>,
    },
    /// Validation after step `step`.
    Eval {
        /// Steps done.
        step: u64,
        /// Token-weighted mean loss over all domains.
        loss: f64,
        /// `exp(loss)`.
        ppl: f64,
        /// Per domain.
        domains: BTreeMap<String, DomainEval>,
    },
    /// A checkpoint was written.
    Checkpoint {
        /// Steps done.
        step: u64,
        /// Its directory, relative to the run directory.
        path: String,
    },
    /// The run stopped early.
    Stop {
        /// Steps done.
        step: u64,
        /// Why, as data.
        reason: StopReason,
        /// The same, in words.
        message: String,
    },
}

impl Event {
    /// The step of any event.
    pub fn step(&self) -> u64 {
        match self {
            Event::Start { step, .. }
            | Event::Train { step, .. }
            | Event::Eval { step, .. }
            | Event::Checkpoint { step, .. }
            | Event::Stop { step, .. } => *step,
        }
    }
}

/// Appends rows to a JSON-lines file (`metrics.jsonl`, the routing probe),
/// flushing each line.
pub struct JsonlLog {
    path: PathBuf,
    file: std::fs::File,
}

/// The events log ([`crate::run_dir::RunDir::open_log`]).
pub type MetricsLog = JsonlLog;

impl JsonlLog {
    /// Opens the events file at `path`; on resume from `keep_through`,
    /// drops rows of later steps and the stop row.
    pub fn open(path: &Path, keep_through: Option<u64>) -> Result<Self> {
        Self::open_keeping(
            path,
            keep_through
                .map(|step| move |e: &Event| e.step() <= step && !matches!(e, Event::Stop { .. })),
        )
    }

    /// Opens the rows of type `T` at `path` for appending; with `keep`,
    /// first rewrites the file (atomically) with the rows it keeps.
    pub fn open_keeping<T: Serialize + DeserializeOwned>(
        path: &Path,
        keep: Option<impl Fn(&T) -> bool>,
    ) -> Result<Self> {
        let path = path.to_path_buf();
        if let Some(keep) = keep {
            let kept: String = read_jsonl::<T>(&path)?
                .into_iter()
                .filter(|r| keep(r))
                .map(|r| serde_json::to_string(&r).unwrap_or_default() + "\n")
                .collect();
            let tmp = path.with_extension("jsonl.tmp");
            std::fs::write(&tmp, kept).map_err(|e| TrainError::io(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| TrainError::io(&path, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(Self { path, file })
    }

    /// Writes one row.
    pub fn write<T: Serialize>(&mut self, row: &T) -> Result<()> {
        let line = serde_json::to_string(row).unwrap_or_default() + "\n";
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| TrainError::io(&self.path, e))
    }
}

/// Reads every row of a `metrics.jsonl` (missing file = no rows); see [`read_jsonl`].
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    read_jsonl(path)
}

/// Reads every row of a JSON-lines file (missing file = no rows). A last
/// line without its newline that does not parse was cut short by a kill
/// mid-write and is dropped (TRAIN-8); any other bad line is an error.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TrainError::io(path, e)),
    };
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut rows = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(row) => rows.push(row),
            Err(_) if !complete && i + 1 == lines.len() => {}
            Err(e) => {
                return Err(TrainError::Checkpoint {
                    path: path.to_path_buf(),
                    reason: format!("line {}: {e}", i + 1),
                });
            }
        }
    }
    Ok(rows)
}
