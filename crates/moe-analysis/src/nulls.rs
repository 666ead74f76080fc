//! Reference values for NMI(expert; domain) (ANA-4, ANA-5).
//!
//! - The permutation test keeps every document's routing and shuffles the
//!   domain labels across documents: it asks whether experts separate
//!   domains more than they separate arbitrary groups of documents of the
//!   same sizes. p = (1 + #{null ≥ observed}) / (1 + permutations).
//! - The random router sends every token to an expert drawn independently
//!   from the layer's load: the NMI a router with the same load but no
//!   information would show at this sample size (a positive bias).

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::nmi::mutual_information;
use crate::schema::{NullSummary, PermutationTest};

/// Per-document expert counts and domain labels of one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct DocRouting {
    /// Experts.
    pub n_experts: usize,
    /// Domains.
    pub n_domains: usize,
    /// Flat `[doc][expert]` top-1 counts.
    pub counts: Vec<u32>,
    /// Domain of each document.
    pub domain: Vec<u16>,
}

impl DocRouting {
    /// Groups per-token experts by document ranges.
    pub fn new(
        docs: &[std::ops::Range<usize>],
        expert: &[u16],
        domain: &[u16],
        n_experts: usize,
        n_domains: usize,
    ) -> Self {
        let mut counts = vec![0u32; docs.len() * n_experts];
        for (i, r) in docs.iter().enumerate() {
            for &e in &expert[r.clone()] {
                counts[i * n_experts + e as usize] += 1;
            }
        }
        Self {
            n_experts,
            n_domains,
            counts,
            domain: docs.iter().map(|r| domain[r.start]).collect(),
        }
    }

    /// NMI of the expert × domain table when document `i` has label `labels[i]`.
    pub fn nmi_with(&self, labels: &[u16], table: &mut Vec<f64>) -> f64 {
        table.clear();
        table.resize(self.n_experts * self.n_domains, 0.0);
        for (doc, &d) in self.counts.chunks(self.n_experts.max(1)).zip(labels) {
            for (e, &c) in doc.iter().enumerate() {
                table[e * self.n_domains + d as usize] += c as f64;
            }
        }
        mutual_information(table, self.n_experts, self.n_domains).nmi()
    }
}

/// Shuffles document labels `permutations` times (ANA-4).
pub fn permutation_test(
    docs: &DocRouting,
    observed: f64,
    permutations: usize,
    rng: &mut ChaCha8Rng,
) -> PermutationTest {
    let mut labels = docs.domain.clone();
    let mut table = Vec::new();
    let null: Vec<f64> = (0..permutations)
        .map(|_| {
            labels.shuffle(rng);
            docs.nmi_with(&labels, &mut table)
        })
        .collect();
    // A tolerance so that a permutation reproducing the observed table counts as ≥.
    let at_least = null.iter().filter(|&&v| v >= observed - 1e-12).count();
    PermutationTest {
        documents: docs.domain.len() as u64,
        p_value: (1 + at_least) as f64 / (1 + permutations) as f64,
        null: summarize(null),
    }
}

/// NMI of `draws` routers that send each token to an expert drawn from
/// `shares` (ANA-5); `domain` holds each token's domain.
pub fn random_router(
    domain: &[u16],
    n_domains: usize,
    shares: &[f64],
    draws: usize,
    rng: &mut ChaCha8Rng,
) -> NullSummary {
    let n_experts = shares.len();
    let cumulative: Vec<f64> = shares
        .iter()
        .scan(0.0, |acc, &s| {
            *acc += s;
            Some(*acc)
        })
        .collect();
    let total = cumulative.last().copied().unwrap_or(0.0);
    let mut table = vec![0.0; n_experts * n_domains];
    let values = (0..draws)
        .map(|_| {
            table.iter_mut().for_each(|v| *v = 0.0);
            for &d in domain {
                let u = rng.random::<f64>() * total;
                let e = cumulative
                    .partition_point(|&c| c <= u)
                    .min(n_experts.saturating_sub(1));
                table[e * n_domains + d as usize] += 1.0;
            }
            mutual_information(&table, n_experts, n_domains).nmi()
        })
        .collect();
    summarize(values)
}

/// Mean, 95th percentile (nearest rank) and maximum of `values`.
pub fn summarize(mut values: Vec<f64>) -> NullSummary {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let mean = if n == 0 {
        0.0
    } else {
        values.iter().sum::<f64>() / n as f64
    };
    let p95 = if n == 0 {
        0.0
    } else {
        values[((0.95 * n as f64).ceil() as usize).clamp(1, n) - 1]
    };
    NullSummary {
        draws: n,
        mean,
        p95,
        max: values.last().copied().unwrap_or(0.0),
    }
}
