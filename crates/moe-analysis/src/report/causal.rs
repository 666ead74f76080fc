//! The report's causal sections: expert removal (ANA-25) and keep-k
//! (ANA-26), per run and MoE block, each sentence generated from the
//! numbers it cites.

use std::fmt::Write;

use super::claims::{f3, signed};
use super::run::ReportRun;
use crate::schema::{ExpertRemoval, KeepKDomain, LossDelta};

fn delta_text(d: &LossDelta) -> String {
    match &d.interval {
        Some(i) => format!("{} [{}, {}]", signed(d.mean), signed(i.low), signed(i.high)),
        None => signed(d.mean),
    }
}

/// Expert removal: a table per run and block, the heatmap and the sentence.
pub fn removal(md: &mut String, runs: &[ReportRun]) {
    let with: Vec<&ReportRun> = runs
        .iter()
        .filter(|r| r.analysis.layers.iter().any(|l| l.removal.is_some()))
        .collect();
    if with.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Expert removal: each expert masked in its block\n");
    let _ = writeln!(
        md,
        "Each cell: a domain's val loss (nats) with the expert masked out of that block's routing (its tokens take their next choice) minus the unmasked loss, mean over the val blocks with its 95% interval (paired by block). *Own domain*: the domain that routes the largest share of its tokens to the expert.\n"
    );
    for r in with {
        let domains = &r.analysis.val.domains;
        for l in &r.analysis.layers {
            let Some(rem) = &l.removal else { continue };
            let _ = writeln!(
                md,
                "{} block {} (over {:?} val blocks per domain):\n",
                r.name(),
                l.layer,
                rem.blocks
            );
            let _ = writeln!(
                md,
                "| expert | own domain (its share to the expert) | {} |",
                domains.join(" | ")
            );
            let _ = writeln!(md, "|---|---|{}", "---|".repeat(domains.len()));
            for (e, row) in rem.delta.iter().enumerate() {
                let own = rem.own_domain[e].map_or("—".into(), |d| {
                    format!(
                        "{} ({:.1}%)",
                        domains[d],
                        100.0 * l.domain_expert_shares[d][e]
                    )
                });
                let cells: Vec<String> = row.iter().map(delta_text).collect();
                let _ = writeln!(md, "| {e} | {own} | {} |", cells.join(" | "));
            }
            let _ = writeln!(
                md,
                "\n- {}\n",
                removal_claim(r.name(), l.layer, rem, domains)
            );
            if let Some(p) = r.figure(&format!("figures/removal_layer{}.png", l.layer)) {
                let _ = writeln!(
                    md,
                    "![{} block {} loss change per masked expert]({p})\n",
                    r.name(),
                    l.layer
                );
            }
        }
    }
}

/// Whether each expert's own domain loses most when it is masked.
pub fn removal_claim(run: &str, layer: usize, r: &ExpertRemoval, domains: &[String]) -> String {
    let with_own: Vec<usize> = (0..r.delta.len())
        .filter(|&e| r.own_domain[e].is_some())
        .collect();
    let matching: Vec<usize> = with_own
        .iter()
        .copied()
        .filter(|&e| r.own_domain[e] == r.most_hurt[e])
        .collect();
    let resolved = matching
        .iter()
        .filter(|&&e| {
            let d = r.own_domain[e].unwrap_or(0);
            r.delta[e][d].interval.as_ref().is_some_and(|i| i.low > 0.0)
        })
        .count();
    let verdict = if with_own.is_empty() {
        "no expert has tokens".to_string()
    } else if matching.len() == with_own.len() {
        "every expert's own domain loses most when it is masked".to_string()
    } else if matching.is_empty() {
        "no expert's own domain loses most when it is masked".to_string()
    } else {
        let others: Vec<String> = with_own
            .iter()
            .filter(|e| !matching.contains(e))
            .map(|&e| {
                let hurt = r.most_hurt[e].map_or("—", |d| domains[d].as_str());
                let own = r.own_domain[e].map_or("—", |d| domains[d].as_str());
                format!("expert {e}: own {own}, most hurt {hurt}")
            })
            .collect();
        format!(
            "for the others the most hurt domain is not its own ({})",
            others.join("; ")
        )
    };
    format!(
        "{run} block {layer}: masking an expert raises its own domain's val loss the most for {} of {} experts with tokens ({} of those with the rise's 95% interval above 0); {verdict}.",
        matching.len(),
        with_own.len(),
        resolved
    )
}

/// Keep-k: one sentence per run, block and domain, and the figures.
pub fn keep_k(md: &mut String, runs: &[ReportRun]) {
    let with: Vec<&ReportRun> = runs
        .iter()
        .filter(|r| r.analysis.layers.iter().any(|l| l.keep_k.is_some()))
        .collect();
    if with.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## Keep-k: a domain's loss with only k experts routable\n"
    );
    let _ = writeln!(
        md,
        "For each domain and k, the domain's val loss (nats) when only k experts of one block can be chosen (the others masked in that block only): the k it routes the most of its tokens to, the k another domain routes the most to, and k drawn at random (mean, min and max over seeded draws).\n"
    );
    for r in with {
        for l in &r.analysis.layers {
            let Some(k) = &l.keep_k else { continue };
            for d in &k.domains {
                let _ = writeln!(md, "- {}", keep_k_claim(r.name(), l.layer, d, 1));
            }
            let _ = writeln!(md);
            for d in &k.domains {
                let stem = format!(
                    "figures/keep_k_layer{}_{}.png",
                    l.layer,
                    crate::figures::slug(&d.domain)
                );
                if let Some(p) = r.figure(&stem) {
                    let _ = writeln!(
                        md,
                        "![{} block {} keep-k, {}]({p})\n",
                        r.name(),
                        l.layer,
                        d.domain
                    );
                }
            }
        }
    }
}

/// Keep-`k` of one domain against the other domains' top-k and random k.
pub fn keep_k_claim(run: &str, layer: usize, d: &KeepKDomain, k: usize) -> String {
    let i = k - 1;
    let own = d.own[i];
    let mut others: Vec<(f64, &str)> = d
        .others
        .iter()
        .map(|o| (o.loss[i], o.domain.as_str()))
        .collect();
    others.sort_by(|a, b| a.0.total_cmp(&b.0));
    let beats = others.iter().filter(|(v, _)| own < *v).count();
    let other_text = others
        .iter()
        .map(|(v, name)| format!("{name}'s {}", f3(*v)))
        .collect::<Vec<_>>()
        .join(", ");
    let random = d.random[i]
        .as_ref()
        .map_or("no random draws".to_string(), |s| {
            let side = if own < s.min {
                "below every draw"
            } else if own > s.max {
                "above every draw"
            } else {
                "within the draws' range"
            };
            format!(
                "{} random sets of {k}: mean {} (min {}, max {}), own {side}",
                s.n,
                f3(s.mean),
                f3(s.min),
                f3(s.max)
            )
        });
    format!(
        "{run} block {layer}, {}: keeping its own top-{k} expert(s) gives loss {} ({} over all experts, {}); it is lower than {beats} of {} other domains' top-{k} ({other_text}); {random}.",
        d.domain,
        f3(own),
        signed(own - d.full_loss),
        f3(d.full_loss),
        others.len()
    )
}
