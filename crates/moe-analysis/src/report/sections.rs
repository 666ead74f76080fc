//! Report sections per MoE layer: specialization with its nulls, load,
//! collapse, routing details, and the runs' throughput (ANA-16).

use std::fmt::Write;

use super::claims::{self, f3, f4, pct};
use super::run::ReportRun;
use crate::schema::RunInfo;
use crate::top_tokens::display;

fn moe_runs(runs: &[ReportRun]) -> impl Iterator<Item = &ReportRun> {
    runs.iter().filter(|r| !r.analysis.layers.is_empty())
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('`', "'")
}

/// Router saturation (ANA-29): a sentence per run and block, the spread of
/// the saturation step over seeds, and the figures.
pub fn saturation(md: &mut String, runs: &[ReportRun]) {
    let with: Vec<(&ReportRun, &crate::schema::Saturation)> = runs
        .iter()
        .filter_map(|r| Some((r, r.analysis.saturation.as_ref()?)))
        .collect();
    if with.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Router saturation over training\n");
    let _ = writeln!(
        md,
        "At step 0 and at every eval, training recorded the top-1 expert of each MoE block for a fixed probe of val tokens (the first 4 val blocks of each domain, routed without noise). Agreement: the share of probe tokens routed as by the analysed model; chance: the agreement of two independent routers with the same loads.\n"
    );
    for (r, sat) in &with {
        for l in &sat.layers {
            let _ = writeln!(md, "- {}", claims::saturation(r.name(), sat, l));
        }
    }
    // Over seeds: the saturation step of each configuration and block.
    for (g, members) in super::across_seeds::groups(runs) {
        let sats: Vec<&crate::schema::Saturation> = members
            .iter()
            .filter_map(|r| r.analysis.saturation.as_ref())
            .collect();
        if sats.len() < 2 {
            continue;
        }
        for (slot, l) in sats[0].layers.iter().enumerate() {
            let layers: Vec<&crate::schema::LayerSaturation> =
                sats.iter().filter_map(|s| s.layers.get(slot)).collect();
            let steps: Vec<f64> = layers
                .iter()
                .filter_map(|l| l.first_step_above)
                .map(|s| s as f64)
                .collect();
            let when = crate::intervals::spread(&steps).map_or(String::new(), |s| {
                format!(
                    " (step {:.0} ± {:.0} [{:.0}, {:.0}])",
                    s.mean, s.sd, s.min, s.max
                )
            });
            // The agreement at the last probe before each seed's analysed step.
            let last: Vec<f64> = sats
                .iter()
                .zip(&layers)
                .filter_map(|(s, l)| {
                    let i = l.steps.iter().rposition(|&x| x < s.reference_step)?;
                    Some(l.agreement[i])
                })
                .collect();
            let last = crate::intervals::spread(&last).map_or(String::new(), |s| {
                format!(
                    "; agreement at the last probe before the analysed step {} ± {} [{}, {}]",
                    pct(s.mean),
                    pct(s.sd),
                    pct(s.min),
                    pct(s.max)
                )
            });
            let _ = writeln!(
                md,
                "- {g}, block {}: above {} before the analysed step in {} of {} seeds{when}{last}.",
                l.layer,
                pct(sats[0].threshold),
                steps.len(),
                sats.len()
            );
        }
    }
    let _ = writeln!(md);
    for (r, _) in &with {
        if let Some(p) = r.figure("figures/saturation.png") {
            let _ = writeln!(md, "![{} router saturation]({p})\n", r.name());
        }
    }
}

/// NMI, its nulls and controls, per run and layer, with the heatmaps.
pub fn specialization(md: &mut String, runs: &[ReportRun]) {
    let _ = writeln!(
        md,
        "## Specialization: NMI(expert; domain) against its nulls\n"
    );
    let _ = writeln!(
        md,
        "NMI = I(expert; domain) / H(domain) on the val tokens (top-1 expert). The permutation null shuffles domain labels across documents; the random router draws each token's expert from the layer's load; the baseline is the same run's router before training (step 0; where that model is unavailable, the earliest kept checkpoint, with its step shown); the token-identity control re-routes each token from its id's pooled expert distribution.\n"
    );
    if moe_runs(runs).next().is_none() {
        let _ = writeln!(md, "No analysed MoE run.\n");
        return;
    }
    let biased: Vec<&str> = moe_runs(runs)
        .filter(|r| r.analysis.run.bias_rate > 0.0)
        .map(ReportRun::name)
        .collect();
    if !biased.is_empty() {
        let _ = writeln!(
            md,
            "{} balance with the auxiliary-loss-free bias (MOE-15, TRAIN-26): their val tokens are routed as they trained, the top-1 chosen by the router's logits plus each block's bias at the analysed step; probabilities, gates and entropies are the unbiased router's.\n",
            biased.join(", ")
        );
    }
    let _ = writeln!(
        md,
        "| run | block | NMI | permutation null mean / p95 | p | random router | baseline NMI (step) | rise over baseline [95% CI] | token-identity NMI (survival) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    specialization_rows(md, runs);
    let _ = writeln!(md);
    for r in moe_runs(runs) {
        specialization_claims(md, r);
    }
}

/// One table row per MoE run and block: NMI, nulls, baseline, rise, control.
fn specialization_rows(md: &mut String, runs: &[ReportRun]) {
    for r in moe_runs(runs) {
        for l in &r.analysis.layers {
            let s = &l.specialization;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} / {} | {:.4} | {} | {} | {} | {} ({}) |",
                r.name(),
                l.layer,
                f3(s.nmi),
                f4(s.permutation.null.mean),
                f4(s.permutation.null.p95),
                s.permutation.p_value,
                f4(s.random_router.mean),
                s.baseline_nmi.map_or("—".into(), |b| format!(
                    "{} (step {})",
                    f3(b),
                    r.analysis.baseline.step.unwrap_or(0)
                )),
                match (&s.rise, s.baseline_nmi) {
                    (Some(r), _) => format!(
                        "{} [{}, {}]",
                        claims::signed(r.rise),
                        claims::signed(r.ci95_low),
                        claims::signed(r.ci95_high)
                    ),
                    (None, Some(b)) => claims::signed(s.nmi - b),
                    (None, None) => "—".into(),
                },
                f3(s.token_identity.nmi),
                s.token_identity.surviving_fraction.map_or("—".into(), pct)
            );
        }
    }
}

