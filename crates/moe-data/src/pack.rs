//! Packing: documents of one (split, domain) concatenated, each followed by
//! one EOS, cut into `block_size` blocks; the remainder is dropped and
//! counted (PACK-1 … PACK-3).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::tokenizer::EOS_ID;

/// What packing kept and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackStats {
    /// Documents pushed.
    pub documents: u64,
    /// Tokens in whole blocks, EOS included.
    pub tokens: u64,
    /// Whole blocks.
    pub blocks: u64,
    /// Tokens after the last whole block, dropped.
    pub tail_dropped: u64,
    /// EOS tokens inside whole blocks.
    pub eos_count: u64,
}

/// Blocks of one (split, domain), `block_size` tokens each, back to back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// Block size.
    pub block_size: usize,
    /// `blocks × block_size` tokens.
    pub tokens: Vec<u16>,
    /// Counts.
    pub stats: PackStats,
}

impl Packed {
    /// Number of whole blocks.
    pub fn n_blocks(&self) -> usize {
        self.tokens.len() / self.block_size
    }

    /// Block `i`.
    pub fn block(&self, i: usize) -> &[u16] {
        &self.tokens[i * self.block_size..(i + 1) * self.block_size]
    }
}

/// Streaming packer: `push` documents, then `finish`.
#[derive(Debug)]
pub struct Packer {
    block_size: usize,
    tokens: Vec<u16>,
    documents: u64,
}

impl Packer {
    /// A packer for blocks of `block_size` (≥ 1) tokens.
    pub fn new(block_size: usize) -> Self {
        Self {
            block_size: block_size.max(1),
            tokens: Vec::new(),
            documents: 0,
        }
    }

    /// Appends one document's tokens and its EOS.
    pub fn push(&mut self, doc: &[u16]) {
        self.tokens.extend_from_slice(doc);
        self.tokens.push(EOS_ID as u16);
        self.documents += 1;
    }

    /// Cuts the stream into whole blocks, dropping the tail.
    pub fn finish(mut self) -> Packed {
        let whole = self.tokens.len() / self.block_size * self.block_size;
        let tail_dropped = (self.tokens.len() - whole) as u64;
        self.tokens.truncate(whole);
        self.tokens.shrink_to_fit();
        let eos_count = self.tokens.iter().filter(|&&t| t == EOS_ID as u16).count() as u64;
        let stats = PackStats {
            documents: self.documents,
            tokens: whole as u64,
            blocks: (whole / self.block_size) as u64,
            tail_dropped,
            eos_count,
        };
        Packed {
            block_size: self.block_size,
            tokens: self.tokens,
            stats,
        }
    }
}

/// [`Packer`] writing through to a file, so that memory does not grow with
/// the data: `prepare` packs every (split, domain) this way (PACK-1 …
/// PACK-3 hold as for [`Packer`]; the file ends up as the whole blocks).
#[derive(Debug)]
pub struct FilePacker {
    block_size: usize,
    path: PathBuf,
    out: BufWriter<File>,
    bytes: Vec<u8>,
    tokens: u64,
    documents: u64,
    /// Block index of the last EOS written, and how many EOS that block holds.
    eos_block: u64,
    eos_in_block: u64,
}

/// Whole blocks of one (split, domain) in a file of little-endian u16.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedFile {
    /// The file; `stats.tokens` tokens.
    pub path: PathBuf,
    /// Block size.
    pub block_size: usize,
    /// Counts.
    pub stats: PackStats,
}

impl PackedFile {
    /// Number of whole blocks.
    pub fn n_blocks(&self) -> usize {
        self.stats.blocks as usize
    }
}

impl FilePacker {
    /// A packer writing blocks of `block_size` (≥ 1) tokens to a new file at `path`.
    pub fn create(path: &Path, block_size: usize) -> Result<Self> {
        let file = File::create(path).map_err(|e| DataError::io(path, e))?;
        Ok(Self {
            block_size: block_size.max(1),
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 16, file),
            bytes: Vec::new(),
            tokens: 0,
            documents: 0,
            eos_block: u64::MAX,
            eos_in_block: 0,
        })
    }

    /// Appends one document's tokens and its EOS.
    pub fn push(&mut self, doc: &[u16]) -> Result<()> {
        self.bytes.clear();
        doc.iter()
            .chain(std::iter::once(&(EOS_ID as u16)))
            .for_each(|t| self.bytes.extend_from_slice(&t.to_le_bytes()));
        self.out
            .write_all(&self.bytes)
            .map_err(|e| DataError::io(&self.path, e))?;
        let eos_at = self.tokens + doc.len() as u64;
        let block = eos_at / self.block_size as u64;
        if block == self.eos_block {
            self.eos_in_block += 1;
        } else {
            (self.eos_block, self.eos_in_block) = (block, 1);
        }
        self.tokens = eos_at + 1;
        self.documents += 1;
        Ok(())
    }

    /// Cuts the file to whole blocks, dropping the tail.
    pub fn finish(self) -> Result<PackedFile> {
        let bs = self.block_size as u64;
        let blocks = self.tokens / bs;
        let whole = blocks * bs;
        // EOS after the last whole block are in the dropped tail.
        let tail_eos = if self.eos_block == blocks {
            self.eos_in_block
        } else {
            0
        };
        let file = self
            .out
            .into_inner()
            .map_err(|e| DataError::io(&self.path, e.into_error()))?;
        file.set_len(2 * whole)
            .map_err(|e| DataError::io(&self.path, e))?;
        Ok(PackedFile {
            path: self.path,
            block_size: self.block_size,
            stats: PackStats {
                documents: self.documents,
                tokens: whole,
                blocks,
                tail_dropped: self.tokens - whole,
                eos_count: self.documents - tail_eos,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checks: PACK-1
    #[test]
    fn file_packer_matches_packer() {
        let dir = tempfile::tempdir().unwrap();
        let docs: Vec<Vec<u16>> = (0..40u16)
            .map(|i| (0..(i * 7) % 13).map(|t| t + i).collect())
            .collect();
        for bs in [1, 2, 3, 5, 8, 64, 1000] {
            let (mut mem, path) = (Packer::new(bs), dir.path().join(format!("{bs}.tok")));
            let mut file = FilePacker::create(&path, bs).unwrap();
            for d in &docs {
                mem.push(d);
                file.push(d).unwrap();
            }
            let (mem, file) = (mem.finish(), file.finish().unwrap());
            assert_eq!(mem.stats, file.stats, "block size {bs}");
            let bytes = std::fs::read(&path).unwrap();
            let tokens: Vec<u16> = bytes
                .chunks(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect();
            assert_eq!(mem.tokens, tokens, "block size {bs}");
        }
    }
}
