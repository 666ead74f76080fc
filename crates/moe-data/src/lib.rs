//! The data pipeline of moe-emergence: three domains (code, math, prose)
//! from public datasets or local files, into packed, split, balanced GPT-2
//! token shards with a manifest that makes the result reproducible.
//!
//! Stages, each in its own module: [`sources`] (local files and Hub
//! datasets) → [`filter`] → [`format`] → [`tokenizer`] → [`split`] →
//! [`pack`] → [`balance`] → [`shard`] + [`manifest`]. [`prepare::prepare`]
//! runs them all; [`prepared::PreparedData`] opens the result for training.
//! This crate never depends on Burn: shards and the manifest are the
//! boundary between data and training.
//!
//! ```no_run
//! use moe_data::{config::DataConfig, prepare::{prepare, PrepareOptions}};
//! let path = std::path::Path::new("configs/data/demo.toml");
//! let config = DataConfig::load(path)?;
//! let opts = PrepareOptions { out: "data/demo".into(), ..Default::default() };
//! let manifest = prepare(&config, path, &opts)?;
//! println!("{} shards", manifest.shards.len());
//! # Ok::<(), moe_data::DataError>(())
//! ```
#![deny(missing_docs)]

pub mod audit;
pub mod balance;
pub mod collect;
pub mod config;
pub mod error;
pub mod filter;
pub mod format;
pub mod inspect;
pub mod manifest;
pub mod pack;
pub mod prepare;
pub mod prepared;
pub mod seeded;
pub mod shard;
pub mod sources;
pub mod split;
pub mod tokenizer;

pub use error::{DataError, Result};
