//! `moe demo` (and `moe` with no arguments): the whole study in miniature on
//! the embedded corpora, on the CPU — prepare, train the tiny dense, MoE and
//! no-LB runs, and summarise. Re-running reuses everything that verifies.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use moe_data::config::DataConfig;
use moe_data::prepare::{PrepareOptions, prepare};
use moe_data::prepared::PreparedData;
use moe_data::sources::HubOptions;
use moe_train::metrics::Event;

use crate::cmd_train::Device;
use crate::runs::{RunPlan, ensure_run, last_event};

/// Arguments of `moe demo`.
#[derive(Args, Clone)]
pub struct DemoArgs {
    /// Where the demo writes its outputs.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
}

impl Default for DemoArgs {
    fn default() -> Self {
        Self {
            out: PathBuf::from("runs/demo"),
        }
    }
}

/// The three tiny runs, in order.
pub const DEMO_RUNS: [&str; 3] = ["dense-tiny", "moe-tiny", "moe-no-lb-tiny"];

/// This checkout's root (configs and assets live there).
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<()> {
    let start = Instant::now();
    let progress = std::io::stderr().is_terminal();
    let data_dir = args.out.join("data");
    ensure_data(&repo_root().join("configs/data/demo.toml"), &data_dir)?;
    for name in DEMO_RUNS {
        let plan = RunPlan {
            config: repo_root().join(format!("configs/runs/{name}.toml")),
            out: args.out.join(name),
        };
        eprintln!("[{:>5.1}s] {name}", start.elapsed().as_secs_f64());
        match ensure_run(&plan, &data_dir, Device::Cpu, progress)? {
            None => eprintln!("        reusing the finished run in {}", plan.out.display()),
            Some(s) if s.stopped.is_some() => {
                eprintln!("        stopped: {}", s.stopped.unwrap_or_default())
            }
            Some(_) => {}
        }
    }
    print!("{}", summary(&args.out));
    eprintln!(
        "demo finished in {:.0}s; outputs in {}",
        start.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

/// Prepares the demo data unless a verified copy exists.
pub fn ensure_data(config_path: &Path, data_dir: &Path) -> Result<PreparedData> {
    if let Ok(data) = PreparedData::open(data_dir).and_then(|d| d.verify().map(|_| d)) {
        return Ok(data);
    }
    let config =
        DataConfig::load(config_path).with_context(|| "the demo data config".to_string())?;
    let opts = PrepareOptions {
        out: data_dir.to_path_buf(),
        force: true,
        hub: HubOptions {
            offline: true,
            ..Default::default()
        },
        progress: std::io::stderr().is_terminal(),
        ..Default::default()
    };
    prepare(&config, config_path, &opts)?;
    Ok(PreparedData::open(data_dir)?)
}

/// The summary table: per-domain val loss of each run, LB and max expert share.
pub fn summary(out: &Path) -> String {
    let mut s = String::from(
        "\nrun              step  val loss   code   math  prose   max expert share (last log)\n",
    );
    for name in DEMO_RUNS {
        let dir = out.join(name);
        let eval = last_event(&dir, |e| matches!(e, Event::Eval { .. }));
        let train = last_event(&dir, |e| matches!(e, Event::Train { .. }));
        let Some(Event::Eval {
            step,
            loss,
            domains,
            ..
        }) = eval
        else {
            s += &format!("{name:<16} (no eval yet)\n");
            continue;
        };
        let d = |k: &str| {
            domains
                .get(k)
                .map_or("     -".to_string(), |e| format!("{:6.3}", e.loss))
        };
        let share = match train {
            Some(Event::Train { routing, .. }) if !routing.is_empty() => routing
                .iter()
                .map(|r| format!("b{} {:.0}%", r.layer, 100.0 * r.max_share))
                .collect::<Vec<_>>()
                .join(", "),
            _ => "-".into(),
        };
        s += &format!(
            "{name:<16} {step:>4}  {loss:8.3} {} {} {}   {share}\n",
            d("code"),
            d("math"),
            d("prose")
        );
    }
    s
}
