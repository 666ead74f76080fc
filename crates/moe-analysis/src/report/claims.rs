//! Claim sentences generated from numbers (ANA-16). Every sentence states a
//! comparison whose direction is computed here, and carries the numbers it
//! rests on in parentheses; nothing is worded before the numbers are known.

use crate::schema::{
    CoActivation, Collapse, LayerAnalysis, LayerCollapse, LayerSaturation, Load, RunInfo,
    Saturation, StopInfo, TokenSpecialization,
};

/// Significance level of the permutation test's wording.
pub const ALPHA: f64 = 0.05;

/// `x` with three decimals.
pub fn f3(x: f64) -> String {
    format!("{x:.3}")
}

/// A small value (a null's NMI) with four decimals.
pub fn f4(x: f64) -> String {
    format!("{x:.4}")
}

/// `x` as a percentage with one decimal.
pub fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// A signed difference with three decimals.
pub fn signed(x: f64) -> String {
    format!("{x:+.3}")
}

/// A p-value, noting when it is the smallest the permutation count allows.
pub fn p_value(p: f64, permutations: usize) -> String {
    let floor = 1.0 / (permutations + 1) as f64;
    if (p - floor).abs() < 1e-12 {
        format!("p = {p:.4}, the smallest {permutations} permutations can give")
    } else {
        format!("p = {p:.4}")
    }
}

/// "above", "below" or "equal to" for `a` against `b` within `tol`.
pub fn compare(a: f64, b: f64, tol: f64) -> &'static str {
    if a > b + tol {
        "above"
    } else if a < b - tol {
        "below"
    } else {
        "equal to"
    }
}

/// What the baseline router is called: `step-0 router`, or the step it
/// really comes from (a checkpoint standing in for step 0, ANA-6).
pub fn baseline_name(step: Option<u64>) -> String {
    format!("step-{} router", step.unwrap_or(0))
}

/// NMI against the permutation null, the baseline router (at `baseline_step`)
/// and the random router.
pub fn specialization(
    run: &str,
    l: &LayerAnalysis,
    permutations: usize,
    baseline_step: Option<u64>,
) -> String {
    let name = baseline_name(baseline_step);
    let s = &l.specialization;
    let p = &s.permutation;
    let test = if p.p_value < ALPHA {
        format!(
            "above the document-permutation null ({}; null mean {}, 95th percentile {})",
            p_value(p.p_value, permutations),
            f4(p.null.mean),
            f4(p.null.p95)
        )
    } else {
        format!(
            "not distinguishable from the document-permutation null ({}; null mean {}, 95th percentile {})",
            p_value(p.p_value, permutations),
            f4(p.null.mean),
            f4(p.null.p95)
        )
    };
    let base = match (s.baseline_nmi, &s.rise) {
        (Some(b), Some(r)) => format!(
            "; it is {} its {name}'s {} (change {}, 95% bootstrap interval over documents [{}, {}], {})",
            compare(s.nmi, b, 5e-4),
            f3(b),
            signed(r.rise),
            signed(r.ci95_low),
            signed(r.ci95_high),
            if r.ci95_low > 0.0 {
                "so the rise is significant"
            } else {
                "so the rise is not significant"
            }
        ),
        (Some(b), None) => format!(
            "; it is {} its {name}'s {} (change {})",
            compare(s.nmi, b, 5e-4),
            f3(b),
            signed(s.nmi - b)
        ),
        _ => "; there is no step-0 router to compare with".into(),
    };
    format!(
        "Block {} of {run}: NMI(expert; domain) = {} is {test}{base}, and {} the random router with the same load ({}).",
        l.layer,
        f3(s.nmi),
        compare(s.nmi, s.random_router.mean, 5e-4),
        f4(s.random_router.mean)
    )
}

/// How much of the NMI the token-identity control keeps.
pub fn token_identity(run: &str, l: &LayerAnalysis) -> String {
    let t = &l.specialization.token_identity;
    match t.surviving_fraction {
        Some(f) => {
            let verdict = if f > 1.05 {
                "token identity alone gives more domain signal than the router itself"
            } else if f >= 0.5 {
                "most of the domain signal is reproduced by token identity alone"
            } else {
                "token identity alone reproduces less than half of the domain signal"
            };
            format!(
                "Block {} of {run}: {verdict} ({} of NMI {} survives: control NMI {}, {} draws).",
                l.layer,
                pct(f),
                f3(l.specialization.nmi),
                f3(t.nmi),
                t.draws
            )
        }
        None => format!(
            "Block {} of {run}: the observed NMI is 0, so the token-identity control has nothing to explain (control NMI {}).",
            l.layer,
            f3(t.nmi)
        ),
    }
}

