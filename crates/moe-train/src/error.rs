//! Errors of the training crate: each names the file and the fact.

use std::path::PathBuf;

/// Everything that can stop a run before or between steps.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The run config is unreadable or invalid.
    #[error("{path}: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// The key and what is wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// The prepared data is unusable for this run.
    #[error("data: {0}")]
    Data(#[from] moe_data::DataError),
    /// The model could not be built or loaded.
    #[error("model: {0}")]
    Model(#[from] moe_model::ModelError),
    /// A checkpoint is missing, incomplete or does not match the run.
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The checkpoint directory or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The data and the config disagree (block size, domains …).
    #[error("{0}")]
    Mismatch(String),
}

impl TrainError {
    /// An [`TrainError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
