//! Hugging Face Hub dataset sources (SRC-4 … SRC-7, SRC-9, SRC-10), through
//! `moe-hub` and the standard HF cache.
//!
//! Online, the revision is resolved to a commit once and the selected files
//! are downloaded *at that commit*, so a branch moving mid-run cannot mix
//! versions. [`resolve`] only lists; [`ResolvedHub::fetch`] downloads one
//! file when the collector is about to read it, in sorted name order, so
//! nothing after the file that met the domain's target is downloaded
//! (SRC-10). Offline, only the cache is read: `refs/<revision>` names the
//! commit and `snapshots/<commit>/` holds the files. Names, revisions and
//! the server's headers are checked in `moe-hub` before they touch a path.

use std::path::PathBuf;

use moe_hub::{Hub, Repo};

use crate::config::SourceConfig;
use crate::error::{DataError, Result};

pub use moe_hub::NetOptions;

/// How to reach the Hub.
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    /// Read only the local cache (also on when `HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Refuse revisions that are not 40-hex commits.
    pub locked: bool,
    /// Cache root (`…/hub`); default from `HF_HUB_CACHE`, `HF_HOME` or `~/.cache/huggingface/hub`.
    pub cache_dir: Option<PathBuf>,
    /// Hub URL; default from `HF_ENDPOINT` or `https://huggingface.co`.
    pub endpoint: Option<String>,
    /// Timeouts and retries (default from the environment, see [`NetOptions`]).
    pub net: NetOptions,
}

impl HubOptions {
    fn client(&self) -> moe_hub::Result<Hub> {
        Hub::new(&moe_hub::HubOptions {
            offline: self.offline,
            cache_dir: self.cache_dir.clone(),
            endpoint: self.endpoint.clone(),
            net: self.net.clone(),
            progress: false,
        })
    }
}

/// A Hub source resolved to one commit and its selected files, which are
/// downloaded one at a time by [`ResolvedHub::fetch`].
#[derive(Clone)]
pub struct ResolvedHub {
    /// The 40-hex commit the files come from.
    pub commit: String,
    /// Names in the repo of the selected files, sorted.
    pub names: Vec<String>,
    repo: Repo,
    revision: String,
    hub: Hub,
}

impl std::fmt::Debug for ResolvedHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedHub")
            .field("repo", &self.repo.id)
            .field("revision", &self.revision)
            .field("commit", &self.commit)
            .field("names", &self.names)
            .finish()
    }
}

fn hub_error(repo: &str, revision: &str) -> impl Fn(String) -> DataError + use<> {
    let (repo, revision) = (repo.to_string(), revision.to_string());
    move |reason| DataError::Hub {
        repo: repo.clone(),
        revision: revision.clone(),
        reason,
    }
}

/// Resolves a `kind = "hf"` source to a commit and its selected files,
/// downloading nothing.
pub fn resolve(source: &SourceConfig, opts: &HubOptions) -> Result<ResolvedHub> {
    let repo_id = source.repo.clone().unwrap_or_default();
    let revision = source
        .revision
        .clone()
        .unwrap_or_else(|| "main".to_string());
    let err = hub_error(&repo_id, &revision);
    moe_hub::validate_revision(&revision).map_err(&err)?;
    if opts.locked && !moe_hub::is_commit(&revision) {
        return Err(err("--locked needs `revision` to be a 40-hex commit".into()));
    }
    let hub = opts.client().map_err(|e| err(e.to_string()))?;
    let repo = Repo::dataset(&repo_id);
    let listing = hub
        .list(&repo, &revision)
        .map_err(|e| err(format!("listing files failed: {e}")))?;
    let names = select_files(&source.files, &listing.files).map_err(&err)?;
    Ok(ResolvedHub {
        commit: listing.commit,
        names,
        repo,
        revision,
        hub,
    })
}

impl ResolvedHub {
    /// Where `name` lies in the cache once fetched.
    pub fn cache_path(&self, name: &str) -> PathBuf {
        self.hub
            .cache()
            .snapshot_dir(&self.repo, &self.commit)
            .join(name)
    }

    /// The local file of `name` (one of [`Self::names`]): from the cache
    /// when offline, else downloaded at the commit now (and the revision's
    /// ref pointed at the commit, so `--offline` finds it later).
    pub fn fetch(&self, name: &str) -> Result<PathBuf> {
        let err = hub_error(&self.repo.id, &self.revision);
        if !self.names.iter().any(|n| n == name) {
            return Err(err(format!("{name} is not a selected file")));
        }
        let path = self
            .hub
            .file(&self.repo, &self.commit, name)
            .map_err(|e| err(e.to_string()))?;
        if !self.hub.is_offline() {
            self.hub
                .cache()
                .write_ref(&self.repo, &self.revision, &self.commit)
                .map_err(|e| err(format!("writing the cache ref failed: {e}")))?;
        }
        Ok(path)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    // Checks: SRC-9
    #[test]
    fn src_9_a_bad_revision_never_reaches_a_cache_path() {
        // Without the check, offline `refs/../../x` would read `<cache>/x`
        // and list the snapshot it names.
        let cache = tempfile::tempdir().unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::write(cache.path().join("x"), commit).unwrap();
        let snap = cache.path().join("datasets--o--n/snapshots").join(commit);
        std::fs::create_dir_all(&snap).unwrap();
        let refs = cache.path().join("datasets--o--n/refs");
        std::fs::create_dir_all(&refs).unwrap();
        std::fs::write(snap.join("a.jsonl"), "{}\n").unwrap();
        let source: SourceConfig = toml::from_str(
            "kind = \"hf\"\nrepo = \"o/n\"\nrevision = \"../../x\"\nfiles = [\"*.jsonl\"]\nformat = \"jsonl\"\n",
        )
        .unwrap();
        let opts = HubOptions {
            offline: true,
            cache_dir: Some(cache.path().to_path_buf()),
            ..Default::default()
        };
        let err = resolve(&source, &opts).unwrap_err().to_string();
        assert!(err.contains("revision \"../../x\""), "{err}");
        // A ref naming something other than a commit is not followed either.
        std::fs::write(refs.join("main"), format!("../../../{commit}")).unwrap();
        let source: SourceConfig = toml::from_str(
            "kind = \"hf\"\nrepo = \"o/n\"\nfiles = [\"*.jsonl\"]\nformat = \"jsonl\"\n",
        )
        .unwrap();
        let err = resolve(&source, &opts).unwrap_err().to_string();
        assert!(err.contains("not a 40-hex commit"), "{err}");
        std::fs::write(refs.join("main"), commit).unwrap();
        assert_eq!(resolve(&source, &opts).unwrap().names, ["a.jsonl"]);
    }

    // Checks: SRC-4
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
