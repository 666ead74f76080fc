//! Per-domain routing entropy (ANA-9) and the routing consistency of
//! consecutive tokens (ANA-12) of one layer.

use std::ops::Range;

use crate::nmi::entropy;
use crate::schema::{Consistency, DomainRouting};
use crate::token_routes::{LayerRoutes, TokenRoutes};

/// Mean router entropy, usage entropy H(E | D = d) and mean gate per domain.
pub fn domain_routing(table: &TokenRoutes, routes: &LayerRoutes) -> Vec<DomainRouting> {
    let n_d = table.domains.len();
    let mut usage = vec![vec![0u64; routes.n_experts]; n_d];
    let mut ent = vec![0.0f64; n_d];
    let mut gate = vec![0.0f64; n_d];
    for i in 0..table.len() {
        let d = table.domain[i] as usize;
        usage[d][routes.expert[i] as usize] += 1;
        ent[d] += routes.entropy[i] as f64;
        gate[d] += routes.gate[i] as f64;
    }
    table
        .domains
        .iter()
        .enumerate()
        .map(|(d, name)| {
            let n: u64 = usage[d].iter().sum();
            let per = |s: f64| if n == 0 { 0.0 } else { s / n as f64 };
            DomainRouting {
                domain: name.clone(),
                tokens: n,
                mean_router_entropy: per(ent[d]),
                usage_entropy: entropy(usage[d].iter().map(|&c| c as f64)),
                mean_gate_prob: per(gate[d]),
            }
        })
        .collect()
}

/// Share of consecutive same-document pairs routed to one expert, against
/// Σ_e p(e)² (global load) and Σ_d w_d Σ_e p(e | d)² (w_d: the domain's share of pairs).
pub fn consistency(
    docs: &[Range<usize>],
    domain: &[u16],
    expert: &[u16],
    n_experts: usize,
    n_domains: usize,
) -> Consistency {
    let mut same = 0u64;
    let mut pairs_by_domain = vec![0u64; n_domains];
    for r in docs {
        let n = r.len().saturating_sub(1) as u64;
        pairs_by_domain[domain[r.start] as usize] += n;
        same += (r.start + 1..r.end)
            .filter(|&i| expert[i] == expert[i - 1])
            .count() as u64;
    }
    let pairs: u64 = pairs_by_domain.iter().sum();
    let mut usage = vec![vec![0u64; n_experts]; n_domains];
    let mut global = vec![0u64; n_experts];
    for (&e, &d) in expert.iter().zip(domain) {
        usage[d as usize][e as usize] += 1;
        global[e as usize] += 1;
    }
    let agreement = |counts: &[u64]| {
        let t: u64 = counts.iter().sum();
        if t == 0 {
            0.0
        } else {
            counts.iter().map(|&c| (c as f64 / t as f64).powi(2)).sum()
        }
    };
    let within = usage
        .iter()
        .zip(&pairs_by_domain)
        .map(|(u, &w)| agreement(u) * w as f64)
        .sum::<f64>()
        / pairs.max(1) as f64;
    Consistency {
        pairs,
        same_expert_rate: same as f64 / pairs.max(1) as f64,
        chance_global: agreement(&global),
        chance_within_domain: within,
    }
}
