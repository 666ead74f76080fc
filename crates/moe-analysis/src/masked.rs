//! Val losses with experts masked out of one MoE block's routing (MOE-14),
//! for the causal analyses ([`crate::removal`], [`crate::keep_k`]).
//!
//! [`MaskedLoss`] is what they ask: the mean loss of each val block of one
//! domain with a set of experts disabled in one block. [`ModelLoss`] answers
//! with one forward pass per (domain, mask) over the domain's blocks, in
//! batches, through the trainer's fused loss (`moe_train::losses`), and
//! remembers every answer, so a mask asked twice (the same top-k of two
//! domains, a random draw equal to a ranked one) costs nothing the second
//! time. Tests answer with hand-made losses instead.

use std::collections::HashMap;

use burn::tensor::backend::Backend;
use moe_model::{ExpertMask, ForwardOptions, Gpt2};
use moe_train::Blocks;
use moe_train::losses::batch_losses;
use moe_train::sampler::MicroBatch;

/// Mean loss of each val block of a domain under a mask.
pub trait MaskedLoss {
    /// Domains, in val order.
    fn n_domains(&self) -> usize;
    /// Mean next-token loss (nats) of each val block of domain `d` with the
    /// experts in `disabled` masked in MoE block `layer` (`disabled` empty:
    /// the unmasked model, the same for every layer).
    fn block_losses(&mut self, d: usize, layer: usize, disabled: &[usize]) -> Vec<f64>;
}

/// [`MaskedLoss`] of a model over val blocks in model ids.
pub struct ModelLoss<'a, B: Backend> {
    model: &'a Gpt2<B>,
    val: &'a Blocks,
    batch: usize,
    device: &'a B::Device,
    cache: HashMap<(usize, usize, Vec<usize>), Vec<f64>>,
    passes: usize,
}

impl<'a, B: Backend> ModelLoss<'a, B> {
    /// Over `val` (already in the model's ids), `batch` blocks per pass.
    pub fn new(model: &'a Gpt2<B>, val: &'a Blocks, batch: usize, device: &'a B::Device) -> Self {
        Self {
            model,
            val,
            batch: batch.max(1),
            device,
            cache: HashMap::new(),
            passes: 0,
        }
    }

    /// Forward passes over one domain's blocks run so far (cache misses).
    pub fn passes(&self) -> usize {
        self.passes
    }

    fn compute(&self, d: usize, layer: usize, disabled: &[usize]) -> Vec<f64> {
        let options = ForwardOptions {
            expert_mask: ExpertMask::layer(layer, disabled.iter().copied()),
            ..ForwardOptions::default()
        };
        let size = self.val.block_size;
        let mut out = Vec::with_capacity(self.val.n_blocks(d));
        for chunk in self.val.domains[d].tokens.chunks(self.batch * size) {
            let micro = MicroBatch::from_blocks(chunk.chunks_exact(size), size);
            let lm = batch_losses(self.model, &micro, &options, self.device).lm;
            let means = lm.values().mean_dim(1).into_data(); // [rows, 1]
            out.extend(means.iter::<f32>().map(f64::from));
        }
        out
    }
}

impl<B: Backend> MaskedLoss for ModelLoss<'_, B> {
    fn n_domains(&self) -> usize {
        self.val.domains.len()
    }

    fn block_losses(&mut self, d: usize, layer: usize, disabled: &[usize]) -> Vec<f64> {
        let mut set = disabled.to_vec();
        set.sort_unstable();
        set.dedup();
        let key = (d, if set.is_empty() { 0 } else { layer }, set);
        if let Some(hit) = self.cache.get(&key) {
            return hit.clone();
        }
        let got = self.compute(d, layer, &key.2);
        self.passes += 1;
        self.cache.insert(key, got.clone());
        got
    }
}

/// Mean of `values` (NaN when empty).
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}
