//! Helpers shared by the workspace tests: writing small corpora and configs,
//! running the `moe` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Writes `rows` (one JSON object each) as a jsonl file.
pub fn write_jsonl(path: &Path, rows: &[serde_json::Value]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// A config with one local jsonl source per `(domain, file)`, field `text`.
pub fn local_config(
    block_size: usize,
    balance: &str,
    domains: &[(&str, &str)],
    extra_pipeline: &str,
) -> String {
    let mut s = format!(
        "[pipeline]\nblock_size = {block_size}\nseed = 7\nval_fraction = 0.2\nbalance = \"{balance}\"\n{extra_pipeline}\n"
    );
    for (name, file) in domains {
        s += &format!(
            "\n[[domains]]\nname = \"{name}\"\n[[domains.sources]]\nkind = \"local\"\npath = \"{file}\"\nformat = \"jsonl\"\n"
        );
    }
    s
}

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
