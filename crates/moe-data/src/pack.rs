//! Packing: documents of one (split, domain) concatenated, each followed by
//! one EOS, cut into `block_size` blocks; the remainder is dropped and
//! counted (PACK-1 … PACK-3). [`FilePacker`] is the one packer.

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

/// The packer: `push` documents, then `finish`. It writes through to a
/// file, so memory does not grow with the data; the file ends up holding the
/// whole blocks (PACK-1 … PACK-3).
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
