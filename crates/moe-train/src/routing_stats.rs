//! Routing statistics summed on the host over the micro-batches of a step
//! or the batches of an eval, and summarised per layer for the log.

use burn::tensor::backend::Backend;
use moe_model::LayerRouting;

use crate::losses::scalar;
use crate::metrics::RoutingSummary;

/// The running sums of one MoE layer.
#[derive(Debug, Clone)]
struct LayerTally {
    /// Block index.
    layer: usize,
    /// Assignments per expert (all `top_k` choices, before capacity).
    counts: Vec<u64>,
    /// Sum of the per-token router entropies (nats).
    entropy_sum: f64,
    /// Tokens routed.
    tokens: u64,
    /// Assignments dropped by capacity.
    dropped: u64,
}

/// Per-layer routing sums over some forward passes.
#[derive(Debug, Clone, Default)]
pub struct RoutingTally {
    layers: Vec<LayerTally>,
}

impl RoutingTally {
    /// Adds the records of one forward pass.
    pub fn add<B: Backend>(&mut self, records: &[LayerRouting<B>]) {
        for (i, r) in records.iter().enumerate() {
            let entropy = scalar(r.entropy.clone().sum());
            if self.layers.len() <= i {
                self.layers.push(LayerTally {
                    layer: r.layer,
                    counts: vec![0; r.tokens_per_expert.len()],
                    entropy_sum: 0.0,
                    tokens: 0,
                    dropped: 0,
                });
            }
            let l = &mut self.layers[i];
            l.counts
                .iter_mut()
                .zip(&r.tokens_per_expert)
                .for_each(|(a, b)| *a += *b as u64);
            l.entropy_sum += entropy;
            l.tokens += r.n_tokens as u64;
            l.dropped += r.dropped as u64;
        }
    }

    /// Assignments per expert of each MoE layer, in block order: the load
    /// the balancing bias follows (TRAIN-26).
    pub fn loads(&self) -> Vec<Vec<u64>> {
        self.layers.iter().map(|l| l.counts.clone()).collect()
    }

    /// The summary per layer.
    pub fn summary(&self) -> Vec<RoutingSummary> {
        self.layers
            .iter()
            .map(|l| {
                let total = l.counts.iter().sum::<u64>().max(1) as f64;
                let shares: Vec<f64> = l.counts.iter().map(|&c| c as f64 / total).collect();
                let max_share = shares.iter().copied().fold(0.0, f64::max);
                RoutingSummary {
                    layer: l.layer,
                    shares,
                    max_share,
                    entropy: l.entropy_sum / l.tokens.max(1) as f64,
                    dropped: l.dropped,
                    bias: None,
                }
            })
            .collect()
    }
}
