//! Is the trained router's NMI above the same router's at step 0 (ANA-18)?
//! A paired bootstrap over documents: each draw resamples the val documents
//! with replacement and recomputes both NMIs on the same resample, so the
//! spread of `NMI − NMI₀` reflects which documents happen to be in the val
//! split, not just label noise.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::nulls::DocRouting;
use crate::schema::RiseTest;

/// NMI of `docs` restricted to the multiset of document indices `pick`.
fn nmi_of(docs: &DocRouting, pick: &[usize], table: &mut Vec<f64>) -> f64 {
    table.clear();
    table.resize(docs.n_experts * docs.n_domains, 0.0);
    for &i in pick {
        let d = docs.domain[i] as usize;
        let row = &docs.counts[i * docs.n_experts..(i + 1) * docs.n_experts];
        for (e, &c) in row.iter().enumerate() {
            table[e * docs.n_domains + d] += c as f64;
        }
    }
    crate::nmi::mutual_information(table, docs.n_experts, docs.n_domains).nmi()
}

/// Paired bootstrap of `NMI(trained) − NMI(step 0)` over documents; both
/// routings must cover the same documents in the same order.
pub fn bootstrap_rise(
    trained: &DocRouting,
    step0: &DocRouting,
    draws: usize,
    rng: &mut ChaCha8Rng,
) -> RiseTest {
    let n = trained.domain.len();
    let all: Vec<usize> = (0..n).collect();
    let mut table = Vec::new();
    let observed = nmi_of(trained, &all, &mut table) - nmi_of(step0, &all, &mut table);
    let mut diffs: Vec<f64> = (0..draws)
        .map(|_| {
            let pick: Vec<usize> = (0..n).map(|_| rng.random_range(0..n.max(1))).collect();
            nmi_of(trained, &pick, &mut table) - nmi_of(step0, &pick, &mut table)
        })
        .collect();
    diffs.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        diffs
            .get(((diffs.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(observed)
    };
    let not_above = diffs.iter().filter(|&&d| d <= 0.0).count();
    RiseTest {
        draws,
        rise: observed,
        ci95_low: quantile(0.025),
        ci95_high: quantile(0.975),
        p_value: (1 + not_above) as f64 / (1 + draws) as f64,
    }
}
