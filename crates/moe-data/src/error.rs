//! The one error type of the data pipeline: every variant names the file
//! (and the row or key where there is one) and the reason, in one line.

use std::path::PathBuf;

/// Everything that can go wrong while preparing or reading token data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The config file is unreadable, not TOML, has an unknown key or a bad value.
    #[error("{path}: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// The key and what is wrong with it.
        reason: String,
    },
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A source file is malformed (bad JSON, truncated gzip, corrupt parquet …).
    #[error("{path}{}: {reason}", row_suffix(*.row))]
    Read {
        /// The source file.
        path: PathBuf,
        /// 1-based row (line for jsonl) where known.
        row: Option<u64>,
        /// What is wrong.
        reason: String,
    },
    /// A configured field is absent from a row.
    #[error("{path} row {row}: missing field `{field}`")]
    MissingField {
        /// The source file.
        path: PathBuf,
        /// 1-based row.
        row: u64,
        /// The field name from the config.
        field: String,
    },
    /// A configured field is present but not a string.
    #[error("{path} row {row}: field `{field}` is {found}, expected a string")]
    NotAString {
        /// The source file.
        path: PathBuf,
        /// 1-based row.
        row: u64,
        /// The field name from the config.
        field: String,
        /// What was found instead.
        found: String,
    },
    /// A row is not valid UTF-8 and the policy is `fail`.
    #[error("{path} row {row}: invalid UTF-8 (set invalid_utf8 = \"skip\" to drop such rows)")]
    InvalidUtf8 {
        /// The source file.
        path: PathBuf,
        /// 1-based row.
        row: u64,
    },
    /// No files matched a local path or glob.
    #[error("{pattern}: no file matches")]
    NoFiles {
        /// The path or glob from the config.
        pattern: String,
    },
    /// A domain kept no document after filtering.
    #[error("domain `{domain}`: no documents left after filtering (read {rows_read} rows)")]
    EmptyDomain {
        /// The domain.
        domain: String,
        /// Rows read from its sources.
        rows_read: u64,
    },
    /// A split of a domain has fewer tokens than one block.
    #[error(
        "domain `{domain}`: the {split} split has {tokens} tokens, less than one block of {block_size}; add data or raise val_fraction"
    )]
    SplitTooSmall {
        /// The domain.
        domain: String,
        /// The split.
        split: String,
        /// Tokens the split got, EOS included.
        tokens: u64,
        /// The configured block size.
        block_size: usize,
    },
    /// The output directory exists and `--force` was not given.
    #[error("{path}: output directory exists (use --force to replace it)")]
    OutputExists {
        /// The output directory.
        path: PathBuf,
    },
    /// `--force` was given for a directory that is not prepared data, or
    /// that holds the config or a source file.
    #[error("{path}: --force replaces only a prepared-data directory, and {reason}")]
    NotReplaceable {
        /// The output directory.
        path: PathBuf,
        /// Why it is not replaced.
        reason: String,
    },
    /// An option of the run is out of range.
    #[error("--{option}: {reason}")]
    Option {
        /// The option's name, as on the command line.
        option: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// A Hugging Face Hub request failed.
    #[error("hub dataset {repo}@{revision}: {reason}")]
    Hub {
        /// The dataset repository.
        repo: String,
        /// The requested revision.
        revision: String,
        /// What failed.
        reason: String,
    },
    /// A shard file does not match the llm.c layout or the manifest.
    #[error("{path}: {reason}")]
    Shard {
        /// The shard file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The tokenizer files could not be loaded.
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] crate::tokenizer::TablesError),
}

fn row_suffix(row: Option<u64>) -> String {
    row.map(|r| format!(" row {r}")).unwrap_or_default()
}

impl DataError {
    /// An [`DataError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;
