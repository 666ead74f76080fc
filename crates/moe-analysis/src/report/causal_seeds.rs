//! The "Causal figures across seeds" section (ANA-31), rendered after
//! "Across seeds": per configuration and MoE block, each headline figure of one
//! seed's analysis taken over the configuration's seeds, with its 95%
//! Student-t interval (unresolved when it covers 0): the loss change of
//! every domain when a domain's top expert is removed, a domain's own
//! top-1 expert against a random one (keep-1), token specialization above
//! its random router, the spread of the path NMI, and the experts' mean
//! pairwise similarity with its change since step 0 (ANA-30). A figure absent from
//! an analysis (made before it, or without the causal analyses) leaves
//! that seed out; a figure no seed has gives no line.

use std::fmt::Write;

use super::across_seeds::{groups, interval_text};
use super::claims::{f3, signed};
use super::run::ReportRun;
use crate::intervals::{spread, t_interval};
use crate::keep_k::ranking;
use crate::schema::{Analysis, LayerAnalysis};

/// The heading of the section.
pub const CAUSAL_SEEDS_HEADING: &str = "## Causal figures across seeds";

/// The section: every configuration with several seeds, when some seed
/// has a causal figure (nothing otherwise).
pub fn section(md: &mut String, runs: &[ReportRun]) {
    let lines: String = groups(runs)
        .iter()
        .filter(|(_, members)| members.len() > 1)
        .map(|(g, members)| lines(g, members))
        .collect();
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(md, "{CAUSAL_SEEDS_HEADING}\n");
    let _ = writeln!(
        md,
        "Per configuration and block, each seed's own figure taken over the configuration's seeds with its 95% Student-t interval. A domain's *top expert* is, in each seed's own analysis, the expert receiving the largest share of its tokens; removing it costs each domain the loss change in nats (positive: the loss rises). Keep-1 below 0: the domain's own top expert alone beats a random one. Token specialization above 0: routing follows the token id more than a random router drawing from the same load.\n"
    );
    md.push_str(&lines);
    let _ = writeln!(md);
}

/// The expert receiving the largest share of a domain's tokens (ties: the
/// lower index, as keep-k ranks them); `None` when no expert receives any.
pub fn top_expert(shares: &[f64]) -> Option<usize> {
    ranking(shares)
        .first()
        .copied()
        .filter(|&e| shares[e] > 0.0)
}

/// `mean [low, high] over n seeds, verdict`, or the one value without an interval.
fn over_seeds(values: &[f64]) -> String {
    match (t_interval(values), values) {
        (Some(iv), _) => interval_text(&iv),
        (None, [one]) => format!("{} (one seed, no interval)", signed(*one)),
        _ => "no seed".into(),
    }
}

/// `(seed, f(analysis, block))` for every analysed run of `members` whose
/// block `layer` gives a value, in seed order.
fn per_seed<T>(
    members: &[&ReportRun],
    layer: usize,
    f: impl Fn(&Analysis, &LayerAnalysis) -> Option<T>,
) -> Vec<(u64, T)> {
    let mut out: Vec<(u64, T)> = members
        .iter()
        .filter(|r| r.analyzed)
        .filter_map(|r| {
            let l = r.analysis.layers.iter().find(|l| l.layer == layer)?;
            Some((r.analysis.run.seed, f(&r.analysis, l)?))
        })
        .collect();
    out.sort_by_key(|(seed, _)| *seed);
    out
}

fn values<T: Copy>(pairs: &[(u64, T)]) -> Vec<T> {
    pairs.iter().map(|(_, v)| *v).collect()
}

/// The lines of one configuration (empty when none of its seeds has a causal figure).
pub fn lines(group: &str, members: &[&ReportRun]) -> String {
    let mut md = String::new();
    let Some(first) = members.iter().find(|r| r.analyzed) else {
        return md;
    };
    let domains = &first.analysis.val.domains;
    for layer in first.analysis.layers.iter().map(|l| l.layer) {
        for d in domains {
            removal_line(&mut md, group, members, layer, d, domains);
        }
        for d in domains {
            keep_one_line(&mut md, group, members, layer, d);
        }
        token_line(&mut md, group, members, layer);
        path_line(&mut md, group, members, layer);
        similarity_line(&mut md, group, members, layer);
    }
    md
}

