//! The MoE layer end to end: gradients through the gate, upcycling, noise and
//! routing records (MOE-3, MOE-4, MOE-11, MOE-12).

use crate::common;

use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use moe_model::NormalRng;
use moe_model::model::Mlp;
use moe_model::moe::Router;
use moe_model::{
    CpuAutodiff, CpuBackend, ForwardOptions, Gpt2, ModelConfig, MoeConfig, MoeLayer, Precision,
};

fn moe_cfg(n_experts: usize, top_k: usize) -> MoeConfig {
    MoeConfig {
        layers: vec![0, 1],
        n_experts,
        top_k,
        capacity_factor: None,
        group_alignment: None,
    }
}

/// An MoE layer with distinct experts (noisy upcycle) and a strong router.
fn layer<B: Backend>(n_experts: usize, top_k: usize) -> MoeLayer<B> {
    let device = Default::default();
    let mut rng = NormalRng::new(3, 0);
    let dense = Mlp::<B>::init(&mut rng, 6, 12, 0.3, &device);
    let mut moe = MoeLayer::upcycle(&dense, &moe_cfg(n_experts, top_k), 0, 0.2, 9);
    moe.router = Router::init(&mut rng, 6, n_experts, 1.0, &device);
    moe
}

fn input<B: Backend>(tokens: usize, d: usize, seed: u64) -> Tensor<B, 2> {
    let v = NormalRng::new(seed, 0).samples(tokens * d, 1.0);
    Tensor::from_data(TensorData::new(v, [tokens, d]), &Default::default())
}

fn router_grad(moe: &MoeLayer<CpuAutodiff>, loss: Tensor<CpuAutodiff, 1>) -> Vec<f32> {
    let grads = loss.backward();
    let g = moe
        .router
        .linear
        .weight
        .val()
        .grad(&grads)
        .expect("router weight has a gradient");
    common::values(&g)
}

// MOE-4
#[test]
fn moe_4_router_gets_the_gradient_of_p_times_expert_output_under_top1() {
    let moe = layer::<CpuAutodiff>(4, 1);
    let x = input::<CpuAutodiff>(10, 6, 1);
    let r = input::<CpuAutodiff>(10, 6, 2); // a fixed random readout
    let (y, record) = moe.forward(x.clone(), 0.0, Precision::F32);
    let grad = router_grad(&moe, (y * r.clone()).sum());
    assert!(
        grad.iter().any(|g| g.abs() > 1e-4),
        "the router gradient is zero"
    );

    // Reference: the same routing, but the output explicitly scaled by p_e,
    // computed densely (every expert on every token, masked).
    let logits = moe.router.logits(x.clone());
    let p = softmax(logits, 1); // [tokens, n_experts]
    let top1: Vec<i64> = record.expert_idx.to_data().iter::<i64>().collect();
    let mut y_ref = Tensor::<CpuAutodiff, 2>::zeros([10, 6], &Default::default());
    for (e, expert) in moe.experts.iter().enumerate() {
        let mask: Vec<f32> = top1
            .iter()
            .map(|&i| if i as usize == e { 1.0 } else { 0.0 })
            .collect();
        let mask = Tensor::<CpuAutodiff, 2>::from_data(
            TensorData::new(mask, [10, 1]),
            &Default::default(),
        );
        let pe = p.clone().narrow(1, e, 1); // [tokens, 1]
        y_ref = y_ref + expert.forward(x.clone()) * pe * mask;
    }
    let grad_ref = router_grad(&moe, (y_ref * r).sum());
    let err = common::max_abs_err(&grad, &grad_ref);
    assert!(err < 1e-5, "ST gradient differs from d(p·E(x)): {err}");
}

// MOE-4
#[test]
fn moe_4_top1_forward_is_exactly_the_chosen_expert() {
    let moe = layer::<CpuBackend>(3, 1);
    let x = input::<CpuBackend>(7, 6, 4);
    let (y, record) = moe.forward(x.clone(), 0.0, Precision::F32);
    let idx: Vec<i64> = record.expert_idx.to_data().iter::<i64>().collect();
    for (t, &e) in idx.iter().enumerate() {
        let row = moe.experts[e as usize].forward(x.clone().narrow(0, t, 1));
        let err = common::max_abs_err(
            &common::values(&y.clone().narrow(0, t, 1)),
            &common::values(&row),
        );
        assert!(err < 1e-6, "token {t}: {err}");
    }
}

// MOE-5
#[test]
fn moe_5_top2_router_gradient_is_nonzero_too() {
    let moe = layer::<CpuAutodiff>(4, 2);
    let x = input::<CpuAutodiff>(10, 6, 5);
    let (y, _) = moe.forward(x, 0.0, Precision::F32);
    let grad = router_grad(&moe, (y.clone() * y).sum());
    assert!(grad.iter().any(|g| g.abs() > 1e-5));
}

