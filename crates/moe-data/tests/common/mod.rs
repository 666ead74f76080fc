//! Helpers of moe-data's tests: the workspace's shared helpers
//! (`moe-testkit`: small corpora, configs and prepared directories), the
//! audit fixture and the fuzzers' building blocks (both also used by the
//! workspace's tests through `#[path]` modules in `tests/common/mod.rs`).
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};

pub use moe_testkit::{
    entries, local_config, repo_root, small_parquet, small_prepared, small_prepared_at, write_jsonl,
};

pub mod audit_fixture;
pub mod fuzz;
