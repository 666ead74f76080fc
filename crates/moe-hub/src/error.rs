//! The error type of the Hub client: each variant names the file or URL and
//! the reason, in one line.

use std::path::PathBuf;

/// Everything that can go wrong while listing or downloading.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A revision, file name or setting is not acceptable (before any request).
    #[error("{0}")]
    Invalid(String),
    /// A request failed: no connection, a timeout, an error status.
    #[error("{url}: {reason}")]
    Http {
        /// The URL asked for.
        url: String,
        /// What failed, with the number of tries where it was retried.
        reason: String,
    },
    /// A response header that would become part of a cache path is unsafe.
    #[error("{name}: the server's {header} {value:?} {reason}; nothing was written")]
    UnsafeHeader {
        /// The remote file name.
        name: String,
        /// The header.
        header: &'static str,
        /// Its value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A download is not the whole file (truncated, an HTML page, a lying
    /// size or range, a wrong SHA-256).
    #[error("{name}: {reason}; nothing was cached")]
    Incomplete {
        /// The remote file name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Offline and the cache does not hold what is needed.
    #[error("offline and {} is not in the cache", .path.display())]
    NotCached {
        /// The cache path looked for.
        path: PathBuf,
    },
    /// The cache is unreadable or unwritable, or holds something unexpected.
    #[error("{}: {reason}", .path.display())]
    Cache {
        /// The cache path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl HubError {
    /// A [`HubError::Cache`] from an I/O error.
    pub(crate) fn io(path: impl Into<PathBuf>, e: std::io::Error) -> Self {
        Self::Cache {
            path: path.into(),
            reason: e.to_string(),
        }
    }
}

/// Result with [`HubError`].
pub type Result<T, E = HubError> = std::result::Result<T, E>;
