//! Helpers of the binary's tests: running the `moe` binary, plus the
//! workspace's shared test helpers (`moe-testkit`).
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use moe_testkit::{
    entries, local_config, repo_root, small_parquet, small_prepared, small_prepared_at,
    tiny_run_toml, write_jsonl,
};

/// The audit fixture, shared with moe-data's audit tests.
#[path = "../../crates/moe-data/tests/common/audit_fixture.rs"]
pub mod audit_fixture;
/// The fuzzers' building blocks, shared with moe-data's fuzz tests.
#[path = "../../crates/moe-data/tests/common/fuzz.rs"]
pub mod fuzz;

/// Runs the `moe` binary with `args` in `dir`.
pub fn moe(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moe"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}
