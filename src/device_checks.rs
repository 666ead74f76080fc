//! The device checks `moe gpu` runs (`scripts/gpu-check.sh`, BACK-9): the
//! seeded parity model's forward pass and a square matmul's rate, on any
//! backend the binary was built with. They live in the library, behind
//! functions that name no backend type, so that Burn's generic code for the
//! GPU backends is compiled once, here, beside the trainer's, and not again
//! in the binary (release builds share no generic instances between crates;
//! BENCHMARKS.md, CI).

use anyhow::Result;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use moe_model::{ForwardOptions, Gpt2, ModelConfig, Precision};

use crate::backend::{Device, OnBackend, run_on};

/// What the parity model computed: flat f32 logits `[seq, vocab]` and each
/// MoE layer's top-1 expert per token (`[layer][token]`, empty when dense).
pub struct Forward {
    /// Logits, row-major `[seq, vocab]`.
    pub logits: Vec<f32>,
    /// Top-1 expert of each token, per MoE layer.
    pub top1: Vec<Vec<i64>>,
}

/// The forward pass of the seeded model of `config` on backend `B`, computed
/// in `precision`.
fn logits_on<B: Backend>(
    config: &ModelConfig,
    seq: usize,
    precision: Precision,
    device: &B::Device,
) -> Forward {
    let dense = ModelConfig {
        moe: None,
        ..config.clone()
    };
    let mut model = Gpt2::<B>::init(&dense, 7, device);
    if let Some(moe) = &config.moe {
        model = model.upcycle(moe, 1e-3, 7);
    }
    let ids: Vec<i64> = (0..seq)
        .map(|i| ((i * 7919 + 13) % config.gpt2.vocab_size) as i64)
        .collect();
    let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, seq]), device);
    let options = ForwardOptions {
        precision,
        ..ForwardOptions::default()
    };
    let out = model.forward(tokens, &options);
    let top1 = out
        .routing
        .into_iter()
        .map(|r| {
            r.expert_idx
                .narrow(1, 0, 1)
                .into_data()
                .convert::<i64>()
                .to_vec()
                .unwrap_or_default()
        })
        .collect();
    let logits = out
        .logits
        .into_data()
        .convert::<f32>()
        .to_vec()
        .unwrap_or_default();
    Forward { logits, top1 }
}

/// The parity model's forward pass on `device`'s backend; an error when the binary was built
/// without it.
pub fn logits(
    device: Device,
    config: &ModelConfig,
    seq: usize,
    precision: Precision,
) -> Result<Forward> {
    run_on(
        device,
        Logits {
            config,
            seq,
            precision,
        },
    )
}

/// The parity model's forward pass on the CPU backend.
pub fn cpu_logits(config: &ModelConfig, seq: usize, precision: Precision) -> Forward {
    logits_on::<moe_model::CpuBackend>(config, seq, precision, &Default::default())
}

/// The logits of the parity model on a backend.
struct Logits<'a> {
    config: &'a ModelConfig,
    seq: usize,
    precision: Precision,
}

impl OnBackend for Logits<'_> {
    type Output = Forward;
    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<Forward> {
        Ok(logits_on::<B::InnerBackend>(
            self.config,
            self.seq,
            self.precision,
            device,
        ))
    }
}

/// The square matmul rate in f32 on `device`'s backend, TFLOP/s; an error when the
/// binary was built without it.
pub fn matmul_rate_on(device: Device, size: usize, iters: usize) -> Result<f64> {
    run_on(device, MatmulRate { size, iters })
}

/// Square matmul rate in TFLOP/s on a backend.
struct MatmulRate {
    size: usize,
    iters: usize,
}

impl OnBackend for MatmulRate {
    type Output = f64;
    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<f64> {
        Ok(matmul_rate::<B::InnerBackend>(
            self.size, self.iters, device,
        ))
    }
}

/// Square `size` matmuls timed over `iters` iterations after one warm-up, TFLOP/s.
fn matmul_rate<B: Backend>(size: usize, iters: usize, device: &B::Device) -> f64 {
    let a = Tensor::<B, 2>::ones([size, size], device);
    let b = Tensor::<B, 2>::ones([size, size], device);
    let _ = a.clone().matmul(b.clone()).sum().into_data(); // warm-up and kernel compile
    let start = std::time::Instant::now();
    let mut acc = Tensor::<B, 1>::zeros([1], device);
    for _ in 0..iters {
        acc = acc + a.clone().matmul(b.clone()).slice([0..1, 0..1]).reshape([1]);
    }
    let _ = acc.into_data(); // waits for the device
    2.0 * (size as f64).powi(3) * iters as f64 / start.elapsed().as_secs_f64() / 1e12
}

/// bf16 matmul rate on CUDA; `None` elsewhere.
#[cfg(feature = "cuda")]
pub fn cuda_bf16_rate(device: Device, size: usize, iters: usize) -> Option<f64> {
    (device == Device::Cuda).then(|| {
        matmul_rate::<moe_model::CudaBackend<burn::tensor::bf16>>(size, iters, &Default::default())
    })
}

/// bf16 matmul rate on CUDA: `None`, this binary has no CUDA backend.
#[cfg(not(feature = "cuda"))]
pub fn cuda_bf16_rate(_: Device, _: usize, _: usize) -> Option<f64> {
    None
}
