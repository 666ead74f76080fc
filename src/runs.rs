//! Running a list of training runs into one directory, skipping those whose
//! outputs already exist and match their config, and analysing them (the
//! steps of [`crate::study`]; `moe train` trains through [`train_on`]).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::backend::AutodiffBackend;
use moe_analysis::analyze::{ANALYSIS_FILE, is_current, read_json};
use moe_analysis::{Analysis, AnalyzeOptions};
use moe_data::config::DataConfig;
use moe_data::prepare::{PrepareOptions, prepare};
use moe_data::prepared::PreparedData;
use moe_data::sources::HubOptions;
use moe_model::Precision;
use moe_train::{DataIdentity, Resume, RunConfig, RunDir, RunStatus, TrainOptions, TrainSummary};

use crate::backend::{Device, DeviceSlot, OnBackend, run_on_slot};

/// One run of a study.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The run config file.
    pub config: PathBuf,
    /// The run directory.
    pub out: PathBuf,
    /// Stop after this many steps (a quick run; the schedule is unchanged).
    pub max_steps: Option<u64>,
    /// Overrides `run.seed` of the config (one run of several seeds).
    pub seed: Option<u64>,
}

impl RunPlan {
    /// The config as this plan trains it (its seed applied).
    pub fn config(&self) -> Result<RunConfig> {
        let mut config = RunConfig::load(&self.config)?;
        if let Some(seed) = self.seed {
            config.run.seed = seed;
        }
        Ok(config)
    }
}

/// The plans of one config over `seeds` seeds: `run.seed`, `run.seed + 1`, …
/// One seed trains into `out` as it always did; several train into
/// `out/seed-<seed>/`.
pub fn seed_plans(
    config: &Path,
    out: &Path,
    seeds: usize,
    max_steps: Option<u64>,
) -> Result<Vec<RunPlan>> {
    let base = RunConfig::load(config)?.run.seed;
    Ok((0..seeds.max(1) as u64)
        .map(|k| RunPlan {
            config: config.to_path_buf(),
            out: if seeds > 1 {
                out.join(format!("seed-{}", base + k))
            } else {
                out.to_path_buf()
            },
            max_steps,
            seed: (seeds > 1).then_some(base + k),
        })
        .collect())
}

/// A run is complete when its resolved config matches and it either saved
/// its final model or stopped early by a collapse (a result of the study),
/// or, for a quick run, reached `max_steps`; a run stopped by a non-finite
/// loss is a failure, never complete.
pub fn is_complete(plan: &RunPlan, status: &RunStatus) -> bool {
    match status {
        RunStatus::Complete { .. } | RunStatus::Stopped { .. } => true,
        RunStatus::Partial {
            checkpoint: Some(step),
        } => plan.max_steps.is_some_and(|m| *step >= m),
        RunStatus::Partial { checkpoint: None }
        | RunStatus::Empty
        | RunStatus::OtherConfig
        | RunStatus::OtherData { .. } => false,
    }
}

/// Trains `plan` unless it is complete; resumes a run that was interrupted.
///
/// A run trained on other data than `data` (TRAIN-21) is moved aside to
/// `<run>.other-data-<sha8>`, saying so, and trained anew.
pub fn ensure_run(
    plan: &RunPlan,
    data: &PreparedData,
    device: DeviceSlot,
    progress: bool,
) -> Result<Option<TrainSummary>> {
    let identity = DataIdentity::of(data)?;
    let run = RunDir::new(&plan.out);
    let mut status = run.status(&plan.config()?, &identity)?;
    if let RunStatus::OtherData { recorded } = &status {
        let short = recorded.get(..8).unwrap_or(recorded);
        let aside = PathBuf::from(format!("{}.other-data-{short}", plan.out.display()));
        if aside.exists() {
            anyhow::bail!(
                "{}: trained on other data (manifest sha256 {recorded}) and {} is taken; remove one of them",
                plan.out.display(),
                aside.display()
            );
        }
        std::fs::rename(&plan.out, &aside)
            .with_context(|| format!("moving {} aside", plan.out.display()))?;
        eprintln!(
            "        {}: trained on other data (manifest sha256 {recorded}); moved to {} and trained anew",
            plan.out.display(),
            aside.display()
        );
        status = RunStatus::Empty;
    }
    if is_complete(plan, &status) {
        return Ok(None);
    }
    let opts = TrainOptions {
        data: data.dir.clone(),
        out: plan.out.clone(),
        resume: if run.has_run() {
            Resume::IfAny
        } else {
            Resume::No
        },
        max_steps: plan.max_steps,
        progress,
        device_name: device.device.name().to_string(),
        device_memory: device.memory_probe(),
    };
    let summary = train_on(device, plan.config()?, opts)
        .with_context(|| format!("run {}", plan.config.display()))?;
    match &summary.stopped {
        Some(reason) if !reason.is_result() => {
            anyhow::bail!("run {} failed: {}", plan.out.display(), reason.message())
        }
        _ => Ok(Some(summary)),
    }
}

