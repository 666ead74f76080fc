//! Packing: documents of one (split, domain) concatenated, each followed by
//! one EOS, cut into `block_size` blocks; the remainder is dropped and
//! counted (PACK-1 … PACK-3).
//!
//! The tokens are written once, to a [`DocSpool`] (every kept document of a
//! domain and its EOS, in reading order), and read once, by the shard
//! writer: a [`Packer`] only records which stretches of the spool make up a
//! split's stream, and a [`PackedFile`] reads any block of that stream
//! straight from the spool (DATA-18). [`Packer`] is the one packer.

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

/// Documents' tokens, each followed by one EOS, appended to a file as
/// little-endian u16, with each document's length kept in memory.
#[derive(Debug)]
pub struct DocSpool {
    path: PathBuf,
    out: BufWriter<File>,
    lens: Vec<u32>,
    bytes: Vec<u8>,
}

/// A finished spool: its file and each document's length (EOS not counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolFile {
    /// The file.
    pub path: PathBuf,
    /// Tokens of each document, in order.
    pub lens: Vec<u32>,
}

impl DocSpool {
    /// A spool writing to a new file at `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| DataError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 16, file),
            lens: Vec::new(),
            bytes: Vec::new(),
        })
    }

    /// Appends one document (GPT-2 ids, so each fits a u16) and its EOS.
    pub fn push(&mut self, ids: &[u32]) -> Result<()> {
        let len = u32::try_from(ids.len()).map_err(|_| {
            DataError::io(
                &self.path,
                std::io::Error::other("a document of 2^32 tokens or more"),
            )
        })?;
        self.bytes.resize(2 * ids.len() + 2, 0);
        let (tokens, eos) = self.bytes.split_at_mut(2 * ids.len());
        for (out, &id) in tokens.chunks_exact_mut(2).zip(ids) {
            out.copy_from_slice(&(id as u16).to_le_bytes());
        }
        eos.copy_from_slice(&(EOS_ID as u16).to_le_bytes());
        self.lens.push(len);
        self.out
            .write_all(&self.bytes)
            .map_err(|e| DataError::io(&self.path, e))
    }

    /// Whether no document was pushed.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Flushes and closes the file.
    pub fn finish(self) -> Result<SpoolFile> {
        let file = self
            .out
            .into_inner()
            .map_err(|e| DataError::io(&self.path, e.into_error()))?;
        drop(file);
        Ok(SpoolFile {
            path: self.path,
            lens: self.lens,
        })
    }
}

impl SpoolFile {
    /// Number of documents.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether the spool holds no document.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Each document's first token's offset in the spool (in tokens) and its length.
    pub fn documents(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.lens.iter().scan(0u64, |start, &len| {
            let doc = (*start, len as u64);
            *start += len as u64 + 1;
            Some(doc)
        })
    }
}

/// A stretch of the spool that is a stretch of a split's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    /// Where it starts in the split's stream, in tokens.
    stream_start: u64,
    /// Where it starts in the spool, in tokens.
    spool_start: u64,
    /// Its length in tokens (documents and their EOS).
    len: u64,
}

/// The packer: `push` a split's documents in order, then `finish`. It
/// reads and writes no token: it notes which stretches of the spool make up
/// the split's stream (PACK-1 … PACK-3).
#[derive(Debug)]
pub struct Packer {
    block_size: usize,
    runs: Vec<Run>,
    tokens: u64,
    documents: u64,
    /// Block index of the last EOS pushed, and how many EOS that block holds.
    eos_block: u64,
    eos_in_block: u64,
}

/// Whole blocks of one (split, domain): a view of the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedFile {
    /// The spool the blocks are read from.
    pub path: PathBuf,
    /// Block size.
    pub block_size: usize,
    /// Counts.
    pub stats: PackStats,
    runs: Vec<Run>,
}

impl PackedFile {
    /// Number of whole blocks.
    pub fn n_blocks(&self) -> usize {
        self.stats.blocks as usize
    }

    /// Reads block `i` (< [`Self::n_blocks`]) from `spool`, the file at
    /// [`Self::path`], into `out` (`2 × block_size` bytes, little-endian u16).
    pub fn read_block(&self, spool: &File, i: usize, out: &mut [u8]) -> Result<()> {
        let bs = self.block_size as u64;
        assert!(
            (i as u64) < self.stats.blocks && out.len() as u64 == 2 * bs,
            "block {i} of {} blocks of {bs} tokens into {} bytes",
            self.stats.blocks,
            out.len()
        );
        let (start, end) = (i as u64 * bs, (i as u64 + 1) * bs);
        let first = self.runs.partition_point(|run| run.stream_start <= start) - 1;
        let mut pos = start;
        for run in &self.runs[first..] {
            if pos == end {
                break;
            }
            let skip = pos - run.stream_start;
            let take = (run.len - skip).min(end - pos);
            let at = 2 * (pos - start) as usize;
            read_exact_at(
                spool,
                &mut out[at..at + 2 * take as usize],
                2 * (run.spool_start + skip),
            )
            .map_err(|e| DataError::io(&self.path, e))?;
            pos += take;
        }
        debug_assert_eq!(pos, end, "the runs cover every whole block");
        Ok(())
    }
}

/// `pread`: no seek, one call per stretch.
#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

impl Packer {
    /// A packer of blocks of `block_size` (≥ 1) tokens.
    pub fn new(block_size: usize) -> Self {
        Self {
            block_size: block_size.max(1),
            runs: Vec::new(),
            tokens: 0,
            documents: 0,
            eos_block: u64::MAX,
            eos_in_block: 0,
        }
    }

    /// Appends the document of `len` tokens that starts `start` tokens into
    /// the spool (one of [`SpoolFile::documents`]), and its EOS.
    pub fn push(&mut self, start: u64, len: u64) {
        match self.runs.last_mut() {
            Some(run) if run.spool_start + run.len == start => run.len += len + 1,
            _ => self.runs.push(Run {
                stream_start: self.tokens,
                spool_start: start,
                len: len + 1,
            }),
        }
        let eos_at = self.tokens + len;
        let block = eos_at / self.block_size as u64;
        if block == self.eos_block {
            self.eos_in_block += 1;
        } else {
            (self.eos_block, self.eos_in_block) = (block, 1);
        }
        self.tokens = eos_at + 1;
        self.documents += 1;
    }

    /// The whole blocks, read from `spool`; the tail is dropped.
    pub fn finish(self, spool: &Path) -> PackedFile {
        let bs = self.block_size as u64;
        let blocks = self.tokens / bs;
        let whole = blocks * bs;
        // EOS after the last whole block are in the dropped tail.
        let tail_eos = if self.eos_block == blocks {
            self.eos_in_block
        } else {
            0
        };
        PackedFile {
            path: spool.to_path_buf(),
            block_size: self.block_size,
            stats: PackStats {
                documents: self.documents,
                tokens: whole,
                blocks,
                tail_dropped: self.tokens - whole,
                eos_count: self.documents - tail_eos,
            },
            runs: self.runs,
        }
    }
}
