//! Helpers of the binary's tests: running the `moe` binary, plus the
//! workspace's shared test helpers (`moe-testkit`).
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use moe_testkit::{
    local_config, small_parquet, small_prepared, small_prepared_at, tiny_run_toml, write_jsonl,
};

/// Runs the `moe` binary with `args` in `dir`.
pub fn moe(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moe"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Names of the entries of `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}
