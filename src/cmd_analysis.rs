//! `moe analyze` and `moe report`: routing analysis of a run and the
//! side-by-side report of several runs.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use moe_analysis::{AnalyzeOptions, analyze, report};
use moe_data::prepared::PreparedData;
use moe_train::RunDir;

/// Arguments of `moe analyze`.
#[derive(Args, Clone, Debug)]
pub struct AnalyzeArgs {
    /// The run directory (config.toml, metrics.jsonl, final/ or checkpoints/).
    #[arg(long)]
    pub run: PathBuf,
    /// The prepared data directory the run trained on (its val shards are routed).
    #[arg(long)]
    pub data: PathBuf,
    /// Where analysis.json and figures/ go (default: <run>/analysis).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Analyse this checkpoint directory instead of final/ (or the last checkpoint).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Permutations of the document-level test.
    #[arg(long, default_value_t = 1000)]
    pub permutations: usize,
    /// Val blocks per domain (0 = all).
    #[arg(long, default_value_t = 0)]
    pub max_blocks: usize,
    /// Seed of the permutations, nulls and controls.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The domain lexed as Python for token-type routing.
    #[arg(long, default_value = "code")]
    pub code_domain: String,
    /// Val blocks per domain of the masked evals of expert removal and
    /// keep-k (ANA-25, ANA-26); 0 skips both.
    #[arg(long, default_value_t = AnalyzeOptions::default().causal_blocks)]
    pub causal_blocks: usize,
    /// Random draws per k of keep-k's random experts (ANA-26).
    #[arg(long, default_value_t = AnalyzeOptions::default().keep_k_draws)]
    pub keep_k_draws: usize,
}

/// Arguments of `moe report`.
#[derive(Args, Clone, Debug)]
pub struct ReportArgs {
    /// Run directories (or analysis directories) to compare, in column order.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Where report.md and its figures go.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `moe analyze`.
pub fn run_analyze(args: &AnalyzeArgs) -> Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| RunDir::new(&args.run).analysis_dir());
    let options = AnalyzeOptions {
        checkpoint: args.checkpoint.clone(),
        permutations: args.permutations,
        max_blocks: args.max_blocks,
        seed: args.seed,
        code_domain: args.code_domain.clone(),
        causal_blocks: args.causal_blocks,
        keep_k_draws: args.keep_k_draws,
        ..AnalyzeOptions::default()
    };
    let data = PreparedData::open(&args.data)?;
    let a = analyze(&RunDir::new(&args.run), &data, &out, &options)
        .with_context(|| format!("analysing {}", args.run.display()))?;
    eprintln!(
        "{}: {} val tokens, checkpoint {}, step-0 router: {}",
        a.run.name,
        a.val.tokens.iter().sum::<u64>(),
        a.run.checkpoint,
        a.baseline.source
    );
    for l in &a.layers {
        let s = &l.specialization;
        eprintln!(
            "block {}: NMI {:.3} (p = {:.4}, null {:.3}, step 0 {}, token-identity survival {}), load CV {:.3} (floor {:.3}), dead {:?}",
            l.layer,
            s.nmi,
            s.permutation.p_value,
            s.permutation.null.mean,
            s.baseline_nmi.map_or("—".into(), |b| format!("{b:.3}")),
            s.token_identity
                .surviving_fraction
                .map_or("—".into(), |f| format!("{:.0}%", 100.0 * f)),
            l.load.cv,
            l.load.cv_floor,
            l.load.dead_experts
        );
    }
    eprintln!(
        "wrote {}",
        out.join(moe_analysis::analyze::ANALYSIS_FILE).display()
    );
    Ok(())
}

/// Runs `moe report`.
pub fn run_report(args: &ReportArgs) -> Result<()> {
    let summary = report(&args.runs, &args.out).context("writing the report")?;
    eprintln!("wrote {}", summary.path.display());
    Ok(())
}
