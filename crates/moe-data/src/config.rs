//! The data config (`configs/data/*.toml`): what to read, how to filter and
//! format it, and how to pack, split and balance it (DATA-1).
//!
//! Loaded into our own serde structs with `deny_unknown_fields`, then
//! validated, so a misspelt key or an impossible value is an error naming the
//! file and the key, never a silently ignored setting.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::format::Template;

/// Largest block the GPT-2 position table allows.
pub const MAX_BLOCK_SIZE: usize = 1024;

/// A whole data config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Packing, splitting and balancing.
    pub pipeline: PipelineConfig,
    /// The domains, each with its ordered sources.
    pub domains: Vec<DomainConfig>,
}

/// Pipeline-wide settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Tokens per block (1..=1024).
    #[serde(default = "default_block_size")]
    pub block_size: usize,
    /// Seed of every random choice (split, balance, shuffle).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Fraction of each domain's documents held out for validation.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    /// Fraction of each domain's documents held out for test (0 = no test split).
    #[serde(default)]
    pub test_fraction: f64,
    /// How train blocks are balanced across domains.
    #[serde(default)]
    pub balance: Balance,
    /// Tokens to read per domain before balancing (None = read everything).
    #[serde(default)]
    pub tokens_per_domain: Option<u64>,
    /// Warn when the largest domain has more than this many times the tokens of the smallest.
    #[serde(default = "default_warn_ratio")]
    pub imbalance_warn_ratio: f64,
    /// What to do with a row that is not valid UTF-8.
    #[serde(default)]
    pub invalid_utf8: Utf8Policy,
    /// Drop exact duplicate documents (after formatting), across all domains.
    #[serde(default = "default_true")]
    pub dedup: bool,
}

/// Train-block balancing across domains.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Balance {
    /// Equal train block counts per domain, kept blocks chosen by seeded shuffle.
    #[default]
    Tokens,
    /// Keep every block.
    None,
}

/// Policy for rows that are not valid UTF-8.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Utf8Policy {
    /// Drop the row and count it.
    #[default]
    Skip,
    /// Stop with an error naming the file and row.
    Fail,
}

/// One domain (code, math, prose …).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    /// Name; also the shard file name, so `[a-z0-9_-]+`.
    pub name: String,
    /// Overrides `pipeline.tokens_per_domain` for this domain.
    #[serde(default)]
    pub tokens: Option<u64>,
    /// Sources, read in order until the domain's token target is met.
    pub sources: Vec<SourceConfig>,
}

/// Where a source's files come from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Files on this machine (`path`, a file or a glob).
    Local,
    /// A Hugging Face Hub dataset repo (`repo`, `revision`, `files`).
    Hf,
}

/// File format of a source.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum FileFormat {
    /// One document per file, the whole file is the `text` field.
    #[serde(rename = "text")]
    Text,
    /// One JSON object per line.
    #[serde(rename = "jsonl")]
    Jsonl,
    /// Gzip-compressed JSON lines.
    #[serde(rename = "jsonl.gz")]
    JsonlGz,
    /// Apache Parquet.
    #[serde(rename = "parquet")]
    Parquet,
}

/// Keep only rows whose `field` ends with one of `suffixes` (e.g. code by file extension).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SuffixFilter {
    /// The field to look at (e.g. `path`).
    pub field: String,
    /// Accepted endings (e.g. `[".py"]`).
    pub suffixes: Vec<String>,
}

/// One source of documents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `local` or `hf`.
    pub kind: SourceKind,
    /// Label in the manifest (default: the path or repo).
    #[serde(default)]
    pub name: Option<String>,
    /// Local file or glob.
    #[serde(default)]
    pub path: Option<String>,
    /// Hub dataset repo id, e.g. `openai/gsm8k`.
    #[serde(default)]
    pub repo: Option<String>,
    /// Hub revision: a branch, tag or (for `--locked`) a 40-hex commit.
    #[serde(default)]
    pub revision: Option<String>,
    /// Hub file names or globs within the repo.
    #[serde(default)]
    pub files: Vec<String>,
    /// File format.
    pub format: FileFormat,
    /// Fields read from each row (default `["text"]`).
    #[serde(default = "default_fields")]
    pub fields: Vec<String>,
    /// `{field}` template; default: the single field's text.
    #[serde(default)]
    pub template: Option<String>,
    /// Drop documents shorter than this many characters.
    #[serde(default)]
    pub min_chars: usize,
    /// Drop documents longer than this many characters.
    #[serde(default)]
    pub max_chars: Option<usize>,
    /// Remove GSM8K calculator annotations `<<…>>`.
    #[serde(default)]
    pub strip_calc_annotations: bool,
    /// Repair WikiText tokenization artifacts (` @-@ `, ` @,@ `, ` @.@ `).
    #[serde(default)]
    pub wikitext_detokenize: bool,
    /// Rebuild WikiText articles from its one-line-per-row layout.
    #[serde(default)]
    pub wikitext_articles: bool,
    /// Keep only rows whose field has one of these endings.
    #[serde(default)]
    pub require_suffix: Option<SuffixFilter>,
    /// Stop this source after this many kept documents.
    #[serde(default)]
    pub max_documents: Option<u64>,
}