/// A run's specialization sentences per block, then its heatmaps.
fn specialization_claims(md: &mut String, r: &ReportRun) {
    {
        let a = &r.analysis;
        let _ = writeln!(
            md,
            "{}: {} permutations, seed {}; baseline router from {}{}.\n",
            r.name(),
            a.options.permutations,
            a.options.seed,
            a.baseline.source,
            a.baseline
                .step
                .map_or(String::new(), |s| format!(" (step {s})"))
        );
        for l in &a.layers {
            let _ = writeln!(
                md,
                "- {}",
                claims::specialization(r.name(), l, a.options.permutations, a.baseline.step)
            );
            let _ = writeln!(md, "- {}", claims::token_identity(r.name(), l));
            let _ = writeln!(md, "- {}", claims::confidence(r.name(), l));
            if let Some(t) = &l.token_specialization {
                let _ = writeln!(
                    md,
                    "- {}",
                    claims::token_specialization(r.name(), l.layer, t)
                );
            }
            if let Some(c) = &l.coactivation {
                let domains = &a.val.domains;
                let _ = writeln!(md, "- {}", claims::coactivation(r.name(), l, c, domains));
            }
        }
        let _ = writeln!(md);
        for l in &a.layers {
            if let Some(p) = r.figure(&format!("figures/heatmap_layer{}.png", l.layer)) {
                let _ = writeln!(
                    md,
                    "![{} block {} expert × domain]({p})\n",
                    r.name(),
                    l.layer
                );
            }
        }
    }
}

/// Load balance per run and layer.
pub fn load(md: &mut String, runs: &[ReportRun]) {
    let _ = writeln!(md, "## Load balance (val tokens)\n");
    if moe_runs(runs).next().is_none() {
        let _ = writeln!(md, "No analysed MoE run.\n");
        return;
    }
    let _ = writeln!(
        md,
        "| run | block | shares | CV | CV floor | dead (< 1%) | would drop at 1.25 |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for r in moe_runs(runs) {
        for l in &r.analysis.layers {
            let shares: Vec<String> = l
                .load
                .shares
                .iter()
                .map(|&s| format!("{:.0}", 100.0 * s))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} % | {} | {} | {:?} | {} |",
                r.name(),
                l.layer,
                shares.join(" "),
                f3(l.load.cv),
                f3(l.load.cv_floor),
                l.load.dead_experts,
                pct(l.load.would_drop_rate)
            );
        }
    }
    let _ = writeln!(md);
    for r in moe_runs(runs) {
        for l in &r.analysis.layers {
            let _ = writeln!(md, "- {}", claims::load(r.name(), l.layer, &l.load));
        }
    }
    let _ = writeln!(md);
}

/// The collapse timeline of every run from its training log.
pub fn collapse(md: &mut String, runs: &[ReportRun]) {
    let _ = writeln!(md, "## Collapse over training\n");
    for r in runs {
        let h = &r.analysis.history;
        let _ = writeln!(
            md,
            "- {}",
            claims::stop(r.name(), h.stop.as_ref(), r.analysis.run.total_steps)
        );
        for l in &h.collapse.layers {
            let _ = writeln!(md, "- {}", claims::collapse_layer(r.name(), &h.collapse, l));
        }
    }
    // One run per configuration (seeds differ in nothing the contrast is
    // about), each LB-off configuration against the first with LB.
    let mut configs: Vec<RunInfo> = Vec::new();
    for r in moe_runs(runs) {
        let group = super::across_seeds::group_of(r);
        if !configs.iter().any(|c| c.name == group) {
            let mut info = r.analysis.run.clone();
            info.name = group.to_string();
            configs.push(info);
        }
    }
    if let Some(with_lb) = configs.iter().find(|r| r.lb_coef > 0.0) {
        for no_lb in configs.iter().filter(|r| !r.balanced()) {
            if let Some(warning) = claims::lb_contrast(no_lb, with_lb) {
                let _ = writeln!(md, "- {warning}");
            }
        }
    }
    let _ = writeln!(md);
    for r in runs {
        for l in &r.analysis.history.layers {
            if let Some(p) = r.figure(&format!("figures/load_layer{}.png", l.layer)) {
                let _ = writeln!(
                    md,
                    "![{} block {} load over training]({p})\n",
                    r.name(),
                    l.layer
                );
            }
        }
    }
}

