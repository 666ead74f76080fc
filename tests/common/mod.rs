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

/// Prepares `rows` documents per domain, `"{base} #{i}"` each, at block size
/// 16 into `dir/data` (the tiny corpus of the training and analysis tests).
pub fn small_prepared(dir: &Path, domains: &[(&str, &str)], rows: usize, val: f64) -> PathBuf {
    let files: Vec<(&str, String)> = domains
        .iter()
        .map(|(name, base)| {
            let docs: Vec<serde_json::Value> = (0..rows)
                .map(|i| serde_json::json!({ "text": format!("{base} #{i}") }))
                .collect();
            let file = format!("{name}.jsonl");
            write_jsonl(&dir.join(&file), &docs);
            (*name, file)
        })
        .collect();
    let listed: Vec<(&str, &str)> = files.iter().map(|(n, f)| (*n, f.as_str())).collect();
    let config = local_config(16, "tokens", &listed, "")
        .replace("val_fraction = 0.2", &format!("val_fraction = {val}"))
        .replace("seed = 7\n", "");
    let path = dir.join("data.toml");
    std::fs::write(&path, config).unwrap();
    let out = dir.join("data");
    let data_config = moe_data::config::DataConfig::load(&path).unwrap();
    let opts = moe_data::prepare::PrepareOptions {
        out: out.clone(),
        ..Default::default()
    };
    moe_data::prepare::prepare(&data_config, &path, &opts).unwrap();
    out
}
