//! Expert masking (MOE-14): a masked expert is never chosen, its tokens take
//! their next choice, and an empty mask changes nothing.

use crate::common;

use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use moe_model::moe::{Router, RouterNoise};
use moe_model::{CpuBackend, ExpertMask, ForwardOptions, Gpt2, ModelConfig, MoeConfig, Stream};

type B = CpuBackend;

/// A router whose logits for the input rows are `x` itself (identity weight).
fn identity_router(n: usize) -> Router<B> {
    let device = Default::default();
    let mut router = Router::<B>::init(&mut moe_model::NormalRng::new(0, 0), n, n, 0.0, &device);
    let eye: Vec<f32> = (0..n * n)
        .map(|i| if i / n == i % n { 1.0 } else { 0.0 })
        .collect();
    router.linear.weight =
        Param::from_tensor(Tensor::from_data(TensorData::new(eye, [n, n]), &device));
    router
}

fn idx(r: &moe_model::moe::RouterChoice<B>) -> Vec<i64> {
    r.expert_idx.clone().into_data().iter::<i64>().collect()
}

// Checks: MOE-14
#[test]
fn moe_14_a_masked_expert_gives_way_to_the_next_best() {
    let router = identity_router(4);
    // Token 0 prefers 2 then 0; token 1 prefers 2 then 3; token 2 prefers 1.
    let x = [
        0.5, 0.1, 3.0, 0.2, 0.1, 0.2, 3.0, 1.0, 0.3, 2.0, 0.1, 0.0f32,
    ];
    let x = Tensor::<B, 2>::from_data(TensorData::new(x.to_vec(), [3, 4]), &Default::default());
    let route = |k, disabled: &[usize]| {
        router.route_masked(
            x.clone(),
            k,
            RouterNoise::default(),
            Stream::RouterNoise(0),
            disabled,
        )
    };
    assert_eq!(idx(&route(1, &[])), vec![2, 2, 1]);
    let masked = route(1, &[2]);
    assert_eq!(idx(&masked), vec![0, 3, 1]);
    // Probabilities are the softmax over the remaining experts.
    let probs: Vec<f32> = masked.probs.clone().into_data().iter::<f32>().collect();
    for t in 0..3 {
        assert_eq!(probs[t * 4 + 2], 0.0);
        let sum: f32 = probs[t * 4..t * 4 + 4].iter().sum();
        assert!((sum - 1.0).abs() < 1e-6);
    }
    let entropy = moe_model::moe::entropy(masked.logits.clone(), masked.probs.clone());
    assert!(common::values(&entropy).iter().all(|h| h.is_finite()));
    // Top-2 with expert 2 masked: the next two.
    assert_eq!(idx(&route(2, &[2])), vec![0, 3, 3, 1, 1, 0]);
}

// Checks: MOE-14
#[test]
fn moe_14_an_empty_mask_is_no_mask_bit_for_bit() {
    let device = Default::default();
    let mut config = ModelConfig::preset("micro").unwrap();
    config.moe = Some(MoeConfig {
        layers: vec![0, 1],
        n_experts: 4,
        top_k: 1,
        capacity_factor: None,
        group_alignment: None,
    });
    let model = Gpt2::<B>::init(&config, 5, &device);
    let ids: Vec<i64> = (0..24).map(|i| (i * 5 % 96) as i64).collect();
    let tokens = common::tokens::<B>(&ids, [2, 12], &device);
    let plain = model.forward(tokens.clone(), &ForwardOptions::default());
    let empty = ForwardOptions {
        expert_mask: ExpertMask::layer(0, []),
        ..ForwardOptions::default()
    };
    let same = model.forward(tokens.clone(), &empty);
    assert_eq!(plain.logits.to_data(), same.logits.to_data());
    // Masking the expert block 0 uses most moves its tokens elsewhere.
    let counts = &plain.routing[0].tokens_per_expert;
    let top = (0..4).max_by_key(|&e| counts[e]).unwrap();
    let masked = ForwardOptions {
        expert_mask: ExpertMask::layer(0, [top]),
        ..ForwardOptions::default()
    };
    let out = model.forward(tokens, &masked);
    assert_eq!(out.routing[0].tokens_per_expert[top], 0);
    assert_eq!(out.routing[1].tokens_per_expert.iter().sum::<usize>(), 24);
    assert_ne!(plain.logits.to_data(), out.logits.to_data());
}
