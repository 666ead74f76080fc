//! Fetching GPT-2 from the Hugging Face Hub at a pinned revision (MODEL-8).
//!
//! The files land in the standard HF cache (`HF_HUB_CACHE`, else
//! `$HF_HOME/hub`, else `~/.cache/huggingface/hub`), so `transformers` and we
//! share them. A cached snapshot is used without touching the network; with
//! `HF_HUB_OFFLINE=1` a missing file is an error instead of a download.
//! `HF_ENDPOINT` replaces `https://huggingface.co`.

use std::path::{Path, PathBuf};

use moe_hub::{Hub, HubCache, HubOptions, Repo};

use crate::error::{ModelError, Result};
use crate::weights::{CONFIG_FILE, WEIGHTS_FILE};

/// The published GPT-2 small.
pub const GPT2_REPO: &str = "openai-community/gpt2";
/// The commit of [`GPT2_REPO`] we pin.
pub const GPT2_REVISION: &str = "607a30d783dfa663caf39e06633721c8d4cfcd7e";

/// The HF cache directory from the environment.
pub fn hf_cache_dir() -> Result<PathBuf> {
    HubCache::from_env()
        .map(|c| c.root().to_path_buf())
        .map_err(|e| ModelError::Config(e.to_string()))
}

/// The snapshot directory of `repo_id@revision` in `cache` if it already holds
/// `config.json` and `model.safetensors`; never touches the network.
///
/// `refs/<revision>` names the commit when there is one; a cache filled by
/// Python's `huggingface_hub` has no ref for a commit, so a 40-hex revision
/// falls back to `snapshots/<revision>/` (MODEL-12).
pub fn cached_model_dir(cache: &Path, repo_id: &str, revision: &str) -> Option<PathBuf> {
    moe_hub::validate_revision(revision).ok()?;
    let cache = HubCache::new(cache.to_path_buf());
    let commit = cache.commit_of(&Repo::model(repo_id), revision).ok()??;
    let dir = cache.snapshot_dir(&Repo::model(repo_id), &commit);
    (dir.join(CONFIG_FILE).is_file() && dir.join(WEIGHTS_FILE).is_file()).then_some(dir)
}

/// A local model directory for `repo_id@revision`: from `cache` when present,
/// else downloaded into it (unless `offline`), each file verified by
/// `moe-hub` before it is cached.
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
    let hub = Hub::new(&HubOptions {
        cache_dir: Some(cache.to_path_buf()),
        progress: true,
        ..Default::default()
    })
    .map_err(|e| hub_err(e.to_string()))?;
    let repo = Repo::model(repo_id);
    let mut dir = None;
    for file in [CONFIG_FILE, WEIGHTS_FILE] {
        let path = hub
            .file(&repo, revision, file)
            .map_err(|e| hub_err(e.to_string()))?;
        dir = path.parent().map(Path::to_path_buf);
    }
    dir.ok_or_else(|| hub_err("download returned no directory".into()))
}

/// GPT-2 small at the pinned revision, honouring `HF_HUB_OFFLINE`.
pub fn fetch_gpt2() -> Result<PathBuf> {
    let offline = HubOptions::default().is_offline();
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

    // MODEL-12
    #[test]
    fn model_12_python_cache_without_a_ref_for_the_commit_is_found() {
        // As `huggingface_hub` lays out a download at a commit: blobs, a
        // snapshot of that commit, and no `refs/<commit>` file.
        let cache = tempfile::tempdir().unwrap();
        let repo_dir = cache.path().join("models--openai-community--gpt2");
        let snap = repo_dir.join("snapshots").join(GPT2_REVISION);
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo_dir.join("blobs")).unwrap();
        std::fs::write(snap.join(CONFIG_FILE), "{}").unwrap();
        let other = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(repo_dir.join("snapshots").join(other)).unwrap();
        assert_eq!(
            cached_model_dir(cache.path(), GPT2_REPO, GPT2_REVISION),
            None,
            "weights missing"
        );
        std::fs::write(snap.join(WEIGHTS_FILE), b"").unwrap();
        let dir = fetch_model_dir(cache.path(), GPT2_REPO, GPT2_REVISION, true).unwrap();
        assert_eq!(dir, snap);
        assert!(!repo_dir.join("refs").exists(), "the lookup wrote a ref");
        // Another commit's (empty) snapshot and a branch without a ref are not found.
        assert_eq!(cached_model_dir(cache.path(), GPT2_REPO, other), None);
        assert_eq!(cached_model_dir(cache.path(), GPT2_REPO, "main"), None);
    }
}
