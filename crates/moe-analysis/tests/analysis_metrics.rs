//! ANA-2 … ANA-13: the analysis metrics on synthetic routings whose answers
//! are known by hand or by construction.

use moe_analysis::control::{Tokens, token_identity_control};
use moe_analysis::domain_stats::{consistency, domain_routing};
use moe_analysis::load_balance::load_stats;
use moe_analysis::nmi::{entropy, mutual_information_of, row_shares, transpose};
use moe_analysis::nulls::{DocRouting, permutation_test, random_router};
use moe_analysis::token_routes::TokenRoutes;
use moe_data::seeded::rng_for;
use proptest::prelude::*;

/// SplitMix64: test data without a `rand` dependency in the root package.
struct Mix(u64);

impl Mix {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A value in `lo..hi`.
    fn range(&mut self, r: std::ops::Range<u64>) -> u64 {
        r.start + self.next() % (r.end - r.start)
    }
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

// Checks: ANA-3
#[test]
fn ana_3_mi_and_nmi_match_hand_computed_values() {
    // Pure experts: I = H(D) = ln 2.
    let pure = mutual_information_of(&[vec![10, 0], vec![0, 10]]);
    assert!(close(pure.mi, 2f64.ln(), 1e-12) && close(pure.nmi(), 1.0, 1e-12));
    // Independent: I = 0.
    assert!(close(
        mutual_information_of(&[vec![5, 5], vec![5, 5]]).mi,
        0.0,
        1e-12
    ));
    // [[3,1],[1,3]] / 8: I = 3/4 ln(3/2) + 1/4 ln(1/2), H(D) = ln 2.
    let m = mutual_information_of(&[vec![3, 1], vec![1, 3]]);
    let mi = 0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln();
    assert!(close(m.mi, mi, 1e-12), "{} vs {mi}", m.mi);
    assert!(close(m.nmi(), mi / 2f64.ln(), 1e-12));
    // Unequal marginals [[4,0],[2,2]] / 8: p(e) = 1/2, p(d) = (3/4, 1/4).
    let m = mutual_information_of(&[vec![4, 0], vec![2, 2]]);
    let mi = 0.5 * (4.0f64 / 3.0).ln() + 0.25 * (2.0f64 / 3.0).ln() + 0.25 * 2f64.ln();
    let h_d = -(0.75 * 0.75f64.ln() + 0.25 * 0.25f64.ln());
    assert!(close(m.mi, mi, 1e-12) && close(m.h_cols, h_d, 1e-12));
    assert!(close(m.nmi(), mi / h_d, 1e-12));
    assert!(close(entropy([1.0, 1.0, 1.0, 1.0]), 4f64.ln(), 1e-12));
    // One domain: H(D) = 0, NMI reported as 0.
    assert_eq!(mutual_information_of(&[vec![3], vec![4]]).nmi(), 0.0);
}

proptest! {
    // Checks: ANA-3
    #[test]
    fn ana_3_nmi_in_unit_interval_and_invariant_to_relabelling(
        counts in prop::collection::vec(prop::collection::vec(0u64..50, 3), 2..8),
        rotate in 0usize..8,
    ) {
        let nmi = mutual_information_of(&counts).nmi();
        prop_assert!((0.0..=1.0).contains(&nmi));
        let mut relabelled = counts.clone();
        let k = rotate % relabelled.len();
        relabelled.rotate_left(k);
        relabelled.reverse();
        prop_assert!(close(mutual_information_of(&relabelled).nmi(), nmi, 1e-12));
    }

    // Checks: ANA-3
    #[test]
    fn ana_3_nmi_is_one_for_a_bijective_map(sizes in prop::collection::vec(1u64..100, 2..6)) {
        let n = sizes.len();
        let counts: Vec<Vec<u64>> = (0..n)
            .map(|e| (0..n).map(|d| if d == e { sizes[d] } else { 0 }).collect())
            .collect();
        prop_assert!(close(mutual_information_of(&counts).nmi(), 1.0, 1e-9));
    }

    // Checks: ANA-2
    #[test]
    fn ana_2_shares_sum_to_one(counts in prop::collection::vec(prop::collection::vec(0u64..30, 3), 1..6)) {
        for row in row_shares(&counts).iter().chain(row_shares(&transpose(&counts)).iter()) {
            let s: f64 = row.iter().sum();
            prop_assert!(close(s, 1.0, 1e-9) || s == 0.0);
        }
    }

    // Checks: ANA-4
    #[test]
    fn ana_4_p_value_is_a_probability(seed in 0u64..1000) {
        let docs = random_docs(seed, 30, 3, 4);
        let observed = docs.nmi_with(&docs.domain, &mut Vec::new());
        let t = permutation_test(&docs, observed, 19, &mut rng_for(seed, "p"));
        prop_assert!(t.p_value > 0.0 && t.p_value <= 1.0);
    }
}

// Checks: ANA-3
#[test]
fn ana_3_independent_routing_tends_to_zero() {
    let mut rng = Mix::new(1);
    let counts = (0..4)
        .map(|_| (0..3).map(|_| 0).collect::<Vec<u64>>())
        .collect::<Vec<_>>();
    let mut counts = counts;
    for _ in 0..200_000 {
        counts[rng.range(0..4) as usize][rng.range(0..3) as usize] += 1;
    }
    assert!(mutual_information_of(&counts).nmi() < 1e-3);
}

/// Documents of 5..15 tokens with random domains and experts independent of them.
fn random_docs(seed: u64, n_docs: usize, n_domains: usize, n_experts: usize) -> DocRouting {
    let mut rng = Mix::new(seed);
    let mut counts = vec![0u32; n_docs * n_experts];
    for d in 0..n_docs {
        for _ in 0..rng.range(5..15) {
            counts[d * n_experts + rng.range(0..n_experts as u64) as usize] += 1;
        }
    }
    DocRouting {
        n_experts,
        n_domains,
        counts,
        domain: (0..n_docs).map(|i| (i % n_domains) as u16).collect(),
    }
}

// Checks: ANA-4
#[test]
fn ana_4_perfect_specialisation_gets_the_smallest_p_value() {
    let n_docs = 40;
    let mut counts = vec![0u32; n_docs * 4];
    let domain: Vec<u16> = (0..n_docs).map(|i| (i % 2) as u16).collect();
    for (i, &d) in domain.iter().enumerate() {
        counts[i * 4 + d as usize] = 10; // domain d → expert d only
    }
    let docs = DocRouting {
        n_experts: 4,
        n_domains: 2,
        counts,
        domain,
    };
    let observed = docs.nmi_with(&docs.domain, &mut Vec::new());
    assert!(close(observed, 1.0, 1e-12));
    let t = permutation_test(&docs, observed, 199, &mut rng_for(0, "perm"));
    assert!(close(t.p_value, 1.0 / 200.0, 1e-12), "p = {}", t.p_value);
    assert!(t.null.max < 0.5);
}

// Checks: ANA-4
#[test]
fn ana_4_p_values_are_uniform_ish_under_the_null() {
    let p: Vec<f64> = (0..300)
        .map(|seed| {
            let docs = random_docs(seed, 24, 3, 4);
            let observed = docs.nmi_with(&docs.domain, &mut Vec::new());
            permutation_test(&docs, observed, 99, &mut rng_for(seed, "perm")).p_value
        })
        .collect();
    let below = |x: f64| p.iter().filter(|&&v| v <= x).count() as f64 / p.len() as f64;
    let mean = p.iter().sum::<f64>() / p.len() as f64;
    assert!(close(mean, 0.5, 0.06), "mean p {mean}");
    for x in [0.1, 0.25, 0.5, 0.75] {
        assert!(close(below(x), x, 0.07), "P(p ≤ {x}) = {}", below(x));
    }
}

// Checks: ANA-5
#[test]
fn ana_5_random_router_nmi_is_the_small_sample_bias() {
    // E[I] ≈ (E − 1)(D − 1) / (2T) nats for independent routing (Miller–Madow).
    let t = 3000;
    let domain: Vec<u16> = (0..t).map(|i| (i % 3) as u16).collect();
    let null = random_router(
        &domain,
        3,
        &[0.4, 0.3, 0.2, 0.1],
        200,
        &mut rng_for(0, "rr"),
    );
    let expected = (3.0 * 2.0) / (2.0 * t as f64) / 3f64.ln();
    assert!(
        null.mean > 0.6 * expected && null.mean < 1.4 * expected,
        "mean {} vs {expected}",
        null.mean
    );
    assert!(null.p95 >= null.mean && null.max >= null.p95);
}

// Checks: ANA-7
#[test]
fn ana_7_routing_by_token_id_survives_entirely() {
    // Domains use overlapping parts of the vocabulary; the expert is a function of the id.
    let mut rng = Mix::new(2);
    let (mut id, mut domain) = (Vec::new(), Vec::new());
    for i in 0..3000 {
        let d = (i % 3) as u16;
        id.push(d as u32 * 10 + rng.range(0..15) as u32);
        domain.push(d);
    }
    let expert: Vec<u16> = id.iter().map(|&v| ((v / 10) % 4) as u16).collect();
    let n_e = 4;
    let observed = mutual_information_of(&counts(&expert, &domain, n_e, 3)).nmi();
    assert!(observed > 0.05);
    let t = Tokens {
        id: &id,
        expert: &expert,
        domain: &domain,
        n_experts: n_e,
        n_domains: 3,
    };
    let c = token_identity_control(t, observed, 3, &mut rng_for(0, "control"));
    assert!(close(c.surviving_fraction.unwrap(), 1.0, 1e-12), "{c:?}");
}

// Checks: ANA-7
#[test]
fn ana_7_routing_by_domain_over_shared_vocabulary_does_not_survive() {
    let mut rng = Mix::new(3);
    let (mut id, mut domain) = (Vec::new(), Vec::new());
    for i in 0..6000 {
        domain.push((i % 3) as u16);
        id.push(rng.range(0..50) as u32);
    }
    let expert: Vec<u16> = domain.clone(); // expert = domain: NMI 1
    let observed = mutual_information_of(&counts(&expert, &domain, 3, 3)).nmi();
    assert!(close(observed, 1.0, 1e-12));
    let t = Tokens {
        id: &id,
        expert: &expert,
        domain: &domain,
        n_experts: 3,
        n_domains: 3,
    };
    let c = token_identity_control(t, observed, 3, &mut rng_for(0, "control"));
    assert!(c.surviving_fraction.unwrap() < 0.02, "{c:?}");
}

fn counts(expert: &[u16], domain: &[u16], n_e: usize, n_d: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; n_d]; n_e];
    for (&e, &d) in expert.iter().zip(domain) {
        m[e as usize][d as usize] += 1;
    }
    m
}

