//! The auxiliary-loss-free balancing bias (MOE-15): it moves the choice of
//! experts and nothing else, its update rule, and its round trip through
//! a checkpoint.

use burn::tensor::activation::softmax;
use burn::tensor::{Tensor, TensorData};
use moe_model::moe::{route_logits, route_logits_biased};
use moe_model::{CpuAutodiff, CpuBackend, ForwardOptions, Gpt2, ModelConfig, MoeConfig};

type B = CpuBackend;

fn tensor2(values: &[f32], shape: [usize; 2]) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), &Default::default())
}

fn ints(t: Tensor<B, 2, burn::tensor::Int>) -> Vec<i64> {
    t.into_data().iter::<i64>().collect()
}

// Checks: MOE-15
#[test]
fn moe_15_bias_moves_the_choice_not_the_probabilities() {
    // Two tokens, three experts: token 0 prefers expert 0, token 1 expert 2.
    let logits = tensor2(&[2.0, 1.0, 0.0, 0.0, 0.5, 1.0], [2, 3]);
    let plain = route_logits(logits.clone(), None, 1);
    assert_eq!(ints(plain.expert_idx.clone()), [0, 2]);
    // A bias of +1.5 on expert 1 wins token 0 (1 + 1.5 > 2) and token 1 (0.5 + 1.5 > 1).
    let bias = Tensor::<B, 1>::from_floats([0.0, 1.5, 0.0], &Default::default());
    let biased = route_logits_biased(logits.clone(), None, Some(bias.clone()), 1);
    assert_eq!(ints(biased.expert_idx.clone()), [1, 1]);
    // Probabilities are the unbiased softmax; the gate probability is the
    // chosen expert's unbiased probability; the top-1 gate is exactly 1.
    let p: Vec<f32> = softmax(logits.clone(), 1)
        .into_data()
        .iter::<f32>()
        .collect();
    assert_eq!(
        biased
            .probs
            .clone()
            .into_data()
            .iter::<f32>()
            .collect::<Vec<_>>(),
        p
    );
    let gate_prob: Vec<f32> = biased.gate_prob.into_data().iter::<f32>().collect();
    assert_eq!(gate_prob, [p[1], p[4]]);
    assert!(biased.gate.into_data().iter::<f32>().all(|g| g == 1.0));
    // With noise, the choice is by logits + noise + bias and the gate
    // probability that of logits + noise.
    let noise = tensor2(&[0.0, 0.0, 3.0, 0.0, 0.0, 0.0], [2, 3]);
    let noisy = route_logits_biased(logits.clone(), Some(noise.clone()), Some(bias), 1);
    assert_eq!(ints(noisy.expert_idx), [2, 1]); // token 0: 0 + 3 beats 1 + 1.5
    let pn: Vec<f32> = softmax(logits + noise, 1)
        .into_data()
        .iter::<f32>()
        .collect();
    let gate_prob: Vec<f32> = noisy.gate_prob.into_data().iter::<f32>().collect();
    assert_eq!(gate_prob, [pn[2], pn[4]]);
    // Top-2 renormalises the unbiased probabilities of the biased choice.
    let bias = Tensor::<B, 1>::from_floats([0.0, 0.0, 5.0], &Default::default());
    let two = route_logits_biased(tensor2(&[2.0, 1.0, 0.0], [1, 3]), None, Some(bias), 2);
    assert_eq!(ints(two.expert_idx), [2, 0]);
    let q: Vec<f32> = softmax(tensor2(&[2.0, 1.0, 0.0], [1, 3]), 1)
        .into_data()
        .iter::<f32>()
        .collect();
    let gate: Vec<f32> = two.gate.into_data().iter::<f32>().collect();
    assert!((gate[0] - q[2] / (q[2] + q[0])).abs() < 1e-6);
    assert!((gate[1] - q[0] / (q[2] + q[0])).abs() < 1e-6);
}

fn moe_model_with_bias() -> (ModelConfig, Gpt2<B>) {
    let mut config = ModelConfig::preset("micro").unwrap();
    config.moe = Some(MoeConfig {
        layers: vec![1],
        n_experts: 4,
        top_k: 1,
        capacity_factor: None,
        group_alignment: None,
    });
    let model = Gpt2::<B>::init(&config, 5, &Default::default()).with_expert_bias();
    (config, model)
}

