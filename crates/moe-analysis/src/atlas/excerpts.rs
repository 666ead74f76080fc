//! The val text the atlas colours (ATLAS-2): a seeded choice of whole val
//! blocks per domain, routed through a run's trained model by
//! [`route_val::collect`] — the analysis's own code path — so each token's
//! expert, gate probability and entropy are the ones `moe analyze` counts.

use std::ops::Range;
use std::path::Path;

use moe_data::prepared::PreparedData;
use moe_data::seeded::rng_for;
use moe_model::{CpuBackend, load_model_dir};
use moe_train::{Blocks, DataIdentity, DomainBlocks, RunDir};

use crate::analyze::AnalyzeOptions;
use crate::error::{AnalysisError, Result};
use crate::route_val::collect;
use crate::schema::Analysis;
use crate::token_routes::TokenRoutes;

/// One chosen val block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// Domain index (in the val shards' order).
    pub domain: usize,
    /// Block index within the domain's val shard.
    pub block: usize,
}

/// Up to `per_domain` distinct val blocks of every domain, drawn with a
/// ChaCha8 stream per domain (`rng_for(seed, "atlas/<domain>")`), sorted by
/// domain then block.
pub fn choose(val: &Blocks, per_domain: usize, seed: u64) -> Vec<Choice> {
    let mut out = Vec::new();
    for (domain, d) in val.domains.iter().enumerate() {
        let mut rng = rng_for(seed, &format!("atlas/{}", d.name));
        let blocks = val.n_blocks(domain);
        let mut picked =
            rand::seq::index::sample(&mut rng, blocks, per_domain.min(blocks)).into_vec();
        picked.sort_unstable();
        out.extend(picked.into_iter().map(|block| Choice { domain, block }));
    }
    out
}

/// The chosen blocks of `val` only, in the order of `choices` (every
/// domain kept, so domain indexes stay the same).
pub fn subset(val: &Blocks, choices: &[Choice]) -> Blocks {
    let domains = val
        .domains
        .iter()
        .enumerate()
        .map(|(d, domain)| {
            let mut tokens = Vec::new();
            for c in choices.iter().filter(|c| c.domain == d) {
                tokens.extend_from_slice(val.block(d, c.block));
            }
            DomainBlocks {
                name: domain.name.clone(),
                tokens,
            }
        })
        .collect();
    Blocks {
        block_size: val.block_size,
        domains,
    }
}

/// The routing of the chosen blocks by one run, and which tokens are shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// The blocks, in table order.
    pub choices: Vec<Choice>,
    /// Tokens routed per block (`block_size − 1`, as eval routes them).
    pub seq: usize,
    /// Tokens shown per block (the first ones: routing is causal, so
    /// cutting the excerpt leaves the shown tokens' routing unchanged).
    pub shown: usize,
    /// Their routing, as `moe analyze` records it.
    pub table: TokenRoutes,
}

impl Routed {
    /// Table rows of the `k`-th excerpt that are shown.
    pub fn rows(&self, k: usize) -> Range<usize> {
        k * self.seq..k * self.seq + self.shown
    }
}

/// Routes `choices` of `data`'s val blocks through the model `analysis`
/// describes (the run's `final/`, or its last checkpoint), refusing data
/// other than the run's (TRAIN-21) and a run whose trained model is no
/// longer at the analysed step.
pub fn route(
    run: &RunDir,
    analysis: &Analysis,
    data: &PreparedData,
    choices: &[Choice],
    max_tokens: usize,
) -> Result<Routed> {
    let config = run.config()?;
    run.check_data(&DataIdentity::of(data)?)?;
    let Some((dir, step)) = run.trained_model(config.train.steps) else {
        return Err(AnalysisError::run(
            run.path(),
            "no final/ and no checkpoints/step-*/",
        ));
    };
    if analysis.run.checkpoint_step != Some(step) {
        return Err(AnalysisError::run(
            &run.analysis_dir().join(crate::analyze::ANALYSIS_FILE),
            format!(
                "analysed at step {:?}, but the run's model is now at step {step}: run `moe analyze` again",
                analysis.run.checkpoint_step
            ),
        ));
    }
    let device = Default::default();
    let (_, model) = load_model_dir::<CpuBackend>(&dir, &device)?;
    let (val, vocab) = run.val_blocks(data, 0)?;
    let picked = subset(&val, choices);
    let table = collect(
        &model,
        &picked,
        AnalyzeOptions::default().batch,
        vocab.as_ref(),
        &device,
    )?;
    let seq = val.block_size.saturating_sub(1);
    check_len(run.path(), &table, choices.len() * seq)?;
    Ok(Routed {
        choices: choices.to_vec(),
        seq,
        shown: seq.min(max_tokens.max(1)),
        table,
    })
}

fn check_len(path: &Path, table: &TokenRoutes, expected: usize) -> Result<()> {
    if table.len() == expected {
        Ok(())
    } else {
        Err(AnalysisError::run(
            path,
            format!("routed {} excerpt tokens, expected {expected}", table.len()),
        ))
    }
}
