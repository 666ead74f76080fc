//! `moe demo` (and `moe` with no arguments): the whole study in miniature on
//! the embedded corpora, on the CPU — prepare, train the tiny dense, MoE and
//! no-LB runs, analyse their routing, write the report, and summarise
//! ([`moe_emergence::study`]). Re-running reuses everything that verifies.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crate::study::{default_jobs, demo_options, run_study};

/// Seeds of the demo by default: four, so that every comparison gets an
/// interval over seeds, in about 4 minutes on 2 cores (runs side by side;
/// BENCHMARKS.md).
pub const DEMO_SEEDS: usize = 4;

/// Arguments of `moe demo`.
#[derive(Args, Clone)]
pub struct DemoArgs {
    /// Where the demo writes its outputs.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Stop each run after this many steps (a quick check of the pipeline).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_steps: Option<u64>,
    /// Permutations (and bootstrap draws) of the specialization tests.
    #[arg(long, default_value_t = 1000)]
    pub permutations: usize,
    /// Seeds per run (`run.seed`, `run.seed + 1`, …); with more than one,
    /// each run trains into `<out>/<run>/seed-<seed>/` and the report and
    /// summary give the spread over seeds.
    #[arg(long, default_value_t = DEMO_SEEDS)]
    pub seeds: usize,
    /// Runs (and analyses) side by side; default: the machine's cores. The
    /// outputs do not depend on it.
    #[arg(long)]
    pub jobs: Option<usize>,
}

impl Default for DemoArgs {
    fn default() -> Self {
        Self {
            out: PathBuf::from("runs/demo"),
            max_steps: None,
            permutations: 1000,
            seeds: DEMO_SEEDS,
            jobs: None,
        }
    }
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<()> {
    let start = Instant::now();
    let mut opts = demo_options(
        &args.out,
        args.seeds,
        args.jobs.unwrap_or_else(default_jobs),
    );
    opts.max_steps = args.max_steps;
    opts.permutations = args.permutations;
    opts.progress = std::io::stderr().is_terminal();
    let study = run_study(&opts, start)?;
    print!("{}", study.summary(args.seeds > 1));
    eprintln!(
        "demo finished in {:.0}s; outputs in {}",
        start.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
