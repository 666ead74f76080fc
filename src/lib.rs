//! moe-emergence as a library: the study end to end ([`study`]: plan,
//! prepare if needed, train side by side, analyse, report, summarise), its
//! steps ([`runs`]), backend selection ([`backend`]) and the device checks
//! of `moe gpu` ([`device_checks`]). The `moe` binary
//! (`src/main.rs`) is a command line over these; the data pipeline, the
//! model, training and analysis live in the crates under `crates/`.
//!
//! ```no_run
//! use std::time::Instant;
//! use moe_emergence::study::{demo_options, run_study};
//!
//! let study = run_study(&demo_options("runs/demo".as_ref(), 1, 2), Instant::now())?;
//! print!("{}", study.summary(false));
//! # Ok::<(), anyhow::Error>(())
//! ```
#![deny(missing_docs)]

pub mod backend;
pub mod device_checks;
pub mod runs;
pub mod study;
pub mod sweep;