fn default_block_size() -> usize {
    512
}
fn default_seed() -> u64 {
    42
}
fn default_val_fraction() -> f64 {
    0.05
}
fn default_warn_ratio() -> f64 {
    1.5
}
fn default_true() -> bool {
    true
}
fn default_fields() -> Vec<String> {
    vec!["text".to_string()]
}

impl DataConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let config: DataConfig = toml::from_str(text).map_err(|e| DataError::Config {
            path: path.to_path_buf(),
            reason: one_line(&e.to_string()),
        })?;
        config.validate().map_err(|reason| DataError::Config {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(config)
    }

    /// The token target of a domain, if any.
    pub fn target_tokens(&self, domain: &DomainConfig) -> Option<u64> {
        domain.tokens.or(self.pipeline.tokens_per_domain)
    }

    /// Checks the values serde cannot (DATA-1); the reason names the key.
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        let p = &self.pipeline;
        if p.block_size == 0 || p.block_size > MAX_BLOCK_SIZE {
            return Err(format!(
                "pipeline.block_size = {} must be in 1..={MAX_BLOCK_SIZE}",
                p.block_size
            ));
        }
        for (key, v) in [
            ("val_fraction", p.val_fraction),
            ("test_fraction", p.test_fraction),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(format!("pipeline.{key} = {v} must be in [0, 1)"));
            }
        }
        if p.val_fraction + p.test_fraction >= 1.0 {
            return Err("pipeline.val_fraction + test_fraction must be below 1".into());
        }
        if p.val_fraction <= 0.0 {
            return Err(
                "pipeline.val_fraction must be above 0: evaluation needs a val split".into(),
            );
        }
        if !(p.imbalance_warn_ratio.is_finite() && p.imbalance_warn_ratio >= 1.0) {
            return Err(format!(
                "pipeline.imbalance_warn_ratio = {} must be a number of at least 1",
                p.imbalance_warn_ratio
            ));
        }
        if p.tokens_per_domain == Some(0) {
            return Err("pipeline.tokens_per_domain = 0 would read nothing; leave it out to read everything".into());
        }
        if self.domains.is_empty() {
            return Err("no [[domains]]".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (d, domain) in self.domains.iter().enumerate() {
            let valid = !domain.name.is_empty()
                && domain.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !valid {
                return Err(format!(
                    "domains[{d}].name = {:?} must match [a-z0-9_-]+",
                    domain.name
                ));
            }
            if !names.insert(&domain.name) {
                return Err(format!(
                    "domains[{d}].name = {:?} is used twice",
                    domain.name
                ));
            }
            if domain.tokens == Some(0) {
                return Err(format!(
                    "domains[{d}].tokens = 0 would read nothing from `{}`",
                    domain.name
                ));
            }
            if domain.sources.is_empty() {
                return Err(format!("domains[{d}] ({}) has no sources", domain.name));
            }
            for (s, source) in domain.sources.iter().enumerate() {
                source
                    .validate()
                    .map_err(|e| format!("domains[{d}].sources[{s}]: {e}"))?;
            }
        }
        Ok(())
    }
}

impl SourceConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        match self.kind {
            SourceKind::Local => {
                if self.path.is_none() {
                    return Err("kind = \"local\" needs `path`".into());
                }
            }
            SourceKind::Hf => {
                let repo = self.repo.as_deref().unwrap_or("");
                if repo.split('/').count() != 2 || repo.split('/').any(|p| !valid_repo_part(p)) {
                    return Err(format!(
                        "kind = \"hf\" needs `repo = \"owner/name\"`, got {repo:?}"
                    ));
                }
                if self.files.is_empty() {
                    return Err("kind = \"hf\" needs `files`".into());
                }
                if let Some(revision) = &self.revision {
                    moe_hub::validate_revision(revision).map_err(|e| format!("revision: {e}"))?;
                }
                for f in &self.files {
                    moe_hub::validate_remote_name(f).map_err(|e| format!("files: {e}"))?;
                }
            }
        }
        if self.fields.is_empty() {
            return Err("`fields` is empty".into());
        }
        if self.format == FileFormat::Text && self.fields != ["text"] {
            return Err("format = \"text\" has the single field `text`".into());
        }
        match &self.template {
            Some(t) => Template::parse(t, &self.fields).map(|_| ()),
            None if self.fields.len() == 1 => Ok(()),
            None => Err("several `fields` need a `template`".into()),
        }?;
        if self.wikitext_articles && self.fields.len() != 1 {
            return Err("wikitext_articles needs exactly one field".into());
        }
        if let Some(max) = self.max_chars
            && max < self.min_chars
        {
            return Err(format!(
                "max_chars = {max} is below min_chars = {}",
                self.min_chars
            ));
        }
        Ok(())
    }

    /// The label of this source in the manifest and progress bars.
    pub fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match self.kind {
            SourceKind::Local => self.path.clone().unwrap_or_default(),
            SourceKind::Hf => self.repo.clone().unwrap_or_default(),
        }
    }

    /// Resolves a relative local `path` against the config file's folder.
    pub fn local_pattern(&self, base: &Path) -> Option<PathBuf> {
        let path = Path::new(self.path.as_deref()?);
        Some(if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        })
    }
}

fn valid_repo_part(part: &str) -> bool {
    !part.is_empty()
        && part != "."
        && part != ".."
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
