//! Batches from the train shards (TRAIN-3): which blocks each micro-batch of
//! each step gets is a pure function of (seed, step, micro-batch), so the
//! data cursor of a checkpoint is just the step number and a resumed run
//! sees exactly the batches of an uninterrupted one.

use moe_data::seeded::rng_for;
use rand::Rng;

use crate::config::Mixing;

/// The train blocks of every domain, in manifest domain order.
#[derive(Debug, Clone)]
pub struct TrainBlocks {
    /// Tokens per block.
    pub block_size: usize,
    /// Per domain: its name and its blocks back to back.
    pub domains: Vec<(String, Vec<u16>)>,
}

impl TrainBlocks {
    /// Blocks of domain `d`.
    pub fn n_blocks(&self, d: usize) -> usize {
        self.domains[d].1.len() / self.block_size
    }

    fn total_blocks(&self) -> usize {
        (0..self.domains.len()).map(|d| self.n_blocks(d)).sum()
    }

    fn block(&self, d: usize, i: usize) -> &[u16] {
        &self.domains[d].1[i * self.block_size..(i + 1) * self.block_size]
    }

    /// The `(domain, block)` picks of micro-batch `micro` of step `step`.
    pub fn picks(
        &self,
        seed: u64,
        mixing: Mixing,
        step: u64,
        micro: usize,
        micro_per_step: usize,
        batch: usize,
    ) -> Vec<(usize, usize)> {
        let mut rng = rng_for(seed, &format!("batch/{step}/{micro}"));
        match mixing {
            Mixing::Mixed => {
                let total = self.total_blocks();
                (0..batch)
                    .map(|_| {
                        let mut i = rng.random_range(0..total);
                        let mut d = 0;
                        while i >= self.n_blocks(d) {
                            i -= self.n_blocks(d);
                            d += 1;
                        }
                        (d, i)
                    })
                    .collect()
            }
            Mixing::PerDomain => {
                let d = (step as usize * micro_per_step + micro) % self.domains.len();
                (0..batch)
                    .map(|_| (d, rng.random_range(0..self.n_blocks(d))))
                    .collect()
            }
        }
    }

    /// Tokens of a micro-batch as i64 `[batch × block_size]` plus the domain of each row.
    pub fn gather(&self, picks: &[(usize, usize)]) -> (Vec<i64>, Vec<usize>) {
        let mut tokens = Vec::with_capacity(picks.len() * self.block_size);
        for &(d, i) in picks {
            tokens.extend(self.block(d, i).iter().map(|&t| t as i64));
        }
        (tokens, picks.iter().map(|p| p.0).collect())
    }
}
