//! Hugging Face Hub dataset sources, through `hf-hub` and the standard HF
//! cache (SRC-4 … SRC-7). Over 400 lines: resolving, name validation, the
//! offline cache layout and the lazy download are one protocol with one
//! set of invariants, kept in one place.
//!
//! Online, the revision is resolved to a commit once and the selected files
//! are downloaded *at that commit*, so a branch moving mid-run cannot mix
//! versions. [`resolve`] only lists; [`ResolvedHub::fetch`] downloads one
//! file when the collector is about to read it, in sorted name order, so
//! nothing after the file that met the domain's target is downloaded
//! (SRC-10). Offline, only the cache is read: `refs/<revision>` names the
//! commit and `snapshots/<commit>/` holds the files. The revision and remote
//! file names are validated before they touch the file system or a URL
//! (SRC-7, SRC-9); nothing downloaded is run.

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

/// A Hub source resolved to one commit and its selected files, which are
/// downloaded one at a time by [`ResolvedHub::fetch`].
#[derive(Debug, Clone)]
pub struct ResolvedHub {
    /// The 40-hex commit the files come from.
    pub commit: String,
    /// Names in the repo of the selected files, sorted.
    pub names: Vec<String>,
    repo_id: String,
    revision: String,
    opts: HubOptions,
}

/// True for a full 40-hex commit id.
pub fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks a revision before it is used in a URL or a cache path (SRC-9):
/// what Git and the Hub allow in a ref, restricted to `A-Za-z0-9._-/` —
/// components separated by `/`, none empty or starting with `.`, no `..`,
/// not ending in `.lock`, at most 255 bytes. `main`, `v1.0`, `refs/pr/1`,
/// `refs/convert/parquet` and 40-hex commits pass; `../../x` does not.
pub fn validate_revision(revision: &str) -> std::result::Result<(), String> {
    let bad = |why: &str| Err(format!("revision {revision:?} {why}"));
    if revision.is_empty() || revision.len() > 255 {
        return bad("must be 1 to 255 bytes");
    }
    if let Some(c) = revision
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-/".contains(*c)))
    {
        return bad(&format!(
            "has {c:?}; a Hub ref uses only A-Z a-z 0-9 . _ - /"
        ));
    }
    if revision.contains("..") {
        return bad("contains `..`");
    }
    if revision
        .split('/')
        .any(|c| c.is_empty() || c.starts_with('.') || c.ends_with(".lock"))
    {
        return bad("has an empty component, one starting with `.`, or one ending in `.lock`");
    }
    Ok(())
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

/// Resolves a `kind = "hf"` source to a commit and its selected files,
/// downloading nothing.
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
    validate_revision(&revision).map_err(hub_err)?;
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
    Ok(ResolvedHub {
        commit,
        names,
        repo_id,
        revision,
        opts: opts.clone(),
    })
}

impl ResolvedHub {
    /// Where `name` lies in the cache once fetched.
    pub fn cache_path(&self, name: &str) -> PathBuf {
        snapshot_dir(&self.opts.cache(), &self.repo_id, &self.commit).join(name)
    }

    /// The local file of `name` (one of [`Self::names`]): from the cache
    /// when offline, else downloaded at the commit now.
    pub fn fetch(&self, name: &str) -> Result<PathBuf> {
        let hub_err = |reason: String| DataError::Hub {
            repo: self.repo_id.clone(),
            revision: self.revision.clone(),
            reason,
        };
        if !self.names.iter().any(|n| n == name) {
            return Err(hub_err(format!("{name} is not a selected file")));
        }
        if self.opts.is_offline() {
            let path = self.cache_path(name);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(hub_err(format!(
                    "offline and {} is not in the cache",
                    path.display()
                )))
            };
        }
        self.download(name).map_err(hub_err)
    }

    fn download(&self, name: &str) -> std::result::Result<PathBuf, String> {
        let api = build_api(&self.opts)?;
        let pinned = api.repo(Repo::with_revision(
            self.repo_id.clone(),
            RepoType::Dataset,
            self.commit.clone(),
        ));
        let path = pinned
            .get(name)
            .map_err(|e| format!("downloading {name} failed: {e}"))?;
        // Point the branch name at the commit too, so `--offline` finds it later.
        let named = self.opts.cache().repo(Repo::with_revision(
            self.repo_id.clone(),
            RepoType::Dataset,
            self.revision.clone(),
        ));
        named
            .create_ref(&self.commit)
            .map_err(|e| format!("writing the cache ref failed: {e}"))?;
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
    if !is_commit(&commit) {
        return Err(format!(
            "{} holds {commit:?}, not a 40-hex commit",
            ref_path.display()
        ));
    }
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

    // Checks: SRC-9
    #[test]
    fn src_9_revisions_are_validated() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        for good in [
            "main",
            "v1.0",
            "refs/pr/1",
            "refs/convert/parquet",
            "my_branch-2",
            commit,
        ] {
            assert_eq!(validate_revision(good), Ok(()), "{good}");
        }
        let long = "a".repeat(256);
        for bad in [
            "../../x", "..", "a/../b", "a..b", "/main", "main/", "a//b", ".hidden", "a/.b",
            "x.lock", "a b", "a\\b", "a:b", "a~1", "a^", "a?", "a*", "a[", "a@{1}", "", "ma\nin",
            "é", &long,
        ] {
            assert!(validate_revision(bad).is_err(), "{bad:?} passed");
        }
    }

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
