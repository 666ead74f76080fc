//! Training-step cost on the CPU: forward + backward of the `tiny` preset,
//! dense vs MoE (every block 8 experts, top-1: equal active parameters), and
//! the grouped dispatch/combine against a plain gather of the same activations.
//!
//! `cargo bench -p moe-model --bench step`

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use moe_model::dispatch::{DispatchPlan, dispatch_combine};
use moe_model::init::NormalRng;
use moe_model::{CpuAutodiff as B, ForwardOptions, Gpt2, ModelConfig, MoeConfig};

// The `moe` binary's allocator (mimalloc): glibc maps every buffer over 32 MB
// afresh, so large tensors would page-fault on every step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 2;
const SEQ: usize = 128;

fn tokens(vocab: usize) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let ids: Vec<i64> = (0..BATCH * (SEQ + 1))
        .map(|i| ((i * 7919) % vocab) as i64)
        .collect();
    let all =
        Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [BATCH, SEQ + 1]), &Default::default());
    (all.clone().narrow(1, 0, SEQ), all.narrow(1, 1, SEQ))
}

/// One forward + backward with the LM loss plus the router losses.
fn step(model: &Gpt2<B>, input: &Tensor<B, 2, Int>, target: &Tensor<B, 2, Int>) {
    let out = model.forward(input.clone(), &ForwardOptions::default());
    let logp = log_softmax(out.logits, 2); // [batch, seq, vocab]
    let picked = logp.gather(2, target.clone().unsqueeze_dim::<3>(2)); // [batch, seq, 1]
    let mut loss = picked.mean().neg();
    if let Some(aux) = out.aux {
        loss = loss + aux.lb * 0.01 + aux.z * 0.001;
    }
    let _grads = loss.backward();
}

fn bench_step(c: &mut Criterion) {
    let dense_cfg = ModelConfig::preset("tiny").expect("preset");
    let dense = Gpt2::<B>::init(&dense_cfg, 0, &Default::default());
    let moe = dense
        .clone()
        .upcycle(&MoeConfig::default_for(dense_cfg.gpt2.n_layer), 1e-3, 0);
    let (input, target) = tokens(dense_cfg.gpt2.vocab_size);
    let mut group = c.benchmark_group("tiny_fwd_bwd");
    group.throughput(Throughput::Elements((BATCH * SEQ) as u64));
    group.bench_function("dense", |b| b.iter(|| step(&dense, &input, &target)));
    group.bench_function("moe_4x8_top1", |b| b.iter(|| step(&moe, &input, &target)));
    group.finish();
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
                dispatch_combine(x.clone(), gate.clone(), &plan, |_, xe| xe).into_data()
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
