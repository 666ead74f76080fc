//! The run directory (TRAIN-18): the one type that knows its layout, as
//! `PreparedData` is for prepared data. Training writes through it and
//! analysis, the report and the binary read through it; nothing else names
//! a file of a run.
//!
//! ```text
//! <run>/config.toml            the resolved run config
//! <run>/metrics.jsonl          the events (start, train, eval, checkpoint, stop)
//! <run>/vocab.json             the compact vocabulary, when the run uses one
//! <run>/data.json              the identity of the prepared data it trained on
//! <run>/.lock                  held (flock) by the process training it
//! <run>/initial/               the MoE model at step 0 (never pruned)
//! <run>/checkpoints/step-N/    the kept checkpoints (model, optimizer, state)
//! <run>/final/                 the model after the last scheduled step
//! <run>/analysis/              what `moe analyze` writes
//! ```

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use moe_data::prepared::PreparedData;
use moe_data::split::Split;
use moe_model::weights::WEIGHTS_FILE;
use moe_model::{Gpt2, ModelConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::blocks::Blocks;
use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::metrics::{Event, MetricsLog, StopReason, read_events};
use crate::vocab::VocabMap;

const CONFIG_FILE: &str = "config.toml";
const METRICS_FILE: &str = "metrics.jsonl";
const PROBE_FILE: &str = "routing_probe.jsonl";
const CHECKPOINTS_DIR: &str = "checkpoints";
const FINAL_DIR: &str = "final";
const INITIAL_DIR: &str = "initial";
const ANALYSIS_DIR: &str = "analysis";
const VOCAB_FILE: &str = "vocab.json";
const DATA_FILE: &str = "data.json";
const LOCK_FILE: &str = ".lock";
/// A checkpoint directory's name before its zero-padded step.
const CHECKPOINT_PREFIX: &str = "step-";
/// The file of a checkpoint that marks it complete.
pub(crate) const CHECKPOINT_STATE: &str = "state.json";

/// What identifies a prepared data directory to a run: its manifest's
/// sha256 (the manifest holds every shard's sha256), and where it was.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataIdentity {
    /// sha256 of `manifest.json`.
    pub manifest_sha256: String,
    /// The directory, for messages (not compared).
    pub dir: String,
}

impl PartialEq for DataIdentity {
    /// Same manifest, wherever the directory is.
    fn eq(&self, other: &Self) -> bool {
        self.manifest_sha256 == other.manifest_sha256
    }
}

impl DataIdentity {
    /// The identity of `data`.
    pub fn of(data: &PreparedData) -> Result<Self> {
        let path = data.dir.join("manifest.json");
        let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
        Ok(Self {
            manifest_sha256: hex::encode(Sha256::digest(&bytes)),
            dir: data.dir.display().to_string(),
        })
    }
}

/// The exclusive lock on a run directory ([`RunDir::lock`]). Dropping it
/// releases it; a lock that never [`claimed`](RunLock::claim) the run
/// (a start refused by its checks) removes what taking it created.
#[derive(Debug)]
pub struct RunLock {
    file: std::fs::File,
    path: PathBuf,
    dir: PathBuf,
    created: bool,
    created_dir: bool,
    claimed: bool,
}

impl RunLock {
    /// Writes this process's pid into the lock file: the run's checks
    /// passed and it now changes the directory.
    pub fn claim(&mut self) -> Result<()> {
        use std::io::{Seek, Write};
        let pid = std::process::id().to_string();
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(std::io::SeekFrom::Start(0)))
            .and_then(|_| self.file.write_all(pid.as_bytes()))
            .map_err(|e| TrainError::io(&self.path, e))?;
        self.claimed = true;
        Ok(())
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if !self.claimed && self.created {
            let _ = std::fs::remove_file(&self.path);
            if self.created_dir {
                let _ = std::fs::remove_dir(&self.dir);
            }
        }
    }
}

/// A run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

/// Where a run directory stands against the config meant to train it.
#[derive(Debug, Clone, PartialEq)]
pub enum RunStatus {
    /// Nothing trained there yet.
    Empty,
    /// A run of another config is there.
    OtherConfig,
    /// A run of this config trained on other data is there (TRAIN-21).
    OtherData {
        /// The manifest sha256 the run recorded.
        recorded: String,
    },
    /// Trained to the end of its schedule (`final/` saved).
    Complete {
        /// Steps done.
        steps: u64,
    },
    /// Stopped early by a result of the study (a routing collapse).
    Stopped {
        /// The step it stopped at.
        step: u64,
        /// Why.
        reason: StopReason,
    },
    /// Interrupted or failed; it resumes from its last checkpoint (if any).
    Partial {
        /// The last complete checkpoint's step.
        checkpoint: Option<u64>,
    },
}

impl RunDir {
    /// The run directory at `root` (nothing is read or written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Whether a run has started here (it has events).
    pub fn has_run(&self) -> bool {
        self.metrics_path().exists()
    }

