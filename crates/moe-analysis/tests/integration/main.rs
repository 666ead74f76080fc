//! The moe-analysis tests that train or run models, one binary (each
//! module was a test binary of its own; one binary instantiates the generic
//! model and training code once instead of once per file). The report's
//! snapshot test and the pure-metric tests stay binaries of their own.
//!
//! `cargo test --release -p moe-analysis --test integration [MODULE::]`

// mimalloc that keeps freed memory: large tensors are not page-faulted in
// again on every step (crates/moe-alloc).
#[global_allocator]
static GLOBAL: moe_alloc::Allocator = moe_alloc::Allocator;

mod analysis_causal;
mod analysis_e2e;
mod pretrained_baseline;
