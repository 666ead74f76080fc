//! Keep-k (ANA-26): for each domain and k = 1..E, the domain's val loss when
//! only k experts of one MoE block are left routable (the others masked in
//! that block only, MOE-14; every other block as trained): the k the domain
//! routes the most of its tokens to, the k each other domain routes the
//! most to, and k drawn at random without replacement (mean and spread over
//! a fixed number of seeded draws, `keep-k/layer<L>/<domain>/k<k>`).

use moe_data::seeded::rng_for;
use rand::seq::index::sample;

use crate::intervals::spread;
use crate::masked::{MaskedLoss, mean};
use crate::schema::{KeepK, KeepKDomain, OtherTopK};

/// The keep-k curves of MoE block `layer`; `domain_expert_shares[d][e]` is
/// the share of domain d's tokens routed to e; `names` the domains.
pub fn keep_k(
    eval: &mut impl MaskedLoss,
    layer: usize,
    domain_expert_shares: &[Vec<f64>],
    names: &[String],
    draws: usize,
    seed: u64,
) -> KeepK {
    let n_experts = domain_expert_shares.first().map_or(0, Vec::len);
    let rankings: Vec<Vec<usize>> = domain_expert_shares.iter().map(|s| ranking(s)).collect();
    let domains = (0..eval.n_domains())
        .map(|d| {
            let mut loss =
                |kept: &[usize]| mean(&eval.block_losses(d, layer, &complement(kept, n_experts)));
            let own = (1..=n_experts).map(|k| loss(&rankings[d][..k])).collect();
            let others = (0..rankings.len())
                .filter(|&o| o != d)
                .map(|o| OtherTopK {
                    domain: names[o].clone(),
                    loss: (1..=n_experts).map(|k| loss(&rankings[o][..k])).collect(),
                })
                .collect();
            let random = (1..=n_experts)
                .map(|k| {
                    let purpose = format!("keep-k/layer{layer}/{}/k{k}", names[d]);
                    let mut rng = rng_for(seed, &purpose);
                    let values: Vec<f64> = (0..draws)
                        .map(|_| loss(&sample(&mut rng, n_experts, k).into_vec()))
                        .collect();
                    spread(&values)
                })
                .collect();
            KeepKDomain {
                domain: names[d].clone(),
                ranking: rankings[d].clone(),
                full_loss: loss(&rankings[d]),
                own,
                others,
                random,
            }
        })
        .collect();
    KeepK {
        scope: "this block only".into(),
        draws,
        domains,
    }
}

/// Experts by share, largest first (ties: lower index first).
pub fn ranking(shares: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| shares[b].total_cmp(&shares[a]).then(a.cmp(&b)));
    order
}

/// The experts of `0..n` not in `kept`.
fn complement(kept: &[usize], n: usize) -> Vec<usize> {
    (0..n).filter(|e| !kept.contains(e)).collect()
}
