//! GPT-2 small with Mixture-of-Experts layers, in Burn, generic over the backend.
//!
//! - [`Gpt2`] computes what HF `GPT2LMHeadModel` computes (learned positions,
//!   pre-LayerNorm with eps 1e-5, tanh-GELU, causal attention, LM head tied to
//!   the token embedding) and loads HF weights ([`load_model_dir`]).
//! - Any block's MLP can be an [`MoeLayer`]: an f32 router with optional
//!   annealed logit noise, top-1 with the straight-through gate or renormalized
//!   top-k, optional capacity, grouped sort-by-expert dispatch, Switch
//!   load-balancing and z-loss, and a [`LayerRouting`] per layer returned from
//!   every forward pass.
//! - [`Gpt2::upcycle`] turns a dense model into an MoE model whose experts are
//!   copies of the dense MLPs: at zero noise it computes the same logits.
//! - Checkpoints are safetensors with HF GPT-2 names ([`save_model_dir`]); a
//!   dense one loads in `transformers` unchanged.
//!
//! - [`ModelSource`] names where a run's model comes from (scratch, an HF
//!   directory, the Hub's `gpt2`).
//!
//! Where to read: [`model`] is the GPT-2 model top to bottom, [`moe`] the
//! MoE layer top to bottom, `ops/` the hot ops, each a generic version
//! beside its CPU kernel. Specs: `specs/model.md` (MODEL-*) and
//! `specs/moe.md` (MOE-*).
//!
//! ```no_run
//! use moe_model::{CpuBackend, ForwardOptions, Gpt2, ModelConfig, MoeConfig};
//! use burn::tensor::{Int, Tensor};
//!
//! let device = Default::default();
//! let config = ModelConfig::preset("micro").unwrap();
//! let dense = Gpt2::<CpuBackend>::init(&config, 0, &device);
//! let moe = dense.upcycle(&MoeConfig::default_for(config.gpt2.n_layer), 0.0, 0);
//! let tokens = Tensor::<CpuBackend, 2, Int>::from_data([[1, 2, 3]], &device);
//! let out = moe.forward(tokens, &ForwardOptions::default());
//! assert_eq!(out.logits.dims(), [1, 3, config.gpt2.vocab_size]);
//! ```
#![deny(missing_docs)]

mod config;
mod error;
mod hf_config;
mod hub;
mod init;
mod mlp;
pub mod model;
pub mod moe;
mod ops;
mod params;
mod precision;
mod seeds;
mod source;
pub mod weights;

pub use config::{Gpt2Config, ModelConfig, MoeConfig, PRESETS};
pub use error::{ModelError, Result};
pub use hf_config::HfGpt2Config;
pub use model::{ForwardOptions, Gpt2, LmOutput, ModelOutput};
pub use moe::{
    ExpertMask, HostLayerRouting, LayerRouting, LbAccumulator, LbScope, MoeLayer, RouterNoise,
    noise_std_at,
};
pub use ops::LmLoss;
pub use params::ParamCounts;
pub use precision::Precision;
pub use seeds::{NormalRng, Stream, router_noise_seed};
pub use source::ModelSource;
pub use weights::{load_model_dir, save_model_dir};

/// Burn's pure-Rust CPU backend (the default; no GPU needed).
pub type CpuBackend = burn::backend::Flex;
/// The CPU backend with automatic differentiation, for training on the CPU.
pub type CpuAutodiff = burn::backend::Autodiff<CpuBackend>;
// The GPU backends are Burn's CubeCL backend with burn-fusion. Fusion keys
// its plans on the pattern of shapes and keeps them: with the expert groups
// padded to 128 rows (MOE-16) an MoE step repeats one pattern and host
// memory stays flat (BACK-6; BENCHMARKS.md), where unpadded groups grew it
// every step.

/// Burn's CUDA backend (CubeCL with burn-fusion; f32 unless `F` says
/// otherwise), with `--features cuda`; the driver loads at run time.
#[cfg(feature = "cuda")]
pub type CudaBackend<F = f32> = burn::backend::Cuda<F, i32>;
/// The CUDA backend with automatic differentiation.
#[cfg(feature = "cuda")]
pub type CudaAutodiff = burn::backend::Autodiff<CudaBackend>;
/// Burn's wgpu backend (CubeCL with burn-fusion, f32: the same kernels,
/// autotune and fusion as CUDA), with `--features wgpu`; the Vulkan loader
/// opens at run time.
#[cfg(feature = "wgpu")]
pub type WgpuBackend = burn::backend::Wgpu<f32, i32, u32>;
/// The wgpu backend with automatic differentiation.
#[cfg(feature = "wgpu")]
pub type WgpuAutodiff = burn::backend::Autodiff<WgpuBackend>;
/// CubeCL's wgpu backend without burn-fusion: only for the comparison of
/// BACK-6 (`tests/cubecl_proxy.rs`).
#[cfg(feature = "wgpu")]
pub type WgpuUnfusedAutodiff = burn::backend::Autodiff<
    burn_cubecl::CubeBackend<burn::cubecl::wgpu::WgpuRuntime, f32, i32, u32>,
>;
