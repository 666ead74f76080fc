//! `moe gpu …`: the checks `scripts/gpu-check.sh` runs on a CUDA machine —
//! CPU-vs-device logit parity (f32, and mixed bf16 on CUDA) and the device's
//! measured matmul rate (for MFU). `--device wgpu` runs the same checks on
//! Burn's wgpu backend; a backend that is not compiled in is an error.

use anyhow::Result;
use moe_model::{ModelConfig, MoeConfig, Precision};

use crate::backend::Device;
use crate::device_checks::{Forward, cpu_logits, cuda_bf16_rate, logits, matmul_rate_on};

/// GPU subcommands.
#[derive(clap::Subcommand)]
pub enum GpuCommand {
    /// Logits of the same seeded model on the CPU and on the device: f32, and mixed bf16 (MODEL-19) on the CPU and CUDA.
    Parity {
        /// Backend to compare with the CPU.
        #[arg(long, value_enum, default_value_t = Device::Cuda)]
        device: Device,
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
    /// Square matmul rate on the device, TFLOP/s, f32 (and bf16 on CUDA).
    Matmul {
        /// Backend.
        #[arg(long, value_enum, default_value_t = Device::Cuda)]
        device: Device,
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
        GpuCommand::Parity {
            device,
            preset,
            moe,
            seq,
        } => {
            let config = parity_config(&preset, moe)?;
            let on_device = |precision| logits(device, &config, seq, precision);
            let on_cpu = |precision| cpu_logits(&config, seq, precision);
            // The device first: a backend not compiled in fails before any work.
            let f32_device = on_device(Precision::F32)?;
            let cpu = on_cpu(Precision::F32);
            let name = device.name();
            let label = format!("{preset}{}", if moe { " moe" } else { "" });
            let report = |what: &str, other: &Forward, limit| {
                println!("{}", parity_line(&label, what, seq, &cpu, other, limit))
            };
            report(&format!("{name} f32"), &f32_device, 1e-4);
            // Mixed precision (MODEL-19): the CPU's own bf16 error is the
            // yardstick for the device's. wgpu cannot run it (WGSL has no
            // bf16 type).
            report("cpu bf16 (mixed)", &on_cpu(Precision::Bf16), 5e-2);
            if device == Device::Cuda {
                report(
                    &format!("{name} bf16 (mixed)"),
                    &on_device(Precision::Bf16)?,
                    5e-2,
                );
            }
            Ok(())
        }
        GpuCommand::Matmul {
            device,
            size,
            iters,
        } => {
            let f32_rate = matmul_rate_on(device, size, iters)?;
            println!("matmul {size}³ f32: {f32_rate:.1} TFLOP/s");
            if let Some(bf16_rate) = cuda_bf16_rate(device, size, iters) {
                println!("matmul {size}³ bf16: {bf16_rate:.1} TFLOP/s");
            }
            Ok(())
        }
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

/// Tokens whose top-1 expert agrees in every MoE layer of the two passes
/// (all of them for a dense model).
fn same_route(a: &Forward, b: &Forward, seq: usize) -> Vec<bool> {
    (0..seq)
        .map(|t| {
            a.top1
                .iter()
                .zip(&b.top1)
                .all(|(x, y)| x.get(t) == y.get(t))
        })
        .collect()
}

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

/// One parity line: the logits' largest difference over the tokens
/// whose routing agrees in every MoE layer. An MoE model's logits jump where
/// a near-tie top-1 choice flips (upcycled experts differ by the upcycling
/// noise only), so flipped tokens are counted and left out.
fn parity_line(
    label: &str,
    name: &str,
    seq: usize,
    cpu: &Forward,
    other: &Forward,
    limit: f64,
) -> String {
    let vocab = cpu.logits.len() / seq.max(1);
    // A dense model has no routing: every token agrees.
    let same = same_route(cpu, other, seq);
    let (reference, compared): (Vec<f32>, Vec<f32>) = same
        .iter()
        .enumerate()
        .filter(|(_, same)| **same)
        .flat_map(|(t, _)| {
            let row = t * vocab..(t + 1) * vocab;
            cpu.logits[row.clone()].iter().zip(&other.logits[row])
        })
        .map(|(a, b)| (*a, *b))
        .unzip();
    let flipped = if cpu.top1.is_empty() {
        String::new()
    } else {
        let n = same.iter().filter(|s| !**s).count();
        format!(" ({n} of {seq} tokens routed differently, left out)")
    };
    let (abs, rel) = max_diff(&reference, &compared);
    let verdict = if rel <= limit { "ok" } else { "OVER" };
    format!(
        "parity {label} {name}: max |Δ| {abs:.3e}, relative {rel:.3e} (limit {limit:.0e}) {verdict}{flipped}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The CPU half of the parity check: the same seed gives the same logits twice.
    #[test]
    fn parity_logits_are_deterministic_on_the_cpu() {
        let config = parity_config("micro", true).unwrap();
        let a = cpu_logits(&config, 8, Precision::F32);
        let b = cpu_logits(&config, 8, Precision::F32);
        assert_eq!(a.logits.len(), 8 * config.gpt2.vocab_size);
        assert_eq!(a.top1.len(), config.moe.as_ref().unwrap().layers.len());
        assert_eq!(max_diff(&a.logits, &b.logits), (0.0, 0.0));
        assert_eq!(a.top1, b.top1);
        let shifted: Vec<f32> = a.logits.iter().map(|x| x + 0.5).collect();
        assert!((max_diff(&a.logits, &shifted).0 - 0.5).abs() < 1e-6);
    }

    // A token whose top-1 expert differs is counted and left out of the
    // logits' difference; a dense model compares every token.
    #[test]
    fn parity_leaves_out_tokens_routed_differently() {
        let cpu = Forward {
            logits: vec![1.0, 2.0, 4.0, 1.0, 1.0, 1.0],
            top1: vec![vec![0, 1]],
        };
        let other = Forward {
            logits: vec![1.0, 2.0, 4.04, 9.0, 1.0, 1.0],
            top1: vec![vec![0, 3]],
        };
        let line = parity_line("micro moe", "x", 2, &cpu, &other, 2e-2);
        assert!(line.contains("relative 1.000e-2"), "{line}");
        assert!(
            line.contains(" ok (1 of 2 tokens routed differently, left out)"),
            "{line}"
        );
        let dense = |f: &Forward| Forward {
            logits: f.logits.clone(),
            top1: Vec::new(),
        };
        let line = parity_line("micro", "x", 2, &dense(&cpu), &dense(&other), 2e-2);
        assert!(
            line.contains("max |Δ| 8.000e0") && line.ends_with("OVER"),
            "{line}"
        );
    }
}
