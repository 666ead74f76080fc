//! Opening a prepared directory for training or analysis: the manifest plus
//! shards verified against it (size, header, sha256, block multiple) (SHARD-3).

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::manifest::{Manifest, shard_path};
use crate::shard::read_shard;
use crate::split::Split;

/// A prepared directory whose manifest has been read.
#[derive(Debug, Clone)]
pub struct PreparedData {
    /// The directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

impl PreparedData {
    /// Reads `<dir>/manifest.json`.
    pub fn open(dir: &Path) -> Result<Self> {
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest: Manifest::load(dir)?,
        })
    }

    /// Block size of every shard.
    pub fn block_size(&self) -> usize {
        self.manifest.block_size
    }

    /// Reads the (split, domain) shard and checks it against the manifest.
    pub fn load_shard(&self, split: Split, domain: &str) -> Result<Vec<u16>> {
        let path = shard_path(&self.dir, split, domain);
        let info = self
            .manifest
            .shard(split, domain)
            .ok_or_else(|| DataError::Shard {
                path: path.clone(),
                reason: format!("the manifest lists no {split} shard for domain `{domain}`"),
            })?;
        let shard = read_shard(&path)?;
        let bad = |reason: String| DataError::Shard {
            path: path.clone(),
            reason,
        };
        if shard.sha256 != info.sha256 {
            return Err(bad(format!(
                "sha256 {} differs from the manifest's {} (modified file?)",
                shard.sha256, info.sha256
            )));
        }
        if shard.tokens.len() as u64 != info.tokens {
            return Err(bad(format!(
                "{} tokens, the manifest says {}",
                shard.tokens.len(),
                info.tokens
            )));
        }
        if shard.tokens.len() % self.block_size() != 0 {
            return Err(bad(format!(
                "{} tokens is not a multiple of block_size {}",
                shard.tokens.len(),
                self.block_size()
            )));
        }
        Ok(shard.tokens)
    }

    /// Verifies every shard listed in the manifest.
    pub fn verify(&self) -> Result<()> {
        for info in &self.manifest.shards {
            self.load_shard(info.split, &info.domain)?;
        }
        Ok(())
    }
}
