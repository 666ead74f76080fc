//! Running a model over val blocks into a [`TokenRoutes`] (ANA-1).
//!
//! Each block is routed as the trainer's eval routes it: its first
//! `block_size − 1` tokens are the input (the last token is only a target),
//! without router noise, in batches of whole blocks of one domain. A run
//! trained on a compact vocabulary (`<run>/vocab.json`) gets its tokens
//! mapped to model ids; the table keeps GPT-2 ids.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use moe_model::{ForwardOptions, Gpt2};
use moe_train::Blocks;
use moe_train::vocab::VocabMap;

use crate::error::{AnalysisError, Result};
use crate::token_routes::TokenRoutes;

/// Routes every block of `val` through `model`, `batch` blocks at a time.
/// Errors when a token is missing from `vocab` or the model is too short.
pub fn collect<B: Backend>(
    model: &Gpt2<B>,
    val: &Blocks,
    batch: usize,
    vocab: Option<&VocabMap>,
    device: &B::Device,
) -> Result<TokenRoutes> {
    let seq = val.block_size.saturating_sub(1);
    if seq == 0 || seq > model.n_positions() {
        return Err(AnalysisError::run(
            Path::new("val"),
            format!(
                "block_size {} needs {seq} positions, the model has {}",
                val.block_size,
                model.n_positions()
            ),
        ));
    }
    let names: Vec<String> = val.domains.iter().map(|d| d.name.clone()).collect();
    let forward = vocab.map(VocabMap::forward_table);
    let mut table: Option<TokenRoutes> = None;
    for (d, domain) in val.domains.iter().enumerate() {
        let (name, tokens) = (&domain.name, &domain.tokens);
        for chunk in tokens.chunks(batch.max(1) * val.block_size) {
            let blocks: Vec<&[u16]> = chunk.chunks_exact(val.block_size).collect();
            let mut ids = Vec::with_capacity(blocks.len() * seq);
            for block in &blocks {
                for &t in &block[..seq] {
                    let id = match &forward {
                        Some(table) if table[t as usize] != u16::MAX => table[t as usize] as u32,
                        Some(_) => {
                            return Err(AnalysisError::run(
                                Path::new("the run's vocabulary"),
                                format!("token {t} of val/{name} is not in the run's vocabulary"),
                            ));
                        }
                        None => t as u32,
                    };
                    ids.push(id as i64);
                }
            }
            let input =
                Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [blocks.len(), seq]), device);
            let out = model.forward(input, &ForwardOptions::default());
            let t = table.get_or_insert_with(|| {
                let layers: Vec<(usize, usize)> = out
                    .routing
                    .iter()
                    .map(|r| (r.layer, r.tokens_per_expert.len()))
                    .collect();
                TokenRoutes::new(names.clone(), &layers)
            });
            for block in &blocks {
                let gpt2: Vec<u32> = block[..seq].iter().map(|&x| x as u32).collect();
                t.push_block(d as u16, &gpt2);
            }
            for (slot, record) in out.routing.iter().enumerate() {
                let host = record.to_host();
                let experts: Vec<u16> = host.expert_idx.iter().map(|r| r[0] as u16).collect();
                let gates: Vec<f32> = host.gate_prob.iter().map(|r| r[0]).collect();
                t.push_routes(slot, &experts, &gates, &host.entropy);
            }
        }
    }
    Ok(table.unwrap_or_else(|| TokenRoutes::new(names, &[])))
}
