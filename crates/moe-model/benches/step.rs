//! Training-step cost on the CPU: forward + backward of the `tiny` preset
//! (`tiny_fwd_bwd`: GPT-2 vocabulary, width 128, 4 blocks) and of a
//! matmul-bound model (`d512_fwd_bwd`: vocabulary 96, width 512, 4 blocks, 8
//! heads), dense vs MoE (every block 8 experts, top-1: equal active
//! parameters), through the training loss (fused LM head + cross-entropy,
//! MODEL-12); and the grouped dispatch/combine against a plain gather of the
//! same activations. `scripts/torch_step_bench.py` times the same models in
//! PyTorch.
//!
//! `cargo bench -p moe-model --bench step`

mod common;

use burn::tensor::{Int, Tensor, TensorData};
use common::step_models::{self, BATCH, SEQ};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use moe_model::NormalRng;
use moe_model::moe::{DispatchPlan, dispatch_combine_grouped};

// mimalloc that keeps freed memory: large tensors are not page-faulted in
// again on every step (crates/moe-alloc).
#[global_allocator]
static GLOBAL: moe_alloc::Allocator = moe_alloc::Allocator;

/// Dense and MoE forward + backward of one group's model.
fn bench_group(c: &mut Criterion, name: &str) {
    let config = step_models::config(name);
    let (dense, moe) = step_models::models(&config);
    let (input, target) = step_models::tokens(config.gpt2.vocab_size);
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements((BATCH * SEQ) as u64));
    let step = step_models::step;
    group.bench_function("dense", |b| b.iter(|| step(&dense, &input, &target)));
    group.bench_function("moe_4x8_top1", |b| b.iter(|| step(&moe, &input, &target)));
    group.finish();
}

fn bench_step(c: &mut Criterion) {
    bench_group(c, "tiny_fwd_bwd");
    bench_group(c, "d512_fwd_bwd");
}

fn bench_dispatch(c: &mut Criterion) {
    type F = moe_model::CpuBackend;
    let device = Default::default();
    let (tokens, d, n_experts) = (BATCH * SEQ * 4, 768, 8);
    let x = Tensor::<F, 2>::from_data(
        TensorData::new(NormalRng::new(1, 0).samples(tokens * d, 1.0), [tokens, d]),
        &device,
    );
    let idx: Vec<i64> = (0..tokens)
        .map(|t| ((t * 2654435761) % n_experts) as i64)
        .collect();
    let idx = Tensor::<F, 2, Int>::from_data(TensorData::new(idx, [tokens, 1]), &device);
    let gate = Tensor::<F, 2>::ones([tokens, 1], &device);
    let mut group = c.benchmark_group("dispatch_combine");
    group.throughput(Throughput::Bytes((tokens * d * 4) as u64));
    group.bench_with_input(
        BenchmarkId::new("grouped_identity_experts", tokens),
        &x,
        |b, x| {
            b.iter(|| {
                let plan = DispatchPlan::new(idx.clone(), n_experts, None);
                dispatch_combine_grouped(x.clone(), gate.clone(), &plan, |xs| xs).into_data()
            })
        },
    );
    let rev: Vec<i64> = (0..tokens as i64).rev().collect();
    let perm = Tensor::<F, 1, Int>::from_data(TensorData::new(rev, [tokens]), &device);
    group.bench_with_input(BenchmarkId::new("plain_gather_copy", tokens), &x, |b, x| {
        b.iter(|| x.clone().select(0, perm.clone()).into_data())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench_step, bench_dispatch
}
criterion_main!(benches);