// MOE-12
#[test]
fn moe_12_upcycled_model_with_zero_noise_equals_dense_logits() {
    let device = Default::default();
    let config = ModelConfig::preset("micro").unwrap();
    let dense = Gpt2::<CpuBackend>::init(&config, 21, &device);
    let ids: Vec<i64> = (0..24).map(|i| (i * 7 % 96) as i64).collect();
    let tokens = common::tokens::<CpuBackend>(&ids, [2, 12], &device);
    let want = common::values(
        &dense
            .forward(tokens.clone(), &ForwardOptions::default())
            .logits,
    );
    for top_k in [1, 2] {
        let moe = dense.clone().upcycle(&moe_cfg(4, top_k), 0.0, 8);
        let out = moe.forward(tokens.clone(), &ForwardOptions::default());
        assert_eq!(out.routing.len(), 2);
        let err = common::max_abs_err(&common::values(&out.logits), &want);
        // top-1: gate exactly 1; top-2: weights summing to 1 over identical experts.
        let tol = if top_k == 1 { 1e-6 } else { 1e-5 };
        assert!(err <= tol, "top-{top_k}: {err}");
    }
    // With noise the experts differ, deterministically per seed.
    let a = dense.clone().upcycle(&moe_cfg(4, 1), 1e-2, 8);
    let b = dense.clone().upcycle(&moe_cfg(4, 1), 1e-2, 8);
    let la = common::values(&a.forward(tokens.clone(), &ForwardOptions::default()).logits);
    let lb = common::values(&b.forward(tokens, &ForwardOptions::default()).logits);
    assert_eq!(la, lb);
    assert!(common::max_abs_err(&la, &want) > 1e-6);
}

// MOE-3
#[test]
fn moe_3_router_noise_changes_routing_only_when_asked() {
    let moe = layer::<CpuBackend>(4, 1);
    let x = input::<CpuBackend>(64, 6, 6);
    let clean = moe.forward(x.clone(), 0.0, Precision::F32).1;
    let again = moe.forward(x.clone(), 0.0, Precision::F32).1;
    assert_eq!(clean.expert_idx.to_data(), again.expert_idx.to_data());
    CpuBackend::seed(&Default::default(), 1);
    let noisy = moe.forward(x, 5.0, Precision::F32).1;
    assert_ne!(clean.expert_idx.to_data(), noisy.expert_idx.to_data());
    // Losses and logs use the clean probabilities (MOE-3): P is unchanged.
    assert_eq!(clean.p_mean.to_data(), noisy.p_mean.to_data());
}

// MOE-11
#[test]
fn moe_11_routing_records_are_complete_and_consistent() {
    let moe = layer::<CpuBackend>(4, 2);
    let (_, r) = moe.forward(input::<CpuBackend>(9, 6, 7), 0.0, Precision::F32);
    let host = r.to_host();
    assert_eq!((host.layer, r.n_tokens, host.expert_idx.len()), (0, 9, 9));
    assert!(
        host.expert_idx
            .iter()
            .all(|c| c.len() == 2 && c[0] != c[1] && c.iter().all(|&e| e < 4))
    );
    assert!(host.gate_prob.iter().all(|g| g[0] >= g[1] && g[1] > 0.0));
    assert_eq!(host.tokens_per_expert.iter().sum::<usize>(), 18);
    assert_eq!(host.dropped, 0);
    assert!((host.f.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    assert!((host.p_mean.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    assert!(
        host.entropy
            .iter()
            .all(|&h| h >= 0.0 && h <= 4f32.ln() + 1e-6)
    );
    let lb: f32 = 4.0
        * host
            .f
            .iter()
            .zip(&host.p_mean)
            .map(|(f, p)| f * p)
            .sum::<f32>();
    assert!((host.lb_loss - lb).abs() < 1e-5, "{} vs {lb}", host.lb_loss);
    assert!(host.z_loss > 0.0);
    // Capacity: counted, never silently lost.
    let mut capped = layer::<CpuBackend>(4, 2);
    capped.capacity_factor = Some(0.25);
    let (_, r) = capped.forward(input::<CpuBackend>(9, 6, 7), 0.0, Precision::F32);
    let kept_max = moe_model::moe::capacity(9, 2, 4, 0.25);
    let want: usize = r
        .tokens_per_expert
        .iter()
        .map(|&c| c.saturating_sub(kept_max))
        .sum();
    assert_eq!(r.dropped, want);
    assert!(r.dropped > 0);
}

// MOE-1
#[test]
fn moe_1_forward_returns_one_record_per_moe_block_and_averaged_losses() {
    let device = Default::default();
    let mut config = ModelConfig::preset("micro").unwrap();
    config.moe = Some(MoeConfig {
        layers: vec![1],
        ..moe_cfg(3, 1)
    });
    let model = Gpt2::<CpuBackend>::init(&config, 2, &device);
    let tokens = common::tokens::<CpuBackend>(&[1, 2, 3, 4, 5, 6], [2, 3], &device);
    let out = model.forward(tokens, &ForwardOptions::default());
    assert_eq!(out.routing.len(), 1);
    assert_eq!(out.routing[0].layer, 1);
    let aux = out.aux.expect("MoE model has aux losses");
    assert_eq!(aux.lb.to_data(), out.routing[0].lb_loss.to_data());
    assert_eq!(aux.z.to_data(), out.routing[0].z_loss.to_data());
}

// MOE-2
#[test]
fn moe_2_router_logits_are_f32_x_times_w() {
    let moe = layer::<CpuBackend>(5, 1);
    let x = input::<CpuBackend>(4, 6, 8);
    let logits = moe.router.logits(x.clone());
    assert_eq!(logits.dtype(), burn::tensor::DType::F32);
    assert!(moe.router.linear.bias.is_none());
    let (xv, w) = (
        common::values(&x),
        common::values(&moe.router.linear.weight.val()),
    );
    let got = common::values(&logits);
    for t in 0..4 {
        for e in 0..5 {
            let want: f64 = (0..6)
                .map(|d| xv[t * 6 + d] as f64 * w[d * 5 + e] as f64)
                .sum();
            assert!((got[t * 5 + e] as f64 - want).abs() < 1e-5);
        }
    }
}
