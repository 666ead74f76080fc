//! `moe atlas`: the routing atlas of some runs, one self-contained HTML page
//! (specs/analysis.md, ATLAS-1 … ATLAS-7).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use moe_analysis::atlas::{AtlasOptions, atlas};

/// Arguments of `moe atlas`.
#[derive(Args, Clone, Debug)]
pub struct AtlasArgs {
    /// Run directories (analysed with `moe analyze`, or not), in page order.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// The prepared data directory the runs trained on (excerpts come from its val shards).
    #[arg(long)]
    pub data: PathBuf,
    /// The HTML file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Val blocks shown per domain.
    #[arg(long, default_value_t = AtlasOptions::default().excerpts_per_domain)]
    pub excerpts: usize,
    /// Tokens shown per excerpt.
    #[arg(long, default_value_t = AtlasOptions::default().max_tokens)]
    pub max_tokens: usize,
    /// Seed of the choice of val blocks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `moe atlas`.
pub fn run(args: &AtlasArgs) -> Result<()> {
    let options = AtlasOptions {
        excerpts_per_domain: args.excerpts,
        max_tokens: args.max_tokens,
        seed: args.seed,
    };
    let summary = atlas(&args.runs, &args.data, &args.out, &options)
        .with_context(|| format!("writing the atlas {}", args.out.display()))?;
    eprintln!(
        "{} token spans, {:.2} MB",
        summary.token_spans,
        summary.bytes as f64 / 1e6
    );
    println!("atlas: {}", summary.path.display());
    Ok(())
}
