//! Router and dispatch cost at the 124M model's width (issue: benchmarks):
//! router forward + backward (f32 logits, softmax, top-1, straight-through
//! gate, LB and z losses) and dispatch + combine (the plan from the expert
//! ids, the gather into the expert-sorted rows, and the gated gather back,
//! MODEL-20) with identity experts, against a plain copy of the same activations (a gather by a
//! permutation — what any dispatch must at least do), for T ∈ {4096, 16384}
//! tokens, d_model 768, 8 experts.
//!
//! `cargo bench -p moe-model --bench router`

use burn::tensor::{Int, Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use moe_model::moe::{
    DispatchPlan, Router, RouterNoise, dispatch_combine_grouped, expert_counts, load_balance_loss,
    z_loss,
};
use moe_model::moe::{combine_rows, dispatch_rows};
use moe_model::{CpuAutodiff, CpuBackend, NormalRng, Stream};

// mimalloc that keeps freed memory: large tensors are not page-faulted in
// again on every step (crates/moe-alloc).
#[global_allocator]
static GLOBAL: moe_alloc::Allocator = moe_alloc::Allocator;

const D_MODEL: usize = 768;
const N_EXPERTS: usize = 8;
const TOKENS: [usize; 2] = [4096, 16384];

fn activations<B: burn::tensor::backend::Backend>(tokens: usize) -> Tensor<B, 2> {
    let values = NormalRng::new(1, tokens as u64).samples(tokens * D_MODEL, 1.0);
    Tensor::from_data(
        TensorData::new(values, [tokens, D_MODEL]),
        &Default::default(),
    )
}

fn bench_router(c: &mut Criterion) {
    type B = CpuAutodiff;
    let mut rng = NormalRng::new(2, 0);
    let router = Router::<B>::init(&mut rng, D_MODEL, N_EXPERTS, 0.02, &Default::default());
    let mut group = c.benchmark_group("router_fwd_bwd");
    for tokens in TOKENS {
        let x = activations::<B>(tokens).require_grad();
        group.throughput(Throughput::Elements(tokens as u64));
        group.bench_with_input(BenchmarkId::from_parameter(tokens), &x, |b, x| {
            b.iter(|| {
                let r = router.route(x.clone(), 1, RouterNoise::default(), Stream::RouterNoise(0));
                let top1 = r.expert_idx.clone().reshape([tokens]);
                let f = expert_counts(top1, N_EXPERTS) / tokens as f64;
                let p = r.probs.clone().mean_dim(0).reshape([N_EXPERTS]);
                let loss = load_balance_loss(f, p) * 0.01
                    + z_loss(r.logits.clone()) * 0.001
                    + r.gate.sum();
                loss.backward()
            })
        });
    }
    group.finish();
}

fn bench_dispatch(c: &mut Criterion) {
    type B = CpuBackend;
    let device = Default::default();
    let mut group = c.benchmark_group("dispatch_combine_vs_copy");
    for tokens in TOKENS {
        let x = activations::<B>(tokens);
        let idx: Vec<i64> = (0..tokens)
            .map(|t| ((t * 2654435761) % N_EXPERTS) as i64)
            .collect();
        let idx = Tensor::<B, 2, Int>::from_data(TensorData::new(idx, [tokens, 1]), &device);
        let gate = Tensor::<B, 2>::ones([tokens, 1], &device);
        // Bytes moved by a copy of the activations: read + write.
        group.throughput(Throughput::Bytes((2 * tokens * D_MODEL * 4) as u64));
        group.bench_with_input(BenchmarkId::new("dispatch_combine", tokens), &x, |b, x| {
            b.iter(|| {
                let plan = DispatchPlan::new(idx.clone(), N_EXPERTS, None);
                dispatch_combine_grouped(x.clone(), gate.clone(), &plan, |xs| xs).into_data()
            })
        });
        group.bench_with_input(BenchmarkId::new("plan_only", tokens), &x, |b, _| {
            b.iter(|| DispatchPlan::new(idx.clone(), N_EXPERTS, None))
        });
        let plan = DispatchPlan::new(idx.clone(), N_EXPERTS, None);
        group.bench_with_input(BenchmarkId::new("dispatch_only", tokens), &x, |b, x| {
            b.iter(|| dispatch_rows(x.clone(), &plan).into_data())
        });
        group.bench_with_input(BenchmarkId::new("combine_only", tokens), &x, |b, x| {
            b.iter(|| combine_rows(x.clone(), gate.clone(), &plan).into_data())
        });
        group.bench_with_input(BenchmarkId::new("gate_mul_only", tokens), &x, |b, x| {
            b.iter(|| (x.clone() * gate.clone()).into_data())
        });
        group.bench_with_input(BenchmarkId::new("narrow_cat_only", tokens), &x, |b, x| {
            b.iter(|| {
                let n = tokens / N_EXPERTS;
                let parts: Vec<_> = (0..N_EXPERTS)
                    .map(|e| x.clone().narrow(0, e * n, n))
                    .collect();
                Tensor::cat(parts, 0).into_data()
            })
        });
        let perm: Vec<i64> = (0..tokens as i64).rev().collect();
        let perm = Tensor::<B, 1, Int>::from_data(TensorData::new(perm, [tokens]), &device);
        group.bench_with_input(BenchmarkId::new("plain_copy", tokens), &x, |b, x| {
            b.iter(|| x.clone().select(0, perm.clone()).into_data())
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(3))
        .warm_up_time(std::time::Duration::from_secs(1))
}

criterion_group! { name = benches; config = config(); targets = bench_router, bench_dispatch }
criterion_main!(benches);