/// Trains one run on `device` (`moe train` and every study run).
pub fn train_on(device: DeviceSlot, config: RunConfig, opts: TrainOptions) -> Result<TrainSummary> {
    if config.train.precision == Precision::Bf16 && device.device == Device::Wgpu {
        anyhow::bail!(
            "{}: train.precision = \"bf16\" cannot run on wgpu (CubeCL's WGSL compiler has no bf16 type); use --device cuda, or cpu",
            config.run.name
        );
    }
    run_on_slot(device, Train { config, opts })
}

/// One training run as a backend-generic job.
struct Train {
    config: RunConfig,
    opts: TrainOptions,
}

impl OnBackend for Train {
    type Output = TrainSummary;
    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<TrainSummary> {
        Ok(moe_train::train::<B>(&self.config, &self.opts, device)?)
    }
}

/// Analyses a run unless its saved analysis, with the same permutations,
/// still describes it ([`moe_analysis::analyze::is_current`]).
pub fn ensure_analysis(run: &RunDir, data: &PreparedData, permutations: usize) -> Result<Analysis> {
    let out = run.analysis_dir();
    if let Ok(cached) = read_json(&out.join(ANALYSIS_FILE))
        && cached.options.permutations == permutations
        && is_current(&cached, run)?
    {
        return Ok(cached);
    }
    let options = AnalyzeOptions {
        permutations,
        ..AnalyzeOptions::default()
    };
    moe_analysis::analyze(run, data, &out, &options)
        .with_context(|| format!("analysing {}", run.path().display()))
}

/// Prepares `config_path` into `dir` unless a copy made from the same inputs
/// verifies there.
pub fn ensure_data(config_path: &Path, dir: &Path, hub: HubOptions) -> Result<PreparedData> {
    let config = DataConfig::load(config_path)
        .with_context(|| format!("the data config {}", config_path.display()))?;
    if let Ok(data) = PreparedData::open(dir)
        && data.matches_inputs(&config, config_path)?
        && data.verify().is_ok()
    {
        return Ok(data);
    }
    let opts = PrepareOptions {
        out: dir.to_path_buf(),
        force: true,
        hub,
        progress: std::io::stderr().is_terminal(),
        ..Default::default()
    };
    prepare(&config, config_path, &opts).with_context(|| "preparing the data".to_string())?;
    Ok(PreparedData::open(dir)?)
}

/// `f` over `items` on up to `jobs` threads (at least one), results in the
/// order of `items` ([`parallel_map_on`] with `jobs` interchangeable
/// workers). Each run of a study is one thread: a CPU training step at the
/// study's sizes keeps the cores only partly busy, so runs side by side
/// finish sooner than one after the other (BENCHMARKS.md). Results do not
/// depend on `jobs` (every kernel is deterministic and runs share no state).
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let workers = vec![(); jobs.max(1)];
    parallel_map_on(items, &workers, |item, _| f(item))
}

/// `f(item, worker)` over `items`, one thread per worker (at most one item
/// per worker at a time, the rest queued in order; a study's workers are
/// its devices), results in the order of `items`. After the first error no
/// further item is started; that error is returned.
pub fn parallel_map_on<T: Sync, W: Sync, R: Send>(
    items: &[T],
    workers: &[W],
    f: impl Fn(&T, &W) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<R>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    let used = workers.len().min(items.len().max(1));
    std::thread::scope(|scope| {
        for worker in &workers[..used] {
            let (next, failed, results, f) = (&next, &failed, &results, &f);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= items.len() || failed.load(Ordering::SeqCst) {
                        break;
                    }
                    let r = f(&items[i], worker);
                    if r.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    results.lock().expect("a worker panicked")[i] = Some(r);
                }
            });
        }
    });
    let mut out = Vec::with_capacity(items.len());
    for r in results.into_inner().expect("a worker panicked") {
        match r {
            Some(r) => out.push(r?),
            None => anyhow::bail!("a run was not started after an earlier one failed"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checks: TRAIN-19 — bf16 on wgpu is refused before any work, naming why
    // (the check comes before the backend's, so it holds in every build).
    #[test]
    fn train_19_bf16_on_wgpu_is_refused_with_the_reason() {
        let text = "[run]\nname = \"w\"\n[model]\ninit = \"scratch\"\npreset = \"micro\"\n[train]\nsteps = 1\nmicro_batch = 1\nlr = 1e-3\nprecision = \"bf16\"\n[eval]\nevery = 1\n[log]\nevery = 1\n[checkpoint]\nevery = 1\nkeep = 1\n";
        let config = RunConfig::parse(text, Path::new("w.toml")).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let opts = TrainOptions {
            data: tmp.path().join("no-data"),
            out: tmp.path().join("run"),
            ..Default::default()
        };
        let err = train_on(DeviceSlot::default_of(Device::Wgpu), config, opts)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bf16") && err.contains("WGSL"), "{err}");
        assert!(!tmp.path().join("run").exists());
    }
}
