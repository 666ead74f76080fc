//! The overview's sentences (ATLAS-3): the report's own generated claims,
//! taken from the sections the report renders, never reworded. With
//! several seeds, every interval of the "Across seeds" section; with one,
//! the eval-loss differences over val blocks and each MoE layer's
//! specialization claim with its bootstrap interval; in both cases the
//! warning that an LB-off contrast also changes other settings (ANA-20).

use crate::report::{across_seeds, claims, sections};

use super::AtlasRun;

/// The bullet items (`- …`) of a Markdown text, in order.
fn bullets(markdown: &str) -> impl Iterator<Item = String> + '_ {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix("- "))
        .map(str::to_string)
}

/// The headline sentences of `runs`, as the report words them.
pub fn sentences(runs: &[AtlasRun]) -> Vec<String> {
    let reports: Vec<_> = runs.iter().map(|r| r.run.clone()).collect();
    let mut md = String::new();
    across_seeds::section(&mut md, &reports);
    let mut out: Vec<String> = bullets(&md).collect();
    if !across_seeds::has_seeds(&reports) {
        for r in reports.iter().filter(|r| r.analyzed) {
            let a = &r.analysis;
            for l in &a.layers {
                out.push(claims::specialization(
                    r.name(),
                    l,
                    a.options.permutations,
                    a.baseline.step,
                ));
            }
        }
    }
    let mut collapse = String::new();
    sections::collapse(&mut collapse, &reports);
    out.extend(bullets(&collapse).filter(|s| s.starts_with(claims::LB_CONTRAST_OPENING)));
    out
}
