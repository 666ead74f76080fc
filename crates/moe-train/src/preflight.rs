//! What [`crate::trainer::train`] reads and checks before it writes
//! anything into the run directory (TRAIN-14): the resolved config and its
//! hash, the run already there and the checkpoint to resume, the compact
//! vocabulary.

use std::path::Path;

use moe_data::prepared::PreparedData;
use sha2::{Digest, Sha256};

use crate::checkpoint;
use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::run_dir::RunDir;
use crate::trainer::Resume;
use crate::vocab::VocabMap;

/// The compact vocabulary of all of the data's shards (train, val, test).
pub(crate) fn compact_vocab(data: &PreparedData) -> Result<VocabMap> {
    let mut shards = Vec::new();
    for info in &data.manifest.shards {
        shards.push(data.load_shard(info.split, &info.domain)?);
    }
    Ok(VocabMap::from_shards(shards.iter().map(Vec::as_slice)))
}

/// The resolved config as written to `config.toml`, and its sha256.
pub(crate) fn resolved_config(config: &RunConfig) -> Result<(String, String)> {
    let text = toml::to_string(config)
        .map_err(|e| TrainError::Mismatch(format!("config serialisation: {e}")))?;
    let sha = hex::encode(Sha256::digest(text.as_bytes()));
    Ok((text, sha))
}

/// Refuses an existing run unless resuming, a resume with nothing to resume
/// from (TRAIN-23), and a resume of another config; returns the checkpoint
/// to resume from. Writes nothing.
pub(crate) fn check_run_dir(dir: &RunDir, resume: Resume, config_sha: &str) -> Result<Option<u64>> {
    if dir.has_run() && resume == Resume::No {
        return Err(TrainError::Mismatch(format!(
            "{}: a run is already there (use --resume, or another --out)",
            dir.path().display()
        )));
    }
    let last = dir.checkpoints().last().copied();
    if resume == Resume::Checkpoint && last.is_none() {
        return Err(TrainError::Mismatch(format!(
            "{}: nothing to resume: {}",
            dir.path().display(),
            if dir.has_run() {
                "the run has no complete checkpoint yet (start it again in an empty --out)"
            } else {
                "no run is there"
            }
        )));
    }
    let Some(step) = last.filter(|_| resume != Resume::No) else {
        return Ok(None);
    };
    let state = checkpoint::read_state(dir, step)?;
    if state.config_sha256 != config_sha {
        return Err(TrainError::Mismatch(format!(
            "{}: the checkpoint belongs to another config",
            dir.path().display()
        )));
    }
    Ok(Some(step))
}

/// A resumed run's `vocab.json` must be the one this data gives.
pub(crate) fn check_vocab(dir: &RunDir, data: &Path, map: &VocabMap) -> Result<()> {
    match dir.vocab()? {
        Some(saved) if saved.gpt2_ids != map.gpt2_ids => Err(TrainError::Mismatch(format!(
            "{}: vocab.json was made from other data than {}",
            dir.path().display(),
            data.display()
        ))),
        _ => Ok(()),
    }
}
