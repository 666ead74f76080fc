//! llm.c token shards (SHARD-*): a 256 × int32 little-endian header (magic
//! `20240520`, version `1`, token count; slot 3 holds our block size, a slot
//! llm.c ignores), then the tokens as little-endian uint16.
//!
//! [`ShardWriter`] is the one writer (it streams: `prepare` writes a shard
//! block by block); the reader checks magic, version and that the file size
//! is `1024 + 2 × count`, and that every token is a GPT-2 id (SHARD-5), and
//! fails with the path and a hint.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};
use crate::tokenizer::VOCAB_SIZE;

/// llm.c's shard magic number.
pub const MAGIC: i32 = 20240520;
/// llm.c's shard version for uint16 tokens.
pub const VERSION: i32 = 1;
/// Header length in int32 slots.
pub const HEADER_INTS: usize = 256;
/// Header length in bytes.
pub const HEADER_BYTES: usize = HEADER_INTS * 4;
/// Header slot holding the block size (0 = unknown).
const SLOT_BLOCK_SIZE: usize = 3;

/// A shard read back from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The tokens.
    pub tokens: Vec<u16>,
    /// Block size from the header, if recorded.
    pub block_size: Option<usize>,
    /// sha256 of the whole file.
    pub sha256: String,
}

/// Streams one shard to `W`: [`ShardWriter::new`] writes the header for a
/// token count fixed in advance, [`ShardWriter::write_tokens`] appends
/// tokens, and [`ShardWriter::finish`] checks that exactly that many were
/// written and returns the sha256 of everything written. This is the only
/// code that writes shard bytes.
#[derive(Debug)]
pub struct ShardWriter<W: Write> {
    out: W,
    path: PathBuf,
    hasher: Sha256,
    expected: usize,
    written: usize,
}

impl ShardWriter<BufWriter<File>> {
    /// Creates the shard file at `path` for `n_tokens` tokens of blocks of `block_size`.
    pub fn create(path: &Path, n_tokens: usize, block_size: usize) -> Result<Self> {
        let file = File::create(path).map_err(|e| DataError::io(path, e))?;
        Self::new(
            BufWriter::with_capacity(1 << 16, file),
            path,
            n_tokens,
            block_size,
        )
    }
}

impl<W: Write> ShardWriter<W> {
    /// Writes the header of a shard of `n_tokens` tokens to `out`; `path`
    /// names the shard in errors.
    pub fn new(mut out: W, path: &Path, n_tokens: usize, block_size: usize) -> Result<Self> {
        let too_big = |what: &str| DataError::Shard {
            path: path.into(),
            reason: format!("{what} does not fit the int32 header"),
        };
        let count = i32::try_from(n_tokens).map_err(|_| too_big("the token count"))?;
        let block = i32::try_from(block_size).map_err(|_| too_big("the block size"))?;
        let mut header = [0i32; HEADER_INTS];
        header[0] = MAGIC;
        header[1] = VERSION;
        header[2] = count;
        header[SLOT_BLOCK_SIZE] = block;
        let bytes: Vec<u8> = header.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut hasher = Sha256::new();
        hasher.update(&bytes);
        out.write_all(&bytes).map_err(|e| DataError::io(path, e))?;
        Ok(Self {
            out,
            path: path.into(),
            hasher,
            expected: n_tokens,
            written: 0,
        })
    }

    /// Appends tokens given as little-endian uint16 bytes (an even number).
    pub fn write_tokens(&mut self, le_bytes: &[u8]) -> Result<()> {
        let n = le_bytes.len() / 2;
        if !le_bytes.len().is_multiple_of(2) || self.written + n > self.expected {
            return Err(DataError::Shard {
                path: self.path.clone(),
                reason: format!(
                    "writing {} bytes after {} of {} tokens overruns the header's count",
                    le_bytes.len(),
                    self.written,
                    self.expected
                ),
            });
        }
        self.hasher.update(le_bytes);
        self.out
            .write_all(le_bytes)
            .map_err(|e| DataError::io(&self.path, e))?;
        self.written += n;
        Ok(())
    }

    /// Flushes; fails unless exactly the header's token count was written.
    /// Returns the writer and the sha256 of the shard's bytes.
    pub fn finish(mut self) -> Result<(W, String)> {
        if self.written != self.expected {
            return Err(DataError::Shard {
                path: self.path,
                reason: format!(
                    "{} tokens written, the header says {}",
                    self.written, self.expected
                ),
            });
        }
        self.out.flush().map_err(|e| DataError::io(&self.path, e))?;
        Ok((self.out, hex::encode(self.hasher.finalize())))
    }
}

/// The bytes of a shard holding `tokens` (through [`ShardWriter`]).
pub fn encode_shard(tokens: &[u16], block_size: usize) -> Result<Vec<u8>> {
    let path = Path::new("<memory>");
    let mut w = ShardWriter::new(Vec::new(), path, tokens.len(), block_size)?;
    let bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
    w.write_tokens(&bytes)?;
    Ok(w.finish()?.0)
}

/// Reads and validates a shard.
pub fn read_shard(path: &Path) -> Result<Shard> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_shard(path, &bytes)
}

/// Validates and decodes shard bytes; `path` is only used in errors.
pub fn decode_shard(path: &Path, bytes: &[u8]) -> Result<Shard> {
    let bad = |reason: String| DataError::Shard {
        path: path.into(),
        reason,
    };
    if bytes.len() < HEADER_BYTES {
        return Err(bad(format!(
            "{} bytes, shorter than the 1024-byte header (not a shard?)",
            bytes.len()
        )));
    }
    let slot = |i: usize| {
        i32::from_le_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ])
    };
    if slot(0) != MAGIC {
        return Err(bad(format!(
            "magic {} is not {MAGIC} (not an llm.c shard)",
            slot(0)
        )));
    }
    if slot(1) != VERSION {
        return Err(bad(format!(
            "version {} is not {VERSION} (uint16 tokens)",
            slot(1)
        )));
    }
    let count =
        usize::try_from(slot(2)).map_err(|_| bad(format!("negative token count {}", slot(2))))?;
    let expected = HEADER_BYTES + 2 * count;
    if bytes.len() != expected {
        return Err(bad(format!(
            "size {} is not 1024 + 2 × {count} = {expected} (truncated or trailing bytes)",
            bytes.len()
        )));
    }
    let tokens: Vec<u16> = bytes[HEADER_BYTES..]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    if let Some(i) = tokens.iter().position(|&t| usize::from(t) >= VOCAB_SIZE) {
        return Err(bad(format!(
            "token {} at byte offset {} (token {i}) is outside the GPT-2 vocabulary 0..{VOCAB_SIZE}",
            tokens[i],
            HEADER_BYTES + 2 * i
        )));
    }
    let block_size = usize::try_from(slot(SLOT_BLOCK_SIZE))
        .ok()
        .filter(|&b| b > 0);
    Ok(Shard {
        tokens,
        block_size,
        sha256: hex::encode(Sha256::digest(bytes)),
    })
}
