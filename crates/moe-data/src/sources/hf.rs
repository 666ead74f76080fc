//! Hugging Face Hub dataset sources, through `hf-hub` and the standard HF
//! cache (SRC-4 … SRC-7).
//!
//! Online, the revision is resolved to a commit once and every file is
//! downloaded *at that commit*, so a branch moving mid-run cannot mix
//! versions. Offline, only the cache is read: `refs/<revision>` names the
//! commit and `snapshots/<commit>/` holds the files. Remote file names are
//! validated before they touch the file system; nothing downloaded is run.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::config::SourceConfig;
use crate::error::{DataError, Result};

/// How to reach the Hub.
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    /// Read only the local cache (also on when `HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Refuse revisions that are not 40-hex commits.
    pub locked: bool,
    /// Cache root (`…/hub`); default from `HF_HOME` or `~/.cache/huggingface/hub`.
    pub cache_dir: Option<PathBuf>,
    /// Hub URL; default from `HF_ENDPOINT` or `https://huggingface.co`.
    pub endpoint: Option<String>,
}

/// A Hub source resolved to one commit and local files.
#[derive(Debug, Clone)]
pub struct ResolvedHub {
    /// The 40-hex commit the files come from.
    pub commit: String,
    /// `(name in the repo, local path)`, in sorted name order.
    pub files: Vec<(String, PathBuf)>,
}

/// True for a full 40-hex commit id.
pub fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks a remote file name before it is used as a path.
fn validate_remote_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\\')
        && name
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

impl HubOptions {
    fn cache(&self) -> Cache {
        match &self.cache_dir {
            Some(dir) => Cache::new(dir.clone()),
            None => Cache::from_env(),
        }
    }

    fn is_offline(&self) -> bool {
        self.offline
            || std::env::var("HF_HUB_OFFLINE")
                .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    }
}

/// Resolves a `kind = "hf"` source to local files (downloading unless offline).
pub fn resolve(source: &SourceConfig, opts: &HubOptions) -> Result<ResolvedHub> {
    let repo_id = source.repo.clone().unwrap_or_default();
    let revision = source
        .revision
        .clone()
        .unwrap_or_else(|| "main".to_string());
    let hub_err = |reason: String| DataError::Hub {
        repo: repo_id.clone(),
        revision: revision.clone(),
        reason,
    };
    if opts.locked && !is_commit(&revision) {
        return Err(hub_err(
            "--locked needs `revision` to be a 40-hex commit".into(),
        ));
    }
    let (commit, available) = if opts.is_offline() {
        offline_listing(&opts.cache(), &repo_id, &revision).map_err(hub_err)?
    } else {
        online_listing(opts, &repo_id, &revision).map_err(hub_err)?
    };
    if let Some(bad) = available.iter().find(|n| !validate_remote_name(n)) {
        return Err(hub_err(format!(
            "the repo lists an unsafe file name {bad:?}"
        )));
    }
    let names = select_files(&source.files, &available).map_err(hub_err)?;
    let files = if opts.is_offline() {
        let snapshot = snapshot_dir(&opts.cache(), &repo_id, &commit);
        names
            .into_iter()
            .map(|n| (n.clone(), snapshot.join(&n)))
            .collect()
    } else {
        download(opts, &repo_id, &revision, &commit, names).map_err(hub_err)?
    };
    Ok(ResolvedHub { commit, files })
}

/// The files of `available` that the configured names/globs select, sorted.
fn select_files(
    patterns: &[String],
    available: &[String],
) -> std::result::Result<Vec<String>, String> {
    let mut chosen = std::collections::BTreeSet::new();
    for pattern in patterns {
        let glob = glob::Pattern::new(pattern)
            .map_err(|e| format!("bad file pattern {pattern:?}: {e}"))?;
        let before = chosen.len();
        chosen.extend(
            available
                .iter()
                .filter(|n| *n == pattern || glob.matches(n))
                .cloned(),
        );
        if chosen.len() == before {
            return Err(format!("no file in the repo matches {pattern:?}"));
        }
    }
    Ok(chosen.into_iter().collect())
}

