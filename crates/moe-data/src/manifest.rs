//! `manifest.json`: everything needed to reproduce and check a prepared
//! directory (MAN-*) — the resolved config, tool and tokenizer versions,
//! every source file with its sha256 and drop counts, and every shard with
//! its counts and sha256. It holds no timestamps, so the same input and seed
//! give byte-identical manifests.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Balance, DataConfig, MAX_BLOCK_SIZE};
use crate::error::{DataError, Result};
use crate::filter::DropCounts;
use crate::split::Split;
use crate::tokenizer::{EOS_ID, VOCAB_SIZE};

/// Value of [`Manifest::format`].
pub const MANIFEST_FORMAT: &str = "moe-emergence/prepared-data";
/// Value of [`Manifest::format_version`].
pub const MANIFEST_VERSION: u32 = 1;
/// File name of the manifest inside a prepared directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The manifest of a prepared directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Always [`MANIFEST_VERSION`].
    pub format_version: u32,
    /// Version of the tool that wrote it.
    pub tool_version: String,
    /// The resolved config.
    pub config: DataConfig,
    /// Which tokenizer made the ids.
    pub tokenizer: TokenizerInfo,
    /// Tokens per block.
    pub block_size: usize,
    /// Per source: where it came from and what was kept.
    pub sources: Vec<SourceStats>,
    /// Per (split, domain) shard.
    pub shards: Vec<ShardInfo>,
    /// What balancing did.
    pub balance: BalanceInfo,
    /// Warnings raised while preparing.
    pub warnings: Vec<String>,
}

/// Tokenizer identity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenizerInfo {
    /// Always `gpt2-bpe`.
    pub kind: String,
    /// sha256 over `vocab.json` then `merges.txt`.
    pub sha256: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Document separator id.
    pub eos_id: u32,
}

/// One source file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileStats {
    /// Path relative to the config (local) or name in the repo (hf).
    pub name: String,
    /// sha256 of the file's bytes.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// One source of one domain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SourceStats {
    /// The domain.
    pub domain: String,
    /// The source's label.
    pub label: String,
    /// `local` or `hf`.
    pub kind: String,
    /// Hub repo.
    pub repo: Option<String>,
    /// Revision as configured.
    pub revision: Option<String>,
    /// Commit the revision resolved to.
    pub commit: Option<String>,
    /// Local: every file the path matches, in order (reading may stop
    /// early). Hub: the files downloaded and read, in name order; the ones
    /// after the file that met the target are not fetched (SRC-10).
    pub files: Vec<FileStats>,
    /// Records considered (rows, or articles when rebuilt) before the target stopped reading.
    pub records_read: u64,
    /// Documents kept.
    pub documents_kept: u64,
    /// Tokens of kept documents (no EOS).
    pub tokens_kept: u64,
    /// Drops by reason.
    pub drops: DropCounts,
}

/// One shard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ShardInfo {
    /// The split.
    pub split: Split,
    /// The domain.
    pub domain: String,
    /// Path relative to the prepared directory, `<split>/<domain>.bin`.
    pub file: String,
    /// Documents packed.
    pub documents: u64,
    /// Tokens written (blocks × block_size).
    pub tokens: u64,
    /// Blocks written.
    pub blocks: u64,
    /// Blocks before balancing.
    pub blocks_before_balance: u64,
    /// Tail tokens dropped by packing.
    pub tail_dropped: u64,
    /// EOS tokens in the written blocks.
    pub eos_count: u64,
    /// sha256 of the shard file.
    pub sha256: String,
}

/// What balancing did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BalanceInfo {
    /// The configured mode.
    pub mode: Balance,
    /// Train blocks kept per domain, when balanced.
    pub train_blocks_per_domain: Option<u64>,
    /// Largest over smallest train token count before balancing.
    pub token_ratio_before: f64,
}

impl Manifest {
    /// Reads `<dir>/manifest.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| DataError::Read {
            path: path.clone(),
            row: None,
            reason: format!("invalid manifest: {e}"),
        })?;
        manifest.check().map_err(|reason| DataError::Read {
            path,
            row: None,
            reason,
        })?;
        Ok(manifest)
    }

    /// The facts readers rely on (MAN-3): format and version, a valid
    /// config, `block_size` in `1..=MAX_BLOCK_SIZE` and equal to the config's,
    /// and per shard its file at `<split>/<domain>.bin` of a configured
    /// domain, at least one block (SPLIT-1), `tokens = blocks × block_size`
    /// and no more blocks than before balancing; GPT-2's vocabulary size and
    /// EOS id; no shard listed twice (MAN-4).
    fn check(&self) -> std::result::Result<(), String> {
        if self.format != MANIFEST_FORMAT || self.format_version != MANIFEST_VERSION {
            return Err(format!(
                "not a v{MANIFEST_VERSION} {MANIFEST_FORMAT} manifest"
            ));
        }
        self.config.validate().map_err(|e| format!("config: {e}"))?;
        let bs = self.block_size;
        if bs == 0 || bs > MAX_BLOCK_SIZE {
            return Err(format!("block_size = {bs} must be in 1..={MAX_BLOCK_SIZE}"));
        }
        if bs != self.config.pipeline.block_size {
            return Err(format!(
                "block_size = {bs} differs from config.pipeline.block_size = {}",
                self.config.pipeline.block_size
            ));
        }
        let t = &self.tokenizer;
        if t.vocab_size != VOCAB_SIZE || t.eos_id != EOS_ID {
            return Err(format!(
                "tokenizer.vocab_size = {} and eos_id = {} are not GPT-2's {VOCAB_SIZE} and {EOS_ID}",
                t.vocab_size, t.eos_id
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in self.shards.iter().enumerate() {
            let at = |fact: String| format!("shards[{i}] ({}): {fact}", s.file);
            if !seen.insert((s.split, s.domain.as_str())) {
                return Err(at("listed twice".into()));
            }
            let file = format!("{}/{}.bin", s.split, s.domain);
            if s.file != file {
                return Err(at(format!("file should be {file:?}")));
            }
            if !self.config.domains.iter().any(|d| d.name == s.domain) {
                return Err(at(format!("domain `{}` is not in the config", s.domain)));
            }
            if s.blocks == 0 {
                return Err(at("0 blocks; every split holds at least one block".into()));
            }
            if s.blocks.checked_mul(bs as u64) != Some(s.tokens) {
                return Err(at(format!(
                    "{} tokens is not {} blocks × block_size {bs}",
                    s.tokens, s.blocks
                )));
            }
            if s.blocks > s.blocks_before_balance {
                return Err(at(format!(
                    "{} blocks kept out of {} before balancing",
                    s.blocks, s.blocks_before_balance
                )));
            }
        }
        Ok(())
    }

    /// The shard of (split, domain), if any.
    pub fn shard(&self, split: Split, domain: &str) -> Option<&ShardInfo> {
        self.shards
            .iter()
            .find(|s| s.split == split && s.domain == domain)
    }

    /// Domain names in config order.
    pub fn domains(&self) -> Vec<String> {
        self.config.domains.iter().map(|d| d.name.clone()).collect()
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// Path of a shard file inside a prepared directory.
pub fn shard_path(dir: &Path, split: Split, domain: &str) -> PathBuf {
    dir.join(split.name()).join(format!("{domain}.bin"))
}
