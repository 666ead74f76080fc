//! `moe report` (ANA-16): runs side by side in one Markdown file.
//!
//! Each argument is a run directory (with `metrics.jsonl`; its analysis is
//! read from `<run>/analysis/analysis.json` when present) or an analysis
//! directory (with `analysis.json`). A run without an analysis still gets its
//! losses, collapse timeline and throughput from `metrics.jsonl`. The report
//! links the runs' figures by relative path and draws one cross-run eval
//! loss figure per domain under `<out>/figures/`.

pub mod across_seeds;
pub mod causal;
pub mod causal_seeds;
pub mod claims;
pub mod eval_loss;
pub mod render;
pub mod run;
pub mod sections;
pub mod weights;

use std::path::{Component, Path, PathBuf};

use moe_train::RunDir;

use crate::analyze::{ANALYSIS_FILE, is_current, read_json};
use crate::error::{AnalysisError, Result};
use crate::figures::lines::{LineChart, Series};
use crate::figures::save;
use crate::schema::{Analysis, BaselineInfo, OptionsRecord, RunInfo, SCHEMA_VERSION, ValInfo};
pub use render::render;
pub use run::ReportRun;

/// What `report` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSummary {
    /// The Markdown file.
    pub path: PathBuf,
    /// Its text.
    pub markdown: String,
    /// Figures written under the report's directory.
    pub figures: Vec<String>,
}

/// Writes `<out>/report.md` comparing `dirs` (run or analysis directories).
pub fn report(dirs: &[PathBuf], out: &Path) -> Result<ReportSummary> {
    std::fs::create_dir_all(out).map_err(|e| AnalysisError::io(out, e))?;
    let runs = load_runs(dirs, out)?;
    let mut figures = Vec::new();
    let mut comparison = Vec::new();
    for domain in run::domains(&runs) {
        let chart = compare_chart(&runs, &domain);
        let stem = format!("loss_{}", slug(&domain));
        let names = save(&chart, &out.join("figures"), &stem)?;
        comparison.push((domain, format!("figures/{stem}.png")));
        figures.extend(names.into_iter().map(|n| format!("figures/{n}")));
    }
    let markdown = render(&runs, &comparison);
    let path = out.join("report.md");
    std::fs::write(&path, &markdown).map_err(|e| AnalysisError::io(&path, e))?;
    Ok(ReportSummary {
        path,
        markdown,
        figures,
    })
}

/// The runs of `dirs` as the report (and the atlas) sees them, figures
/// relative to `out` (which must exist): a directory given twice or two
/// runs of one name and seed refused (ANA-24), a stale analysis left out
/// with a warning (ANA-23), runs sharing a name labelled by seed (ANA-21).
pub fn load_runs(dirs: &[PathBuf], out: &Path) -> Result<Vec<ReportRun>> {
    refuse_repeated_dirs(dirs)?;
    let mut runs = dirs
        .iter()
        .map(|d| load_run(d, out))
        .collect::<Result<Vec<_>>>()?;
    refuse_repeated_runs(dirs, &runs)?;
    for r in &runs {
        if let Some(why) = &r.stale {
            eprintln!("warning: {why}");
        }
    }
    across_seeds::label_seeds(&mut runs);
    Ok(runs)
}

/// A directory given twice (ANA-24), compared as canonical paths.
fn refuse_repeated_dirs(dirs: &[PathBuf]) -> Result<()> {
    let canonical: Vec<PathBuf> = dirs
        .iter()
        .map(|d| d.canonicalize().unwrap_or_else(|_| d.clone()))
        .collect();
    for (i, c) in canonical.iter().enumerate() {
        if let Some(j) = canonical[..i].iter().position(|o| o == c) {
            return Err(AnalysisError::run(
                &dirs[i],
                format!("given twice (also as {})", dirs[j].display()),
            ));
        }
    }
    Ok(())
}

