//! The blocks of one split, every domain in manifest order: what training
//! samples from and evaluation runs over.

use moe_data::prepared::PreparedData;
use moe_data::split::Split;

use crate::error::{Result, TrainError};
use crate::vocab::VocabMap;

/// One domain's blocks, back to back.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainBlocks {
    /// The domain's name.
    pub name: String,
    /// Its tokens, a whole number of blocks.
    pub tokens: Vec<u16>,
}

/// The blocks of one split of every domain.
#[derive(Debug, Clone, PartialEq)]
pub struct Blocks {
    /// Tokens per block.
    pub block_size: usize,
    /// In manifest domain order.
    pub domains: Vec<DomainBlocks>,
}

impl Blocks {
    /// The `split` shards of `data` in GPT-2 ids, the first `max_blocks`
    /// blocks of each domain (0 = all).
    pub fn load(data: &PreparedData, split: Split, max_blocks: usize) -> Result<Self> {
        let block_size = data.block_size();
        let mut domains = Vec::new();
        for name in data.manifest.domains() {
            let mut tokens = data.load_shard(split, &name)?;
            if max_blocks > 0 {
                tokens.truncate(max_blocks * block_size);
            }
            domains.push(DomainBlocks { name, tokens });
        }
        Ok(Self {
            block_size,
            domains,
        })
    }

    /// The same blocks in the ids of a compact vocabulary.
    pub fn to_model_ids(mut self, map: &VocabMap) -> Result<Self> {
        for domain in &mut self.domains {
            domain.tokens = map.to_model(&domain.tokens).ok_or_else(|| {
                TrainError::Mismatch(format!(
                    "a token of domain {} is missing from the vocab map",
                    domain.name
                ))
            })?;
        }
        Ok(self)
    }

    /// Blocks of domain `d` (0 when `block_size` is 0).
    pub fn n_blocks(&self, d: usize) -> usize {
        self.domains[d]
            .tokens
            .len()
            .checked_div(self.block_size)
            .unwrap_or(0)
    }

    /// Blocks of every domain together.
    pub fn total_blocks(&self) -> usize {
        (0..self.domains.len()).map(|d| self.n_blocks(d)).sum()
    }

    /// Block `i` of domain `d`.
    pub fn block(&self, d: usize, i: usize) -> &[u16] {
        &self.domains[d].tokens[i * self.block_size..(i + 1) * self.block_size]
    }
}
