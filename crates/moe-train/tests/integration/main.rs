//! The moe-train integration tests, one binary (each module was a test
//! binary of its own; one binary instantiates the generic training code
//! once instead of once per file, which was most of their build time).
//!
//! `cargo test --release -p moe-train --test integration [MODULE::]`

mod common;
mod run_dir;
mod training;
mod trust;
