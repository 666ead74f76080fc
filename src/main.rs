//! `moe`: the command line of moe-emergence.
//!
//! With no arguments it runs the demo; `moe data …` prepares and inspects
//! token data, `moe model …` inspects the model, `moe train` trains a run.

mod cmd_analysis;
mod cmd_atlas;
mod cmd_data;
mod cmd_demo;
mod cmd_gpu;
mod cmd_model;
mod cmd_reproduce;
mod cmd_train;

use moe_emergence::{backend, device_checks, runs, study, sweep};

use anyhow::Result;
use clap::{Parser, Subcommand};

// mimalloc that keeps freed memory: large tensors are not page-faulted in
// again on every step (crates/moe-alloc).
#[global_allocator]
static GLOBAL: moe_alloc::Allocator = moe_alloc::Allocator;

/// Mixture-of-Experts GPT-2: data, model, training and routing analysis.
#[derive(Parser)]
#[command(name = "moe", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Prepare and inspect token data.
    #[command(subcommand)]
    Data(cmd_data::DataCommand),
    /// Inspect the model: parameter counts, logits.
    #[command(subcommand)]
    Model(cmd_model::ModelCommand),
    /// Train one run (dense, MoE, no-LB …) from a run config.
    Train(cmd_train::TrainArgs),
    /// Analyse a run's routing on the val shards: analysis.json and figures.
    Analyze(cmd_analysis::AnalyzeArgs),
    /// Compare runs side by side in a Markdown report.
    Report(cmd_analysis::ReportArgs),
    /// The routing atlas: one self-contained HTML page of runs' routing.
    Atlas(cmd_atlas::AtlasArgs),
    /// GPU checks (CPU-vs-device parity, matmul rate); needs `--features cuda` or `wgpu`.
    #[command(subcommand)]
    Gpu(cmd_gpu::GpuCommand),
    /// The study end to end: prepare, dense, MoE, no-LB, dense-matched (GPU time estimate first).
    Reproduce(cmd_reproduce::ReproduceArgs),
    /// Run the demo: prepare the embedded corpora, train the tiny dense, MoE and no-LB runs, summarise.
    Demo(cmd_demo::DemoArgs),
}

fn main() {
    let cli = Cli::parse();
    let result: Result<()> = match cli.command {
        None => cmd_demo::run(&cmd_demo::DemoArgs::default()),
        Some(Command::Demo(args)) => cmd_demo::run(&args),
        Some(Command::Data(cmd)) => {
            // Streaming documents: peak resident set over page faults (DATA-16).
            moe_alloc::purge_freed_memory_after(0);
            moe_alloc::no_transparent_huge_pages();
            cmd_data::run(cmd)
        }
        Some(Command::Model(cmd)) => cmd_model::run(cmd),
        Some(Command::Train(args)) => cmd_train::run(&args),
        Some(Command::Analyze(args)) => cmd_analysis::run_analyze(&args),
        Some(Command::Report(args)) => cmd_analysis::run_report(&args),
        Some(Command::Atlas(args)) => cmd_atlas::run(&args),
        Some(Command::Reproduce(args)) => cmd_reproduce::run(&args),
        Some(Command::Gpu(cmd)) => cmd_gpu::run(cmd),
    };
    if let Err(err) = result {
        eprintln!("error: {}", error_line(&err));
        std::process::exit(1);
    }
}

/// `err` and its causes on one line, outermost first, each said once: a
/// library error that already prints its source (`{path}: {source}`) is
/// not followed by that source again (CLI-5).
fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
