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
use moe_train::DeviceMemory;

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

    /// The memory probe of this backend's default device
    /// ([`DeviceSlot::memory_probe`]).
    pub fn memory_probe(self) -> Option<DeviceMemory> {
        DeviceSlot::default_of(self).memory_probe()
    }
}

/// One device of a backend, as `--devices` lists it: `cpu`, `cuda` (device
/// 0), `cuda:N`, `wgpu` (wgpu's default adapter) or `wgpu:N` (the N-th
/// discrete GPU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceSlot {
    /// The backend.
    pub device: Device,
    /// The device's index; `None` for the backend's default device.
    pub index: Option<usize>,
}

impl DeviceSlot {
    /// The default device of `device`.
    pub fn default_of(device: Device) -> Self {
        Self {
            device,
            index: None,
        }
    }

    /// Reads the bytes in use on this device (CubeCL's memory manager), for
    /// the train events (TRAIN-20); `None` on the CPU and for a backend not
    /// compiled in.
    pub fn memory_probe(self) -> Option<DeviceMemory> {
        let read: Option<fn(Option<usize>) -> u64> = match self.device {
            Device::Cpu => None,
            #[cfg(feature = "cuda")]
            Device::Cuda => Some(cuda_bytes_in_use),
            #[cfg(feature = "wgpu")]
            Device::Wgpu => Some(wgpu_bytes_in_use),
            #[allow(unreachable_patterns)]
            _ => None,
        };
        read.map(|read| DeviceMemory {
            read,
            index: self.index,
        })
    }
}

impl std::fmt::Display for DeviceSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}:{i}", self.device.name()),
            None => f.write_str(self.device.name()),
        }
    }
}

impl std::str::FromStr for DeviceSlot {
    type Err = String;

    /// `cpu`, `cuda`, `cuda:N`, `wgpu` or `wgpu:N`.
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let (name, index) = match text.split_once(':') {
            Some((name, i)) => {
                let i = i
                    .parse::<usize>()
                    .map_err(|_| format!("{text}: the device index must be a number"))?;
                (name, Some(i))
            }
            None => (text, None),
        };
        let device = Device::from_str(name, true)
            .map_err(|_| format!("{text}: not a device (cpu, cuda[:N], wgpu[:N])"))?;
        if device == Device::Cpu && index.is_some() {
            return Err(format!("{text}: the CPU has no device index"));
        }
        Ok(Self { device, index })
    }
}

/// The CUDA device of `index` (device 0 by default).
#[cfg(feature = "cuda")]
fn cuda_device(index: Option<usize>) -> burn::cubecl::cuda::CudaDevice {
    burn::cubecl::cuda::CudaDevice {
        index: index.unwrap_or(0),
    }
}

/// The wgpu device of `index`: the default adapter, or the N-th discrete GPU.
#[cfg(feature = "wgpu")]
fn wgpu_device(index: Option<usize>) -> burn::cubecl::wgpu::WgpuDevice {
    match index {
        Some(i) => burn::cubecl::wgpu::WgpuDevice::DiscreteGpu(i),
        None => burn::cubecl::wgpu::WgpuDevice::DefaultDevice,
    }
}

/// Bytes in use on the CUDA device of `index`.
#[cfg(feature = "cuda")]
fn cuda_bytes_in_use(index: Option<usize>) -> u64 {
    bytes_in_use::<burn::cubecl::cuda::CudaRuntime>(cuda_device(index))
}

/// Bytes in use on the wgpu device of `index`.
#[cfg(feature = "wgpu")]
fn wgpu_bytes_in_use(index: Option<usize>) -> u64 {
    bytes_in_use::<burn::cubecl::wgpu::WgpuRuntime>(wgpu_device(index))
}

/// Bytes in use on `device` of runtime `R` (0 when it cannot say).
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn bytes_in_use<R: burn::cubecl::Runtime>(device: R::Device) -> u64 {
    R::client(&device)
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

/// Runs `job` on the default device of `device`'s backend ([`run_on_slot`]).
pub fn run_on<J: OnBackend>(device: Device, job: J) -> Result<J::Output> {
    run_on_slot(DeviceSlot::default_of(device), job)
}

/// Runs `job` on `slot`, or fails with the cargo feature to build with when
/// its backend is not compiled in.
pub fn run_on_slot<J: OnBackend>(slot: DeviceSlot, job: J) -> Result<J::Output> {
    match slot.device {
        Device::Cpu => job.run::<moe_model::CpuAutodiff>(&Default::default()),
        #[cfg(feature = "cuda")]
        Device::Cuda => job.run::<moe_model::CudaAutodiff>(&cuda_device(slot.index)),
        #[cfg(feature = "wgpu")]
        Device::Wgpu => job.run::<moe_model::WgpuAutodiff>(&wgpu_device(slot.index)),
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

    // Checks: BACK-10 — `--devices` entries parse to a backend and an
    // optional index, and print back as they were written.
    #[test]
    fn back_10_device_slots_parse_and_print() {
        for text in ["cpu", "cuda", "cuda:3", "wgpu", "wgpu:0"] {
            let slot: DeviceSlot = text.parse().unwrap();
            assert_eq!(slot.to_string(), text);
        }
        let slot: DeviceSlot = "cuda:1".parse().unwrap();
        assert_eq!((slot.device, slot.index), (Device::Cuda, Some(1)));
        for bad in ["tpu", "cuda:x", "cpu:1", "cuda:-1"] {
            assert!(bad.parse::<DeviceSlot>().is_err(), "{bad}");
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
