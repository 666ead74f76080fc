//! Load-balancing and z-loss values (MOE-8, MOE-9, MOE-10).

use crate::common;

use burn::tensor::{Tensor, TensorData};
use moe_model::model::Mlp;
use moe_model::moe::route_logits;
use moe_model::moe::{LbAccumulator, entropy, load_balance_loss, logsumexp, z_loss};
use moe_model::{CpuBackend as B, MoeConfig, MoeLayer, NormalRng, Precision};

type Dev = burn::tensor::Device<B>;

fn t1(v: &[f32]) -> Tensor<B, 1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Dev::default())
}

fn t2(v: &[Vec<f32>]) -> Tensor<B, 2> {
    let flat: Vec<f32> = v.iter().flatten().copied().collect();
    Tensor::from_data(
        TensorData::new(flat, [v.len(), v[0].len()]),
        &Dev::default(),
    )
}

fn scalar(t: Tensor<B, 1>) -> f64 {
    common::values(&t)[0] as f64
}

/// Random logits from a seeded stream, scaled.
fn random_logits(tokens: usize, n: usize, scale: f64, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = NormalRng::new(seed, 0);
    (0..tokens).map(|_| rng.samples(n, scale)).collect()
}

/// Independent f64 reference of both losses from raw logits.
fn reference(logits: &[Vec<f32>]) -> (f64, f64) {
    let n = logits[0].len();
    let (mut f, mut p, mut z) = (vec![0.0; n], vec![0.0; n], 0.0);
    for row in logits {
        let row: Vec<f64> = row.iter().map(|&v| v as f64).collect();
        let max = row.iter().copied().fold(f64::MIN, f64::max);
        let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
        let lse = max + sum.ln();
        z += lse * lse;
        let top = (0..n).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
        f[top] += 1.0;
        for (pi, v) in p.iter_mut().zip(&row) {
            *pi += (v - lse).exp();
        }
    }
    let t = logits.len() as f64;
    let lb = n as f64
        * f.iter()
            .zip(&p)
            .map(|(a, b)| (a / t) * (b / t))
            .sum::<f64>();
    (lb, z / t)
}

/// f and P of a routing of `logits` (as the MoE layer computes them).
fn f_and_p(logits: &[Vec<f32>]) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let (t, n) = (logits.len(), logits[0].len());
    let r = route_logits(t2(logits), None, 1);
    let top1 = r.expert_idx.reshape([t]);
    let f = moe_model::moe::expert_counts(top1, n) / t as f64;
    (f, r.probs.mean_dim(0).reshape([n]))
}

// MOE-8
#[test]
fn moe_8_lb_loss_is_one_when_uniform_and_n_when_collapsed() {
    for n in [2usize, 4, 8] {
        let uniform = vec![1.0 / n as f32; n];
        let lb = scalar(load_balance_loss(t1(&uniform), t1(&uniform)));
        assert!((lb - 1.0).abs() < 1e-6, "uniform: {lb}");
        let mut one = vec![0.0f32; n];
        one[n - 1] = 1.0;
        let lb = scalar(load_balance_loss(t1(&one), t1(&one)));
        assert!((lb - n as f64).abs() < 1e-6, "collapsed: {lb}");
    }
    // Through the router: every token strongly prefers expert 2 → p ≈ 1, lb ≈ N.
    let logits: Vec<Vec<f32>> = (0..16).map(|_| vec![0.0, 0.0, 60.0, 0.0]).collect();
    let (f, p) = f_and_p(&logits);
    assert!((scalar(load_balance_loss(f, p)) - 4.0).abs() < 1e-5);
    // Each expert preferred by exactly a quarter of the tokens, symmetrically → 1.
    let logits: Vec<Vec<f32>> = (0..16)
        .map(|t| (0..4).map(|e| if e == t % 4 { 1.0 } else { 0.0 }).collect())
        .collect();
    let (f, p) = f_and_p(&logits);
    assert!((scalar(load_balance_loss(f, p)) - 1.0).abs() < 1e-5);
}

// MOE-9
#[test]
fn moe_9_z_loss_is_ln_n_squared_at_zero_logits_and_stable_when_large() {
    for n in [2usize, 8, 64] {
        let z = scalar(z_loss(t2(&vec![vec![0.0; n]; 5])));
        assert!((z - (n as f64).ln().powi(2)).abs() < 1e-5, "n={n}: {z}");
    }
    // logsumexp of [1e4, 1e4] is 1e4 + ln 2: finite, no overflow.
    let lse = common::values(&logsumexp(t2(&[vec![1e4, 1e4]])))[0] as f64;
    assert!((lse - (1e4 + 2f64.ln())).abs() < 1e-2, "{lse}");
}

