//! The study as a library (demo and `moe reproduce` alike): plan the runs
//! of a set of configs over seeds, prepare the data if needed, train what is
//! not done (side by side), analyse the MoE runs, write the report, and
//! summarise. The `moe` binary is a thin command line over [`run_study`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use moe_analysis::atlas::{ATLAS_FILE, AtlasOptions, AtlasSummary, atlas};
use moe_analysis::{Analysis, ReportSummary};
use moe_data::sources::HubOptions;
use moe_train::RunDir;
use moe_train::metrics::Event;

use crate::backend::{Device, DeviceSlot};
use crate::runs::{
    RunPlan, ensure_analysis, ensure_data, ensure_run, parallel_map, parallel_map_on, seed_plans,
};

/// What to run.
#[derive(Debug, Clone)]
pub struct StudyOptions {
    /// The data config; its prepared copy goes to `<out>/data`.
    pub data_config: PathBuf,
    /// The run configs, in report order.
    pub configs: Vec<PathBuf>,
    /// The study directory: `data/`, one directory per run, `report/`.
    pub out: PathBuf,
    /// Seeds per run (`run.seed`, `run.seed + 1`, …).
    pub seeds: usize,
    /// Seeds of particular runs instead of `seeds`, by config stem.
    pub seeds_for: Vec<(String, usize)>,
    /// Stop each run after this many steps (a quick check).
    pub max_steps: Option<u64>,
    /// Permutations (and bootstrap draws) of the specialization tests.
    pub permutations: usize,
    /// The devices the runs train on, one run per entry at a time (the
    /// rest queued; a device listed twice takes two runs side by side);
    /// analysis runs on the CPU. The outputs do not depend on the placement.
    pub devices: Vec<DeviceSlot>,
    /// Analyses side by side; the outputs do not depend on it.
    pub jobs: usize,
    /// How data sources on the Hub are read.
    pub hub: HubOptions,
    /// Draw each run's progress bar (only with `jobs == 1`).
    pub progress: bool,
}

/// What a study produced.
#[derive(Debug, Clone)]
pub struct Study {
    /// Every run, in order.
    pub plans: Vec<RunPlan>,
    /// The MoE runs' analyses, in order.
    pub analyses: Vec<Analysis>,
    /// The report.
    pub report: ReportSummary,
    /// The routing atlas, next to the report.
    pub atlas: AtlasSummary,
}

impl Study {
    /// The summary the demo and `reproduce` print ([`study_summary`]),
    /// ending with the atlas's path.
    pub fn summary(&self, with_seeds: bool) -> String {
        let s = study_summary(&self.plans, &self.analyses, &self.report, with_seeds);
        s + &format!("atlas: {}\n", self.atlas.path.display())
    }
}

/// This checkout's root (configs and assets live there).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The three tiny runs of the demo, in order.
pub const DEMO_RUNS: [&str; 3] = ["dense-tiny", "moe-tiny", "moe-no-lb-tiny"];

/// The demo: the tiny runs on the embedded corpora, on the CPU, offline.
pub fn demo_options(out: &Path, seeds: usize, jobs: usize) -> StudyOptions {
    let root = repo_root();
    StudyOptions {
        data_config: root.join("configs/data/demo.toml"),
        configs: DEMO_RUNS
            .iter()
            .map(|n| root.join(format!("configs/runs/{n}.toml")))
            .collect(),
        out: out.to_path_buf(),
        seeds,
        seeds_for: Vec::new(),
        max_steps: None,
        permutations: 1000,
        devices: vec![DeviceSlot::default_of(Device::Cpu); jobs.max(1)],
        jobs,
        hub: HubOptions {
            offline: true,
            ..Default::default()
        },
        progress: false,
    }
}

/// The machine's cores: a CPU run keeps them only partly busy.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Every run of `opts`: each config over the seeds, into `<out>/<stem>/`.
pub fn plan(opts: &StudyOptions) -> Result<Vec<RunPlan>> {
    let mut plans = Vec::new();
    for config in &opts.configs {
        let stem = config
            .file_stem()
            .with_context(|| format!("{}: no file name", config.display()))?;
        let out = opts.out.join(stem);
        if plans
            .iter()
            .any(|p: &RunPlan| p.config.file_stem() == Some(stem))
        {
            anyhow::bail!(
                "{}: listed twice (both would train into {})",
                config.display(),
                out.display()
            );
        }
        plans.extend(seed_plans(
            config,
            &out,
            opts.seeds_of(&stem.to_string_lossy()),
            opts.max_steps,
        )?);
    }
    for (name, _) in &opts.seeds_for {
        if !plans
            .iter()
            .any(|p| p.config.file_stem() == Some(name.as_ref()))
        {
            anyhow::bail!("--seeds-for {name}: no such run in the study");
        }
    }
    Ok(plans)
}

