//! The token-identity control (ANA-7): how much of NMI(expert; domain) a
//! router that sees only the token id would reproduce.
//!
//! Each token is re-routed by sampling from its id's pooled expert
//! distribution over all domains, leaving the token itself out (so that an
//! id seen once does not trivially keep its own expert); an id seen only once
//! samples from the layer's load. If routing is a function of the token id,
//! the control reproduces it exactly (surviving fraction 1); if experts
//! follow the domain over a shared vocabulary, the pooled distributions mix
//! the domains' experts and the control's NMI falls towards 0.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::nmi::mutual_information;
use crate::schema::TokenIdentity;

/// Per token: id, observed expert and domain.
#[derive(Debug, Clone, Copy)]
pub struct Tokens<'a> {
    /// Token ids.
    pub id: &'a [u32],
    /// Observed top-1 experts.
    pub expert: &'a [u16],
    /// Domains.
    pub domain: &'a [u16],
    /// Experts of the layer.
    pub n_experts: usize,
    /// Domains.
    pub n_domains: usize,
}

/// Mean NMI of `draws` re-routings, and its share of `observed`.
pub fn token_identity_control(
    t: Tokens<'_>,
    observed: f64,
    draws: usize,
    rng: &mut ChaCha8Rng,
) -> TokenIdentity {
    let n_e = t.n_experts;
    let max_id = t.id.iter().copied().max().unwrap_or(0) as usize;
    let mut pooled = vec![0u32; (max_id + 1) * n_e];
    let mut load = vec![0u32; n_e];
    for (&v, &e) in t.id.iter().zip(t.expert) {
        pooled[v as usize * n_e + e as usize] += 1;
        load[e as usize] += 1;
    }
    let mut table = vec![0.0; n_e * t.n_domains];
    let mut weights = vec![0u32; n_e];
    let mut total_nmi = 0.0;
    for _ in 0..draws {
        table.iter_mut().for_each(|v| *v = 0.0);
        for i in 0..t.id.len() {
            let (v, own) = (t.id[i] as usize, t.expert[i] as usize);
            weights.copy_from_slice(&pooled[v * n_e..(v + 1) * n_e]);
            weights[own] -= 1;
            if weights.iter().all(|&w| w == 0) {
                weights.copy_from_slice(&load);
            }
            let e = sample(&weights, rng);
            table[e * t.n_domains + t.domain[i] as usize] += 1.0;
        }
        total_nmi += mutual_information(&table, n_e, t.n_domains).nmi();
    }
    let nmi = if draws == 0 {
        0.0
    } else {
        total_nmi / draws as f64
    };
    TokenIdentity {
        draws,
        nmi,
        surviving_fraction: (observed > 1e-12).then(|| nmi / observed),
    }
}

/// An index drawn with probability proportional to `weights` (not all 0).
fn sample(weights: &[u32], rng: &mut ChaCha8Rng) -> usize {
    let total: u64 = weights.iter().map(|&w| w as u64).sum();
    let mut u = rng.random_range(0..total.max(1));
    for (i, &w) in weights.iter().enumerate() {
        if u < w as u64 {
            return i;
        }
        u -= w as u64;
    }
    weights.len() - 1
}
