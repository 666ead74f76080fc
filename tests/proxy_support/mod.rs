//! What the CubeCL proxy's tests (`tests/cubecl_proxy.rs`, run by CI) and
//! its measurements (`tests/cubecl_measure.rs`, run by hand) share: the
//! micro models, their training steps on a wgpu backend, and the memory
//! figures of this process and the wgpu device.
#![allow(dead_code)]

use std::path::Path;

use burn::optim::{AdamWConfig, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use moe_emergence::backend::Device;
use moe_model::NormalRng;
use moe_model::{Gpt2, ModelConfig, MoeConfig, RouterNoise, WgpuAutodiff};
use moe_train::RunConfig;
use moe_train::clip::clip_global_norm;
use moe_train::config::TrainSection;
use moe_train::sampler::MicroBatch;
use moe_train::step::step_gradients;

/// One test at a time: they share the wgpu device, and BACK-6 measures this
/// process's memory.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The fused wgpu backend the binary uses.
pub type W = WgpuAutodiff;

/// The `micro` preset (vocab 96, 2 blocks of width 32), MoE in both blocks with 8 experts.
pub fn micro(top_k: Option<usize>, capacity_factor: Option<f64>) -> ModelConfig {
    let mut config = ModelConfig::preset("micro").unwrap();
    config.moe = top_k.map(|top_k| MoeConfig {
        layers: vec![0, 1],
        n_experts: 8,
        top_k,
        capacity_factor,
        group_alignment: None,
    });
    config
}

/// `rows` blocks of `block` pseudo-random ids below `vocab`, from `seed`.
pub fn token_rows(seed: u64, rows: usize, block: usize, vocab: usize) -> Vec<i64> {
    let mut rng = NormalRng::new(seed, 99);
    rng.samples(rows * block, 1.0)
        .iter()
        .map(|&v| ((v.abs() * 1e4) as usize % vocab) as i64)
        .collect()
}

/// A trainer section with the study's router losses (LB 0.01, z 0.001).
pub fn train_section() -> TrainSection {
    let text = "[run]\nname = \"p\"\n[model]\ninit = \"scratch\"\npreset = \"micro\"\n[model.moe]\nlayers = [0]\nn_experts = 2\ntop_k = 1\n[train]\nsteps = 1\nmicro_batch = 1\nlr = 1e-3\nlb_coef = 0.01\nz_coef = 0.001\nrouter_noise_std = 0.1\n";
    RunConfig::parse(text, Path::new("p.toml")).unwrap().train
}

/// Host resident set size of this process, bytes.
pub fn host_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Bytes in use on the default wgpu device (CubeCL's memory manager),
/// through the probe the binary gives the trainer (TRAIN-20).
pub fn device_bytes() -> u64 {
    Device::Wgpu
        .memory_probe()
        .expect("built with wgpu")
        .bytes_in_use()
}

/// Least-squares slope of `ys` over their index.
pub fn slope(ys: &[f64]) -> f64 {
    let n = ys.len() as f64;
    let mx = (n - 1.0) / 2.0;
    let my = ys.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, y) in ys.iter().enumerate() {
        num += (i as f64 - mx) * (y - my);
        den += (i as f64 - mx).powi(2);
    }
    num / den
}

/// Trains `config` on fresh random batches (2 micro-batches of 4 × 32
/// tokens per step, AdamW, clipping) for `steps` steps on the wgpu backend
/// `B`, calling `after(step)` once each step has synced.
pub fn train_micro_steps<B: AutodiffBackend>(
    config: &ModelConfig,
    steps: usize,
    mut after: impl FnMut(usize),
) {
    let device = Default::default();
    let mut model = Gpt2::<B>::init(config, 1, &device);
    let mut optim = AdamWConfig::new().init::<B, Gpt2<B>>();
    let train = train_section();
    let block = 32;
    for step in 0..steps {
        let rows = token_rows(1000 + step as u64, 8, block, 96);
        let noise = RouterNoise {
            std: 0.1,
            seed: step as u64,
        };
        let (mut grads, stats) = step_gradients(
            &model,
            &train,
            &[
                MicroBatch::from_tokens(rows[..4 * block].to_vec(), block),
                MicroBatch::from_tokens(rows[4 * block..].to_vec(), block),
            ],
            noise,
            &device,
        );
        assert!(stats.loss.is_finite());
        clip_global_norm::<B, Gpt2<B>>(&model, &mut grads, 1.0);
        model = optim.step(1e-3, model, grads);
        B::sync(&device).unwrap();
        after(step);
    }
}

/// What `warmup + steps` training steps of `config` on `B` cost in memory
/// and time: the growth per step after the warm-up (host RSS, device bytes
/// in use; least-squares slopes) and the mean seconds per step after it.
pub fn memory_growth_on<B: AutodiffBackend>(
    config: &ModelConfig,
    warmup: usize,
    steps: usize,
) -> (f64, f64, f64) {
    let (mut host, mut dev) = (Vec::new(), Vec::new());
    let mut clock = None;
    train_micro_steps::<B>(config, warmup + steps, |step| {
        if step + 1 == warmup {
            clock = Some(std::time::Instant::now());
        }
        if step >= warmup {
            host.push(host_rss() as f64);
            dev.push(device_bytes() as f64);
        }
    });
    let secs = clock.map_or(0.0, |c| c.elapsed().as_secs_f64() / steps as f64);
    (slope(&host), slope(&dev), secs)
}

/// Allowed host RSS growth per step: 10,000 steps may add at most ~40 MB.
pub const HOST_BYTES_PER_STEP: f64 = 4096.0;
/// Allowed device memory growth per step (the model's state is allocated in the warm-up).
pub const DEVICE_BYTES_PER_STEP: f64 = 1024.0;
