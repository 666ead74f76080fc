//! Helpers shared by the workspace tests: the data helpers of
//! `crates/moe-data/tests/common` (one place), running the `moe` binary and
//! tiny run configs.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

#[path = "../../crates/moe-data/tests/common/mod.rs"]
mod data;
pub use data::*;

/// Runs the `moe` binary with `args` in `dir`.
pub fn moe(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moe"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// A tiny run config (width 16, 2 blocks; MoE block 1 of 4 experts when
/// `moe`), 4 steps with eval and checkpoints every 2: the runs of the
/// analysis and study tests.
pub fn tiny_run_toml(name: &str, moe: bool) -> String {
    let moe_section = if moe {
        "[model.moe]\nlayers = [1]\nn_experts = 4\ntop_k = 1\n"
    } else {
        ""
    };
    let router = if moe {
        "lb_coef = 0.01\nz_coef = 0.001\n"
    } else {
        ""
    };
    format!(
        "[run]\nname = \"{name}\"\nseed = 3\n[model]\ninit = \"scratch\"\npreset = \"tiny\"\nupcycle_noise = 0.01\n[model.dims]\nd_model = 16\nn_layer = 2\nn_head = 2\nn_positions = 32\n{moe_section}[train]\nsteps = 4\nmicro_batch = 4\nlr = 3e-3\n{router}\n[eval]\nevery = 2\nmax_blocks = 4\n[log]\nevery = 1\n[checkpoint]\nevery = 2\nkeep = 2\n"
    )
}
