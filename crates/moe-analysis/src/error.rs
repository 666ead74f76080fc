//! Errors of the analysis: each names the file or the fact that failed.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Anything that can go wrong while analysing a run or writing the report.
#[derive(Debug, Error)]
pub enum AnalysisError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A run directory lacks something analysis needs, or holds something invalid.
    #[error("{path}: {reason}")]
    Run {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The prepared data could not be read.
    #[error(transparent)]
    Data(#[from] moe_data::DataError),
    /// The model could not be loaded or built.
    #[error(transparent)]
    Model(#[from] moe_model::ModelError),
    /// The run's config or metrics could not be read.
    #[error(transparent)]
    Train(#[from] moe_train::TrainError),
    /// Drawing a figure failed.
    #[error("{path}: figure: {reason}")]
    Figure {
        /// The figure file.
        path: PathBuf,
        /// What the plotting backend said.
        reason: String,
    },
    /// The Python lexer could not be loaded.
    #[error("python lexer: {0}")]
    Lexer(String),
}

impl AnalysisError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A problem with a run's file or directory.
    pub fn run(path: &Path, reason: impl Into<String>) -> Self {
        Self::Run {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Result with [`AnalysisError`].
pub type Result<T, E = AnalysisError> = std::result::Result<T, E>;
