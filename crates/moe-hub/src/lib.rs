//! A small Hugging Face Hub client: list a repo at one commit, and download
//! files into the standard HF cache so that Python's `huggingface_hub` and
//! we share them. Used by the data pipeline (Hub datasets) and the model
//! (GPT-2 weights); it has no Burn dependency.
//!
//! Why our own: `hf-hub` (0.4 and 1.0) joins the server's `ETag` and
//! `X-Repo-Commit` into cache paths unchecked and caches truncated bodies.
//! Here every header that becomes a path is checked first, for every
//! response of a redirect chain ([`names`]); a download is written to a
//! temporary file and moved into place only once its size (and SHA-256,
//! where the ETag is one) matches what the server announced; requests time
//! out and are retried with backoff ([`NetOptions`]).
//!
//! - [`Hub`]: [`Hub::list`] and [`Hub::file`], online or offline.
//! - [`HubCache`]: the cache layout and its lookup rules.
//! - [`TempPath`]: a path removed on drop and on SIGINT/SIGTERM.
//!
//! ```no_run
//! use moe_hub::{Hub, HubOptions, Repo};
//! let hub = Hub::new(&HubOptions::default())?;
//! let repo = Repo::model("openai-community/gpt2");
//! let config = hub.file(&repo, "main", "config.json")?;
//! # Ok::<(), moe_hub::HubError>(())
//! ```
#![deny(missing_docs)]

mod cache;
mod download;
mod error;
mod http;
mod listing;
pub mod names;
mod temp;

use std::path::PathBuf;

pub use cache::{HubCache, Repo, RepoKind};
pub use error::{HubError, Result};
pub use http::NetOptions;
pub use listing::Listing;
pub use names::{is_commit, validate_remote_name, validate_revision};
pub use temp::TempPath;

/// How to reach the Hub and where its cache is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubOptions {
    /// Read only the cache (also on when `HF_HUB_OFFLINE` is `1` or `true`).
    pub offline: bool,
    /// Cache root (`…/hub`); default [`HubCache::from_env`].
    pub cache_dir: Option<PathBuf>,
    /// Hub URL; default `HF_ENDPOINT`, else `https://huggingface.co`.
    pub endpoint: Option<String>,
    /// Timeouts and retries.
    pub net: NetOptions,
    /// Draw a progress bar per download on stderr.
    pub progress: bool,
}

impl HubOptions {
    /// True when only the cache may be read.
    pub fn is_offline(&self) -> bool {
        self.offline
            || std::env::var("HF_HUB_OFFLINE")
                .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    }

    /// The cache these options name.
    pub fn cache(&self) -> Result<HubCache> {
        match &self.cache_dir {
            Some(dir) => Ok(HubCache::new(dir.clone())),
            None => HubCache::from_env(),
        }
    }
}

/// A Hub client over one cache (cheap to clone: the connection pool is shared).
#[derive(Clone)]
pub struct Hub {
    cache: HubCache,
    offline: bool,
    progress: bool,
    client: Option<http::Client>,
}

impl Hub {
    /// A client for `opts`; offline, it never opens a connection.
    pub fn new(opts: &HubOptions) -> Result<Self> {
        let cache = opts.cache()?;
        let offline = opts.is_offline();
        let client = if offline {
            None
        } else {
            let endpoint = opts
                .endpoint
                .clone()
                .or_else(|| std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()))
                .unwrap_or_else(|| "https://huggingface.co".into());
            Some(http::Client::new(
                &endpoint,
                token(&cache),
                opts.net.decide()?,
            )?)
        };
        Ok(Self {
            cache,
            offline,
            progress: opts.progress,
            client,
        })
    }

    /// The cache.
    pub fn cache(&self) -> &HubCache {
        &self.cache
    }

    /// True when only the cache is read.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// `repo` at `revision`: its commit and file names, from the Hub, or
    /// offline from `refs/<revision>` and the cached snapshot.
    pub fn list(&self, repo: &Repo, revision: &str) -> Result<Listing> {
        validate_revision(revision).map_err(HubError::Invalid)?;
        match &self.client {
            Some(client) => listing::list_online(client, repo, revision),
            None => {
                let commit =
                    self.cache
                        .commit_of(repo, revision)?
                        .ok_or_else(|| HubError::NotCached {
                            path: self.cache.repo_dir(repo).join("refs").join(revision),
                        })?;
                let files = self.cache.list_snapshot(repo, &commit)?;
                listing::checked(commit, files)
            }
        }
    }

    /// The local path of `name` in `repo` at `revision`: the cached file
    /// when present, else (online) downloaded and verified now, and
    /// `refs/<revision>` pointed at its commit.
    pub fn file(&self, repo: &Repo, revision: &str, name: &str) -> Result<PathBuf> {
        validate_revision(revision).map_err(HubError::Invalid)?;
        validate_remote_name(name).map_err(HubError::Invalid)?;
        if let Some(path) = self.cache.cached_file(repo, revision, name)? {
            return Ok(path);
        }
        let Some(client) = &self.client else {
            let commit = self.cache.commit_of(repo, revision)?;
            let path = match commit {
                Some(c) => self.cache.snapshot_dir(repo, &c).join(name),
                None => self.cache.repo_dir(repo).join("refs").join(revision),
            };
            return Err(HubError::NotCached { path });
        };
        let (path, commit) =
            download::download(client, &self.cache, repo, revision, name, self.progress)?;
        self.cache.write_ref(repo, revision, &commit)?;
        Ok(path)
    }
}

/// `HF_TOKEN`, else the token file beside the cache (`$HF_HOME/token`).
fn token(cache: &HubCache) -> Option<String> {
    let from_env = std::env::var("HF_TOKEN").ok();
    let from_file = || {
        let path = cache.root().parent()?.join("token");
        std::fs::read_to_string(path).ok()
    };
    from_env
        .or_else(from_file)
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}
