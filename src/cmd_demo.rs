//! `moe demo` (and `moe` with no arguments): the whole study in miniature on
//! the embedded corpora, on the CPU — prepare, train the tiny dense, MoE and
//! no-LB runs, analyse their routing, write the report, and summarise.
//! Re-running reuses everything that verifies.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use moe_analysis::Analysis;
use moe_data::sources::HubOptions;
use moe_train::RunDir;
use moe_train::metrics::Event;

use crate::backend::Device;
use crate::runs::{RunPlan, ensure_data, ensure_run, parallel_map, seed_plans};

/// Arguments of `moe demo`.
#[derive(Args, Clone)]
pub struct DemoArgs {
    /// Where the demo writes its outputs.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Stop each run after this many steps (a quick check of the pipeline).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Permutations (and bootstrap draws) of the specialization tests.
    #[arg(long, default_value_t = 1000)]
    pub permutations: usize,
    /// Seeds per run (`run.seed`, `run.seed + 1`, …); with more than one,
    /// each run trains into `<out>/<run>/seed-<seed>/` and the report and
    /// summary give the spread over seeds.
    #[arg(long, default_value_t = 1)]
    pub seeds: usize,
    /// Runs (and analyses) side by side; default: the machine's cores. The
    /// outputs do not depend on it.
    #[arg(long)]
    pub jobs: Option<usize>,
}

