//! DATA-10, DATA-11, DATA-13: what `prepare` refuses before any work — a
//! `--force` that would delete something other than prepared data, a
//! thread count it cannot run, config values that read nothing or compare
//! with NaN.

mod common;

use std::path::Path;

use common::{entries, local_config, write_jsonl};
use moe_data::config::DataConfig;
use moe_data::prepare::{MAX_THREADS, PrepareOptions, prepare};

/// A config over `corpus/a.jsonl` in `dir`, written to `dir/<config>`.
fn setup(dir: &Path, config: &str) -> std::path::PathBuf {
    let rows: Vec<_> = (0..40)
        .map(|i| serde_json::json!({ "text": format!("document {i} with a few words in it") }))
        .collect();
    write_jsonl(&dir.join("corpus/a.jsonl"), &rows);
    let path = dir.join(config);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text = local_config(8, "none", &[("a", "corpus/a.jsonl")], "");
    let text = text.replace(
        "corpus/a.jsonl",
        &dir.join("corpus/a.jsonl").to_string_lossy(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn run(config: &Path, out: &Path, force: bool, threads: Option<usize>) -> moe_data::Result<()> {
    let data = DataConfig::load(config)?;
    let opts = PrepareOptions {
        out: out.to_path_buf(),
        force,
        threads,
        ..Default::default()
    };
    prepare(&data, config, &opts).map(drop)
}

// Checks: DATA-10, DATA-4
#[test]
fn data_10_force_replaces_only_prepared_data() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(tmp.path(), "data.toml");
    let out = tmp.path().join("out");
    run(&config, &out, false, Some(1)).unwrap();
    // A prepared directory is replaced.
    run(&config, &out, true, Some(1)).unwrap();
    assert!(out.join("manifest.json").is_file());

    // A directory of notes (no manifest) is not.
    let notes = tmp.path().join("notes");
    std::fs::create_dir_all(&notes).unwrap();
    std::fs::write(notes.join("ideas.md"), "keep me").unwrap();
    let err = run(&config, &notes, true, Some(1)).unwrap_err().to_string();
    assert!(
        err.contains("notes") && err.contains("manifest.json"),
        "{err}"
    );
    assert_eq!(entries(&notes), ["ideas.md"]);

    // A file is not.
    let file = tmp.path().join("file.txt");
    std::fs::write(&file, "x").unwrap();
    let err = run(&config, &file, true, Some(1)).unwrap_err().to_string();
    assert!(err.contains("not a directory"), "{err}");

    // A foreign manifest.json is not ours.
    std::fs::write(notes.join("manifest.json"), "{\"format\": \"other\"}").unwrap();
    let err = run(&config, &notes, true, Some(1)).unwrap_err().to_string();
    assert!(err.contains("manifest.json"), "{err}");
    assert_eq!(entries(&notes), ["ideas.md", "manifest.json"]);
}

// Checks: DATA-10
#[test]
fn data_10_force_refuses_a_directory_holding_the_config_or_a_source() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(tmp.path(), "data.toml");
    let out = tmp.path().join("out");
    run(&config, &out, false, Some(1)).unwrap();
    // The config moved inside the prepared directory.
    let inner = out.join("data.toml");
    std::fs::copy(&config, &inner).unwrap();
    let err = run(&inner, &out, true, Some(1)).unwrap_err().to_string();
    assert!(err.contains("contains the config"), "{err}");
    assert!(inner.is_file() && out.join("manifest.json").is_file());
    std::fs::remove_file(&inner).unwrap();
    // The corpus folder, with a manifest planted, as the output.
    let corpus = tmp.path().join("corpus");
    std::fs::copy(out.join("manifest.json"), corpus.join("manifest.json")).unwrap();
    let err = run(&config, &corpus, true, Some(1))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("contains the source file") && err.contains("a.jsonl"),
        "{err}"
    );
    assert_eq!(entries(&corpus), ["a.jsonl", "manifest.json"]);
    // The parent of everything, through a relative path with `..`.
    let err = run(&config, &out.join(".."), true, Some(1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--force"), "{err}");
    assert!(config.is_file());
}

// Checks: DATA-11
#[test]
fn data_11_threads_zero_and_too_many_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(tmp.path(), "data.toml");
    for threads in [0, MAX_THREADS + 1, 20_000] {
        let out = tmp.path().join(format!("out{threads}"));
        let err = run(&config, &out, false, Some(threads))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--threads:"), "{err}");
        assert!(!out.exists());
    }
    assert_eq!(entries(tmp.path()), ["corpus", "data.toml"]);
    run(&config, &tmp.path().join("ok"), false, Some(2)).unwrap();
}

// Checks: DATA-13, DATA-1
#[test]
fn data_13_reading_nothing_and_nan_ratios_are_config_errors() {
    let base = local_config(8, "none", &[("a", "a.jsonl")], "");
    for (extra, key) in [
        ("tokens_per_domain = 0", "tokens_per_domain"),
        ("imbalance_warn_ratio = nan", "imbalance_warn_ratio"),
        ("imbalance_warn_ratio = inf", "imbalance_warn_ratio"),
        ("imbalance_warn_ratio = 0.5", "imbalance_warn_ratio"),
    ] {
        let text = base.replace("[pipeline]\n", &format!("[pipeline]\n{extra}\n"));
        let err = DataConfig::parse(&text, Path::new("bad.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.toml") && err.contains(key),
            "{extra}: {err}"
        );
    }
    let text = base.replace("name = \"a\"\n", "name = \"a\"\ntokens = 0\n");
    let err = DataConfig::parse(&text, Path::new("bad.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("domains[0].tokens = 0"), "{err}");
    let fine = base.replace("[pipeline]\n", "[pipeline]\nimbalance_warn_ratio = 1.0\n");
    DataConfig::parse(&fine, Path::new("ok.toml")).unwrap();
}
