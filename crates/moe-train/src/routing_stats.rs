//! Host-side routing statistics summed over micro-batches or eval batches.

use burn::tensor::backend::Backend;
use moe_model::RoutingRecord;

use crate::metrics::LayerRouting;

/// Per-layer counts, entropy sums and drops.
#[derive(Debug, Clone, Default)]
pub struct RoutingSums {
    layers: Vec<(usize, Vec<u64>, f64, u64, u64)>, // (layer, counts, entropy sum, tokens, dropped)
}

impl RoutingSums {
    /// Adds the records of one forward pass (assignments per expert over all
    /// `top_k` choices, before capacity).
    pub fn add<B: Backend>(&mut self, records: &[RoutingRecord<B>]) {
        for (i, r) in records.iter().enumerate() {
            let entropy = crate::step::scalar(r.entropy.clone().sum());
            if self.layers.len() <= i {
                self.layers
                    .push((r.layer, vec![0; r.tokens_per_expert.len()], 0.0, 0, 0));
            }
            let l = &mut self.layers[i];
            l.1.iter_mut()
                .zip(&r.tokens_per_expert)
                .for_each(|(a, b)| *a += *b as u64);
            l.2 += entropy;
            l.3 += r.n_tokens as u64;
            l.4 += r.dropped as u64;
        }
    }

    /// The summary per layer.
    pub fn summary(&self) -> Vec<LayerRouting> {
        self.layers
            .iter()
            .map(|(layer, counts, ent, tokens, dropped)| {
                let total = counts.iter().sum::<u64>().max(1) as f64;
                let shares: Vec<f64> = counts.iter().map(|&c| c as f64 / total).collect();
                let max_share = shares.iter().copied().fold(0.0, f64::max);
                LayerRouting {
                    layer: *layer,
                    shares,
                    max_share,
                    entropy: ent / (*tokens).max(1) as f64,
                    dropped: *dropped,
                }
            })
            .collect()
    }
}
