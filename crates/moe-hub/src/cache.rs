//! The standard Hugging Face cache layout, shared with Python's
//! `huggingface_hub` and `transformers` (HUB-2):
//!
//! ```text
//! <root>/<models|datasets>--<owner>--<name>/
//!     blobs/<etag>                    the bytes, named by the server's ETag
//!     snapshots/<commit>/<file>       a relative symlink to ../../blobs/<etag>
//!     refs/<revision>                 the commit a branch or tag pointed at
//! ```
//!
//! Lookup: `refs/<revision>` names the commit when it exists (and must hold
//! a 40-hex commit); a 40-hex revision without a ref is its own commit (a
//! cache filled by Python writes no ref for a commit).

use std::path::{Path, PathBuf};

use crate::error::{HubError, Result};
use crate::names::is_commit;
use crate::temp::TempPath;

/// A repository on the Hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoKind {
    /// A model repo (`/<id>` on the Hub).
    Model,
    /// A dataset repo (`/datasets/<id>`).
    Dataset,
}

/// A repo id with its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// Model or dataset.
    pub kind: RepoKind,
    /// `owner/name`.
    pub id: String,
}

impl Repo {
    /// A model repo.
    pub fn model(id: &str) -> Self {
        Self {
            kind: RepoKind::Model,
            id: id.to_string(),
        }
    }

    /// A dataset repo.
    pub fn dataset(id: &str) -> Self {
        Self {
            kind: RepoKind::Dataset,
            id: id.to_string(),
        }
    }

    /// The folder name in the cache, e.g. `datasets--openai--gsm8k`.
    pub fn folder_name(&self) -> String {
        format!("{}--{}", self.plural(), self.id).replace('/', "--")
    }

    fn plural(&self) -> &'static str {
        match self.kind {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        }
    }

    /// The path on the Hub of a file at `revision`.
    pub(crate) fn resolve_path(&self, revision: &str, name: &str) -> String {
        let prefix = match self.kind {
            RepoKind::Model => String::new(),
            RepoKind::Dataset => "datasets/".into(),
        };
        format!(
            "{prefix}{}/resolve/{}/{name}",
            self.id,
            revision.replace('/', "%2F")
        )
    }

    /// The API path listing the repo at `revision`.
    pub(crate) fn info_path(&self, revision: &str) -> String {
        format!(
            "api/{}/{}/revision/{}",
            self.plural(),
            self.id,
            revision.replace('/', "%2F")
        )
    }
}

/// The root of an HF cache (`…/huggingface/hub`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubCache {
    root: PathBuf,
}

impl HubCache {
    /// The cache at `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The cache the environment names: `HF_HUB_CACHE`, else `$HF_HOME/hub`,
    /// else `~/.cache/huggingface/hub` (SRC-6).
    pub fn from_env() -> Result<Self> {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        var("HF_HUB_CACHE")
            .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
            .or_else(|| var("HOME").map(|h| h.join(".cache").join("huggingface").join("hub")))
            .map(Self::new)
            .ok_or_else(|| HubError::Invalid("no HF cache: set HF_HOME or HOME".into()))
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of `repo`.
    pub fn repo_dir(&self, repo: &Repo) -> PathBuf {
        self.root.join(repo.folder_name())
    }

    /// The snapshot folder of `repo` at `commit`.
    pub fn snapshot_dir(&self, repo: &Repo, commit: &str) -> PathBuf {
        self.repo_dir(repo).join("snapshots").join(commit)
    }

    /// The commit `revision` names in the cache, if any: `refs/<revision>`,
    /// else a 40-hex revision itself. A ref not holding a commit is an error.
    /// `revision` must have passed [`crate::validate_revision`].
    pub fn commit_of(&self, repo: &Repo, revision: &str) -> Result<Option<String>> {
        let ref_path = self.repo_dir(repo).join("refs").join(revision);
        match std::fs::read_to_string(&ref_path) {
            Ok(text) => {
                let commit = text.trim();
                if is_commit(commit) {
                    Ok(Some(commit.to_string()))
                } else {
                    Err(HubError::Cache {
                        path: ref_path,
                        reason: format!("holds {commit:?}, not a 40-hex commit"),
                    })
                }
            }
            Err(_) if is_commit(revision) => Ok(Some(revision.to_string())),
            Err(_) => Ok(None),
        }
    }

    /// The cached file `name` of `repo` at `revision`, if present.
    pub fn cached_file(&self, repo: &Repo, revision: &str, name: &str) -> Result<Option<PathBuf>> {
        Ok(self
            .commit_of(repo, revision)?
            .map(|commit| self.snapshot_dir(repo, &commit).join(name))
            .filter(|path| path.is_file()))
    }

    /// Records that `revision` points at `commit` (not for a commit itself).
    pub fn write_ref(&self, repo: &Repo, revision: &str, commit: &str) -> Result<()> {
        if revision == commit {
            return Ok(());
        }
        let path = self.repo_dir(repo).join("refs").join(revision);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| HubError::io(dir, e))?;
        }
        std::fs::write(&path, commit).map_err(|e| HubError::io(&path, e))
    }

    /// The files of the snapshot of `repo` at `commit`, `/`-separated and
    /// sorted. A folder that loops back on itself is an error.
    pub fn list_snapshot(&self, repo: &Repo, commit: &str) -> Result<Vec<String>> {
        let snapshot = self.snapshot_dir(repo, commit);
        if !snapshot.is_dir() {
            return Err(HubError::NotCached { path: snapshot });
        }
        let mut names = Vec::new();
        list_files(&snapshot, &snapshot, 0, &mut names)?;
        names.sort();
        Ok(names)
    }

    /// A fresh temporary file in `repo`'s blob folder, removed unless kept.
    pub(crate) fn temp_blob(&self, repo: &Repo) -> Result<TempPath> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let blobs = self.repo_dir(repo).join("blobs");
        std::fs::create_dir_all(&blobs).map_err(|e| HubError::io(&blobs, e))?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Ok(TempPath::new(
            blobs.join(format!(".tmp-{}-{n}.part", std::process::id())),
        ))
    }

    /// Moves a verified download into `blobs/<etag>` and points
    /// `snapshots/<commit>/<name>` at it; returns the snapshot path.
    /// `etag`, `commit` and `name` must have passed their checks.
    pub(crate) fn store(
        &self,
        repo: &Repo,
        commit: &str,
        name: &str,
        etag: &str,
        temp: TempPath,
    ) -> Result<PathBuf> {
        let blob = self.repo_dir(repo).join("blobs").join(etag);
        std::fs::rename(temp.path(), &blob).map_err(|e| HubError::io(&blob, e))?;
        temp.keep();
        let pointer = self.snapshot_dir(repo, commit).join(name);
        let dir = pointer.parent().unwrap_or(&pointer);
        std::fs::create_dir_all(dir).map_err(|e| HubError::io(dir, e))?;
        if std::fs::symlink_metadata(&pointer).is_ok() {
            std::fs::remove_file(&pointer).map_err(|e| HubError::io(&pointer, e))?;
        }
        link_or_copy(&blob, &pointer, name)?;
        Ok(pointer)
    }
}