// Checks: MOE-15
#[test]
fn moe_15_update_steps_toward_the_mean_load() {
    let (_, model) = moe_model_with_bias();
    assert_eq!(model.expert_biases(), vec![(1, vec![0.0; 4])]);
    // Loads 10, 2, 4, 4: mean 5; expert 0 over, the rest under.
    let model = model.update_expert_bias(&[vec![10, 2, 4, 4]], 1e-3);
    assert_eq!(
        model.expert_biases(),
        vec![(1, vec![-1e-3, 1e-3, 1e-3, 1e-3])]
    );
    // An expert exactly at the mean keeps its bias; f32 sums on the host.
    let model = model.update_expert_bias(&[vec![5, 5, 6, 4]], 1e-3);
    let want = [-1e-3f32, 1e-3, 1e-3 - 1e-3, 1e-3 + 1e-3];
    assert_eq!(model.expert_biases(), vec![(1, want.to_vec())]);
    // A model without a bias is left as it is.
    let (config, _) = moe_model_with_bias();
    let plain = Gpt2::<B>::init(&config, 5, &Default::default());
    assert!(
        plain
            .update_expert_bias(&[vec![1, 0, 0, 0]], 1.0)
            .expert_biases()
            .is_empty()
    );
}

// Checks: MOE-15, MOE-13
#[test]
fn moe_15_bias_round_trips_and_routes_after_loading() {
    let (config, model) = moe_model_with_bias();
    let model = model.update_expert_bias(&[vec![0, 9, 0, 0]], 0.75);
    let tmp = tempfile::tempdir().unwrap();
    moe_model::save_model_dir(&model, &config, tmp.path()).unwrap();
    let (_, loaded) = moe_model::load_model_dir::<B>(tmp.path(), &Default::default()).unwrap();
    assert_eq!(loaded.expert_biases(), model.expert_biases());
    // The loaded model routes as the saved one: the bias is in effect.
    let tokens = Tensor::<B, 2, burn::tensor::Int>::from_data(
        TensorData::new(
            (0..16).map(|i| (i * 7 % 50) as i64).collect::<Vec<_>>(),
            [2, 8],
        ),
        &Default::default(),
    );
    let options = ForwardOptions::default();
    let route = |m: &Gpt2<B>| -> Vec<i64> {
        m.route(tokens.clone(), &options)[0]
            .expert_idx
            .to_data()
            .iter::<i64>()
            .collect()
    };
    assert_eq!(route(&loaded), route(&model));
    // A large bias on one expert sends it every token; without it, not.
    let (_, fresh) = moe_model_with_bias();
    let all_to_2 = fresh.update_expert_bias(&[vec![1, 1, 0, 1]], 100.0);
    assert!(route(&all_to_2).iter().all(|&e| e == 2));
    let (_, plain) = moe_model_with_bias();
    assert!(route(&plain).iter().any(|&e| e != 2));
    // A checkpoint without the bias loads as a router without one.
    let plain_model = Gpt2::<B>::init(&config, 5, &Default::default());
    let dir = tmp.path().join("plain");
    moe_model::save_model_dir(&plain_model, &config, &dir).unwrap();
    let (_, loaded) = moe_model::load_model_dir::<B>(&dir, &Default::default()).unwrap();
    assert!(loaded.expert_biases().is_empty());
}

// Checks: MOE-15
#[test]
fn moe_15_the_bias_gets_no_gradient_and_the_router_still_does() {
    let (config, _) = moe_model_with_bias();
    let model = Gpt2::<CpuAutodiff>::init(&config, 5, &Default::default())
        .with_expert_bias()
        .update_expert_bias(&[vec![3, 0, 0, 0]], 0.5);
    let tokens = Tensor::<CpuAutodiff, 2, burn::tensor::Int>::from_data(
        TensorData::new(
            (0..16).map(|i| (i * 5 % 50) as i64).collect::<Vec<_>>(),
            [2, 8],
        ),
        &Default::default(),
    );
    let out = model.forward(tokens, &ForwardOptions::default());
    let loss = out.logits.powi_scalar(2).mean();
    let grads = loss.backward();
    let moe = match &model.h[1].mlp {
        moe_model::model::FeedForward::Moe(m) => m,
        _ => unreachable!(),
    };
    let router_grad = moe
        .router
        .linear
        .weight
        .val()
        .grad(&grads)
        .expect("router gradient");
    assert!(router_grad.into_data().iter::<f32>().any(|g| g != 0.0));
    let bias = moe.router.expert_bias.as_ref().unwrap().val();
    assert!(bias.grad(&grads).is_none(), "the bias must get no gradient");
}
