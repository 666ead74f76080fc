//! Packing: documents of one (split, domain) concatenated, each followed by
//! one EOS, cut into `block_size` blocks; the remainder is dropped and
//! counted (PACK-1 … PACK-3).

use serde::{Deserialize, Serialize};

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
