//! The report's "Across seeds" section (ANA-21): runs of one configuration
//! with several seeds are grouped by name; each comparison between two
//! configurations pairs their runs by seed and gives the mean difference
//! with its 95% t-interval over seeds, calling it unresolved when the
//! interval covers 0. Every comparison is with the main MoE configuration
//! (the first with MoE layers). NMI, its rise over step 0 and its excess
//! over the token-identity control get their spread and interval over
//! seeds, and each MoE configuration's NMI is compared with the main one's
//! block by block; collapses are listed by seed. The causal figures get
//! their intervals over seeds in the section after it
//! ([`super::causal_seeds`], ANA-31).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::claims::{f3, signed};
use super::run::ReportRun;
use crate::intervals::{Interval, paired_differences, spread, t_interval};
use moe_train::metrics::StopReason;

/// The suffix `report` gives runs that share a name: `moe@s43`.
pub const SEED_SUFFIX: &str = "@s";

/// The configuration a run belongs to (its name without the seed suffix).
pub fn group_of(run: &ReportRun) -> &str {
    let name = run.name();
    name.split_once(SEED_SUFFIX).map_or(name, |(g, _)| g)
}

/// Renames runs that share a name to `name@s<seed>`, so every label is unique.
pub fn label_seeds(runs: &mut [ReportRun]) {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for r in runs.iter() {
        *count.entry(r.name().to_string()).or_default() += 1;
    }
    for r in runs.iter_mut() {
        if count[r.name()] > 1 {
            r.analysis.run.name = format!("{}{SEED_SUFFIX}{}", r.name(), r.analysis.run.seed);
        }
    }
}

/// Runs by configuration, in first-seen order.
pub fn groups(runs: &[ReportRun]) -> Vec<(&str, Vec<&ReportRun>)> {
    let mut out: Vec<(&str, Vec<&ReportRun>)> = Vec::new();
    for r in runs {
        match out.iter_mut().find(|(g, _)| *g == group_of(r)) {
            Some((_, members)) => members.push(r),
            None => out.push((group_of(r), vec![r])),
        }
    }
    out
}

/// Whether any configuration has more than one seed.
pub fn has_seeds(runs: &[ReportRun]) -> bool {
    groups(runs).iter().any(|(_, m)| m.len() > 1)
}

/// `mean [low, high] over n seeds` and its verdict.
pub fn interval_text(i: &Interval) -> String {
    interval_over(i, "seeds")
}

/// `mean [low, high] over n <unit>` and its verdict.
pub fn interval_over(i: &Interval, unit: &str) -> String {
    format!(
        "{} [{}, {}] over {} {unit}, {}",
        signed(i.mean),
        signed(i.low),
        signed(i.high),
        i.n,
        if i.resolved() {
            "resolved"
        } else {
            "unresolved: the interval covers 0"
        }
    )
}

/// The largest step at which every run of `members` has an eval row.
fn common_step(members: &[&ReportRun]) -> Option<u64> {
    let owned: Vec<ReportRun> = members.iter().map(|r| (*r).clone()).collect();
    super::run::common_eval_step(&owned)
}

/// (seed, loss of `domain`) at `step` (`None` domain = the token-weighted total).
fn losses_at(members: &[&ReportRun], step: u64, domain: Option<&str>) -> Vec<(u64, f64)> {
    members
        .iter()
        .filter_map(|r| {
            let e = r.eval_at(step)?;
            let loss = match domain {
                Some(d) => *e.domains.get(d)?,
                None => e.loss,
            };
            Some((r.analysis.run.seed, loss))
        })
        .collect()
}

