//! Opening a prepared directory for training or analysis: the manifest plus
//! shards verified against it (size, header, sha256, block size and
//! multiple) (SHARD-3, MAN-4).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::{DataConfig, SourceKind};
use crate::error::{DataError, Result};
use crate::manifest::{Manifest, shard_path};
use crate::shard::read_shard;
use crate::sources::{HubOptions, resolve};
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
        if let Some(b) = shard.block_size
            && b != self.block_size()
        {
            return Err(bad(format!(
                "the header's block size {b} differs from the manifest's block_size {}",
                self.block_size()
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

    /// True when this directory was prepared from `config` and every local
    /// source file still has the sha256 the manifest recorded, so preparing
    /// again would give the same bytes. Hub sources are compared by config
    /// only (their files are pinned by the recorded commit).
    pub fn matches_inputs(&self, config: &DataConfig, config_path: &Path) -> Result<bool> {
        if self.manifest.config != *config {
            return Ok(false);
        }
        let base = config_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut recorded = self.manifest.sources.iter();
        for domain in &config.domains {
            for source in &domain.sources {
                let Some(stats) = recorded.next() else {
                    return Ok(true);
                };
                if source.kind != SourceKind::Local {
                    continue;
                }
                let Some(pattern) = source.local_pattern(&base) else {
                    return Ok(false);
                };
                let Ok(files) = resolve(source, &base, &HubOptions::default()) else {
                    return Ok(false);
                };
                let current: Vec<String> = files
                    .files
                    .iter()
                    .map(|f| sha256_file(&f.path))
                    .collect::<Result<_>>()?;
                let before: Vec<&str> = stats.files.iter().map(|f| f.sha256.as_str()).collect();
                if current != before || pattern.as_os_str().is_empty() {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Verifies every shard listed in the manifest.
    pub fn verify(&self) -> Result<()> {
        for info in &self.manifest.shards {
            self.load_shard(info.split, &info.domain)?;
        }
        Ok(())
    }
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| DataError::io(path, e))?;
    Ok(hex::encode(hasher.finalize()))
}