    /// The resolved config the run was trained with.
    pub fn config(&self) -> Result<RunConfig> {
        RunConfig::load(&self.root.join(CONFIG_FILE))
    }

    /// Writes the resolved config (creating the directory).
    pub fn write_config(&self, text: &str) -> Result<()> {
        std::fs::create_dir_all(&self.root).map_err(|e| TrainError::io(&self.root, e))?;
        let path = self.root.join(CONFIG_FILE);
        std::fs::write(&path, text).map_err(|e| TrainError::io(&path, e))
    }

    /// The events file (for messages; read it with [`RunDir::events`]).
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join(METRICS_FILE)
    }

    /// Every event so far (none when the run has not started).
    pub fn events(&self) -> Result<Vec<Event>> {
        read_events(&self.metrics_path())
    }

    /// Opens the events for appending; on resume from `keep_through`,
    /// drops the rows of later steps.
    pub fn open_log(&self, keep_through: Option<u64>) -> Result<MetricsLog> {
        MetricsLog::open(&self.metrics_path(), keep_through)
    }

    /// The routing probe's rows (TRAIN-27; none for a dense run or a run
    /// trained before the probe existed).
    pub fn probe(&self) -> Result<Vec<crate::probe::ProbeRow>> {
        crate::probe::read_probe(&self.root.join(PROBE_FILE))
    }

    /// Opens the routing probe for a run starting at step `start`: a
    /// resume keeps the rows up to `start`, a fresh start none.
    pub fn open_probe(&self, start: u64) -> Result<crate::metrics::JsonlLog> {
        crate::probe::open_probe(&self.root.join(PROBE_FILE), start)
    }

    /// The checkpoint directory of `step`.
    pub fn checkpoint_dir(&self, step: u64) -> PathBuf {
        self.root
            .join(CHECKPOINTS_DIR)
            .join(format!("{CHECKPOINT_PREFIX}{step:07}"))
    }

    /// The step of a checkpoint directory (`…/step-0000040` → 40), or
    /// `None` when `dir` is not named as one.
    pub fn checkpoint_step(dir: &Path) -> Option<u64> {
        dir.file_name()?
            .to_str()?
            .strip_prefix(CHECKPOINT_PREFIX)?
            .parse()
            .ok()
    }

    /// Where the checkpoint of `step` is written before it is renamed.
    pub(crate) fn checkpoint_tmp_dir(&self, step: u64) -> PathBuf {
        self.root
            .join(CHECKPOINTS_DIR)
            .join(format!(".step-{step:07}.tmp"))
    }

    /// Steps of the complete checkpoints, ascending.
    pub fn checkpoints(&self) -> Vec<u64> {
        let Ok(entries) = std::fs::read_dir(self.root.join(CHECKPOINTS_DIR)) else {
            return Vec::new();
        };
        let mut steps: Vec<u64> = entries
            .flatten()
            .filter(|e| e.path().join(CHECKPOINT_STATE).is_file())
            .filter_map(|e| Self::checkpoint_step(&e.path()))
            .collect();
        steps.sort_unstable();
        steps
    }

    /// The model after the last scheduled step.
    pub fn final_dir(&self) -> PathBuf {
        self.root.join(FINAL_DIR)
    }

    /// Whether `final/` holds a model.
    pub fn has_final(&self) -> bool {
        self.final_dir().join(WEIGHTS_FILE).is_file()
    }

    /// Saves the model after the last scheduled step into `final/`.
    pub fn save_final<B: Backend>(&self, model: &Gpt2<B>, config: &ModelConfig) -> Result<()> {
        Ok(moe_model::save_model_dir(model, config, &self.final_dir())?)
    }

    /// The MoE model at step 0.
    pub fn initial_dir(&self) -> PathBuf {
        self.root.join(INITIAL_DIR)
    }

    /// Whether `initial/` holds a model.
    pub fn has_initial(&self) -> bool {
        self.initial_dir().join(WEIGHTS_FILE).is_file()
    }

    /// Saves the model at step 0 into `initial/` (written to a temporary
    /// directory and renamed), so that analysis has any run's step-0 router.
    pub fn save_initial<B: Backend>(&self, model: &Gpt2<B>, config: &ModelConfig) -> Result<()> {
        let dir = self.initial_dir();
        let tmp = self.root.join(format!(".{INITIAL_DIR}.tmp"));
        for d in [&tmp, &dir] {
            if d.exists() {
                std::fs::remove_dir_all(d).map_err(|e| TrainError::io(d, e))?;
            }
        }
        moe_model::save_model_dir(model, config, &tmp)?;
        std::fs::rename(&tmp, &dir).map_err(|e| TrainError::io(&dir, e))
    }

    /// The trained model to read and its step: `final/` (at `total_steps`),
    /// else the last checkpoint (a run stopped early has no `final/`).
    pub fn trained_model(&self, total_steps: u64) -> Option<(PathBuf, u64)> {
        if self.has_final() {
            return Some((self.final_dir(), total_steps));
        }
        let step = *self.checkpoints().last()?;
        Some((self.checkpoint_dir(step), step))
    }

    /// The run's compact vocabulary, when it trained on one.
    pub fn vocab(&self) -> Result<Option<VocabMap>> {
        VocabMap::load(&self.root.join(VOCAB_FILE))
    }

    /// Saves the compact vocabulary.
    pub fn save_vocab(&self, map: &VocabMap) -> Result<()> {
        map.save(&self.root.join(VOCAB_FILE))
    }

    /// The val blocks as the run's eval saw them: the first `max_blocks`
    /// of each domain of `data` (0 = all), in GPT-2 ids, with the run's
    /// compact vocabulary when it trained on one (eval maps through it).
    pub fn val_blocks(
        &self,
        data: &PreparedData,
        max_blocks: usize,
    ) -> Result<(Blocks, Option<VocabMap>)> {
        Ok((Blocks::load(data, Split::Val, max_blocks)?, self.vocab()?))
    }

    /// The identity of the data the run trained on, when it recorded one
    /// (runs from before TRAIN-21 did not).
    pub fn data_identity(&self) -> Result<Option<DataIdentity>> {
        let path = self.root.join(DATA_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(TrainError::io(&path, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| TrainError::Checkpoint {
                path,
                reason: format!("not a data identity: {e}"),
            })
    }

    /// Records the identity of the data the run trains on.
    pub(crate) fn save_data_identity(&self, data: &DataIdentity) -> Result<()> {
        let path = self.root.join(DATA_FILE);
        let text = serde_json::to_string_pretty(data).expect("a data identity serialises");
        std::fs::write(&path, text + "\n").map_err(|e| TrainError::io(&path, e))
    }

    /// Refuses `data` when the run recorded other data (TRAIN-21).
    pub fn check_data(&self, data: &DataIdentity) -> Result<()> {
        match self.data_identity()? {
            Some(recorded) if &recorded != data => Err(TrainError::Mismatch(format!(
                "{}: the run was trained on other data (manifest sha256 {}), not {} (manifest sha256 {})",
                self.root.display(),
                recorded.manifest_sha256,
                data.dir,
                data.manifest_sha256
            ))),
            _ => Ok(()),
        }
    }

    /// Takes the run directory's exclusive lock (TRAIN-22), creating the
    /// directory when needed; refused, naming the holder's pid, while
    /// another process holds it. Held until the returned lock is dropped.
    pub fn lock(&self) -> Result<RunLock> {
        let existed = self.root.exists();
        std::fs::create_dir_all(&self.root).map_err(|e| TrainError::io(&self.root, e))?;
        let path = self.root.join(LOCK_FILE);
        let created = !path.exists();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock {
                file,
                path,
                dir: self.root.clone(),
                created,
                created_dir: !existed,
                claimed: false,
            }),
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                Err(TrainError::Mismatch(format!(
                    "{}: another moe process is training this run directory ({})",
                    self.root.display(),
                    if holder.is_empty() {
                        "its pid is not written yet".to_string()
                    } else {
                        format!("pid {holder}")
                    }
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(TrainError::io(&path, e)),
        }
    }

    /// Where `moe analyze` writes by default.
    pub fn analysis_dir(&self) -> PathBuf {
        self.root.join(ANALYSIS_DIR)
    }

    /// `dir` relative to the run directory, as the events record it.
    pub fn relative(&self, dir: &Path) -> String {
        dir.strip_prefix(&self.root)
            .unwrap_or(dir)
            .display()
            .to_string()
    }

    /// Where the run stands against `expected` (its resolved config) on
    /// the data of identity `data` ([`DataIdentity::of`]).
    pub fn status(&self, expected: &RunConfig, data: &DataIdentity) -> Result<RunStatus> {
        if !self.has_run() {
            return Ok(RunStatus::Empty);
        }
        if self.config().ok().as_ref() != Some(expected) {
            return Ok(RunStatus::OtherConfig);
        }
        if let Some(recorded) = self.data_identity()?
            && &recorded != data
        {
            return Ok(RunStatus::OtherData {
                recorded: recorded.manifest_sha256,
            });
        }
        if self.has_final() {
            return Ok(RunStatus::Complete {
                steps: expected.train.steps,
            });
        }
        let stop = self.events()?.into_iter().rev().find_map(|e| match e {
            Event::Stop { step, reason, .. } if reason.is_result() => Some((step, reason)),
            _ => None,
        });
        Ok(match stop {
            Some((step, reason)) => RunStatus::Stopped { step, reason },
            None => RunStatus::Partial {
                checkpoint: self.checkpoints().last().copied(),
            },
        })
    }
}
