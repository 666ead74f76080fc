//! Grouped dispatch against a naive per-token reference (MOE-6, MOE-7), plus
//! property tests over random shapes for dispatch and router (MOE-4, MOE-5).

use crate::common;

use burn::tensor::{Int, Tensor, TensorData};
use moe_model::CpuBackend as B;
use moe_model::moe::route_logits;
use moe_model::moe::{DispatchPlan, capacity, dispatch_combine};
use proptest::prelude::*;

type Dev = burn::tensor::Device<B>;

/// A cheap, expert-specific, row-wise map used as "expert e".
fn toy_expert(e: usize, x: Tensor<B, 2>) -> Tensor<B, 2> {
    x.clone() * (e as f64 + 1.0) + x.tanh() * 0.5 - (e as f64) * 0.25
}

fn toy_expert_ref(e: usize, v: f64) -> f64 {
    v * (e as f64 + 1.0) + v.tanh() * 0.5 - (e as f64) * 0.25
}

/// Which (token, choice) assignments survive capacity, computed independently:
/// per expert, first choices before second choices, then by token.
fn kept_ref(idx: &[Vec<usize>], n_experts: usize, cap: Option<usize>) -> Vec<Vec<bool>> {
    let (t_n, k) = (idx.len(), idx[0].len());
    let mut kept = vec![vec![false; k]; t_n];
    for e in 0..n_experts {
        let mut seen = 0;
        for j in 0..k {
            for t in 0..t_n {
                if idx[t][j] == e {
                    kept[t][j] = cap.is_none_or(|c| seen < c);
                    seen += 1;
                }
            }
        }
    }
    kept
}

/// Naive reference: every token, every choice, one at a time, in f64.
fn naive(
    x: &[Vec<f64>],
    idx: &[Vec<usize>],
    gate: &[Vec<f64>],
    kept: &[Vec<bool>],
) -> Vec<Vec<f64>> {
    x.iter()
        .enumerate()
        .map(|(t, row)| {
            let mut y = vec![0.0; row.len()];
            for j in 0..idx[t].len() {
                if kept[t][j] {
                    for (yd, &v) in y.iter_mut().zip(row) {
                        *yd += gate[t][j] * toy_expert_ref(idx[t][j], v);
                    }
                }
            }
            y
        })
        .collect()
}

#[derive(Debug)]
struct Case {
    x: Vec<Vec<f64>>,
    idx: Vec<Vec<usize>>,
    gate: Vec<Vec<f64>>,
    n_experts: usize,
}

fn run(case: &Case, cap: Option<usize>, alignment: usize, dev: &Dev) -> (Vec<f32>, usize) {
    let (t_n, d, k) = (case.x.len(), case.x[0].len(), case.idx[0].len());
    let flat = |v: &[Vec<f64>]| v.iter().flatten().map(|&a| a as f32).collect::<Vec<_>>();
    let x = Tensor::<B, 2>::from_data(TensorData::new(flat(&case.x), [t_n, d]), dev);
    let gate = Tensor::<B, 2>::from_data(TensorData::new(flat(&case.gate), [t_n, k]), dev);
    let ids: Vec<i64> = case.idx.iter().flatten().map(|&e| e as i64).collect();
    let idx = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [t_n, k]), dev);
    let plan = DispatchPlan::aligned(idx, case.n_experts, cap, alignment);
    let y = dispatch_combine(x, gate, &plan, toy_expert);
    (common::values(&y), plan.dropped())
}

fn check(case: &Case, cap: Option<usize>) {
    // MOE-16: padded groups (alignment 4) give the same output.
    for alignment in [1, 4] {
        check_aligned(case, cap, alignment);
    }
}

fn check_aligned(case: &Case, cap: Option<usize>, alignment: usize) {
    let dev = Dev::default();
    let (got, dropped) = run(case, cap, alignment, &dev);
    let kept = kept_ref(&case.idx, case.n_experts, cap);
    let want: Vec<f32> = naive(&case.x, &case.idx, &case.gate, &kept)
        .into_iter()
        .flatten()
        .map(|v| v as f32)
        .collect();
    let err = common::max_rel_err(&got, &want);
    assert!(err < 1e-5, "max rel err {err}");
    let want_dropped = kept.iter().flatten().filter(|k| !**k).count();
    assert_eq!(dropped, want_dropped);
    // MOE-7: identical run to run, bit for bit.
    assert_eq!(run(case, cap, alignment, &dev).0, got);
}