// Checks: ANA-8
#[test]
fn ana_8_load_cv_floor_dead_and_drops() {
    let even = load_stats(&[25, 25, 25, 25]);
    assert_eq!(even.cv, 0.0);
    assert!(close(even.cv_floor, (3.0f64 / 100.0).sqrt(), 1e-12));
    assert_eq!(even.would_drop_rate, 0.0);
    // mean 25, deviations 45, −15, −15, −15: std = √675; capacity ⌊1.25·25⌋ = 31.
    let skew = load_stats(&[70, 10, 10, 10]);
    assert!(close(skew.cv, 675f64.sqrt() / 25.0, 1e-12));
    assert!(close(skew.would_drop_rate, 39.0 / 100.0, 1e-12));
    assert!(skew.dead_experts.is_empty());
    // Exactly 1% (2 of 200) is not dead; below it is.
    assert_eq!(load_stats(&[197, 2, 1, 0]).dead_experts, vec![2, 3]);
    assert_eq!(load_stats(&[98, 1, 1]).dead_experts, Vec::<usize>::new());
}

// Checks: ANA-8
#[test]
fn ana_8_uniform_routing_sits_at_the_cv_floor() {
    let mut rng = Mix::new(4);
    let (n, t) = (8, 4000);
    let cvs: Vec<f64> = (0..300)
        .map(|_| {
            let mut c = vec![0u64; n];
            (0..t).for_each(|_| c[rng.range(0..n as u64) as usize] += 1);
            load_stats(&c).cv
        })
        .collect();
    let rms = (cvs.iter().map(|c| c * c).sum::<f64>() / cvs.len() as f64).sqrt();
    let floor = ((n - 1) as f64 / t as f64).sqrt();
    assert!(
        close(rms, floor, 0.1 * floor),
        "rms CV {rms} vs floor {floor}"
    );
}

