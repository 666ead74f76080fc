//! TRAIN-18: the run directory as one type — its status through a run's
//! life, and no other code of the workspace naming its files.

mod common;

use std::path::Path;

use common::{run, run_config, small_data};
use moe_train::{RunDir, RunStatus};

// Checks: TRAIN-18
#[test]
fn train_18_status_follows_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let config = run_config(true, "", 8);
    let out = tmp.path().join("run");
    let dir = RunDir::new(&out);
    assert_eq!(dir.status(&config).unwrap(), RunStatus::Empty);

    // Interrupted after 6 steps: partial at its last checkpoint (every 3).
    run(&config, &data, &out, false, Some(6));
    assert_eq!(
        dir.status(&config).unwrap(),
        RunStatus::Partial {
            checkpoint: Some(6)
        }
    );
    assert!(!dir.has_final() && dir.has_initial());
    assert_eq!(dir.trained_model(8), Some((dir.checkpoint_dir(6), 6)));

    // Another config is not this run, whatever its progress.
    let mut other = config.clone();
    other.train.lr *= 2.0;
    assert_eq!(dir.status(&other).unwrap(), RunStatus::OtherConfig);

    // Resumed to the end: complete, with its final model.
    run(&config, &data, &out, true, None);
    assert_eq!(
        dir.status(&config).unwrap(),
        RunStatus::Complete { steps: 8 }
    );
    assert_eq!(dir.trained_model(8), Some((dir.final_dir(), 8)));
    assert_eq!(dir.config().unwrap(), config);
    assert!(dir.events().unwrap().len() > 4);
}

// Checks: TRAIN-18
#[test]
fn train_18_a_collapse_stop_is_a_result() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let mut config = run_config(true, "", 8);
    config.collapse.threshold = 1e-9;
    config.collapse.checks = 2;
    let out = tmp.path().join("run");
    run(&config, &data, &out, false, None);
    match RunDir::new(&out).status(&config).unwrap() {
        RunStatus::Stopped { step, reason } => {
            assert_eq!(step, 4, "two log checks, every 2 steps");
            assert!(reason.is_result(), "{reason:?}");
        }
        other => panic!("{other:?}"),
    }
}

/// `.rs` files under `dir`, recursively, skipping test folders.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tests") {
                sources(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

// Checks: TRAIN-18
#[test]
fn train_18_only_run_dir_names_the_files_of_a_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    sources(&root.join("crates"), &mut files);
    assert!(files.len() > 50, "found only {} sources", files.len());
    let names = [
        "\"metrics.jsonl\"",
        "\"config.toml\"",
        "\"checkpoints\"",
        "\"final\"",
        "\"initial\"",
        "\"vocab.json\"",
    ];
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| !f.ends_with("moe-train/src/run_dir.rs"))
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            names
                .iter()
                .filter(|n| text.contains(*n))
                .map(|n| format!("{} names {n}", f.display()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(offenders.is_empty(), "{offenders:#?}");
}
