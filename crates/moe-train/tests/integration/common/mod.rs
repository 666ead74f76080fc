//! Shared fixtures of the moe-train tests: a small prepared dataset, a tiny
//! run config, running and reading a run.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use moe_data::config::DataConfig;
use moe_data::prepare::{PrepareOptions, prepare};
use moe_model::CpuAutodiff;
use moe_train::metrics::{Event, read_events};
use moe_train::{Resume, RunConfig, TrainOptions, train};

pub type B = CpuAutodiff;

// The `moe` binary's allocator (crates/moe-alloc, mimalloc that keeps freed
// memory): glibc maps every buffer over 32 MB afresh, so large tensors would
// page-fault on every step.
#[global_allocator]
static GLOBAL: moe_alloc::Allocator = moe_alloc::Allocator;

/// Prepares three small domains at block size 16 into `dir/data`.
pub fn small_data(dir: &Path) -> PathBuf {
    small_data_with(dir, "")
}

/// [`small_data`] with `extra` appended to every document (another vocabulary).
pub fn small_data_with(dir: &Path, extra: &str) -> PathBuf {
    let texts = [
        ("code", "def f(x):\n    return x + 1\n"),
        ("math", "Problem: 3 + 4 = ?\n\nSolution: 7"),
        ("prose", "The keeper of the lighthouse wrote home."),
    ];
    let mut config = String::from("[pipeline]\nblock_size = 16\nval_fraction = 0.1\n");
    for (name, base) in texts {
        let rows: String = (0..60)
            .map(|i| {
                format!(
                    "{}\n",
                    serde_json::json!({ "text": format!("{base} #{i}{extra}") })
                )
            })
            .collect();
        std::fs::write(dir.join(format!("{name}.jsonl")), rows).unwrap();
        config += &format!(
            "[[domains]]\nname = \"{name}\"\n[[domains.sources]]\nkind = \"local\"\npath = \"{name}.jsonl\"\nformat = \"jsonl\"\n"
        );
    }
    let path = dir.join("data.toml");
    std::fs::write(&path, &config).unwrap();
    let out = dir.join("data");
    prepare(
        &DataConfig::load(&path).unwrap(),
        &path,
        &PrepareOptions {
            out: out.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    out
}

pub fn run_config(moe: bool, extra_train: &str, steps: u64) -> RunConfig {
    let moe_section = if moe {
        "[model.moe]\nlayers = [1]\nn_experts = 4\ntop_k = 1\n"
    } else {
        ""
    };
    let router = if moe {
        "lb_coef = 0.01\nz_coef = 0.001\nrouter_noise_std = 0.1\n"
    } else {
        ""
    };
    let text = format!(
        "[run]\nname = \"t\"\nseed = 3\n[model]\ninit = \"scratch\"\npreset = \"tiny\"\n[model.dims]\nd_model = 16\nn_layer = 2\nn_head = 2\nn_positions = 32\n{moe_section}[train]\nsteps = {steps}\nmicro_batch = 2\ngrad_accum = 2\nlr = 3e-3\n{router}{extra_train}\n[eval]\nevery = 4\nmax_blocks = 4\n[log]\nevery = 2\n[checkpoint]\nevery = 3\nkeep = 2\n"
    );
    RunConfig::parse(&text, Path::new("t.toml")).unwrap()
}

pub fn run(
    config: &RunConfig,
    data: &Path,
    out: &Path,
    resume: bool,
    max_steps: Option<u64>,
) -> moe_train::TrainSummary {
    train::<B>(
        config,
        &options(data, out, resume, max_steps),
        &Default::default(),
    )
    .unwrap()
}

pub fn train_losses(out: &Path) -> Vec<(u64, f64)> {
    read_events(&out.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Train { step, loss, .. } => Some((step, loss)),
            _ => None,
        })
        .collect()
}

/// Every file under `dir` with its bytes, sorted by path.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Train options for a quiet CPU run.
pub fn options(data: &Path, out: &Path, resume: bool, max_steps: Option<u64>) -> TrainOptions {
    TrainOptions {
        data: data.to_path_buf(),
        out: out.to_path_buf(),
        resume: if resume {
            Resume::Checkpoint
        } else {
            Resume::No
        },
        max_steps,
        progress: false,
        device_name: "cpu".into(),
        device_memory: None,
    }
}
