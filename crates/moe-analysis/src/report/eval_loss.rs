//! Eval loss per domain in the report (ANA-16): final losses, flagged when
//! the final steps differ, and a step-matched comparison at the last step
//! every run evaluated — or, failing that, the step most runs share, with
//! the others' nearest evals flagged.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::claims::{f3, signed};
use super::run::{ReportRun, common_eval_step, domains};
use crate::schema::EvalPoint;

/// The eval-loss section, with the cross-run loss figures.
pub fn losses(md: &mut String, runs: &[ReportRun], figures: &[(String, String)]) {
    let domains = domains(runs);
    let _ = writeln!(md, "## Eval loss per domain\n");
    let finals: Vec<Option<u64>> = runs
        .iter()
        .map(|r| r.final_eval().map(|e| e.step))
        .collect();
    let distinct: BTreeSet<Option<u64>> = finals.iter().copied().collect();
    let _ = writeln!(md, "### Final\n");
    loss_table(md, runs, &domains, |r| r.final_eval());
    if distinct.len() > 1 {
        let steps: Vec<String> = runs
            .iter()
            .zip(&finals)
            .map(|(r, s)| {
                format!(
                    "{} at {}",
                    r.name(),
                    s.map_or("—".into(), |s| s.to_string())
                )
            })
            .collect();
        let _ = writeln!(
            md,
            "\n**Not step-matched:** the final evals are at different steps ({}); compare the step-matched table below.\n",
            steps.join(", ")
        );
    } else {
        let _ = writeln!(md, "\nThe final evals are step-matched.\n");
    }
    let _ = writeln!(md, "### Step-matched\n");
    match common_eval_step(runs) {
        Some(step) => {
            let _ = writeln!(md, "At step {step}, the last step every run evaluated:\n");
            matched(md, runs, &domains, step);
        }
        None => match best_partial(runs) {
            Some((step, members)) => {
                let pick = |keep: bool| -> Vec<ReportRun> {
                    (0..runs.len())
                        .filter(|i| members.contains(i) == keep)
                        .map(|i| runs[i].clone())
                        .collect()
                };
                let (inside, outside) = (pick(true), pick(false));
                let names: Vec<&str> = inside.iter().map(ReportRun::name).collect();
                let _ = writeln!(
                    md,
                    "No step has an eval row in every run. At step {step}, the last step {} all evaluated:\n",
                    names.join(", ")
                );
                matched(md, &inside, &domains, step);
                let others: Vec<&str> = outside.iter().map(ReportRun::name).collect();
                let _ = writeln!(
                    md,
                    "**Not step-matched:** {} {} no eval at step {step}; nearest evals:\n",
                    others.join(", "),
                    if others.len() == 1 { "has" } else { "have" }
                );
                loss_table(md, &outside, &domains, |r| nearest_eval(r, step));
                let _ = writeln!(md);
            }
            None => nearest(md, runs, &domains),
        },
    }
    for (d, path) in figures {
        let _ = writeln!(md, "![eval loss, {d}]({path})\n");
    }
    for r in runs {
        if let Some(p) = r.figure("figures/loss.png") {
            let _ = writeln!(md, "![{} loss curves]({p})\n", r.name());
        }
    }
}

fn loss_table(
    md: &mut String,
    runs: &[ReportRun],
    domains: &[String],
    pick: impl Fn(&ReportRun) -> Option<&EvalPoint>,
) {
    let _ = writeln!(md, "| run | step | all | {} |", domains.join(" | "));
    let _ = writeln!(md, "|---|---|---|{}", "---|".repeat(domains.len()));
    for r in runs {
        let Some(e) = pick(r) else {
            let _ = writeln!(
                md,
                "| {} | — | — |{}",
                r.name(),
                " — |".repeat(domains.len())
            );
            continue;
        };
        let per: Vec<String> = domains
            .iter()
            .map(|d| e.domains.get(d).map_or("—".into(), |&l| f3(l)))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            r.name(),
            e.step,
            f3(e.loss),
            per.join(" | ")
        );
    }
}

/// Without a common eval step: each run's eval nearest to the earliest
/// final eval step, flagged as not step-matched.
fn nearest(md: &mut String, runs: &[ReportRun], domains: &[String]) {
    let Some(limit) = runs
        .iter()
        .filter_map(|r| r.final_eval().map(|e| e.step))
        .min()
    else {
        let _ = writeln!(md, "No run has an eval row.\n");
        return;
    };
    let steps: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{} at {}",
                r.name(),
                nearest_eval(r, limit).map_or("—".into(), |e| e.step.to_string())
            )
        })
        .collect();
    let _ = writeln!(
        md,
        "**Not step-matched:** no step has an eval row in every run. Each run's eval nearest to step {limit}, the earliest final eval ({}):\n",
        steps.join(", ")
    );
    loss_table(md, runs, domains, |r| nearest_eval(r, limit));
    let _ = writeln!(md);
}

fn nearest_eval(r: &ReportRun, step: u64) -> Option<&EvalPoint> {
    r.analysis
        .history
        .eval
        .iter()
        .min_by_key(|e| (e.step.abs_diff(step), e.step))
}

/// "At step S, <domain> loss is lowest for A (x), then B (+d) …".
fn ranking(runs: &[ReportRun], domain: &str, step: u64) -> Option<String> {
    let mut ranked: Vec<(&str, f64)> = runs
        .iter()
        .filter_map(|r| Some((r.name(), *r.eval_at(step)?.domains.get(domain)?)))
        .collect();
    if ranked.len() < 2 {
        return None;
    }
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (best, best_loss) = ranked[0];
    let rest: Vec<String> = ranked[1..]
        .iter()
        .map(|(n, l)| format!("{n} {} ({})", f3(*l), signed(l - best_loss)))
        .collect();
    Some(format!(
        "At step {step}, {domain} loss is lowest for {best} ({}); then {}.",
        f3(best_loss),
        rest.join(", ")
    ))
}

/// The step-matched table at `step` and one ranking sentence per domain.
fn matched(md: &mut String, runs: &[ReportRun], domains: &[String], step: u64) {
    loss_table(md, runs, domains, |r| r.eval_at(step));
    let _ = writeln!(md);
    if super::across_seeds::has_seeds(runs) {
        let _ = writeln!(
            md,
            "Several seeds per configuration: single runs are not ranked here. The differences between configurations, paired by seed with their intervals, are in \"Across seeds\".\n"
        );
        return;
    }
    for d in domains {
        if let Some(sentence) = ranking(runs, d, step) {
            let _ = writeln!(md, "- {sentence}");
        }
    }
    let _ = writeln!(md);
}

/// The step evaluated by the most runs (at least two; ties: the later
/// step), with those runs' indices.
pub fn best_partial(runs: &[ReportRun]) -> Option<(u64, Vec<usize>)> {
    let steps: BTreeSet<u64> = runs
        .iter()
        .flat_map(|r| r.analysis.history.eval.iter().map(|e| e.step))
        .collect();
    steps
        .into_iter()
        .map(|s| {
            let members: Vec<usize> = (0..runs.len())
                .filter(|&i| runs[i].eval_at(s).is_some())
                .collect();
            (s, members)
        })
        .filter(|(_, m)| m.len() >= 2)
        .max_by_key(|(s, m)| (m.len(), *s))
}