/// A relative symlink from the snapshot to the blob (a copy where the
/// platform has no symlinks).
fn link_or_copy(blob: &Path, pointer: &Path, name: &str) -> Result<()> {
    #[cfg(unix)]
    {
        let depth = name.split('/').count() + 1;
        let mut target = PathBuf::new();
        (0..depth).for_each(|_| target.push(".."));
        target.push("blobs");
        target.push(blob.file_name().unwrap_or_default());
        std::os::unix::fs::symlink(&target, pointer).map_err(|e| HubError::io(pointer, e))
    }
    #[cfg(not(unix))]
    {
        let _ = name;
        std::fs::copy(blob, pointer)
            .map(drop)
            .map_err(|e| HubError::io(pointer, e))
    }
}

/// Deep enough for any dataset layout, shallow enough to stop a loop.
const MAX_DEPTH: usize = 32;

fn list_files(root: &Path, dir: &Path, depth: usize, out: &mut Vec<String>) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(HubError::Cache {
            path: dir.to_path_buf(),
            reason: format!("folders nested deeper than {MAX_DEPTH} (a symlink loop?)"),
        });
    }
    let entries = std::fs::read_dir(dir).map_err(|e| HubError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| HubError::io(dir, e))?.path();
        if path.is_dir() {
            list_files(root, &path, depth + 1, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checks: HUB-2, SRC-12
    #[test]
    #[cfg(unix)]
    fn hub_2_a_snapshot_that_loops_is_an_error_not_a_hang() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = HubCache::new(tmp.path().to_path_buf());
        let repo = Repo::dataset("o/n");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let snap = cache.snapshot_dir(&repo, commit);
        std::fs::create_dir_all(snap.join("data")).unwrap();
        std::fs::write(snap.join("data/a.jsonl"), "{}").unwrap();
        assert_eq!(
            cache.list_snapshot(&repo, commit).unwrap(),
            ["data/a.jsonl"]
        );
        std::os::unix::fs::symlink("..", snap.join("data/up")).unwrap();
        let err = cache.list_snapshot(&repo, commit).unwrap_err().to_string();
        assert!(err.contains("symlink loop"), "{err}");
    }

    // Checks: HUB-2
    #[test]
    fn hub_2_a_ref_names_the_commit_and_a_commit_names_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = HubCache::new(tmp.path().to_path_buf());
        let repo = Repo::model("o/n");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(cache.commit_of(&repo, "main").unwrap(), None);
        assert_eq!(
            cache.commit_of(&repo, commit).unwrap().as_deref(),
            Some(commit)
        );
        cache.write_ref(&repo, "main", commit).unwrap();
        cache.write_ref(&repo, commit, commit).unwrap();
        assert!(!cache.repo_dir(&repo).join("refs").join(commit).exists());
        assert_eq!(
            cache.commit_of(&repo, "main").unwrap().as_deref(),
            Some(commit)
        );
        std::fs::write(cache.repo_dir(&repo).join("refs/main"), "../../x").unwrap();
        let err = cache.commit_of(&repo, "main").unwrap_err().to_string();
        assert!(err.contains("not a 40-hex commit"), "{err}");
        assert_eq!(repo.folder_name(), "models--o--n");
    }
}