/// Distinct experts per token (like a top-k), from a seed-free formula.
fn case_strategy() -> impl Strategy<Value = Case> {
    (1usize..40, 1usize..6, 1usize..7, 1usize..4).prop_flat_map(|(t_n, d, n_experts, k)| {
        let k = k.min(n_experts);
        (
            proptest::collection::vec(proptest::collection::vec(-3.0f64..3.0, d), t_n),
            proptest::collection::vec(
                Just(()).prop_perturb(move |_, mut rng| {
                    let mut experts: Vec<usize> = (0..n_experts).collect();
                    for i in (1..n_experts).rev() {
                        experts.swap(i, rng.random_range(0..=i));
                    }
                    experts.truncate(k);
                    experts
                }),
                t_n,
            ),
            proptest::collection::vec(proptest::collection::vec(0.0f64..1.0, k), t_n),
            Just(n_experts),
        )
            .prop_map(|(x, idx, gate, n_experts)| Case {
                x,
                idx,
                gate,
                n_experts,
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    // MOE-7 (dropless) over random shapes, top-1 … top-3.
    #[test]
    fn moe_7_grouped_dispatch_equals_naive_reference(case in case_strategy()) {
        check(&case, None);
    }

    // MOE-6, MOE-7 with a capacity limit.
    #[test]
    fn moe_6_capacity_drops_exactly_the_late_assignments(case in case_strategy(), cf in 0.1f64..2.0) {
        let cap = capacity(case.x.len(), case.idx[0].len(), case.n_experts, cf);
        check(&case, Some(cap));
    }

    // MOE-4, MOE-5: router choice and gates on random logits.
    #[test]
    fn moe_5_router_picks_top_k_and_gates_are_normalized(
        logits in (1usize..20, 1usize..8).prop_flat_map(|(t, e)|
            proptest::collection::vec(proptest::collection::vec(-5.0f32..5.0, e), t)),
        k in 1usize..4,
    ) {
        check_router(&logits, k.min(logits[0].len()));
    }
}

fn check_router(logits: &[Vec<f32>], k: usize) {
    let dev = Dev::default();
    let (t_n, e_n) = (logits.len(), logits[0].len());
    let flat: Vec<f32> = logits.iter().flatten().copied().collect();
    let z = Tensor::<B, 2>::from_data(TensorData::new(flat, [t_n, e_n]), &dev);
    let r = route_logits(z, None, k);
    let idx: Vec<i64> = r.expert_idx.to_data().iter::<i64>().collect();
    let gate = common::values(&r.gate);
    let gate_prob = common::values(&r.gate_prob);
    for (t, row) in logits.iter().enumerate() {
        let max = row.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
        let denom: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        let p: Vec<f64> = row
            .iter()
            .map(|&v| (v as f64 - max).exp() / denom)
            .collect();
        let mut order: Vec<usize> = (0..e_n).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
        let chosen = &idx[t * k..(t + 1) * k];
        for (j, &e) in chosen.iter().enumerate() {
            // ties aside, the j-th choice has the j-th largest probability
            assert!(
                (p[e as usize] - p[order[j]]).abs() < 1e-6,
                "token {t} choice {j}"
            );
            assert!((gate_prob[t * k + j] as f64 - p[e as usize]).abs() < 1e-5);
        }
        let sum: f64 = gate[t * k..(t + 1) * k].iter().map(|&g| g as f64).sum();
        if k == 1 {
            assert_eq!(gate[t], 1.0, "MOE-4: the top-1 gate is exactly 1");
        } else {
            assert!(
                (sum - 1.0).abs() < 1e-5,
                "MOE-5: weights sum to 1, got {sum}"
            );
        }
    }
}

// MOE-7
#[test]
fn moe_7_top1_and_top2_fixed_cases_with_and_without_capacity() {
    let x: Vec<Vec<f64>> = (0..12)
        .map(|t| (0..3).map(|d| ((t * 3 + d) as f64 * 0.37).sin()).collect())
        .collect();
    let top1: Vec<Vec<usize>> = (0..12).map(|t| vec![[0, 2, 2, 1, 2, 0][t % 6]]).collect();
    let top2: Vec<Vec<usize>> = (0..12).map(|t| vec![t % 3, (t + 1) % 3]).collect();
    for (idx, k) in [(top1, 1), (top2, 2)] {
        let gate = (0..12)
            .map(|t| (0..k).map(|j| 0.3 + 0.1 * ((t + j) % 4) as f64).collect())
            .collect();
        let case = Case {
            x: x.clone(),
            idx,
            gate,
            n_experts: 3,
        };
        check(&case, None);
        check(&case, Some(capacity(12, k, 3, 0.5)));
        check(&case, Some(1));
    }
}
