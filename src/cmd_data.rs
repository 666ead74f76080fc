//! `moe data prepare|inspect|audit` and the demo's data step.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use moe_data::audit::{AuditOptions, audit, render::markdown};
use moe_data::config::DataConfig;
use moe_data::inspect::inspect;
use moe_data::prepare::{PrepareOptions, prepare};
use moe_data::prepared::PreparedData;
use moe_data::sources::HubOptions;

/// `moe data …`
#[derive(Subcommand)]
pub enum DataCommand {
    /// Turn a data config into packed, split, balanced token shards + manifest.
    Prepare(PrepareArgs),
    /// Print a prepared directory's manifest as tables and decode sample blocks.
    Inspect(InspectArgs),
    /// Review a prepared directory: findings by severity, assumptions, recommendations.
    Audit(AuditArgs),
}

/// Arguments of `moe data prepare`.
#[derive(Args)]
pub struct PrepareArgs {
    /// The data config (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// The prepared directory to create.
    #[arg(long)]
    pub out: PathBuf,
    /// Worker threads (default: all cores); never changes the output bytes.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Use only the local Hugging Face cache.
    #[arg(long)]
    pub offline: bool,
    /// Refuse Hub revisions that are not 40-hex commits.
    #[arg(long)]
    pub locked: bool,
    /// Replace the output directory if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `moe data inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// The prepared directory.
    pub dir: PathBuf,
    /// Number of sample train blocks to decode.
    #[arg(long, default_value_t = 0)]
    pub decode: usize,
}

/// Arguments of `moe data audit`.
#[derive(Args)]
pub struct AuditArgs {
    /// The prepared directory.
    pub dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = AuditFormat::Md)]
    pub format: AuditFormat,
}

/// Output format of `moe data audit`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum AuditFormat {
    /// Markdown report.
    Md,
    /// The same content as JSON.
    Json,
}

/// Runs a `moe data` subcommand.
pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Prepare(args) => run_prepare(&args),
        DataCommand::Inspect(args) => {
            let data = PreparedData::open(&args.dir)?;
            print!("{}", inspect(&data, args.decode)?);
            Ok(())
        }
        DataCommand::Audit(args) => {
            let data = PreparedData::open(&args.dir)?;
            let report = audit(&data, &AuditOptions::default())?;
            match args.format {
                AuditFormat::Md => print!("{}", markdown(&report)),
                AuditFormat::Json => print!("{}", report.to_json()),
            }
            Ok(())
        }
    }
}

fn run_prepare(args: &PrepareArgs) -> Result<()> {
    let config = DataConfig::load(&args.config)?;
    let opts = PrepareOptions {
        out: args.out.clone(),
        threads: args.threads,
        force: args.force,
        hub: HubOptions {
            offline: args.offline,
            locked: args.locked,
            ..Default::default()
        },
        progress: std::io::stderr().is_terminal(),
    };
    let start = std::time::Instant::now();
    let manifest = prepare(&config, &args.config, &opts)?;
    for w in &manifest.warnings {
        eprintln!("warning: {w}");
    }
    let tokens: u64 = manifest.shards.iter().map(|s| s.tokens).sum();
    eprintln!(
        "prepared {} shards, {tokens} tokens in {:.1}s → {}",
        manifest.shards.len(),
        start.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