// Checks: ANA-2, ANA-9, ANA-12
#[test]
fn ana_9_ana_12_domain_entropy_and_consistency_by_hand() {
    let mut t = TokenRoutes::new(vec!["a".into(), "b".into()], &[(5, 2)]);
    t.push_block(0, &[1, 2, 3, 4]);
    t.push_routes(
        0,
        &[0, 0, 1, 1],
        &[0.9, 0.8, 0.7, 0.6],
        &[0.1, 0.2, 0.3, 0.4],
    );
    t.push_block(1, &[5, 6]);
    t.push_routes(0, &[1, 1], &[0.5, 0.5], &[0.5, 0.5]);
    assert_eq!(t.counts(0), vec![vec![2, 0], vec![2, 2]]);
    let d = domain_routing(&t, &t.layers[0]);
    assert!(close(d[0].mean_router_entropy, 0.25, 1e-6));
    assert!(close(d[0].usage_entropy, 2f64.ln(), 1e-12));
    assert!(close(d[1].usage_entropy, 0.0, 1e-12));
    assert!(close(d[0].mean_gate_prob, 0.75, 1e-6));
    let c = consistency(&t.documents(), &t.domain, &t.layers[0].expert, 2, 2);
    // Pairs: (0,0) (0,1) (1,1) in a, (1,1) in b → 3 of 4 agree.
    assert_eq!(c.pairs, 4);
    assert!(close(c.same_expert_rate, 0.75, 1e-12));
    assert!(close(
        c.chance_global,
        (2.0f64 / 6.0).powi(2) + (4.0f64 / 6.0).powi(2),
        1e-12
    ));
    assert!(close(
        c.chance_within_domain,
        (3.0 * 0.5 + 1.0 * 1.0) / 4.0,
        1e-12
    ));
}

