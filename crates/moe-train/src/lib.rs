//! Training for moe-emergence: the three runs of the study (dense baseline,
//! MoE main, MoE without load balancing) from checked-in configs, on CUDA
//! or, scaled down, on the CPU.
//!
//! [`config::RunConfig`] is a run config; [`trainer::train`] runs it on any
//! autodiff backend into a [`RunDir`] (the only code that knows a run
//! directory's layout): events ([`metrics::Event`]), checkpoints
//! ([`checkpoint`]) and the final model. Batches are a pure function of
//! (seed, step) ([`sampler`]), router noise is re-seeded per step
//! ([`moe_model::router_noise_seed`]), and
//! checkpoints hold the optimizer state, so a resumed run continues exactly.
//!
//! Specs: `specs/training.md` (TRAIN-*).
#![deny(missing_docs)]

pub mod blocks;
pub mod checkpoint;
pub mod clip;
pub mod collapse;
pub mod config;
pub mod error;
pub mod eval;
mod initial_model;
pub mod losses;
pub mod metrics;
mod preflight;
pub mod probe;
pub mod routing_stats;
pub mod run_dir;
pub mod sampler;
pub mod schedule;
pub mod step;
pub mod trainer;
pub mod vocab;

pub use blocks::{Blocks, DomainBlocks};
pub use config::RunConfig;
pub use error::{Result, TrainError};
pub use initial_model::initial_model;
pub use preflight::Resume;
pub use run_dir::{DataIdentity, RunDir, RunLock, RunStatus};
pub use trainer::{DeviceMemory, TrainOptions, TrainSummary, train};