/// Per-block differences `b − a` of one seed's two runs at `step`: the
/// blocks of `domain`, or of every domain (`None`). Empty when either run
/// has no block losses there or their blocks differ in number.
pub fn block_differences(
    a: &ReportRun,
    b: &ReportRun,
    step: u64,
    domain: Option<&str>,
) -> Vec<f64> {
    let (Some(ea), Some(eb)) = (a.eval_at(step), b.eval_at(step)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (d, la) in &ea.blocks {
        if domain.is_some_and(|want| want != d) {
            continue;
        }
        match eb.blocks.get(d) {
            Some(lb) if lb.len() == la.len() => {
                out.extend(la.iter().zip(lb).map(|(x, y)| y - x));
            }
            _ => return Vec::new(),
        }
    }
    out
}

/// `; within seeds, over val blocks: s42 … , s43 …` for the seeds both
/// configurations ran (nothing when no run recorded block losses).
fn within_seeds(a: &[&ReportRun], b: &[&ReportRun], step: u64, domain: Option<&str>) -> String {
    let parts: Vec<String> = a
        .iter()
        .filter_map(|ra| {
            let seed = ra.analysis.run.seed;
            let rb = b.iter().find(|r| r.analysis.run.seed == seed)?;
            let iv = t_interval(&block_differences(ra, rb, step, domain))?;
            Some(format!("seed {seed} {}", interval_over(&iv, "val blocks")))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("; within each seed: {}", parts.join("; "))
    }
}

/// One seed per configuration: each pair's eval-loss difference with its
/// 95% interval over the val blocks, paired block by block (ANA-21).
fn single_seed(md: &mut String, groups: &[(&str, Vec<&ReportRun>)]) {
    let mut lines = String::new();
    for_each_comparison(groups, |ga, a, gb, b, step, domain| {
        let diffs = block_differences(a[0], b[0], step, domain);
        if let Some(iv) = t_interval(&diffs) {
            let _ = writeln!(
                lines,
                "- {gb} − {ga}, {} eval loss at step {step}: {}.",
                domain.unwrap_or("total"),
                interval_over(&iv, "val blocks")
            );
        }
    });
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Eval-loss differences\n");
    let _ = writeln!(
        md,
        "One seed per configuration: each difference is paired val block by val block (every run is evaluated on the same blocks) with its 95% Student-t interval over the blocks. Blocks are consecutive fixed-size windows of the val documents, not independent documents, and the interval covers eval noise only, not the seed: a resolved difference here can still vanish across seeds (`--seeds N`).\n"
    );
    md.push_str(&lines);
    let _ = writeln!(md);
}

/// The configuration every other is compared with: the first one with MoE
/// layers (the main MoE run), else the first.
fn reference(groups: &[(&str, Vec<&ReportRun>)]) -> usize {
    groups
        .iter()
        .position(|(_, m)| m.iter().any(|r| !r.analysis.run.moe_layers.is_empty()))
        .unwrap_or(0)
}

/// Calls `f(ga, a, gb, b, step, domain)` for every pair of configurations
/// that includes the [`reference`] (in first-seen order) at the last eval
/// step all their runs share, once for the total (`None`) and once per
/// domain of the first run's eval row.
fn for_each_comparison<'a>(
    groups: &[(&'a str, Vec<&'a ReportRun>)],
    mut f: impl FnMut(&str, &[&ReportRun], &str, &[&ReportRun], u64, Option<&str>),
) {
    let main = reference(groups);
    for (i, (ga, a)) in groups.iter().enumerate() {
        for (j, (gb, b)) in groups.iter().enumerate().skip(i + 1) {
            if i != main && j != main {
                continue;
            }
            let both: Vec<&ReportRun> = a.iter().chain(b.iter()).copied().collect();
            let Some(step) = common_step(&both) else {
                continue;
            };
            let mut domains: Vec<Option<&str>> = vec![None];
            if let Some(e) = a[0].eval_at(step) {
                domains.extend(e.domains.keys().map(|d| Some(d.as_str())));
            }
            for domain in domains {
                f(ga, a, gb, b, step, domain);
            }
        }
    }
}

/// The whole section: "Across seeds" when a configuration has several
/// seeds, else the within-seed differences when runs recorded block losses.
pub fn section(md: &mut String, runs: &[ReportRun]) {
    let groups = groups(runs);
    if !has_seeds(runs) {
        single_seed(md, &groups);
        return;
    }
    let _ = writeln!(md, "## Across seeds\n");
    let _ = writeln!(
        md,
        "Runs of one configuration differ only in `run.seed` (model init, batch order, router noise; the data is fixed). Intervals are 95% Student-t intervals over seeds; a comparison pairs the two configurations' runs by seed. A difference whose interval covers 0 is unresolved. Where the runs recorded per-block eval losses, each seed's difference also gets its 95% interval over the val blocks, paired block by block (consecutive windows of the val documents, so eval noise only).\n"
    );
    eval_spread(md, &groups);
    comparisons(md, &groups);
    nmi_spread(md, &groups);
    nmi_comparisons(md, &groups);
    collapses(md, &groups);
}

fn eval_spread(md: &mut String, groups: &[(&str, Vec<&ReportRun>)]) {
    let _ = writeln!(
        md,
        "| configuration | seeds | eval step | eval loss mean ± sd [min, max] |"
    );
    let _ = writeln!(md, "|---|---|---|---|");
    for (g, members) in groups {
        let Some(step) = common_step(members) else {
            continue;
        };
        let values: Vec<f64> = losses_at(members, step, None).iter().map(|v| v.1).collect();
        if let Some(s) = spread(&values) {
            let _ = writeln!(
                md,
                "| {g} | {} | {step} | {} ± {} [{}, {}] |",
                s.n,
                f3(s.mean),
                f3(s.sd),
                f3(s.min),
                f3(s.max)
            );
        }
    }
    let _ = writeln!(md);
}

fn comparisons(md: &mut String, groups: &[(&str, Vec<&ReportRun>)]) {
    for_each_comparison(groups, |ga, a, gb, b, step, domain| {
        let diffs = paired_differences(&losses_at(a, step, domain), &losses_at(b, step, domain));
        if let Some(iv) = t_interval(&diffs) {
            let _ = writeln!(
                md,
                "- {gb} − {ga}, {} eval loss at step {step}: {}{}.",
                domain.unwrap_or("total"),
                interval_text(&iv),
                within_seeds(a, b, step, domain)
            );
        }
    });
    let _ = writeln!(md);
}

fn nmi_spread(md: &mut String, groups: &[(&str, Vec<&ReportRun>)]) {
    for (g, members) in groups {
        let analysed: Vec<&&ReportRun> = members.iter().filter(|r| r.analyzed).collect();
        let Some(first) = analysed.first() else {
            continue;
        };
        for (slot, layer) in first.analysis.layers.iter().enumerate() {
            let nmi: Vec<f64> = analysed
                .iter()
                .filter_map(|r| r.analysis.layers.get(slot))
                .map(|l| l.specialization.nmi)
                .collect();
            let rises: Vec<f64> = analysed
                .iter()
                .filter_map(|r| r.analysis.layers.get(slot)?.specialization.rise.as_ref())
                .map(|r| r.rise)
                .collect();
            let Some(s) = spread(&nmi) else { continue };
            let rise = t_interval(&rises).map_or(
                "no interval (fewer than 2 seeds with a step-0 baseline)".into(),
                |iv| interval_text(&iv),
            );
            let above_control: Vec<f64> = analysed
                .iter()
                .filter_map(|r| r.analysis.layers.get(slot))
                .map(|l| l.specialization.nmi - l.specialization.token_identity.nmi)
                .collect();
            let control = t_interval(&above_control)
                .map_or("no interval (fewer than 2 seeds)".into(), |iv| {
                    interval_text(&iv)
                });
            let _ = writeln!(
                md,
                "- {g}, block {}: NMI {} ± {} [{}, {}] over {} seeds; rise over step 0 {rise}; NMI above the token-identity control {control}.",
                layer.layer,
                f3(s.mean),
                f3(s.sd),
                f3(s.min),
                f3(s.max),
                s.n
            );
        }
    }
    let _ = writeln!(md);
}

/// Each MoE configuration's NMI against the main MoE run's, block by
/// block, paired by seed (e.g. does the global-batch LB scope change it).
fn nmi_comparisons(md: &mut String, groups: &[(&str, Vec<&ReportRun>)]) {
    let main = reference(groups);
    let Some((gm, reference_runs)) = groups.get(main) else {
        return;
    };
    let nmi_by_seed = |runs: &[&ReportRun], layer: usize| -> Vec<(u64, f64)> {
        runs.iter()
            .filter(|r| r.analyzed)
            .filter_map(|r| {
                let l = r.analysis.layers.iter().find(|l| l.layer == layer)?;
                Some((r.analysis.run.seed, l.specialization.nmi))
            })
            .collect()
    };
    let mut lines = String::new();
    for (j, (g, members)) in groups.iter().enumerate() {
        let Some(first) = members.iter().find(|r| r.analyzed) else {
            continue;
        };
        if j == main {
            continue;
        }
        for layer in first.analysis.layers.iter().map(|l| l.layer) {
            let diffs = paired_differences(
                &nmi_by_seed(reference_runs, layer),
                &nmi_by_seed(members, layer),
            );
            if let Some(iv) = t_interval(&diffs) {
                let _ = writeln!(
                    lines,
                    "- {g} − {gm}, block {layer} NMI: {}{}.",
                    interval_text(&iv),
                    step_mismatch(g, members, gm, reference_runs)
                );
            }
        }
    }
    if !lines.is_empty() {
        md.push_str(&lines);
        let _ = writeln!(md);
    }
}

/// `; not step-matched: …` when the two configurations' analysed models
/// are not all at one step (a run stopped by a collapse is analysed at its
/// stop).
fn step_mismatch(g: &str, a: &[&ReportRun], gm: &str, b: &[&ReportRun]) -> String {
    let steps = |runs: &[&ReportRun]| -> Vec<u64> {
        let mut s: Vec<u64> = runs
            .iter()
            .filter(|r| r.analyzed)
            .filter_map(|r| r.analysis.run.checkpoint_step)
            .collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let (sa, sb) = (steps(a), steps(b));
    if sa == sb && sa.len() == 1 {
        return String::new();
    }
    let list = |s: &[u64]| s.iter().map(u64::to_string).collect::<Vec<_>>().join("/");
    format!(
        "; not step-matched: {g} analysed at step {}, {gm} at {}",
        list(&sa),
        list(&sb)
    )
}

fn collapses(md: &mut String, groups: &[(&str, Vec<&ReportRun>)]) {
    for (g, members) in groups {
        let steps: Vec<String> = members
            .iter()
            .filter_map(|r| {
                let stop = r.analysis.history.stop.as_ref()?;
                matches!(stop.reason, StopReason::Collapse { .. })
                    .then(|| format!("seed {} at step {}", r.analysis.run.seed, stop.step))
            })
            .collect();
        if members
            .iter()
            .any(|r| !r.analysis.layers.is_empty() || !steps.is_empty())
        {
            let _ = writeln!(
                md,
                "- {g}: routing collapsed in {} of {} seeds{}.",
                steps.len(),
                members.len(),
                if steps.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", steps.join(", "))
                }
            );
        }
    }
    let _ = writeln!(md);
}