// Checks: ANA-18
#[test]
fn ana_18_rise_over_step_0_is_significant_only_when_real() {
    // Trained: domain d → expert d; step 0: random routing of the same documents.
    let n_docs = 60;
    let step0 = random_docs(5, n_docs, 2, 4);
    let mut counts = vec![0u32; n_docs * 4];
    for i in 0..n_docs {
        counts[i * 4 + step0.domain[i] as usize] = 10;
    }
    let trained = DocRouting {
        counts,
        ..step0.clone()
    };
    let r =
        moe_analysis::baseline_rise::bootstrap_rise(&trained, &step0, 500, &mut rng_for(1, "rise"));
    let exact = trained.nmi_with(&trained.domain, &mut Vec::new())
        - step0.nmi_with(&step0.domain, &mut Vec::new());
    assert!(close(r.rise, exact, 1e-12));
    assert!(
        r.ci95_low > 0.5 && r.ci95_low <= r.rise && r.rise <= r.ci95_high + 1e-12,
        "{r:?}"
    );
    assert!(close(r.p_value, 1.0 / 501.0, 1e-12));
    // The same routing twice: the rise is exactly 0 in every draw; not significant.
    let same =
        moe_analysis::baseline_rise::bootstrap_rise(&step0, &step0, 200, &mut rng_for(1, "rise"));
    assert_eq!((same.rise, same.ci95_low, same.ci95_high), (0.0, 0.0, 0.0));
    assert!(close(same.p_value, 1.0, 1e-12));
}