impl StudyOptions {
    /// The seeds of the config with file stem `stem`.
    pub fn seeds_of(&self, stem: &str) -> usize {
        self.seeds_for
            .iter()
            .rev()
            .find(|(name, _)| name == stem)
            .map_or(self.seeds, |(_, n)| *n)
    }

    /// Whether any run of the study has several seeds.
    pub fn with_seeds(&self) -> bool {
        self.seeds > 1 || self.seeds_for.iter().any(|(_, n)| *n > 1)
    }
}

/// Runs the study, logging each step on stderr with the time since `start`.
pub fn run_study(opts: &StudyOptions, start: Instant) -> Result<Study> {
    let at = || format!("[{:>5.1}s]", start.elapsed().as_secs_f64());
    let plans = plan(opts)?;
    let data_dir = opts.out.join("data");
    let data = ensure_data(&opts.data_config, &data_dir, opts.hub.clone())
        .with_context(|| format!("the data of {}", opts.data_config.display()))?;
    let jobs = opts.jobs.max(1);
    if opts.devices.is_empty() {
        anyhow::bail!("no device to train on");
    }
    // Progress bars of runs side by side would overwrite each other.
    let progress = opts.progress && opts.devices.len() == 1;
    let is_moe = parallel_map_on(&plans, &opts.devices, |plan, &device| {
        let label = plan_label(plan);
        eprintln!("{} {label} on {device}", at());
        match ensure_run(plan, &data, device, progress)? {
            None => eprintln!(
                "        {label}: reusing the finished run in {}",
                plan.out.display()
            ),
            Some(s) => eprintln!(
                "        {label}: {} steps{}",
                s.steps,
                s.stopped
                    .map(|r| format!("; stopped: {}", r.message()))
                    .unwrap_or_default()
            ),
        }
        Ok(plan.config()?.model.moe.is_some())
    })?;
    let moe_plans: Vec<&RunPlan> = plans
        .iter()
        .zip(&is_moe)
        .filter_map(|(p, moe)| moe.then_some(p))
        .collect();
    let analyses = parallel_map(&moe_plans, jobs, |plan| {
        eprintln!("{} analyse {}", at(), plan_label(plan));
        ensure_analysis(&RunDir::new(&plan.out), &data, opts.permutations)
    })?;
    eprintln!("{} report", at());
    let runs: Vec<PathBuf> = plans.iter().map(|p| p.out.clone()).collect();
    let report = moe_analysis::report(&runs, &opts.out.join("report"))?;
    eprintln!("{} atlas", at());
    let atlas_path = opts.out.join("report").join(ATLAS_FILE);
    let atlas = atlas(&runs, &data_dir, &atlas_path, &AtlasOptions::default())?;
    Ok(Study {
        plans,
        analyses,
        report,
        atlas,
    })
}

/// What the demo and `reproduce` print at the end: each run's per-domain
/// val loss, the MoE runs' NMI with its nulls, the report's interval
/// section (across seeds, or the one-seed eval-loss differences) and the
/// report's path.
pub fn study_summary(
    plans: &[RunPlan],
    analyses: &[Analysis],
    report: &ReportSummary,
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
    let causal = moe_analysis::report::causal_seeds::CAUSAL_SEEDS_HEADING;
    if let Some(text) = section(&report.markdown, causal, "causal figures across seeds:") {
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
        let events = run.events().unwrap_or_default();
        let last = |pick: fn(&Event) -> bool| events.iter().rev().find(|e| pick(e)).cloned();
        let eval = last(|e| matches!(e, Event::Eval { .. }));
        let train = last(|e| matches!(e, Event::Train { .. }));
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

#[cfg(test)]
mod tests {
    use super::*;

    // Checks: CLI-7
    #[test]
    fn cli_7_seeds_for_gives_named_runs_their_own_seed_count() {
        let tmp = std::env::temp_dir().join("moe-cli-7-plan");
        let mut opts = demo_options(&tmp, 2, 1);
        opts.seeds_for = vec![("moe-tiny".into(), 4)];
        let plans = plan(&opts).unwrap();
        let count = |stem: &str| {
            plans
                .iter()
                .filter(|p| p.config.file_stem().unwrap() == stem)
                .count()
        };
        assert_eq!(
            (
                count("dense-tiny"),
                count("moe-tiny"),
                count("moe-no-lb-tiny")
            ),
            (2, 4, 2)
        );
        let seeds: Vec<Option<u64>> = plans
            .iter()
            .filter(|p| p.config.file_stem().unwrap() == "moe-tiny")
            .map(|p| p.seed)
            .collect();
        assert_eq!(seeds, [Some(42), Some(43), Some(44), Some(45)]);
        assert!(opts.with_seeds());
        // A name that is not a run of the study is refused, naming it.
        opts.seeds_for = vec![("moe-bias-tiny".into(), 5)];
        let err = plan(&opts).unwrap_err().to_string();
        assert!(err.contains("moe-bias-tiny"), "{err}");
        assert!(!tmp.exists(), "planning writes nothing");
    }
}
