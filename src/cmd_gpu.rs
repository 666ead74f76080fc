//! `moe gpu …`: the checks `scripts/gpu-check.sh` runs on a CUDA machine —
//! CPU-vs-CUDA logit parity (f32 and bf16) and the card's measured matmul
//! rate (for MFU). Without `--features cuda` every subcommand says so.

use anyhow::Result;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use moe_model::{ForwardOptions, Gpt2, ModelConfig, MoeConfig};

/// GPU subcommands.
#[derive(clap::Subcommand)]
pub enum GpuCommand {
    /// Logits of the same seeded model on the CPU and on CUDA (f32, bf16).
    Parity {
        /// Preset: tiny or gpt2.
        #[arg(long, default_value = "tiny")]
        preset: String,
        /// Upcycle the last four blocks into 8 experts, top-1.
        #[arg(long)]
        moe: bool,
        /// Sequence length.
        #[arg(long, default_value_t = 128)]
        seq: usize,
    },
    /// Square matmul rate on CUDA, TFLOP/s, f32 and bf16.
    Matmul {
        /// Matrix size.
        #[arg(long, default_value_t = 8192)]
        size: usize,
        /// Timed iterations.
        #[arg(long, default_value_t = 20)]
        iters: usize,
    },
}

/// Runs a `moe gpu` subcommand.
pub fn run(cmd: GpuCommand) -> Result<()> {
    match cmd {
        GpuCommand::Parity { preset, moe, seq } => parity(&preset, moe, seq),
        GpuCommand::Matmul { size, iters } => matmul(size, iters),
    }
}

/// The model config of a parity check.
fn parity_config(preset: &str, moe: bool) -> Result<ModelConfig> {
    let mut config = ModelConfig::preset(preset)?;
    if moe {
        config.moe = Some(MoeConfig::default_for(config.gpt2.n_layer));
    }
    Ok(config)
}

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
/// Flat f32 logits of the seeded model of `config` on backend `B`.
pub fn logits_on<B: Backend>(config: &ModelConfig, seq: usize, device: &B::Device) -> Vec<f32> {
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
    let logits = model.forward(tokens, &ForwardOptions::default()).logits;
    logits
        .into_data()
        .convert::<f32>()
        .to_vec()
        .unwrap_or_default()
}

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
/// Largest absolute difference and that difference over the largest |reference|.
pub fn max_diff(reference: &[f32], other: &[f32]) -> (f64, f64) {
    let abs = reference
        .iter()
        .zip(other)
        .map(|(a, b)| (a - b).abs() as f64)
        .fold(0.0, f64::max);
    let scale = reference
        .iter()
        .map(|a| a.abs() as f64)
        .fold(0.0, f64::max)
        .max(1e-12);
    (abs, abs / scale)
}

#[cfg(feature = "cuda")]
fn parity(preset: &str, moe: bool, seq: usize) -> Result<()> {
    use burn::tensor::bf16;
    let config = parity_config(preset, moe)?;
    let cpu = logits_on::<moe_model::CpuBackend>(&config, seq, &Default::default());
    let f32_gpu = logits_on::<moe_model::CudaBackend>(&config, seq, &Default::default());
    let bf16_gpu = logits_on::<burn::backend::Cuda<bf16>>(&config, seq, &Default::default());
    for (name, values, limit) in [("cuda f32", &f32_gpu, 1e-4), ("cuda bf16", &bf16_gpu, 5e-2)] {
        let (abs, rel) = max_diff(&cpu, values);
        let verdict = if rel <= limit { "ok" } else { "OVER" };
        println!(
            "parity {preset}{} {name}: max |Δ| {abs:.3e}, relative {rel:.3e} (limit {limit:.0e}) {verdict}",
            if moe { " moe" } else { "" }
        );
    }
    Ok(())
}

#[cfg(feature = "cuda")]
fn matmul(size: usize, iters: usize) -> Result<()> {
    use burn::tensor::bf16;
    fn rate<B: Backend>(size: usize, iters: usize) -> f64 {
        let device = Default::default();
        let a = Tensor::<B, 2>::ones([size, size], &device);
        let b = Tensor::<B, 2>::ones([size, size], &device);
        let _ = a.clone().matmul(b.clone()).sum().into_data(); // warm-up and kernel compile
        let start = std::time::Instant::now();
        let mut acc = Tensor::<B, 1>::zeros([1], &device);
        for _ in 0..iters {
            acc = acc + a.clone().matmul(b.clone()).slice([0..1, 0..1]).reshape([1]);
        }
        let _ = acc.into_data(); // waits for the device
        2.0 * (size as f64).powi(3) * iters as f64 / start.elapsed().as_secs_f64() / 1e12
    }
    println!(
        "matmul {size}³ f32: {:.1} TFLOP/s",
        rate::<moe_model::CudaBackend>(size, iters)
    );
    println!(
        "matmul {size}³ bf16: {:.1} TFLOP/s",
        rate::<burn::backend::Cuda<bf16>>(size, iters)
    );
    Ok(())
}

#[cfg(not(feature = "cuda"))]
fn parity(preset: &str, moe: bool, _seq: usize) -> Result<()> {
    parity_config(preset, moe)?;
    anyhow::bail!("built without CUDA: cargo build --release --features cuda")
}

#[cfg(not(feature = "cuda"))]
fn matmul(_: usize, _: usize) -> Result<()> {
    anyhow::bail!("built without CUDA: cargo build --release --features cuda")
}

#[cfg(test)]
mod tests {
    use super::*;

    // The CPU half of the parity check: the same seed gives the same logits twice.
    #[test]
    fn parity_logits_are_deterministic_on_the_cpu() {
        let config = parity_config("micro", true).unwrap();
        let a = logits_on::<moe_model::CpuBackend>(&config, 8, &Default::default());
        let b = logits_on::<moe_model::CpuBackend>(&config, 8, &Default::default());
        assert_eq!(a.len(), 8 * config.gpt2.vocab_size);
        assert_eq!(max_diff(&a, &b), (0.0, 0.0));
        let shifted: Vec<f32> = a.iter().map(|x| x + 0.5).collect();
        assert!((max_diff(&a, &shifted).0 - 0.5).abs() < 1e-6);
    }
}
