//! The report's "Expert weights" section (ANA-30): per run and MoE block,
//! each expert's cosine distance and relative L2 change from its step-0
//! weights at the analysed step, its mean similarity to the other experts,
//! and a sentence computed from those numbers (which expert moved most,
//! whether the experts grew apart), with the drift and similarity figures.

use std::fmt::Write;

use super::claims::{compare, f3, f4};
use super::run::ReportRun;
use crate::schema::ExpertWeights;

/// Tolerance of "grew apart" / "grew alike" on the mean similarity.
pub const SIMILARITY_TOL: f64 = 0.0005;

/// The section, when some run has expert weights.
pub fn section(md: &mut String, runs: &[ReportRun]) {
    let with: Vec<&ReportRun> = runs
        .iter()
        .filter(|r| r.analysis.layers.iter().any(|l| l.expert_weights.is_some()))
        .collect();
    if with.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Expert weights\n");
    let _ = writeln!(
        md,
        "Each expert is one vector of its parameters (`c_fc` and `c_proj`, weights and biases). *Distance*: 1 − cosine similarity with the same expert's weights at the reference step (the run's initial model: for an upcycled run the dense parent's MLP copied into every expert plus the upcycle noise; else the earliest kept checkpoint); *relative change*: ‖w − w₀‖ / ‖w₀‖; *similarity*: mean cosine similarity with the other experts of the block at the analysed step.\n"
    );
    for r in with {
        for l in &r.analysis.layers {
            let Some(w) = &l.expert_weights else { continue };
            let step = w
                .analysed_step
                .map_or("the analysed model".into(), |s| format!("step {s}"));
            let _ = writeln!(md, "{} block {} at {step}:\n", r.name(), l.layer);
            let _ = writeln!(
                md,
                "| expert | distance from step {} | relative change | similarity to the other experts |",
                w.reference_step
            );
            let _ = writeln!(md, "|---|---|---|---|");
            for (e, d) in w.distance.iter().enumerate() {
                let change = w.relative_change[e].map_or("—".into(), f4);
                let others = row_mean(&w.similarity, e).map_or("—".into(), f4);
                let _ = writeln!(md, "| {e} | {} | {change} | {others} |", f4(*d));
            }
            let _ = writeln!(md, "\n- {}\n", claim(r.name(), l.layer, w));
            let drift = format!("drift from step {}", w.reference_step);
            for (stem, what) in [
                ("expert_drift", drift.as_str()),
                ("expert_similarity", "expert similarity"),
            ] {
                if let Some(p) = r.figure(&format!("figures/{stem}_layer{}.png", l.layer)) {
                    let _ = writeln!(md, "![{} block {} {what}]({p})\n", r.name(), l.layer);
                }
            }
        }
    }
}

/// Mean of row `i` of `m` off the diagonal.
fn row_mean(m: &[Vec<f64>], i: usize) -> Option<f64> {
    let n = m.len();
    (n > 1).then(|| (0..n).filter(|&j| j != i).map(|j| m[i][j]).sum::<f64>() / (n - 1) as f64)
}

/// Which expert moved most and least from the reference, and whether the
/// experts grew apart (mean similarity against the reference's).
pub fn claim(run: &str, layer: usize, w: &ExpertWeights) -> String {
    let extreme = |better: fn(f64, f64) -> bool| {
        w.distance
            .iter()
            .copied()
            .enumerate()
            .fold(None, |best: Option<(usize, f64)>, (e, d)| match best {
                Some((_, b)) if !better(d, b) => best,
                _ => Some((e, d)),
            })
    };
    let at = w
        .analysed_step
        .map_or("at the analysed model".into(), |s| format!("at step {s}"));
    let moved = match (extreme(|a, b| a > b), extreme(|a, b| a < b)) {
        (Some((most, dm)), Some((least, dl))) => format!(
            "{at} expert {most} moved most from its step-{} weights (cosine distance {}{}), expert {least} least ({})",
            w.reference_step,
            f4(dm),
            w.relative_change[most]
                .map_or(String::new(), |x| format!(", relative change {}", f3(x))),
            f4(dl)
        ),
        _ => format!("{at} the block has no experts"),
    };
    let apart = match (w.mean_similarity, w.reference_mean_similarity) {
        (Some(m), Some(m0)) => {
            let verdict = match compare(m, m0, SIMILARITY_TOL) {
                "below" => "the experts grew apart",
                "above" => "the experts grew more alike",
                _ => "the experts are as alike as they were",
            };
            format!(
                "; their mean pairwise cosine similarity is {} against {} at step {}: {verdict} (differences under {SIMILARITY_TOL} count as none)",
                f4(m),
                f4(m0),
                w.reference_step
            )
        }
        (Some(m), None) => format!(
            "; their mean pairwise cosine similarity is {} ({} below 1)",
            f4(m),
            f4(1.0 - m)
        ),
        _ => String::new(),
    };
    format!("{run} block {layer}: {moved}{apart}.")
}
