//! `moe train`: one run from a run config on the CPU, CUDA or wgpu.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use moe_train::metrics::Event;
use moe_train::{Resume, RunConfig, TrainOptions, TrainSummary};

use crate::backend::Device;
use crate::runs::train_on;

/// Arguments of `moe train`.
#[derive(Args, Clone)]
pub struct TrainArgs {
    /// The run config (TOML, configs/runs/*.toml).
    #[arg(long)]
    pub config: PathBuf,
    /// A prepared data directory (`moe data prepare`).
    #[arg(long)]
    pub data: PathBuf,
    /// The run directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from the last checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// Backend.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// Train with this seed instead of the config's `run.seed` (model init,
    /// batch order, router noise; written to the run's config.toml).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop after this many steps in total (the schedule still spans the config's steps).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_steps: Option<u64>,
}

/// Runs `moe train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    let summary = run_quiet(args, std::io::stderr().is_terminal())?;
    report(&summary);
    match &summary.stopped {
        Some(reason) if !reason.is_result() => anyhow::bail!(
            "{}: the run failed: {}",
            args.out.display(),
            reason.message()
        ),
        _ => Ok(()),
    }
}

/// Trains without printing the summary; returns it.
pub fn run_quiet(args: &TrainArgs, progress: bool) -> Result<TrainSummary> {
    let mut config = RunConfig::load(&args.config)?;
    if let Some(seed) = args.seed {
        config.run.seed = seed;
    }
    let opts = TrainOptions {
        data: args.data.clone(),
        out: args.out.clone(),
        resume: if args.resume {
            Resume::Checkpoint
        } else {
            Resume::No
        },
        max_steps: args.max_steps,
        progress,
        device_name: args.device.name().to_string(),
        device_memory: args.device.memory_probe(),
    };
    train_on(args.device, config, opts)
}

fn report(summary: &TrainSummary) {
    if let Some(reason) = &summary.stopped {
        eprintln!("stopped: {}", reason.message());
    }
    if let Some(Event::Eval {
        step,
        loss,
        domains,
        ..
    }) = &summary.last_eval
    {
        let per: Vec<String> = domains
            .iter()
            .map(|(d, e)| format!("{d} {:.3}", e.loss))
            .collect();
        eprintln!("step {step}: val loss {loss:.3} ({})", per.join(", "));
    }
}
