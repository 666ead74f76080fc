//! The experts' MLPs on their groups of the expert-sorted rows (MODEL-20):
//! on the CPU backend one op for all groups ([`cpu::grouped_mlp`]), elsewhere
//! each expert's [`Mlp::forward`] on its group ([`by_groups`]).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::cpu_or_generic;
use crate::mlp::Mlp;
use crate::moe::{DispatchPlan, by_groups};

pub(crate) mod cpu;

/// Expert `e`'s MLP on each non-empty group `e` of the sorted rows.
///
/// # Shapes
/// - `x_sorted`: `[plan.rows(), d_model]` → `[plan.rows(), d_model]`
pub fn grouped_mlp<B: Backend>(
    experts: &[Mlp<B>],
    x_sorted: Tensor<B, 2>,
    plan: &DispatchPlan,
) -> Tensor<B, 2> {
    cpu_or_generic(
        x_sorted,
        |x| cpu::grouped_mlp(experts, x, plan),
        |x| by_groups(x, plan, |e, xe| experts[e].forward(xe)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moe::dispatch_combine_grouped;
    use crate::ops::dispatch::{combine_rows_generic, dispatch_rows_generic};
    use crate::seeds::NormalRng;
    use burn::module::Param;
    use burn::tensor::TensorData;
    use proptest::prelude::*;

    type Ad = crate::CpuAutodiff;

    fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    /// A routing to test: expert ids `[tokens, top_k]` (distinct per token),
    /// gates, capacity and alignment.
    #[derive(Debug, Clone)]
    struct Case {
        ids: Vec<usize>,
        tokens: usize,
        top_k: usize,
        n_experts: usize,
        capacity: Option<usize>,
        alignment: usize,
        d_model: usize,
        d_ff: usize,
        seed: u64,
    }

    /// `case.n_experts` experts with random weights and biases.
    fn biased_experts<B: Backend>(case: &Case, rng: &mut NormalRng) -> Vec<Mlp<B>> {
        let dev = Default::default();
        (0..case.n_experts)
            .map(|_| {
                let mut m = Mlp::init(rng, case.d_model, case.d_ff, 0.5, &dev);
                for (layer, n) in [(&mut m.c_fc, case.d_ff), (&mut m.c_proj, case.d_model)] {
                    let b = Tensor::from_data(TensorData::new(rng.samples(n, 0.5), [n]), &dev);
                    layer.bias = Some(Param::from_tensor(b));
                }
                m
            })
            .collect()
    }

    /// The layer's output and the gradients of x, the gate and every expert
    /// parameter (zeros where an expert got none) under `Σ(w·y)`, through
    /// the CPU kernels or the generic path.
    fn outcome(case: &Case, kernels: bool) -> Vec<Vec<f32>> {
        let dev = Default::default();
        let mut rng = NormalRng::new(case.seed, 11);
        let experts: Vec<Mlp<Ad>> = biased_experts(case, &mut rng);
        let (t, k, d) = (case.tokens, case.top_k, case.d_model);
        let x = Tensor::<Ad, 2>::from_data(TensorData::new(rng.samples(t * d, 1.0), [t, d]), &dev)
            .require_grad();
        let gate =
            Tensor::<Ad, 2>::from_data(TensorData::new(rng.samples(t * k, 1.0), [t, k]), &dev)
                .require_grad();
        let w = Tensor::<Ad, 2>::from_data(TensorData::new(rng.samples(t * d, 1.0), [t, d]), &dev);
        let plan = DispatchPlan::from_ids(
            &case.ids,
            [t, k],
            case.n_experts,
            case.capacity,
            case.alignment,
        );
        let y = if kernels {
            dispatch_combine_grouped(x.clone(), gate.clone(), &plan, |xs| {
                grouped_mlp(&experts, xs, &plan)
            })
        } else {
            let xs = dispatch_rows_generic(x.clone(), &plan);
            let ys = by_groups(xs, &plan, |e, xe| experts[e].forward(xe));
            combine_rows_generic(ys, gate.clone(), &plan)
        };
        let grads = (y.clone() * w).sum().backward();
        let mut out = vec![
            values(y.detach()),
            values(x.grad(&grads).expect("x has a gradient")),
            values(gate.grad(&grads).expect("the gate has a gradient")),
        ];
        for m in &experts {
            for l in [&m.c_fc, &m.c_proj] {
                let (w, b) = (l.weight.val(), l.bias.as_ref().expect("biased").val());
                let (nw, nb) = (w.shape().num_elements(), b.shape().num_elements());
                out.push(w.grad(&grads).map_or_else(|| vec![0.0; nw], values));
                out.push(b.grad(&grads).map_or_else(|| vec![0.0; nb], values));
            }
        }
        out
    }

    /// Every output of `got` within 1e-6 of the largest term of `want`'s.
    fn assert_close(got: &[Vec<f32>], want: &[Vec<f32>]) -> Result<(), TestCaseError> {
        let names = ["y", "dx", "dgate"];
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            prop_assert_eq!(a.len(), b.len());
            let magnitude = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let err = a
                .iter()
                .zip(b)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            let what = names
                .get(i)
                .map_or_else(|| format!("parameter {}", i - 3), |n| n.to_string());
            prop_assert!(
                err <= 1e-6 * magnitude,
                "{what}: error {err} (magnitude {magnitude})"
            );
        }
        Ok(())
    }

    fn case_strategy() -> impl Strategy<Value = Case> {
        (
            1usize..30,
            1usize..9,
            1usize..4,
            1usize..10,
            1usize..20,
            prop_oneof![Just(1usize), Just(3), Just(8)],
            proptest::option::of(1usize..12),
            0u64..1000,
            0usize..3,
        )
            .prop_flat_map(
                |(tokens, n_experts, top_k, d_model, d_ff, alignment, capacity, seed, skew)| {
                    let top_k = top_k.min(n_experts);
                    let ids = proptest::collection::vec(
                        Just(()).prop_perturb(move |_, mut rng| {
                            // skew 0: uniform; 1: first choice always expert
                            // 0 (one expert takes every token); 2: experts
                            // drawn from the first half only (empty experts).
                            let pool = if skew == 2 {
                                n_experts.div_ceil(2).max(top_k)
                            } else {
                                n_experts
                            };
                            let mut experts: Vec<usize> = (0..pool).collect();
                            for i in (1..pool).rev() {
                                experts.swap(i, rng.random_range(0..=i));
                            }
                            if skew == 1 {
                                let at = experts.iter().position(|&e| e == 0).unwrap_or(0);
                                experts.swap(0, at);
                                experts[0] = 0;
                            }
                            experts.truncate(top_k);
                            experts
                        }),
                        tokens,
                    );
                    ids.prop_map(move |ids| Case {
                        ids: ids.into_iter().flatten().collect(),
                        tokens,
                        top_k,
                        n_experts,
                        capacity,
                        alignment,
                        d_model,
                        d_ff,
                        seed,
                    })
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        // MODEL-20: dispatch, the grouped experts and combine as CPU kernels
        // give the generic path's output and every gradient (x, the gates,
        // each expert's weights and biases) within 1e-6 of the largest
        // term, over group sizes with empty experts, one expert taking
        // everything, top-2 and top-3, capacity drops and padding (MOE-16).
        #[test]
        fn model_20_cpu_moe_kernels_equal_the_generic_path(case in case_strategy()) {
            let got = outcome(&case, true);
            let want = outcome(&case, false);
            assert_close(&got, &want)?;
        }

        // MOE-16: padding changes nothing: the padded layer's output and
        // every gradient equal the unpadded layer's, on both paths.
        #[test]
        fn moe_16_padding_rows_contribute_nothing(case in case_strategy()) {
            let unpadded = Case { alignment: 1, ..case.clone() };
            for kernels in [true, false] {
                assert_close(&outcome(&case, kernels), &outcome(&unpadded, kernels))?;
            }
        }
    }

    // MODEL-20: the kernels run where they should: the plain CPU backend
    // (no autodiff) gives the autodiff forward's output bit for bit.
    #[test]
    fn model_20_plain_forward_equals_autodiff_forward() {
        let case = Case {
            ids: (0..24).map(|t| (t * 5) % 4).collect(),
            tokens: 24,
            top_k: 1,
            n_experts: 4,
            capacity: None,
            alignment: 1,
            d_model: 6,
            d_ff: 10,
            seed: 3,
        };
        let ad = outcome(&case, true)[0].clone();
        let dev = Default::default();
        let mut rng = NormalRng::new(case.seed, 11);
        let experts: Vec<Mlp<crate::CpuBackend>> = biased_experts(&case, &mut rng);
        let (t, d) = (case.tokens, case.d_model);
        let x = Tensor::<crate::CpuBackend, 2>::from_data(
            TensorData::new(rng.samples(t * d, 1.0), [t, d]),
            &dev,
        );
        let gate = Tensor::<crate::CpuBackend, 2>::from_data(
            TensorData::new(rng.samples(t, 1.0), [t, 1]),
            &dev,
        );
        let plan = DispatchPlan::from_ids(&case.ids, [t, 1], 4, None, 1);
        let y = dispatch_combine_grouped(x, gate, &plan, |xs| grouped_mlp(&experts, xs, &plan));
        assert_eq!(values(y), ad);
    }
}