fn online_listing(
    opts: &HubOptions,
    repo_id: &str,
    revision: &str,
) -> std::result::Result<(String, Vec<String>), String> {
    let api = build_api(opts)?;
    let repo = Repo::with_revision(repo_id.to_string(), RepoType::Dataset, revision.to_string());
    let info = api
        .repo(repo)
        .info()
        .map_err(|e| format!("listing files failed: {e}"))?;
    if !is_commit(&info.sha) {
        return Err(format!("the Hub answered a non-commit sha {:?}", info.sha));
    }
    Ok((
        info.sha,
        info.siblings.into_iter().map(|s| s.rfilename).collect(),
    ))
}

fn build_api(opts: &HubOptions) -> std::result::Result<hf_hub::api::sync::Api, String> {
    let mut builder = match &opts.cache_dir {
        Some(dir) => ApiBuilder::from_cache(Cache::new(dir.clone())),
        None => ApiBuilder::from_env(),
    };
    if let Some(endpoint) = &opts.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    } else if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
        builder = builder.with_endpoint(endpoint);
    }
    builder
        .with_progress(false)
        .build()
        .map_err(|e| format!("client setup failed: {e}"))
}

fn download(
    opts: &HubOptions,
    repo_id: &str,
    revision: &str,
    commit: &str,
    names: Vec<String>,
) -> std::result::Result<Vec<(String, PathBuf)>, String> {
    let api = build_api(opts)?;
    let pinned = api.repo(Repo::with_revision(
        repo_id.to_string(),
        RepoType::Dataset,
        commit.to_string(),
    ));
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let path = pinned
            .get(&name)
            .map_err(|e| format!("downloading {name} failed: {e}"))?;
        files.push((name, path));
    }
    // Point the branch name at the commit too, so `--offline` finds it later.
    let cache = opts.cache();
    let named = cache.repo(Repo::with_revision(
        repo_id.to_string(),
        RepoType::Dataset,
        revision.to_string(),
    ));
    named
        .create_ref(commit)
        .map_err(|e| format!("writing the cache ref failed: {e}"))?;
    Ok(files)
}

fn repo_dir(cache: &Cache, repo_id: &str) -> PathBuf {
    cache
        .path()
        .join(Repo::new(repo_id.to_string(), RepoType::Dataset).folder_name())
}

fn snapshot_dir(cache: &Cache, repo_id: &str, commit: &str) -> PathBuf {
    repo_dir(cache, repo_id).join("snapshots").join(commit)
}

fn offline_listing(
    cache: &Cache,
    repo_id: &str,
    revision: &str,
) -> std::result::Result<(String, Vec<String>), String> {
    let repo = repo_dir(cache, repo_id);
    let ref_path = repo.join("refs").join(revision);
    let commit = match std::fs::read_to_string(&ref_path) {
        Ok(c) => c.trim().to_string(),
        Err(_) if is_commit(revision) => revision.to_string(),
        Err(_) => {
            return Err(format!(
                "offline and {} is not in the cache",
                ref_path.display()
            ));
        }
    };
    let snapshot = snapshot_dir(cache, repo_id, &commit);
    if !snapshot.is_dir() {
        return Err(format!(
            "offline and {} is not in the cache",
            snapshot.display()
        ));
    }
    let mut names = Vec::new();
    list_files(&snapshot, &snapshot, &mut names)
        .map_err(|e| format!("{}: {e}", snapshot.display()))?;
    Ok((commit, names))
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            list_files(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn src_7_remote_names_are_validated() {
        assert!(validate_remote_name("main/train-00000-of-00001.parquet"));
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", "", "a\\b"] {
            assert!(!validate_remote_name(bad), "{bad}");
        }
    }

    #[test]
    fn src_5_locked_needs_commit() {
        assert!(is_commit("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit("main"));
    }

    #[test]
    fn src_4_globs_select_sorted_files() {
        let avail: Vec<String> = [
            "b/train-1.parquet",
            "a/train-0.parquet",
            "a/test.parquet",
            "README.md",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let got = select_files(&["*/train-*.parquet".to_string()], &avail).unwrap();
        assert_eq!(got, ["a/train-0.parquet", "b/train-1.parquet"]);
        assert!(select_files(&["nope.parquet".to_string()], &avail).is_err());
    }
}