// MOE-8, MOE-9
#[test]
fn moe_8_moe_9_losses_match_independent_reference_on_random_logits() {
    for (seed, (t, n, scale)) in [(32usize, 4usize, 1.0), (50, 8, 3.0), (7, 3, 10.0)]
        .into_iter()
        .enumerate()
    {
        let logits = random_logits(t, n, scale, seed as u64);
        let (lb_ref, z_ref) = reference(&logits);
        let (f, p) = f_and_p(&logits);
        let lb = scalar(load_balance_loss(f, p));
        let z = scalar(z_loss(t2(&logits)));
        assert!(
            (lb - lb_ref).abs() < 1e-5 * lb_ref.max(1.0),
            "lb {lb} vs {lb_ref}"
        );
        assert!(
            (z - z_ref).abs() < 1e-5 * z_ref.max(1.0),
            "z {z} vs {z_ref}"
        );
    }
}

// MOE-11
#[test]
fn moe_11_entropy_matches_reference() {
    let logits = random_logits(9, 5, 2.0, 3);
    let r = route_logits(t2(&logits), None, 1);
    let h = common::values(&entropy(r.logits, r.probs));
    for (row, &got) in logits.iter().zip(&h) {
        let m = row.iter().fold(f64::MIN, |a, &b| a.max(b as f64));
        let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        let want: f64 = row
            .iter()
            .map(|&v| {
                let p = (v as f64 - m).exp() / s;
                -p * p.ln()
            })
            .sum();
        assert!((got as f64 - want).abs() < 1e-5, "{got} vs {want}");
    }
}

fn layer(n_experts: usize) -> MoeLayer<B> {
    let cfg = MoeConfig {
        layers: vec![0],
        n_experts,
        top_k: 1,
        capacity_factor: None,
        group_alignment: None,
    };
    let mut rng = NormalRng::new(11, 0);
    let dense = Mlp::<B>::init(&mut rng, 8, 16, 0.02, &Dev::default());
    // a strong router so that routing is far from uniform
    let mut moe = MoeLayer::upcycle(&dense, &cfg, 0, 0.0, 5);
    moe.router = moe_model::moe::Router::init(&mut rng, 8, n_experts, 2.0, &Dev::default());
    moe
}

// MOE-10
#[test]
fn moe_10_step_scope_accumulates_f_and_p_over_micro_batches() {
    let moe = layer(4);
    let xs: Vec<Tensor<B, 2>> = (0..3)
        .map(|s| t2(&random_logits(6 + 2 * s, 8, 1.0, 40 + s as u64)))
        .collect();
    let records: Vec<_> = xs
        .iter()
        .map(|x| moe.forward(x.clone(), 0.0, Precision::F32).1)
        .collect();
    let mut acc = LbAccumulator::new();
    for r in &records {
        acc.push(std::slice::from_ref(r));
    }
    // The step's value equals the loss of one forward over all tokens at once.
    let all = Tensor::cat(xs, 0);
    let (_, whole) = moe.forward(all, 0.0, Precision::F32);
    let (step, once) = (acc.value().unwrap(), scalar(whole.lb_loss.clone()));
    assert!((step - once).abs() < 1e-5, "{step} vs {once}");
    let f: Vec<f32> = acc.f(0).unwrap().iter().map(|&v| v as f32).collect();
    assert!(common::max_abs_err(&f, &common::values(&whole.f)) < 1e-6);
    // micro_loss uses the accumulated f with this micro-batch's P.
    let micro = scalar(acc.micro_loss(std::slice::from_ref(&records[0])).unwrap());
    let want = scalar(load_balance_loss(
        Tensor::<B, 1>::from_floats(f.as_slice(), &Default::default()),
        records[0].p_mean.clone(),
    ));
    assert!((micro - want).abs() < 1e-6);
    // The micro losses, weighted by their tokens, sum to the step's loss.
    let total: usize = records.iter().map(|r| r.n_tokens).sum();
    let weighted: f64 = records
        .iter()
        .map(|r| {
            scalar(acc.micro_loss(std::slice::from_ref(r)).unwrap()) * r.n_tokens as f64
                / total as f64
        })
        .sum();
    assert!((weighted - once).abs() < 1e-5, "{weighted} vs {once}");
    // Per-layer averaging (MOE-10): two layers average their losses.
    let two = [records[0].clone(), records[1].clone()];
    let avg = scalar(moe_model::model::aux_losses(&two).unwrap().lb);
    let mean = (scalar(records[0].lb_loss.clone()) + scalar(records[1].lb_loss.clone())) / 2.0;
    assert!((avg - mean).abs() < 1e-6);
}
