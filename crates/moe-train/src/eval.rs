//! Validation: mean next-token loss and perplexity per domain and overall,
//! and each domain's routing, on the val shards (TRAIN-5).

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;
use moe_data::prepared::PreparedData;
use moe_data::split::Split;
use moe_model::{ForwardOptions, Gpt2, Precision};

use crate::error::Result;
use crate::metrics::{DomainEval, Event};
use crate::routing_stats::RoutingSums;
use crate::step::{token_losses, tokens_tensor};

/// The val blocks of every domain.
#[derive(Debug, Clone)]
pub struct ValBlocks {
    /// Tokens per block.
    pub block_size: usize,
    /// Per domain: name and blocks back to back.
    pub domains: Vec<(String, Vec<u16>)>,
}

impl ValBlocks {
    /// The val shards of `data`, the first `max_blocks` blocks of each
    /// domain (0 = all), in GPT-2 ids.
    pub fn load(data: &PreparedData, max_blocks: usize) -> Result<Self> {
        let block_size = data.block_size();
        let mut domains = Vec::new();
        for d in data.manifest.domains() {
            let mut tokens = data.load_shard(Split::Val, &d)?;
            if max_blocks > 0 {
                tokens.truncate(max_blocks * block_size);
            }
            domains.push((d, tokens));
        }
        Ok(Self {
            block_size,
            domains,
        })
    }
}

/// Evaluates `model` (no noise, no gradients) in batches of `batch` blocks,
/// in the run's `precision` (MODEL-19).
pub fn evaluate<B: Backend>(
    model: &Gpt2<B>,
    val: &ValBlocks,
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
    for (name, tokens) in &val.domains {
        let mut routing = RoutingSums::default();
        let (mut sum, mut n) = (0.0f64, 0u64);
        let mut block_losses = Vec::new();
        for chunk in tokens.chunks(batch * val.block_size) {
            let rows = chunk.len() / val.block_size;
            let flat: Vec<i64> = chunk.iter().map(|&t| t as i64).collect();
            let (losses, records, _) =
                token_losses(model, tokens_tensor::<B>(flat, rows, device), &options);
            let count = losses.dims()[0] * losses.dims()[1];
            let values = losses.values(); // [rows, block - 1]
            block_losses.extend(
                values
                    .clone()
                    .mean_dim(1) // [rows, 1]
                    .into_data()
                    .convert::<f64>()
                    .into_vec::<f64>()
                    .expect("f64 block losses"),
            );
            let total = crate::step::scalar(values.sum());
            sum += total;
            n += count as u64;
            routing.add(&records);
        }
        let loss = sum / n.max(1) as f64;
        sum_all += sum;
        n_all += n;
        domains.insert(
            name.clone(),
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
