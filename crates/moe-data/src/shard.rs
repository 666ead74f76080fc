//! llm.c token shards (SHARD-*): a 256 × int32 little-endian header (magic
//! `20240520`, version `1`, token count; slot 3 holds our block size, a slot
//! llm.c ignores), then the tokens as little-endian uint16.
//!
//! The reader checks magic, version and that the file size is
//! `1024 + 2 × count`, and fails with the path and a hint.

use std::io::{BufWriter, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};

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

/// The bytes of a shard file.
pub fn encode_shard(tokens: &[u16], block_size: usize) -> Vec<u8> {
    let mut header = [0i32; HEADER_INTS];
    header[0] = MAGIC;
    header[1] = VERSION;
    header[2] = tokens.len() as i32;
    header[SLOT_BLOCK_SIZE] = block_size as i32;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + 2 * tokens.len());
    header
        .iter()
        .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
    tokens
        .iter()
        .for_each(|t| bytes.extend_from_slice(&t.to_le_bytes()));
    bytes
}

/// Writes a shard; returns the sha256 of the file.
pub fn write_shard(path: &Path, tokens: &[u16], block_size: usize) -> Result<String> {
    if tokens.len() > i32::MAX as usize {
        return Err(DataError::Shard {
            path: path.into(),
            reason: "more tokens than an int32 header can count".into(),
        });
    }
    let bytes = encode_shard(tokens, block_size);
    let file = std::fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    let mut w = BufWriter::new(file);
    w.write_all(&bytes)
        .and_then(|_| w.flush())
        .map_err(|e| DataError::io(path, e))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
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
    let tokens = bytes[HEADER_BYTES..]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let block_size = usize::try_from(slot(SLOT_BLOCK_SIZE))
        .ok()
        .filter(|&b| b > 0);
    Ok(Shard {
        tokens,
        block_size,
        sha256: hex::encode(Sha256::digest(bytes)),
    })
}
