//! Fetching GPT-2 from the Hugging Face Hub at a pinned revision (MODEL-8).
//!
//! The files land in the standard HF cache (`HF_HUB_CACHE`, else
//! `$HF_HOME/hub`, else `~/.cache/huggingface/hub`), so `transformers` and we
//! share them. A cached snapshot is used without touching the network; with
//! `HF_HUB_OFFLINE=1` a missing file is an error instead of a download.
//! `HF_ENDPOINT` replaces `https://huggingface.co`.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{ModelError, Result};
use crate::weights::{CONFIG_FILE, WEIGHTS_FILE};

/// The published GPT-2 small.
pub const GPT2_REPO: &str = "openai-community/gpt2";
/// The commit of [`GPT2_REPO`] we pin.
pub const GPT2_REVISION: &str = "607a30d783dfa663caf39e06633721c8d4cfcd7e";

/// The HF cache directory from the environment.
pub fn hf_cache_dir() -> Result<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("HF_HUB_CACHE")
        .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("huggingface").join("hub")))
        .ok_or_else(|| ModelError::Config("no HF cache: set HF_HOME or HOME".into()))
}

fn repo(repo_id: &str, revision: &str) -> Repo {
    Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string())
}

/// The snapshot directory of `repo_id@revision` in `cache` if it already holds
/// `config.json` and `model.safetensors`; never touches the network.
pub fn cached_model_dir(cache: &Path, repo_id: &str, revision: &str) -> Option<PathBuf> {
    let cached = Cache::new(cache.to_path_buf()).repo(repo(repo_id, revision));
    let config = cached.get(CONFIG_FILE)?;
    let weights = cached.get(WEIGHTS_FILE)?;
    let dir = config.parent()?.to_path_buf();
    (weights.parent() == Some(dir.as_path())).then_some(dir)
}

/// A local model directory for `repo_id@revision`: from `cache` when present,
/// else downloaded into it (unless `offline`).
pub fn fetch_model_dir(
    cache: &Path,
    repo_id: &str,
    revision: &str,
    offline: bool,
) -> Result<PathBuf> {
    if let Some(dir) = cached_model_dir(cache, repo_id, revision) {
        return Ok(dir);
    }
    let hub_err = |reason: String| ModelError::Hub {
        repo: repo_id.to_string(),
        revision: revision.to_string(),
        reason,
    };
    if offline {
        return Err(hub_err(format!(
            "not in the cache at {} and offline",
            cache.display()
        )));
    }
    let mut builder = ApiBuilder::from_cache(Cache::new(cache.to_path_buf())).with_progress(true);
    if let Some(endpoint) = std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()) {
        builder = builder.with_endpoint(endpoint);
    }
    let api = builder.build().map_err(|e| hub_err(e.to_string()))?;
    let remote = api.repo(repo(repo_id, revision));
    let mut dir = None;
    for file in [CONFIG_FILE, WEIGHTS_FILE] {
        let path = remote
            .get(file)
            .map_err(|e| hub_err(format!("{file}: {e}")))?;
        dir = path.parent().map(Path::to_path_buf);
    }
    dir.ok_or_else(|| hub_err("download returned no directory".into()))
}

/// GPT-2 small at the pinned revision, honouring `HF_HUB_OFFLINE`.
pub fn fetch_gpt2() -> Result<PathBuf> {
    let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v == "true");
    fetch_model_dir(&hf_cache_dir()?, GPT2_REPO, GPT2_REVISION, offline)
}

#[cfg(test)]
mod tests {
    use super::*;

    // MODEL-8
    #[test]
    fn model_8_cached_snapshot_is_found_offline_and_missing_one_is_an_error() {
        let cache = tempfile::tempdir().unwrap();
        let repo_dir = cache.path().join("models--openai-community--gpt2");
        let snap = repo_dir.join("snapshots").join(GPT2_REVISION);
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
        std::fs::write(repo_dir.join("refs").join(GPT2_REVISION), GPT2_REVISION).unwrap();
        std::fs::write(snap.join(CONFIG_FILE), "{}").unwrap();
        assert_eq!(
            cached_model_dir(cache.path(), GPT2_REPO, GPT2_REVISION),
            None
        );
        std::fs::write(snap.join(WEIGHTS_FILE), b"").unwrap();
        let dir = fetch_model_dir(cache.path(), GPT2_REPO, GPT2_REVISION, true).unwrap();
        assert_eq!(dir, snap);
        let err = fetch_model_dir(cache.path(), GPT2_REPO, "main", true).unwrap_err();
        assert!(err.to_string().contains("offline"), "{err}");
    }
}