/// How confident the router is against a uniform one (ANA-19).
pub fn confidence(run: &str, l: &LayerAnalysis) -> String {
    let c = &l.confidence;
    let verdict = if c.near_uniform {
        "the router is near-uniform: its specialization lives in the argmax, not in confident choices"
    } else {
        "the router is clearly more confident than a uniform one"
    };
    format!(
        "Block {} of {run}: mean top-1 probability {} against 1/E = {}, mean entropy {} of ln E = {} nats ({}); {verdict}.",
        l.layer,
        f3(c.mean_top1_prob),
        f3(c.uniform_prob),
        f3(c.mean_entropy_nats),
        f3(c.max_entropy_nats),
        pct(c.entropy_fraction)
    )
}

/// How [`lb_contrast`]'s warning opens.
pub const LB_CONTRAST_OPENING: &str = "The contrast of ";

/// A warning when a run without load balancing differs from a balanced run
/// in more than the LB coefficient (ANA-20): the contrast then confounds
/// load balancing with whatever else was changed.
pub fn lb_contrast(no_lb: &RunInfo, with_lb: &RunInfo) -> Option<String> {
    let mut other = Vec::new();
    if no_lb.router_noise_std != with_lb.router_noise_std {
        other.push(format!(
            "router noise ({} vs {})",
            no_lb.router_noise_std, with_lb.router_noise_std
        ));
    }
    if no_lb.z_coef != with_lb.z_coef {
        other.push(format!("z-loss ({} vs {})", no_lb.z_coef, with_lb.z_coef));
    }
    if no_lb.lb_scope != with_lb.lb_scope {
        other.push(format!(
            "LB scope ({:?} vs {:?})",
            no_lb.lb_scope, with_lb.lb_scope
        ));
    }
    (!other.is_empty()).then(|| {
        format!(
            "{LB_CONTRAST_OPENING}{} with {} is not load balancing alone: they also differ in {}, so what {} shows cannot be attributed to removing load balancing alone (the original study's no-LB ablation also turned router noise off; an ablation that changes only `lb_coef` separates the two).",
            no_lb.name,
            with_lb.name,
            other.join(", "),
            no_lb.name
        )
    })
}

/// CV against its floor, dead experts and the would-drop rate.
pub fn load(run: &str, layer: usize, load: &Load) -> String {
    let ratio = if load.cv_floor > 0.0 {
        load.cv / load.cv_floor
    } else {
        0.0
    };
    let dead = if load.dead_experts.is_empty() {
        "no expert is dead".to_string()
    } else {
        format!(
            "{} of {} experts are dead (< {}: {:?})",
            load.dead_experts.len(),
            load.shares.len(),
            pct(load.dead_threshold),
            load.dead_experts
        )
    };
    let max = load.shares.iter().copied().fold(0.0, f64::max);
    format!(
        "Block {layer} of {run}: the load's CV {} is {:.1}× its sampling floor {}; {dead}; the busiest expert takes {} and a capacity factor of {} would drop {} of tokens.",
        f3(load.cv),
        ratio,
        f3(load.cv_floor),
        pct(max),
        load.capacity_factor,
        pct(load.would_drop_rate)
    )
}

/// The collapse timeline of one layer.
pub fn collapse_layer(run: &str, c: &Collapse, l: &LayerCollapse) -> String {
    match l.first_step_above {
        Some(first) => format!(
            "Block {} of {run}: one expert first held more than {} of the tokens at step {first}, for at most {} consecutive checks (peak {} for expert {} at step {}; {} at the last check).",
            l.layer,
            pct(c.threshold),
            l.longest_run_above,
            pct(l.peak_max_share),
            l.peak_expert,
            l.peak_step,
            pct(l.final_max_share)
        ),
        None => format!(
            "Block {} of {run}: no expert ever held more than {} of the tokens (peak {} for expert {} at step {}; {} at the last check).",
            l.layer,
            pct(c.threshold),
            pct(l.peak_max_share),
            l.peak_expert,
            l.peak_step,
            pct(l.final_max_share)
        ),
    }
}

/// Whether and why a run stopped early.
pub fn stop(run: &str, stop: Option<&StopInfo>, total_steps: u64) -> String {
    match stop {
        Some(s) => format!(
            "{run} stopped early at step {} of {total_steps} ({}).",
            s.step, s.message
        ),
        None => format!("{run} was not stopped early (schedule of {total_steps} steps)."),
    }
}

