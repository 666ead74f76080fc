//! `moe reproduce`: the study end to end — prepare the data, train the dense,
//! MoE and no-LB runs (and the step-matched dense run), analyse the MoE runs
//! and write the report, skipping whatever already exists and verifies —
//! after printing an estimate of GPU time and cost (on a GPU device) — then
//! print the same summary as the demo.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use moe_data::config::DataConfig;
use moe_data::sources::HubOptions;
use moe_train::RunConfig;

use crate::backend::{Device, DeviceSlot};
use crate::study::{StudyOptions, default_jobs, plan, run_study};
use crate::sweep::{run_one, study_commands};

/// Arguments of `moe reproduce`.
#[derive(Args, Clone)]
pub struct ReproduceArgs {
    /// The data config (configs/data/seed.toml or v3.toml).
    #[arg(long, default_value = "configs/data/seed.toml")]
    pub data_config: PathBuf,
    /// The study directory (data/ and one directory per run).
    #[arg(long)]
    pub out: PathBuf,
    /// Runs, by config name in configs/runs/.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "dense,moe,moe-no-lb,dense-matched"
    )]
    pub runs: Vec<String>,
    /// Folder of the run configs.
    #[arg(long, default_value = "configs/runs")]
    pub configs: PathBuf,
    /// Backend.
    #[arg(long, value_enum, default_value_t = Device::Cuda)]
    pub device: Device,
    /// Dense training throughput used for the estimate (tokens/s). Default: the
    /// original study's measured RTX 4090 figure.
    #[arg(long, default_value_t = 25_700.0, value_parser = positive_rate)]
    pub dense_tok_per_s: f64,
    /// MoE training throughput used for the estimate (tokens/s). Default: the
    /// original study's measured RTX 4090 figure.
    #[arg(long, default_value_t = 14_200.0, value_parser = positive_rate)]
    pub moe_tok_per_s: f64,
    /// Rental price of the GPU in USD per hour, for the estimate.
    #[arg(long, default_value_t = 0.5, value_parser = non_negative_price)]
    pub usd_per_hour: f64,
    /// Print the estimate and exit.
    #[arg(long)]
    pub estimate_only: bool,
    /// Read the Hub datasets only from the local cache.
    #[arg(long)]
    pub offline: bool,
    /// Refuse Hub revisions that are not pinned commits.
    #[arg(long)]
    pub locked: bool,
    /// Seeds per run (`run.seed`, `run.seed + 1`, …); with more than one,
    /// each run trains into `<out>/<run>/seed-<seed>/` and the report gives
    /// the spread over seeds.
    #[arg(long, default_value_t = 1)]
    pub seeds: usize,
    /// Seeds of particular runs instead of --seeds: `moe=5,moe-bias=5`
    /// (e.g. more seeds where a question is still unresolved).
    #[arg(long, value_delimiter = ',', value_parser = run_seeds)]
    pub seeds_for: Vec<(String, usize)>,
    /// Runs (and analyses) side by side; default: the machine's cores with
    /// `--device cpu`, else 1. The outputs do not depend on it.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Train on these devices, one run per device at a time, the rest
    /// queued (`cuda:0,cuda:1`, `wgpu:0`, `cpu`; a device listed twice
    /// takes two runs at once). Overrides --device and --jobs for training.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<DeviceSlot>,
    /// Print the study as independent shell commands (data, one `moe train`
    /// per run and seed, analyses, report) for a scheduler, and exit.
    #[arg(long, conflicts_with = "only")]
    pub list: bool,
    /// Train only this run of the study (`RUN@SEED`, as --list names it);
    /// the data must be prepared.
    #[arg(long)]
    pub only: Option<String>,
}

/// Runs `moe reproduce`.
pub fn run(args: &ReproduceArgs) -> Result<()> {
    let start = Instant::now();
    let jobs = args.jobs.unwrap_or(if args.device == Device::Cpu {
        default_jobs()
    } else {
        1
    });
    let opts = StudyOptions {
        data_config: args.data_config.clone(),
        configs: args
            .runs
            .iter()
            .map(|name| args.configs.join(format!("{name}.toml")))
            .collect(),
        out: args.out.clone(),
        seeds: args.seeds,
        seeds_for: args.seeds_for.clone(),
        max_steps: None,
        permutations: 1000,
        devices: if args.devices.is_empty() {
            vec![DeviceSlot::default_of(args.device); jobs]
        } else {
            args.devices.clone()
        },
        jobs,
        hub: HubOptions {
            offline: args.offline,
            locked: args.locked,
            ..Default::default()
        },
        progress: std::io::stderr().is_terminal(),
    };
    if args.list {
        print!("{}", study_commands(&opts)?);
        return Ok(());
    }
    if let Some(only) = &args.only {
        return run_one(&opts, only);
    }
    // The estimate is of GPU time; a CPU study has its own wall time.
    if args.device != Device::Cpu || args.estimate_only {
        let data_config = DataConfig::load(&args.data_config)?;
        let mut configs = Vec::new();
        for plan in plan(&opts)? {
            configs.push(plan.config()?);
        }
        print!(
            "{}",
            estimate(&configs, data_config.pipeline.block_size, args)
        );
    }
    if args.estimate_only {
        return Ok(());
    }
    let study = run_study(&opts, start)?;
    print!("{}", study.summary(opts.with_seeds()));
    Ok(())
}

/// The GPU time and cost estimate, one line per run and a total.
pub fn estimate(configs: &[RunConfig], block_size: usize, args: &ReproduceArgs) -> String {
    let mut out = format!(
        "estimate at {:.0} tok/s dense, {:.0} tok/s MoE, ${:.2}/h (pass measured figures with --dense-tok-per-s/--moe-tok-per-s):\n",
        args.dense_tok_per_s, args.moe_tok_per_s, args.usd_per_hour
    );
    let mut total_h = 0.0;
    for rc in configs {
        let tokens = rc.train.steps * rc.tokens_per_step(block_size);
        let rate = if rc.model.moe.is_some() {
            args.moe_tok_per_s
        } else {
            args.dense_tok_per_s
        };
        let hours = tokens as f64 / rate / 3600.0;
        total_h += hours;
        out += &format!(
            "  {:<14} {:>6} steps × {:>5} tokens = {:>6.1}M tokens  ≈ {:>5.2} h  ≈ ${:.2}\n",
            rc.run.name,
            rc.train.steps,
            rc.tokens_per_step(block_size),
            tokens as f64 / 1e6,
            hours,
            hours * args.usd_per_hour
        );
    }
    out += &format!(
        "  total ≈ {total_h:.2} h ≈ ${:.2} (training only; eval adds a few percent)\n",
        total_h * args.usd_per_hour
    );
    out
}

/// A throughput for the estimate: finite and above 0 (CLI-5).
fn positive_rate(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(v) => Err(format!(
            "{v} tokens/s: a rate must be a finite number above 0"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// `RUN=N` of --seeds-for: a run's config stem and at least one seed.
fn run_seeds(text: &str) -> std::result::Result<(String, usize), String> {
    let (name, n) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected RUN=SEEDS, e.g. moe=5"))?;
    match n.parse::<usize>() {
        Ok(n) if n >= 1 && !name.is_empty() => Ok((name.to_string(), n)),
        _ => Err(format!("{text:?}: expected RUN=SEEDS with SEEDS ≥ 1")),
    }
}

/// A price for the estimate: finite and at least 0 (CLI-5).
fn non_negative_price(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(v) => Err(format!("${v}/h: a price must be a finite number ≥ 0")),
        Err(e) => Err(e.to_string()),
    }
}
