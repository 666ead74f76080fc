//! Batches from the train shards (TRAIN-3): which blocks each micro-batch of
//! each step gets is a pure function of (seed, step, micro-batch), so the
//! data cursor of a checkpoint is just the step number and a resumed run
//! sees exactly the batches of an uninterrupted one.
//!
//! A domain without train blocks is never drawn and drawing never panics
//! (TRAIN-17); prepared data always has blocks in every shard (MAN-3), so
//! this only guards hand-built or damaged inputs.

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
    /// Blocks of domain `d` (0 when `block_size` is 0).
    pub fn n_blocks(&self, d: usize) -> usize {
        self.domains[d]
            .1
            .len()
            .checked_div(self.block_size)
            .unwrap_or(0)
    }

    fn total_blocks(&self) -> usize {
        (0..self.domains.len()).map(|d| self.n_blocks(d)).sum()
    }

    fn block(&self, d: usize, i: usize) -> &[u16] {
        &self.domains[d].1[i * self.block_size..(i + 1) * self.block_size]
    }

    /// The `(domain, block)` picks of micro-batch `micro` of step `step`.
    /// Domains without blocks are skipped (per-domain mixing passes their
    /// turn to the next domain that has blocks); with no block at all the
    /// picks are empty.
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
                if total == 0 {
                    return Vec::new();
                }
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
                let n = self.domains.len();
                let turn = (step as usize)
                    .wrapping_mul(micro_per_step)
                    .wrapping_add(micro);
                let Some(d) = (0..n)
                    .map(|k| (turn % n.max(1) + k) % n)
                    .find(|&d| self.n_blocks(d) > 0)
                else {
                    return Vec::new();
                };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(block_size: usize, per_domain: &[usize]) -> TrainBlocks {
        TrainBlocks {
            block_size,
            domains: per_domain
                .iter()
                .enumerate()
                .map(|(d, &n)| (format!("d{d}"), vec![d as u16; n * block_size]))
                .collect(),
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
                    let picks = data.picks(7, mixing, step, micro, 2, 3);
                    assert_eq!(picks.len(), 3);
                    for &(d, i) in &picks {
                        assert!(i < data.n_blocks(d), "{mixing:?}: block {i} of domain {d}");
                        seen[d] += 1;
                    }
                    let (tokens, rows) = data.gather(&picks);
                    assert_eq!(tokens.len(), 3 * 4);
                    assert_eq!(rows, picks.iter().map(|p| p.0).collect::<Vec<_>>());
                }
            }
            assert_eq!(seen[1], 0, "{mixing:?} drew the empty domain");
            assert!(seen[0] > 0 && seen[2] > 0, "{mixing:?}: {seen:?}");
        }
        // No blocks anywhere, or a block size of 0: empty picks, no panic.
        for data in [blocks(4, &[0, 0]), blocks(0, &[2, 1])] {
            for mixing in [Mixing::Mixed, Mixing::PerDomain] {
                assert!(data.picks(7, mixing, 5, 1, 2, 3).is_empty());
            }
        }
        assert!(
            blocks(4, &[])
                .picks(7, Mixing::PerDomain, 0, 0, 1, 2)
                .is_empty()
        );
    }
}
