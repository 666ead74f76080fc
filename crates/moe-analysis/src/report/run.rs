//! A run as the report sees it ([`ReportRun`]: its analysis, or the
//! history alone), and the facts every section asks of a set of runs: the
//! last eval step they share, the domains they evaluated.

use std::collections::BTreeSet;

use crate::schema::{Analysis, EvalPoint};

/// One run as the report sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRun {
    /// Its analysis, or a history-only one when the run was not analysed.
    pub analysis: Analysis,
    /// Whether `moe analyze` ran on it.
    pub analyzed: bool,
    /// Path from the report's directory to the analysis directory (figures live under it).
    pub figures_base: Option<String>,
    /// Why the run's `analysis.json` was left out, when it no longer
    /// describes the run (ANA-23).
    pub stale: Option<String>,
}

impl ReportRun {
    /// The run's name.
    pub fn name(&self) -> &str {
        &self.analysis.run.name
    }

    /// Its last eval row.
    pub fn final_eval(&self) -> Option<&EvalPoint> {
        self.analysis.history.eval.last()
    }

    /// The eval row at `step`.
    pub fn eval_at(&self, step: u64) -> Option<&EvalPoint> {
        self.analysis.history.eval.iter().find(|e| e.step == step)
    }

    /// A figure's path relative to the report.
    pub fn figure(&self, name: &str) -> Option<String> {
        let base = self.figures_base.as_ref()?;
        self.analysis.figures.iter().any(|f| f == name).then(|| {
            if base.is_empty() {
                name.to_string()
            } else {
                format!("{base}/{name}")
            }
        })
    }
}

/// The largest step at which every run has an eval row.
pub fn common_eval_step(runs: &[ReportRun]) -> Option<u64> {
    let mut sets = runs.iter().map(|r| {
        r.analysis
            .history
            .eval
            .iter()
            .map(|e| e.step)
            .collect::<BTreeSet<u64>>()
    });
    let first = sets.next()?;
    sets.fold(first, |acc, s| acc.intersection(&s).copied().collect())
        .last()
        .copied()
}

/// Every domain any run evaluated, sorted.
pub fn domains(runs: &[ReportRun]) -> Vec<String> {
    let set: BTreeSet<String> = runs
        .iter()
        .flat_map(|r| {
            r.analysis
                .history
                .eval
                .iter()
                .flat_map(|e| e.domains.keys().cloned())
        })
        .collect();
    set.into_iter().collect()
}