/// The experts' mean pairwise cosine similarity (ANA-30) over seeds, and
/// its change since the reference step (below 0: the experts grew apart).
fn similarity_line(md: &mut String, group: &str, members: &[&ReportRun], layer: usize) {
    let rows = per_seed(members, layer, |_, l| {
        let w = l.expert_weights.as_ref()?;
        Some((
            w.mean_similarity?,
            w.reference_mean_similarity?,
            w.reference_step,
        ))
    });
    let level: Vec<f64> = rows.iter().map(|(_, (m, _, _))| *m).collect();
    let Some(s) = spread(&level) else {
        return;
    };
    let change: Vec<f64> = rows.iter().map(|(_, (m, m0, _))| m - m0).collect();
    let mut steps: Vec<u64> = rows.iter().map(|(_, (_, _, s))| *s).collect();
    steps.sort_unstable();
    steps.dedup();
    let steps: Vec<String> = steps.iter().map(u64::to_string).collect();
    let _ = writeln!(
        md,
        "- {group}, block {layer}: the experts' mean pairwise cosine similarity {} ± {} [{}, {}] over {} seeds; its change since step {}: {}.",
        f3(s.mean),
        f3(s.sd),
        f3(s.min),
        f3(s.max),
        s.n,
        steps.join("/"),
        over_seeds(&change)
    );
}

/// Removing domain `d`'s top expert (per seed): every domain's loss change.
fn removal_line(
    md: &mut String,
    group: &str,
    members: &[&ReportRun],
    layer: usize,
    d: &str,
    domains: &[String],
) {
    // (top expert, Δ of each domain of `domains`) per seed.
    let rows = per_seed(members, layer, |a, l| {
        let removal = l.removal.as_ref()?;
        let di = a.val.domains.iter().position(|x| x == d)?;
        let top = top_expert(l.domain_expert_shares.get(di)?)?;
        let row = removal.delta.get(top)?;
        let deltas: Option<Vec<f64>> = domains
            .iter()
            .map(|o| {
                let oi = a.val.domains.iter().position(|x| x == o)?;
                Some(row.get(oi)?.mean)
            })
            .collect();
        Some((top, deltas?))
    });
    if rows.is_empty() {
        return;
    }
    let tops: Vec<String> = rows
        .iter()
        .map(|(seed, (top, _))| format!("seed {seed} expert {top}"))
        .collect();
    let costs: Vec<String> = domains
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let v: Vec<f64> = rows.iter().map(|(_, (_, deltas))| deltas[i]).collect();
            format!("{o} {}", over_seeds(&v))
        })
        .collect();
    let _ = writeln!(
        md,
        "- {group}, block {layer}: removing {d}'s top expert ({}) costs {}.",
        tops.join(", "),
        costs.join("; ")
    );
}

/// Keep-1: the domain's loss with only its own top-1 expert minus with one random expert.
fn keep_one_line(md: &mut String, group: &str, members: &[&ReportRun], layer: usize, d: &str) {
    let diffs = per_seed(members, layer, |_, l| {
        let k = l.keep_k.as_ref()?.domains.iter().find(|k| k.domain == d)?;
        let random = k.random.first()?.as_ref()?;
        Some(k.own.first()? - random.mean)
    });
    if diffs.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "- {group}, block {layer}, keep-1: {d}'s val loss with only its own top-1 expert minus with one random expert (mean of the draws): {}.",
        over_seeds(&values(&diffs))
    );
}

/// Token specialization by input token minus its random router's.
fn token_line(md: &mut String, group: &str, members: &[&ReportRun], layer: usize) {
    let diffs = per_seed(members, layer, |_, l| {
        let t = l.token_specialization.as_ref()?;
        Some(t.input.value? - t.random_router_input?)
    });
    if diffs.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "- {group}, block {layer}: token specialization by input token minus a random router's: {}.",
        over_seeds(&values(&diffs))
    );
}

/// The path NMI's spread over seeds.
fn path_line(md: &mut String, group: &str, members: &[&ReportRun], layer: usize) {
    let paths = per_seed(members, layer, |_, l| {
        let c = l.coactivation.as_ref()?;
        Some((c.from_layer, c.path_nmi))
    });
    let nmi: Vec<f64> = paths.iter().map(|(_, (_, v))| *v).collect();
    let (Some(s), Some((_, (from, _)))) = (spread(&nmi), paths.first()) else {
        return;
    };
    let _ = writeln!(
        md,
        "- {group}, block {layer} after block {from}: path NMI {} ± {} [{}, {}] over {} seeds.",
        f3(s.mean),
        f3(s.sd),
        f3(s.min),
        f3(s.max),
        s.n
    );
}
