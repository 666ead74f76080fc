//! Balancing and shuffling whole blocks (BAL-*): balancing keeps the same
//! number of train blocks per domain, chosen by seeded shuffle (never by
//! cutting the end); shuffling permutes a shard's blocks. Both only drop and
//! permute whole blocks.
//!
//! [`block_order`] is the one definition of which blocks a shard keeps and in
//! what order; [`write_shard`] writes them (this is what `prepare` runs) and
//! the audit undoes the shuffle with the same [`block_order`].

use std::fs::File;
use std::path::Path;

use crate::error::{DataError, Result};
use crate::pack::PackedFile;
use crate::seeded::permutation;
use crate::shard::ShardWriter;
use crate::split::Split;
use crate::tokenizer::EOS_ID;

/// Packed block indices in shard order: a seeded permutation of
/// `0..n_blocks` (stream `purpose`), cut to its first `keep`.
pub fn block_order(n_blocks: usize, keep: usize, seed: u64, purpose: &str) -> Vec<usize> {
    let mut order = permutation(n_blocks, seed, purpose);
    order.truncate(keep);
    order
}

/// The seeded-stream purpose of a shard's block order.
pub fn shuffle_purpose(split: Split, domain: &str) -> String {
    format!("shuffle/{split}/{domain}")
}

/// What [`write_shard`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenShard {
    /// sha256 of the shard file.
    pub sha256: String,
    /// Tokens written (blocks × block size).
    pub tokens: u64,
    /// EOS tokens in the written blocks.
    pub eos_count: u64,
}

/// Writes the llm.c shard `path` (SHARD-1) from `packed`: its first `keep`
/// blocks in the [`block_order`] of (`seed`, `purpose`) (BAL-1, BAL-2),
/// read from the spool one block at a time.
pub fn write_shard(
    path: &Path,
    packed: &PackedFile,
    keep: usize,
    seed: u64,
    purpose: &str,
) -> Result<WrittenShard> {
    let block_size = packed.block_size;
    let order = block_order(packed.n_blocks(), keep, seed, purpose);
    let n_tokens = order.len() * block_size;
    let src = &packed.path;
    let input = File::open(src).map_err(|e| DataError::io(src, e))?;
    let mut out = ShardWriter::create(path, n_tokens, block_size)?;
    let mut block = vec![0u8; 2 * block_size];
    let eos = (EOS_ID as u16).to_le_bytes();
    let mut eos_count = 0u64;
    for &i in &order {
        packed.read_block(&input, i, &mut block)?;
        eos_count += block.chunks_exact(2).filter(|t| *t == eos).count() as u64;
        out.write_tokens(&block)?;
    }
    let (_, sha256) = out.finish()?;
    Ok(WrittenShard {
        sha256,
        tokens: n_tokens as u64,
        eos_count,
    })
}

/// Largest over smallest; `f64::INFINITY` when the smallest is 0.
pub fn ratio(counts: &[u64]) -> f64 {
    let (Some(&max), Some(&min)) = (counts.iter().max(), counts.iter().min()) else {
        return 1.0;
    };
    if min == 0 {
        f64::INFINITY
    } else {
        max as f64 / min as f64
    }
}