/// The machine's cores: a CPU run keeps about one busy.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Default for DemoArgs {
    fn default() -> Self {
        Self {
            out: PathBuf::from("runs/demo"),
            max_steps: None,
            permutations: 1000,
            seeds: 1,
            jobs: None,
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
    let hub = HubOptions {
        offline: true,
        ..Default::default()
    };
    ensure_data(
        &repo_root().join("configs/data/demo.toml"),
        &data_dir,
        hub,
        false,
    )
    .context("the demo data")?;
    let mut plans = Vec::new();
    for name in DEMO_RUNS {
        let config = repo_root().join(format!("configs/runs/{name}.toml"));
        let out = args.out.join(name);
        plans.extend(seed_plans(&config, &out, args.seeds, args.max_steps)?);
    }
    let jobs = args.jobs.unwrap_or_else(default_jobs);
    // Progress bars of runs side by side would overwrite each other.
    let progress = progress && jobs == 1;
    parallel_map(&plans, jobs, |plan| {
        let label = plan_label(plan);
        eprintln!("[{:>5.1}s] {label}", start.elapsed().as_secs_f64());
        match ensure_run(plan, &data_dir, Device::Cpu, progress)? {
            None => eprintln!(
                "        {label}: reusing the finished run in {}",
                plan.out.display()
            ),
            Some(s) => {
                if let Some(reason) = &s.stopped {
                    eprintln!("        {label} stopped: {}", reason.message())
                }
            }
        }
        Ok(())
    })?;
    let moe_plans: Vec<&RunPlan> = plans
        .iter()
        .filter(|p| plan_label(p).starts_with("moe"))
        .collect();
    let analyses = parallel_map(&moe_plans, jobs, |plan| {
        let label = plan_label(plan);
        eprintln!("[{:>5.1}s] analyse {label}", start.elapsed().as_secs_f64());
        crate::runs::ensure_analysis(&plan.out, &data_dir, args.permutations)
    })?;
    eprintln!("[{:>5.1}s] report", start.elapsed().as_secs_f64());
    let runs: Vec<PathBuf> = plans.iter().map(|p| p.out.clone()).collect();
    let report = moe_analysis::report(&runs, &args.out.join("report"))?;
    print!(
        "{}",
        study_summary(&plans, &analyses, &report, args.seeds > 1)
    );
    eprintln!(
        "demo finished in {:.0}s; outputs in {}",
        start.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

/// What the demo and `reproduce` print at the end: each run's per-domain
/// val loss, the MoE runs' NMI with its nulls, the report's interval
/// section (across seeds, or the one-seed eval-loss differences) and the
/// report's path.
pub fn study_summary(
    plans: &[RunPlan],
    analyses: &[Analysis],
    report: &moe_analysis::ReportSummary,
    with_seeds: bool,
) -> String {
    let labelled: Vec<(String, PathBuf)> = plans
        .iter()
        .map(|p| (plan_label(p), p.out.clone()))
        .collect();
    let mut out = summary(&labelled);
    out += &specialization_summary(analyses, with_seeds);
    let intervals = [
        ("## Across seeds", "across seeds:"),
        (
            "## Eval-loss differences",
            "eval-loss differences (one seed):",
        ),
    ];
    if let Some(text) = intervals
        .iter()
        .find_map(|(heading, label)| section(&report.markdown, heading, label))
    {
        out += &format!("\n{text}");
    }
    out += &format!("\nreport: {}\n", report.path.display());
    out
}

/// A run's name in the summary: its config file's stem, `@s<seed>` with several seeds.
fn plan_label(plan: &RunPlan) -> String {
    let stem = plan
        .config
        .file_stem()
        .map_or(String::new(), |s| s.to_string_lossy().into_owned());
    match plan.seed {
        Some(seed) => format!("{stem}@s{seed}"),
        None => stem,
    }
}

/// The text of a `## ` section of a Markdown document, its heading replaced by `label`.
fn section(markdown: &str, heading: &str, label: &str) -> Option<String> {
    let start = markdown.find(heading)? + heading.len();
    let rest = &markdown[start..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    Some(format!("{label}{}", &rest[..end]))
}

/// Expert ↔ domain NMI per layer with its nulls, for the MoE runs (labelled
/// with their seed when `with_seed`).
pub fn specialization_summary(analyses: &[Analysis], with_seed: bool) -> String {
    let mut s = String::from(
        "\nexpert↔domain NMI per MoE block (permutation p-value; null mean; step-0 NMI; rise over step 0 with its 95% bootstrap interval; share surviving a token-identity router; load CV; router confidence: mean top-1 probability against 1/E, entropy as a share of ln E)\n",
    );
    for a in analyses {
        for l in &a.layers {
            let sp = &l.specialization;
            s += &format!(
                "{:<20} block {}  NMI {:.3}  p {:.4}  null {:.3}  step 0 {}  rise {}  token-identity {}  load CV {:.2}  top-1 p {:.3} vs {:.3}, entropy {:.0}% of ln E{}\n",
                if with_seed {
                    format!("{}@s{}", a.run.name, a.run.seed)
                } else {
                    a.run.name.clone()
                },
                l.layer,
                sp.nmi,
                sp.permutation.p_value,
                sp.permutation.null.mean,
                sp.baseline_nmi.map_or("-".into(), |b| format!("{b:.3}")),
                sp.rise.as_ref().map_or("-".into(), |r| format!(
                    "{:+.3} [{:+.3}, {:+.3}]",
                    r.rise, r.ci95_low, r.ci95_high
                )),
                sp.token_identity
                    .surviving_fraction
                    .map_or("-".into(), |f| format!("{:.0}%", 100.0 * f)),
                l.load.cv,
                l.confidence.mean_top1_prob,
                l.confidence.uniform_prob,
                100.0 * l.confidence.entropy_fraction,
                if l.confidence.near_uniform {
                    " (near-uniform)"
                } else {
                    ""
                },
            );
        }
    }
    s
}

/// The summary table: per-domain val loss of each run, LB and max expert share.
pub fn summary(runs: &[(String, PathBuf)]) -> String {
    let mut s = String::from(
        "\nrun                  step  val loss   code   math  prose   max expert share (last log)\n",
    );
    for (name, dir) in runs {
        let run = RunDir::new(dir);
        let eval = run.last_event(|e| matches!(e, Event::Eval { .. }));
        let train = run.last_event(|e| matches!(e, Event::Train { .. }));
        let Some(Event::Eval {
            step,
            loss,
            domains,
            ..
        }) = eval
        else {
            s += &format!("{name:<20} (no eval yet)\n");
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
            "{name:<20} {step:>4}  {loss:8.3} {} {} {}   {share}\n",
            d("code"),
            d("math"),
            d("prose")
        );
    }
    s
}
