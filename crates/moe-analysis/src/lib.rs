//! Routing analysis for moe-emergence: which experts specialize in which
//! domain, by how much more than chance and than a router that sees only the
//! token id, how balanced the load is, when a run collapses, and a report
//! comparing runs side by side.
//!
//! - [`analyze()`] runs a run's final (or given) checkpoint over the val shards
//!   ([`route_val`] → [`token_routes::TokenRoutes`]), rebuilds its step-0 router, and
//!   computes per MoE layer ([`layer`]): the expert × domain matrix, NMI
//!   ([`nmi`]) with a document-level permutation test and a random-router
//!   null ([`nulls`]), the token-identity control ([`control`]), load
//!   ([`load_balance`]), per-domain entropy and consecutive-token consistency
//!   ([`domain_stats`]), top tokens ([`top_tokens`]) and Python token types
//!   ([`code_types`]); plus the training history ([`history`]). It writes
//!   `analysis.json` ([`schema::Analysis`]) and [`figures`]. The causal
//!   analyses mask experts out of the routing ([`masked`]): expert removal
//!   ([`removal`]) and keep-k ([`keep_k`]); token specialization
//!   ([`token_specialization`]) and co-activation across consecutive MoE
//!   layers ([`coactivation`]) come from the routing table alone; router
//!   saturation over training ([`saturation`]) from the run's routing probe;
//!   the experts' weights ([`expert_weights`]) from the checkpoints.
//! - [`report()`] reads runs and their analyses and writes a Markdown report
//!   whose every claim sentence is generated from the numbers next to it.
//!
//! Specs: `specs/analysis.md` (ANA-*).
//!
//! ```no_run
//! use std::path::Path;
//! use moe_analysis::{AnalyzeOptions, analyze, report};
//! use moe_data::prepared::PreparedData;
//! use moe_train::RunDir;
//!
//! let run = RunDir::new("runs/moe");
//! let data = PreparedData::open(Path::new("data/seed"))?;
//! let a = analyze(&run, &data, &run.analysis_dir(), &AnalyzeOptions::default())?;
//! println!("block {} NMI {:.3}", a.layers[0].layer, a.layers[0].specialization.nmi);
//! report(&[Path::new("runs/dense").into(), Path::new("runs/moe").into()], Path::new("report"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod analyze;
pub mod atlas;
pub mod baseline_rise;
pub mod coactivation;
pub mod code_types;
pub mod confidence;
pub mod control;
pub mod domain_stats;
pub mod error;
pub mod expert_weights;
pub mod figures;
pub mod history;
pub mod intervals;
pub mod keep_k;
pub mod layer;
pub mod load_balance;
pub mod masked;
pub mod nmi;
pub mod nulls;
pub mod removal;
pub mod report;
pub mod route_val;
pub mod saturation;
pub mod schema;
pub mod token_routes;
pub mod token_specialization;
pub mod top_tokens;

pub use analyze::{AnalyzeOptions, analyze};
pub use error::{AnalysisError, Result};
pub use report::{ReportSummary, report};
pub use schema::Analysis;