/// Two runs of one name and seed (ANA-24): one run counted as two seeds.
fn refuse_repeated_runs(dirs: &[PathBuf], runs: &[ReportRun]) -> Result<()> {
    for (i, r) in runs.iter().enumerate() {
        let key = (r.name(), r.analysis.run.seed);
        if let Some(j) = runs[..i]
            .iter()
            .position(|o| (o.name(), o.analysis.run.seed) == key)
        {
            return Err(AnalysisError::run(
                &dirs[i],
                format!(
                    "run `{}` seed {} is also {}: one run would count as two",
                    key.0,
                    key.1,
                    dirs[j].display()
                ),
            ));
        }
    }
    Ok(())
}

/// A run or analysis directory as the report sees it.
pub fn load_run(dir: &Path, out: &Path) -> Result<ReportRun> {
    let run = RunDir::new(dir);
    let analysis_dir = if dir.join(ANALYSIS_FILE).exists() {
        Some(dir.to_path_buf())
    } else if run.analysis_dir().join(ANALYSIS_FILE).exists() {
        Some(run.analysis_dir())
    } else {
        None
    };
    let mut stale = None;
    if let Some(a) = analysis_dir {
        let analysis = read_json(&a.join(ANALYSIS_FILE))?;
        if !run.has_run() || is_current(&analysis, &run)? {
            return Ok(ReportRun {
                analysis,
                analyzed: true,
                figures_base: Some(relative(out, &a)?),
                stale: None,
            });
        }
        stale = Some(format!(
            "{}: left out, it no longer describes the run (analysed at step {}; the run has changed since): run `moe analyze` again",
            a.join(ANALYSIS_FILE).display(),
            analysis
                .run
                .checkpoint_step
                .map_or("?".to_string(), |s| s.to_string())
        ));
    }
    if !run.has_run() {
        return Err(AnalysisError::run(
            dir,
            "neither a run directory (metrics.jsonl) nor an analysis directory (analysis.json)",
        ));
    }
    Ok(ReportRun {
        analysis: history_only(&run)?,
        analyzed: false,
        figures_base: None,
        stale,
    })
}

/// An analysis holding only what the run's config and events say.
fn history_only(run: &RunDir) -> Result<Analysis> {
    let config = run.config()?;
    let events = run.events()?;
    let dir = run.path();
    Ok(Analysis {
        schema_version: SCHEMA_VERSION,
        run: RunInfo::from_config(&config, dir, String::new(), None),
        options: OptionsRecord {
            seed: 0,
            permutations: 0,
            random_router_draws: 0,
            control_draws: 0,
            max_blocks: 0,
            code_domain: String::new(),
        },
        val: ValInfo {
            block_size: 0,
            domains: Vec::new(),
            tokens: Vec::new(),
            documents: Vec::new(),
        },
        baseline: BaselineInfo {
            source: "none".into(),
            step: None,
            note: Some("not analysed".into()),
        },
        layers: Vec::new(),
        history: crate::history::history(&events, &config.collapse),
        saturation: None,
        figures: Vec::new(),
    })
}

fn compare_chart(runs: &[ReportRun], domain: &str) -> LineChart {
    LineChart {
        title: format!("eval loss, {domain}"),
        x_label: "step".into(),
        y_label: "cross-entropy (nats)".into(),
        series: runs
            .iter()
            .enumerate()
            .map(|(i, r)| Series {
                name: r.name().to_string(),
                points: r
                    .analysis
                    .history
                    .eval
                    .iter()
                    .filter_map(|e| e.domains.get(domain).map(|&l| (e.step as f64, l)))
                    .collect(),
                color: i,
                faint: false,
                markers: true,
            })
            .collect(),
        y_range: None,
        reference: None,
    }
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// `to` relative to the directory `from` (both must exist), with `/` separators.
pub fn relative(from: &Path, to: &Path) -> Result<String> {
    let canon = |p: &Path| p.canonicalize().map_err(|e| AnalysisError::io(p, e));
    let (from, to) = (canon(from)?, canon(to)?);
    let a: Vec<Component> = from.components().collect();
    let b: Vec<Component> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".into(); a.len() - common];
    parts.extend(
        b[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    Ok(parts.join("/"))
}
