//! Backend selection for every command that takes `--device` (BACK-1).
//!
//! The model and the trainer are generic over Burn's backend; this module is
//! the one place that turns a `--device` value into a concrete backend type.
//! A command describes its work as a [`OnBackend`] job and calls [`run_on`],
//! so there is one code path for all backends and no backend-specific model
//! code. A backend whose cargo feature is off is a clear error, not a panic.

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use clap::ValueEnum;

/// Where to compute.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Device {
    /// Burn's flex CPU backend.
    Cpu,
    /// Burn's CUDA backend (build with `--features cuda`).
    Cuda,
    /// Burn's wgpu backend: the CUDA backend's CubeCL kernels on Vulkan, Metal
    /// or DX12 (build with `--features wgpu`; a software Vulkan driver works).
    Wgpu,
}

impl Device {
    /// The name used in logs and `metrics.jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::Wgpu => "wgpu",
        }
    }

    /// Reads the bytes in use on this backend's default device (CubeCL's
    /// memory manager), for the train events (TRAIN-20); `None` on the CPU
    /// and for a backend not compiled in.
    pub fn memory_probe(self) -> Option<fn() -> u64> {
        match self {
            Device::Cpu => None,
            #[cfg(feature = "cuda")]
            Device::Cuda => Some(bytes_in_use::<burn::cubecl::cuda::CudaRuntime>),
            #[cfg(feature = "wgpu")]
            Device::Wgpu => Some(bytes_in_use::<burn::cubecl::wgpu::WgpuRuntime>),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

/// Bytes in use on runtime `R`'s default device (0 when it cannot say).
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn bytes_in_use<R: burn::cubecl::Runtime>() -> u64
where
    R::Device: Default,
{
    R::client(&R::Device::default())
        .memory_usage()
        .map_or(0, |m| m.bytes_in_use)
}

/// Work that runs on any autodiff backend (its inner backend serves inference).
pub trait OnBackend {
    /// What the work returns.
    type Output;
    /// Runs the work on backend `B`, device `device`.
    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<Self::Output>;
}

/// Runs `job` on the backend of `device` (its default device), or fails with
/// the cargo feature to build with when the backend is not compiled in.
pub fn run_on<J: OnBackend>(device: Device, job: J) -> Result<J::Output> {
    match device {
        Device::Cpu => job.run::<moe_model::CpuAutodiff>(&Default::default()),
        #[cfg(feature = "cuda")]
        Device::Cuda => job.run::<moe_model::CudaAutodiff>(&Default::default()),
        #[cfg(feature = "wgpu")]
        Device::Wgpu => job.run::<moe_model::WgpuAutodiff>(&Default::default()),
        #[allow(unreachable_patterns)]
        other => anyhow::bail!(
            "this binary was built without the {0} backend: cargo build --release --features {0}",
            other.name()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::ElementConversion;

    struct Sum(Vec<f32>);

    impl OnBackend for Sum {
        type Output = f32;
        fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<f32> {
            let t = burn::tensor::Tensor::<B, 1>::from_floats(self.0.as_slice(), device);
            Ok(t.sum().into_scalar().elem())
        }
    }

    // BACK-1: the CPU always runs; a backend that is not compiled in is an error naming its feature.
    #[test]
    fn back_1_missing_backends_name_their_feature() {
        assert_eq!(run_on(Device::Cpu, Sum(vec![1.0, 2.5])).unwrap(), 3.5);
        let compiled = [
            (Device::Cuda, cfg!(feature = "cuda")),
            (Device::Wgpu, cfg!(feature = "wgpu")),
        ];
        for (device, _) in compiled.into_iter().filter(|(_, built)| !built) {
            let err = run_on(device, Sum(vec![1.0])).unwrap_err().to_string();
            assert!(
                err.contains(&format!("--features {}", device.name())),
                "{err}"
            );
        }
    }
}
