//! Helpers of moe-data's tests: the workspace's shared helpers
//! (`moe-testkit`: small corpora, configs and prepared directories), the
//! audit fixture and the fuzzers' building blocks (both also used by the
//! workspace's tests through `#[path]` modules in `tests/common/mod.rs`).
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};

pub use moe_testkit::{
    local_config, small_parquet, small_prepared, small_prepared_at, write_jsonl,
};

pub mod audit_fixture;
pub mod fuzz;

/// The workspace root (where `Cargo.lock` is).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|p| p.join("Cargo.lock").is_file())
        .unwrap_or(here)
        .to_path_buf()
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
