//! Batches from the train shards (TRAIN-3): which blocks each micro-batch of
//! each step gets is a pure function of (seed, step, micro-batch), so the
//! data cursor of a checkpoint is just the step number and a resumed run
//! sees exactly the batches of an uninterrupted one.
//!
//! A domain without train blocks is never drawn and drawing never panics
//! (TRAIN-17); prepared data always has blocks in every shard (MAN-3), so
//! this only guards hand-built or damaged inputs.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use moe_data::seeded::rng_for;
use rand::Rng;

use crate::blocks::Blocks;
use crate::config::{Mixing, RunConfig};

/// One drawn block: domain `domain`'s block number `block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// Index of the domain in manifest order.
    pub domain: usize,
    /// Index of the block within the domain.
    pub block: usize,
}

/// How a run draws its micro-batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    /// The run's seed.
    pub seed: u64,
    /// Mixed batches, or one domain per micro-batch in turn.
    pub mixing: Mixing,
    /// Micro-batches per optimizer step.
    pub micro_per_step: usize,
    /// Blocks per micro-batch.
    pub batch: usize,
}

/// The tokens of one micro-batch: `rows` blocks of `seq` tokens, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct MicroBatch {
    tokens: Vec<i64>,
    rows: usize,
    seq: usize,
}

impl Sampler {
    /// The sampler of `config`.
    pub fn of(config: &RunConfig) -> Self {
        Self {
            seed: config.run.seed,
            mixing: config.data.mixing,
            micro_per_step: config.train.grad_accum,
            batch: config.train.micro_batch,
        }
    }

    /// The blocks of micro-batch `micro` of step `step`. Domains without
    /// blocks are skipped (per-domain mixing passes their turn to the next
    /// domain that has blocks); with no block at all the picks are empty.
    pub fn picks(&self, blocks: &Blocks, step: u64, micro: usize) -> Vec<Pick> {
        let mut rng = rng_for(self.seed, &format!("batch/{step}/{micro}"));
        match self.mixing {
            Mixing::Mixed => {
                let total = blocks.total_blocks();
                if total == 0 {
                    return Vec::new();
                }
                (0..self.batch)
                    .map(|_| {
                        let mut block = rng.random_range(0..total);
                        let mut domain = 0;
                        while block >= blocks.n_blocks(domain) {
                            block -= blocks.n_blocks(domain);
                            domain += 1;
                        }
                        Pick { domain, block }
                    })
                    .collect()
            }
            Mixing::PerDomain => {
                let n = blocks.domains.len();
                let turn = (step as usize)
                    .wrapping_mul(self.micro_per_step)
                    .wrapping_add(micro);
                let Some(domain) = (0..n)
                    .map(|k| (turn % n.max(1) + k) % n)
                    .find(|&d| blocks.n_blocks(d) > 0)
                else {
                    return Vec::new();
                };
                (0..self.batch)
                    .map(|_| Pick {
                        domain,
                        block: rng.random_range(0..blocks.n_blocks(domain)),
                    })
                    .collect()
            }
        }
    }

    /// Micro-batch `micro` of step `step`.
    pub fn micro_batch(&self, blocks: &Blocks, step: u64, micro: usize) -> MicroBatch {
        let picks = self.picks(blocks, step, micro);
        let rows = picks.iter().map(|p| blocks.block(p.domain, p.block));
        MicroBatch::from_blocks(rows, blocks.block_size)
    }

    /// The micro-batches of step `step`.
    pub fn step(&self, blocks: &Blocks, step: u64) -> Vec<MicroBatch> {
        (0..self.micro_per_step)
            .map(|micro| self.micro_batch(blocks, step, micro))
            .collect()
    }
}

impl MicroBatch {
    /// The blocks `rows` (each `seq` tokens) as one micro-batch.
    pub fn from_blocks<'a>(rows: impl IntoIterator<Item = &'a [u16]>, seq: usize) -> Self {
        let tokens: Vec<i64> = rows
            .into_iter()
            .flat_map(|row| {
                debug_assert_eq!(row.len(), seq);
                row.iter().map(|&t| t as i64)
            })
            .collect();
        Self::from_tokens(tokens, seq)
    }

    /// Row-major tokens, `seq` per row.
    pub fn from_tokens(tokens: Vec<i64>, seq: usize) -> Self {
        let rows = tokens.len().checked_div(seq).unwrap_or(0);
        Self { tokens, rows, seq }
    }

    /// Rows (blocks).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Tokens per row.
    pub fn seq(&self) -> usize {
        self.seq
    }

    /// The tokens, row-major.
    pub fn tokens(&self) -> &[i64] {
        &self.tokens
    }

    /// As a `[rows, seq]` tensor.
    pub fn tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2, Int> {
        Tensor::from_data(
            TensorData::new(self.tokens.clone(), [self.rows, self.seq]),
            device,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::blocks::DomainBlocks;

    fn blocks(block_size: usize, per_domain: &[usize]) -> Blocks {
        Blocks {
            block_size,
            domains: per_domain
                .iter()
                .enumerate()
                .map(|(d, &n)| DomainBlocks {
                    name: format!("d{d}"),
                    tokens: vec![d as u16; n * block_size],
                })
                .collect(),
        }
    }

    fn sampler(mixing: Mixing, micro_per_step: usize, batch: usize) -> Sampler {
        Sampler {
            seed: 7,
            mixing,
            micro_per_step,
            batch,
        }
    }

    // Checks: TRAIN-17
    #[test]
    fn train_17_a_domain_without_blocks_is_never_drawn_and_nothing_panics() {
        let data = blocks(4, &[3, 0, 2]);
        for mixing in [Mixing::Mixed, Mixing::PerDomain] {
            let mut seen = [0usize; 3];
            for step in 0..30 {
                for micro in 0..2 {
                    let sampler = sampler(mixing, 2, 3);
                    let picks = sampler.picks(&data, step, micro);
                    assert_eq!(picks.len(), 3);
                    for &Pick {
                        domain: d,
                        block: i,
                    } in &picks
                    {
                        assert!(i < data.n_blocks(d), "{mixing:?}: block {i} of domain {d}");
                        seen[d] += 1;
                    }
                    let batch = sampler.micro_batch(&data, step, micro);
                    assert_eq!((batch.rows(), batch.seq()), (3, 4));
                    let first: Vec<i64> = data
                        .block(picks[0].domain, picks[0].block)
                        .iter()
                        .map(|&t| t as i64)
                        .collect();
                    assert_eq!(&batch.tokens()[..4], first.as_slice());
                }
            }
            assert_eq!(seen[1], 0, "{mixing:?} drew the empty domain");
            assert!(seen[0] > 0 && seen[2] > 0, "{mixing:?}: {seen:?}");
        }
        // No blocks anywhere, or a block size of 0: empty picks, no panic.
        for data in [blocks(4, &[0, 0]), blocks(0, &[2, 1])] {
            for mixing in [Mixing::Mixed, Mixing::PerDomain] {
                assert!(sampler(mixing, 2, 3).picks(&data, 5, 1).is_empty());
            }
        }
        assert!(
            sampler(Mixing::PerDomain, 1, 2)
                .picks(&blocks(4, &[]), 0, 0)
                .is_empty()
        );
    }
}
