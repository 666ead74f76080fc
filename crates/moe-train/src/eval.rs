//! Validation: mean next-token loss and perplexity per domain and overall,
//! and each domain's routing, on the val shards (TRAIN-5).

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;
use moe_model::{ForwardOptions, Gpt2, Precision};

use crate::blocks::Blocks;
use crate::losses::{BatchLosses, batch_losses, scalar};
use crate::metrics::{DomainEval, Event};
use crate::routing_stats::RoutingTally;
use crate::sampler::MicroBatch;

/// Evaluates `model` (no noise, no gradients) in batches of `batch` blocks,
/// in the run's `precision` (MODEL-19).
pub fn evaluate<B: Backend>(
    model: &Gpt2<B>,
    val: &Blocks,
    batch: usize,
    step: u64,
    precision: Precision,
    device: &B::Device,
) -> Event {
    let mut domains = BTreeMap::new();
    let (mut sum_all, mut n_all) = (0.0, 0u64);
    let options = ForwardOptions {
        precision,
        ..ForwardOptions::default()
    };
    for domain in &val.domains {
        let mut routing = RoutingTally::default();
        let (mut sum, mut n) = (0.0f64, 0u64);
        let mut block_losses = Vec::new();
        for chunk in domain.tokens.chunks(batch * val.block_size) {
            let rows = chunk.chunks(val.block_size);
            let micro = MicroBatch::from_blocks(rows, val.block_size);
            let BatchLosses {
                lm,
                routing: records,
                ..
            } = batch_losses(model, &micro, &options, device);
            let count = lm.dims()[0] * lm.dims()[1];
            let values = lm.values(); // [rows, block - 1]
            block_losses.extend(
                values
                    .clone()
                    .mean_dim(1) // [rows, 1]
                    .into_data()
                    .convert::<f64>()
                    .into_vec::<f64>()
                    .expect("f64 block losses"),
            );
            let total = scalar(values.sum());
            sum += total;
            n += count as u64;
            routing.add(&records);
        }
        let loss = sum / n.max(1) as f64;
        sum_all += sum;
        n_all += n;
        domains.insert(
            domain.name.clone(),
            DomainEval {
                loss,
                ppl: loss.exp(),
                tokens: n,
                routing: routing.summary(),
                block_losses,
            },
        );
    }
    let loss = sum_all / n_all.max(1) as f64;
    Event::Eval {
        step,
        loss,
        ppl: loss.exp(),
        domains,
    }
}