/// Consecutive-token agreement against chance.
pub fn consistency(run: &str, l: &LayerAnalysis) -> String {
    let c = &l.consistency;
    let ratio = if c.chance_within_domain > 0.0 {
        c.same_expert_rate / c.chance_within_domain
    } else {
        0.0
    };
    format!(
        "Block {} of {run}: consecutive tokens share their expert {} of the time, {:.2}× the within-domain chance {} (global chance {}, {} pairs).",
        l.layer,
        pct(c.same_expert_rate),
        ratio,
        pct(c.chance_within_domain),
        pct(c.chance_global),
        c.pairs
    )
}

/// Token specialization (ANA-27) against a random router and `1/E`.
pub fn token_specialization(run: &str, layer: usize, t: &TokenSpecialization) -> String {
    let value = |v: Option<f64>| v.map_or("— (no id seen often enough)".into(), f3);
    let against = match (t.input.value, t.random_router_input) {
        (Some(x), Some(r)) => format!(
            "the input-token value is {} the random router's",
            compare(x, r, 0.005)
        ),
        _ => "no comparison with the random router".into(),
    };
    format!(
        "{run} block {layer}: token specialization (mean over ids seen ≥ {} times of the largest share of an id's tokens on one expert) by input token {} over {} ids, by next token {} over {} ids, against 1/E = {} and a random router drawing from the layer's load {}; {against} (within 0.005).",
        t.min_occurrences,
        value(t.input.value),
        t.input.ids,
        value(t.next.value),
        t.next.ids,
        f3(t.uniform),
        value(t.random_router_input),
    )
}

/// Co-activation with the previous MoE layer (ANA-28): the largest lift
/// over independence, the path NMI against the layer's own NMI, and each
/// domain's most frequent path.
pub fn coactivation(run: &str, l: &LayerAnalysis, c: &CoActivation, domains: &[String]) -> String {
    let mut best: Option<(usize, usize, f64)> = None;
    for (i, row) in c.conditional.iter().enumerate() {
        for (j, &p) in row.iter().enumerate() {
            let base = c.independence.get(j).copied().unwrap_or(0.0);
            if base > 0.0 && best.is_none_or(|b| p / base > b.2) {
                best = Some((i, j, p / base));
            }
        }
    }
    let lift = best.map_or("no expert with tokens".into(), |(i, j, x)| {
        format!("the largest lift P(j | i) / P(j) is {x:.2} (expert {i} → {j}; 1 = independent)")
    });
    let paths: Vec<String> = c
        .top_paths
        .iter()
        .zip(domains)
        .map(|(p, d)| format!("{d} {} → {} ({})", p.from, p.to, pct(p.share)))
        .collect();
    format!(
        "{run} block {} after block {}: {lift}; NMI(path; domain) {} is {} this block's NMI {}; most frequent paths: {}.",
        l.layer,
        c.from_layer,
        f3(c.path_nmi),
        compare(c.path_nmi, l.specialization.nmi, 0.0005),
        f3(l.specialization.nmi),
        paths.join(", ")
    )
}

/// Router saturation of one block (ANA-29): the first step at which the
/// probe's top-1 routing agrees with the reference step's beyond the
/// threshold, with the agreement at the first probe step.
pub fn saturation(run: &str, sat: &Saturation, l: &LayerSaturation) -> String {
    let at = |i: usize| format!("{} (chance {})", pct(l.agreement[i]), pct(l.chance[i]));
    let index = |step: u64| l.steps.iter().position(|&s| s == step);
    let verdict = match l.first_step_above.and_then(|s| Some((s, index(s)?))) {
        Some((step, i)) => format!(
            "first agrees with step {}'s on more than {} of its tokens at step {step}: {}",
            sat.reference_step,
            pct(sat.threshold),
            at(i)
        ),
        None => format!(
            "agrees with step {}'s on more than {} of its tokens at no earlier probe step",
            sat.reference_step,
            pct(sat.threshold)
        ),
    };
    // The first probe step and the last one before the reference, when
    // they are not the step named above.
    let before: Vec<usize> = (0..l.steps.len())
        .filter(|&i| l.steps[i] < sat.reference_step && Some(l.steps[i]) != l.first_step_above)
        .collect();
    let mut shown = Vec::new();
    for i in [before.first(), before.last()].into_iter().flatten() {
        if !shown.contains(i) {
            shown.push(*i);
        }
    }
    let context: Vec<String> = shown
        .iter()
        .map(|&i| format!("at step {}: {}", l.steps[i], at(i)))
        .collect();
    let context = match context.is_empty() {
        true => String::new(),
        false => format!("; {}", context.join("; ")),
    };
    format!(
        "{run} block {}: the probe's top-1 routing {verdict}{context}.",
        l.layer
    )
}
