//! The moe-model integration tests, one binary (each module was a test
//! binary of its own; one binary instantiates the generic model code once
//! instead of once per file, which was most of their build time).
//!
//! `cargo test --release -p moe-model --test integration [MODULE::]`

mod balance_bias;
mod checkpoint;
mod common;
mod dispatch;
mod losses;
mod masking;
mod moe_layer;
mod parity;
mod precision;