/// Per-domain entropy, consistency, code token types and top tokens.
pub fn routing_details(md: &mut String, runs: &[ReportRun]) {
    let _ = writeln!(md, "## Routing details\n");
    for r in moe_runs(runs) {
        let _ = writeln!(md, "### {}\n", r.name());
        let _ = writeln!(
            md,
            "| block | domain | mean router entropy | usage entropy | mean gate |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|");
        for l in &r.analysis.layers {
            for d in &l.domains {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} |",
                    l.layer,
                    d.domain,
                    f3(d.mean_router_entropy),
                    f3(d.usage_entropy),
                    f3(d.mean_gate_prob)
                );
            }
        }
        let _ = writeln!(md);
        for l in &r.analysis.layers {
            let _ = writeln!(md, "- {}", claims::consistency(r.name(), l));
            if let Some(t) = &l.code_token_types {
                let _ = writeln!(md, "- {}", token_types_sentence(r.name(), l.layer, t));
            }
        }
        let _ = writeln!(md);
        for l in &r.analysis.layers {
            let _ = writeln!(
                md,
                "Top tokens of block {} (count, share of the id's occurrences):\n",
                l.layer
            );
            let _ = writeln!(md, "| expert | tokens |");
            let _ = writeln!(md, "|---|---|");
            for (e, tops) in l.top_tokens.iter().enumerate() {
                let list: Vec<String> = tops
                    .iter()
                    .take(6)
                    .map(|t| {
                        format!(
                            "`{}` {} ({})",
                            cell(&t.text),
                            t.count,
                            pct(t.share_of_token)
                        )
                    })
                    .collect();
                let _ = writeln!(md, "| {e} | {} |", list.join(", "));
            }
            let _ = writeln!(md);
        }
    }
}

fn token_types_sentence(run: &str, layer: usize, t: &crate::schema::TokenTypes) -> String {
    let mut parts = Vec::new();
    for (c, row) in t.classes.iter().zip(&t.class_expert_shares) {
        let total: u64 = t.counts[parts.len()].iter().sum();
        if total == 0 {
            parts.push(None);
            continue;
        }
        let (e, s) = row
            .iter()
            .enumerate()
            .fold((0, -1.0), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
        parts.push(Some(format!("{c} → expert {e} ({}, n = {total})", pct(s))));
    }
    let parts: Vec<String> = parts.into_iter().flatten().collect();
    format!(
        "Block {layer} of {run}, {} tokens by Python token type: NMI(expert; type) = {}; the most used expert per type: {}.",
        display(&t.domain),
        f3(t.nmi),
        parts.join("; ")
    )
}

/// Device, size, tokens and speed of each run.
pub fn throughput(md: &mut String, runs: &[ReportRun]) {
    let _ = writeln!(md, "## Throughput and cost\n");
    let _ = writeln!(
        md,
        "| run | device | params (active) | tokens/step | steps | tokens seen | median tok/s | est. train time |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for r in runs {
        let t = &r.analysis.history.throughput;
        let _ = writeln!(
            md,
            "| {} | {} | {} ({}) | {} | {} | {} | {:.0} | {:.0} s |",
            r.name(),
            t.device,
            t.params_total,
            t.params_active,
            t.tokens_per_step,
            t.steps_done,
            t.tokens_seen,
            t.median_tok_per_s,
            t.estimated_train_seconds
        );
    }
    let _ = writeln!(md);
    let Some(first) = runs.first() else {
        return;
    };
    let t0 = &first.analysis.history.throughput;
    for r in &runs[1..] {
        let t = &r.analysis.history.throughput;
        let sentence = if t.device != t0.device {
            format!(
                "{} ran on {} and {} on {}: their speeds are not comparable.",
                first.name(),
                t0.device,
                r.name(),
                t.device
            )
        } else if t0.median_tok_per_s > 0.0 {
            format!(
                "On {}, {} ran at {:.2}× the median tokens per second of {} ({:.0} vs {:.0}) with {:.2}× its active parameters ({} vs {}).",
                t.device,
                r.name(),
                t.median_tok_per_s / t0.median_tok_per_s,
                first.name(),
                t.median_tok_per_s,
                t0.median_tok_per_s,
                t.params_active as f64 / t0.params_active.max(1) as f64,
                t.params_active,
                t0.params_active
            )
        } else {
            format!("{} logged no throughput.", first.name())
        };
        let _ = writeln!(md, "- {sentence}");
    }
    let _ = writeln!(md);
}
