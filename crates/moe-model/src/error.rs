//! Errors of the model crate: reading configs, weights and checkpoints.
//!
//! `forward` never returns an error; everything that can fail because of a
//! file, a config or user input fails here, with the path and the fact.

use std::path::PathBuf;

/// Everything that can go wrong while building, loading or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file did not parse.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A safetensors file did not parse or could not be written.
    #[error("{path}: invalid safetensors: {reason}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A configuration value is out of range or unsupported.
    #[error("invalid model config: {0}")]
    Config(String),
    /// A preset name is not known.
    #[error("unknown model preset {name:?} (known: {known})")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// The known presets, comma separated.
        known: String,
    },
    /// A tensor the model needs is absent from the weights file.
    #[error("{path}: missing tensor {name:?}")]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor name (without any `transformer.` prefix).
        name: String,
    },
    /// The weights file holds a tensor the model has no place for.
    #[error("{path}: unexpected tensor {name:?}")]
    UnexpectedTensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },
    /// A tensor has the wrong shape for the configured model.
    #[error("{path}: tensor {name:?} has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The weights file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the file.
        actual: Vec<usize>,
    },
    /// A tensor has a dtype we do not read.
    #[error("{path}: tensor {name:?} has unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// The weights file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The dtype, as safetensors names it.
        dtype: String,
    },
    /// Reading a tensor back from the device failed.
    #[error("reading tensor {name:?} from the device: {reason}")]
    TensorRead {
        /// The tensor name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// The Hugging Face Hub could not provide a file.
    #[error("hub {repo}@{revision}: {reason}")]
    Hub {
        /// Repository id.
        repo: String,
        /// Revision asked for.
        revision: String,
        /// What went wrong.
        reason: String,
    },
}

impl ModelError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;
