//! The routing probe (TRAIN-27): at step 0 and at every eval of an MoE run,
//! the top-1 expert of every MoE block for a fixed set of val tokens, one
//! JSON line per step in `routing_probe.jsonl`. Analysis compares each row
//! with the final one to show when the router settles (router saturation,
//! OLMoE; ANA-29). Routed as eval routes (no noise, the run's precision,
//! with the balancing bias when the run has one).

use std::path::Path;

use burn::tensor::backend::Backend;
use moe_model::{ForwardOptions, Gpt2, Precision};
use serde::{Deserialize, Serialize};

use crate::blocks::Blocks;
use crate::error::Result;
use crate::metrics::{JsonlLog, read_jsonl};
use crate::sampler::MicroBatch;

/// Val blocks per domain in the probe: the first ones of each domain
/// (the val split's blocks are already a seeded shuffle of the val
/// documents, so these are a seeded sample).
pub const PROBE_BLOCKS: usize = 4;

/// The alphabet of the compact top-1 strings: expert `e` is character `e`.
const ALPHABET: &[u8; 64] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_";

/// Most experts a probe row can encode.
pub const MAX_PROBE_EXPERTS: usize = ALPHABET.len();

/// One row of `routing_probe.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeRow {
    /// Steps done when the routing was taken.
    pub step: u64,
    /// Probe blocks per domain (in manifest order).
    pub blocks: Vec<usize>,
    /// One entry per MoE block, in block order.
    pub layers: Vec<ProbeLayer>,
}

/// One MoE block's top-1 experts over the probe tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeLayer {
    /// Block index.
    pub layer: usize,
    /// Each probe token's top-1 expert as one character of
    /// `0-9a-zA-Z-_` (expert 0 = `0`, 10 = `a`, 36 = `A`), tokens in
    /// domain, block and position order (each block's first
    /// `block_size − 1` tokens, as eval routes them).
    pub top1: String,
}

impl ProbeLayer {
    /// The top-1 experts as numbers (`None` for a character outside the alphabet).
    pub fn experts(&self) -> Option<Vec<usize>> {
        self.top1
            .bytes()
            .map(|c| ALPHABET.iter().position(|&a| a == c))
            .collect()
    }
}

/// The probe's tokens: the first [`PROBE_BLOCKS`] blocks of each domain of `val`.
#[derive(Debug, Clone)]
pub struct RoutingProbe {
    batch: MicroBatch,
    blocks: Vec<usize>,
}

impl RoutingProbe {
    /// The probe over `val` (blocks in model ids).
    pub fn new(val: &Blocks) -> Self {
        let mut rows: Vec<&[u16]> = Vec::new();
        let mut blocks = Vec::new();
        for d in 0..val.domains.len() {
            let n = val.n_blocks(d).min(PROBE_BLOCKS);
            blocks.push(n);
            rows.extend((0..n).map(|i| &val.block(d, i)[..val.block_size - 1]));
        }
        Self {
            batch: MicroBatch::from_blocks(rows, val.block_size - 1),
            blocks,
        }
    }

    /// The top-1 routing of `model` over the probe at `step`; `None` for a
    /// dense model, an empty probe, or more experts than a row encodes.
    pub fn take<B: Backend>(
        &self,
        model: &Gpt2<B>,
        step: u64,
        precision: Precision,
        device: &B::Device,
    ) -> Option<ProbeRow> {
        if self.blocks.iter().sum::<usize>() == 0 {
            return None;
        }
        let options = ForwardOptions {
            precision,
            ..ForwardOptions::default()
        };
        let records = model.route(self.batch.tensor::<B>(device), &options);
        if records.is_empty() {
            return None;
        }
        let mut layers = Vec::new();
        for r in records {
            if r.f.dims()[0] > MAX_PROBE_EXPERTS {
                return None;
            }
            let [tokens, _] = r.expert_idx.dims();
            let top1 = r
                .expert_idx
                .narrow(1, 0, 1)
                .reshape([tokens])
                .into_data()
                .iter::<i64>()
                .map(|e| ALPHABET[e as usize] as char)
                .collect();
            layers.push(ProbeLayer {
                layer: r.layer,
                top1,
            });
        }
        Some(ProbeRow {
            step,
            blocks: self.blocks.clone(),
            layers,
        })
    }
}

/// Opens `routing_probe.jsonl` at `path` for appending
/// ([`crate::RunDir::open_probe`]) by a run that starts at step `start`:
/// a resume keeps the rows up to its checkpoint's step, so the file ends
/// as an uninterrupted run's; a fresh start (`start` 0) keeps none.
pub fn open_probe(path: &Path, start: u64) -> Result<JsonlLog> {
    JsonlLog::open_keeping(path, Some(move |r: &ProbeRow| start > 0 && r.step <= start))
}

/// Reads every row of a `routing_probe.jsonl` (missing file = no rows; a
/// last line cut short by a kill is dropped).
pub fn read_probe(path: &Path) -> Result<Vec<ProbeRow>> {
    read_jsonl(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checks: TRAIN-27
    #[test]
    fn train_27_top1_strings_round_trip_every_expert() {
        let layer = ProbeLayer {
            layer: 3,
            top1: (0..MAX_PROBE_EXPERTS)
                .map(|e| ALPHABET[e] as char)
                .collect(),
        };
        assert_eq!(
            layer.experts().unwrap(),
            (0..MAX_PROBE_EXPERTS).collect::<Vec<_>>()
        );
        let bad = ProbeLayer {
            layer: 3,
            top1: "01+".into(),
        };
        assert_eq!(bad.experts(), None);
    }
}
