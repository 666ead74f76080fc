//! GPT-2 small with Mixture-of-Experts layers, in Burn, generic over the backend.
//!
//! - [`Gpt2`] computes what HF `GPT2LMHeadModel` computes (learned positions,
//!   pre-LayerNorm with eps 1e-5, tanh-GELU, causal attention, LM head tied to
//!   the token embedding) and loads HF weights ([`load_model_dir`]).
//! - Any block's MLP can be an [`MoeLayer`]: an f32 router with optional
//!   annealed logit noise, top-1 with the straight-through gate or renormalized
//!   top-k, optional capacity, grouped sort-by-expert dispatch, Switch
//!   load-balancing and z-loss, and a [`RoutingRecord`] per layer returned from
//!   every forward pass.
//! - [`Gpt2::upcycle`] turns a dense model into an MoE model whose experts are
//!   copies of the dense MLPs: at zero noise it computes the same logits.
//! - Checkpoints are safetensors with HF GPT-2 names ([`save_model_dir`]); a
//!   dense one loads in `transformers` unchanged.
//!
//! Specs: `specs/model.md` (MODEL-*) and `specs/moe.md` (MOE-*).
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

pub mod attention;
pub mod block;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod gelu;
pub mod hf_config;
pub(crate) mod host;
pub mod hub;
pub mod init;
pub mod lm_loss;
pub mod losses;
pub mod mlp;
pub mod model;
pub mod moe;
pub mod norm;
pub mod params;
pub mod precision;
pub mod router;
pub mod routing;
pub mod weights;

pub use config::{Gpt2Config, ModelConfig, MoeConfig, PRESETS};
pub use error::{ModelError, Result};
pub use lm_loss::{LmLoss, lm_head_cross_entropy};
pub use losses::{LbAccumulator, LbScope, load_balance_loss, logsumexp, z_loss};
pub use model::{AuxLosses, ForwardOptions, Gpt2, LmOutput, ModelOutput};
pub use moe::MoeLayer;
pub use params::ParamCounts;
pub use precision::Precision;
pub use router::{RouterNoise, noise_std_at};
pub use routing::{HostRoutingRecord, RoutingRecord};
pub use weights::{load_model_dir, save_model_dir};

/// Burn's pure-Rust CPU backend (the default; no GPU needed).
pub type CpuBackend = burn::backend::Flex;
/// The CPU backend with automatic differentiation, for training on the CPU.
pub type CpuAutodiff = burn::backend::Autodiff<CpuBackend>;
// The GPU backends are Burn's CubeCL backend *without* burn-fusion (BACK-6):
// with fusion, host memory of an MoE run grew by 88-140 kB per step on wgpu
// (dense stayed flat), without it it stays flat. Expert group sizes change
// every step, so fusion sees a new stream of operations each step; that it
// keeps state per stream is our reading, not traced in Burn's code; see
// BENCHMARKS.md ("CubeCL proxy").

/// Burn's CUDA backend (CubeCL, no fusion; f32 unless `F` says otherwise),
/// with `--features cuda`; the driver loads at run time.
#[cfg(feature = "cuda")]
pub type CudaBackend<F = f32> =
    burn_cubecl::CubeBackend<burn::cubecl::cuda::CudaRuntime, F, i32, u8>;
/// The CUDA backend with automatic differentiation.
#[cfg(feature = "cuda")]
pub type CudaAutodiff = burn::backend::Autodiff<CudaBackend>;
/// Burn's wgpu backend (CubeCL, no fusion, f32: the same kernels and autotune
/// as CUDA), with `--features wgpu`; the Vulkan loader opens at run time.
#[cfg(feature = "wgpu")]
pub type WgpuBackend = burn_cubecl::CubeBackend<burn::cubecl::wgpu::WgpuRuntime, f32, i32, u32>;
/// The wgpu backend with automatic differentiation.
#[cfg(feature = "wgpu")]
pub type WgpuAutodiff = burn::backend::Autodiff<WgpuBackend>;
/// Burn's stock wgpu backend, with burn-fusion: only for the memory
/// comparison of BACK-6 (`tests/cubecl_proxy.rs`).
#[cfg(feature = "wgpu")]
pub type WgpuFusedAutodiff = burn::backend::Autodiff<burn::backend::Wgpu>;
