//! Co-activation across consecutive MoE layers (ANA-28): for the same
//! tokens, `P(expert j in this layer | expert i in the previous MoE layer)`
//! against independence (`P(j)`, the layer's load), each domain's most
//! frequent expert path (i → j) with its share, and NMI(path; domain)
//! beside the two layers' own NMI.

use crate::nmi::{mutual_information_of, row_shares};
use crate::schema::{CoActivation, TopPath};

/// Co-activation of `expert` (this layer, `n_experts`) given `previous`
/// (the previous MoE layer's top-1 experts, `n_previous`) over tokens of
/// `domain` (`n_domains` domains).
pub fn coactivation(
    previous_layer: usize,
    previous: &[u16],
    n_previous: usize,
    expert: &[u16],
    n_experts: usize,
    domain: &[u16],
    n_domains: usize,
) -> CoActivation {
    let mut pair = vec![vec![0u64; n_experts]; n_previous];
    let mut path_domain = vec![vec![0u64; n_domains]; n_previous * n_experts];
    for ((&i, &j), &d) in previous.iter().zip(expert).zip(domain) {
        pair[i as usize][j as usize] += 1;
        path_domain[i as usize * n_experts + j as usize][d as usize] += 1;
    }
    let total = expert.len().max(1) as f64;
    let independence = (0..n_experts)
        .map(|j| pair.iter().map(|row| row[j]).sum::<u64>() as f64 / total)
        .collect();
    let top_paths = (0..n_domains)
        .map(|d| {
            let n: u64 = path_domain.iter().map(|row| row[d]).sum();
            let (best, count) = path_domain
                .iter()
                .enumerate()
                .map(|(p, row)| (p, row[d]))
                .fold((0, 0), |acc, x| if x.1 > acc.1 { x } else { acc });
            TopPath {
                from: best / n_experts.max(1),
                to: best % n_experts.max(1),
                share: if n == 0 { 0.0 } else { count as f64 / n as f64 },
            }
        })
        .collect();
    CoActivation {
        from_layer: previous_layer,
        conditional: row_shares(&pair),
        independence,
        top_paths,
        path_nmi: mutual_information_of(&path_domain).nmi(),
    }
}
