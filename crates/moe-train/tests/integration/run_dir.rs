//! TRAIN-18: the run directory as one type — its status through a run's
//! life, and no other code of the workspace naming its files.

use crate::common;

use std::path::Path;

use common::{options, run, run_config, small_data, small_data_with, snapshot};
use moe_data::prepared::PreparedData;
use moe_train::{DataIdentity, RunDir, RunStatus, train};

/// The error of a `train` that must be refused.
fn refusal(
    config: &moe_train::RunConfig,
    data: &Path,
    out: &Path,
    resume: bool,
    max_steps: Option<u64>,
) -> String {
    train::<common::B>(
        config,
        &options(data, out, resume, max_steps),
        &Default::default(),
    )
    .unwrap_err()
    .to_string()
}

fn identity(data: &Path) -> DataIdentity {
    DataIdentity::of(&PreparedData::open(data).unwrap()).unwrap()
}

// Checks: TRAIN-21
#[test]
fn train_21_a_run_knows_its_data_and_refuses_to_resume_on_other_data() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let other_dir = tmp.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = small_data_with(&other_dir, " (other)");
    let config = run_config(true, "", 8);
    let out = tmp.path().join("run");
    run(&config, &data, &out, false, Some(3));
    let dir = RunDir::new(&out);
    assert_eq!(dir.data_identity().unwrap(), Some(identity(&data)));
    assert_eq!(
        dir.status(&config, &identity(&other)).unwrap(),
        RunStatus::OtherData {
            recorded: identity(&data).manifest_sha256
        }
    );
    let before = snapshot(&out);
    let err = refusal(&config, &other, &out, true, None);
    assert!(err.contains("other data"), "{err}");
    assert!(err.contains(&identity(&data).manifest_sha256), "{err}");
    assert_eq!(snapshot(&out), before, "a refused resume changed the run");
    // The same data copied elsewhere is the same data.
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(copy.join("train")).unwrap();
    std::fs::create_dir_all(copy.join("val")).unwrap();
    for entry in walk(&data) {
        let rel = entry.strip_prefix(&data).unwrap();
        std::fs::create_dir_all(copy.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(&entry, copy.join(rel)).unwrap();
    }
    assert_eq!(
        dir.status(&config, &identity(&copy)).unwrap(),
        RunStatus::Partial {
            checkpoint: Some(3)
        }
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

// Checks: TRAIN-22
#[test]
fn train_22_a_held_run_directory_refuses_a_second_trainer() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let config = run_config(true, "", 4);
    let out = tmp.path().join("run");
    let dir = RunDir::new(&out);
    let mut held = dir.lock().unwrap();
    held.claim().unwrap();
    let err = dir.lock().unwrap_err().to_string();
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    let before = snapshot(&out);
    let err = refusal(&config, &data, &out, false, None);
    assert!(err.contains("another moe process"), "{err}");
    assert_eq!(snapshot(&out), before);
    drop(held);
    // Released (as by a killed holder): the run trains.
    run(&config, &data, &out, false, None);
    assert!(dir.has_final());
}

// Checks: TRAIN-22, TRAIN-23
#[test]
fn train_23_a_refused_start_leaves_no_directory_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let config = run_config(true, "", 4);
    let out = tmp.path().join("never");
    let err = refusal(&config, &data, &out, true, None);
    assert!(
        err.contains("nothing to resume") && err.contains("no run is there"),
        "{err}"
    );
    assert!(!out.exists(), "a refused start created {}", out.display());
    // A run with no checkpoint yet cannot be resumed either.
    run(&config, &data, &out, false, Some(1));
    std::fs::remove_dir_all(out.join("checkpoints")).unwrap(); // as if killed before its first
    let before = snapshot(&out);
    let err = refusal(&config, &data, &out, true, None);
    assert!(err.contains("no complete checkpoint"), "{err}");
    assert_eq!(snapshot(&out), before);
}

// Checks: TRAIN-18
#[test]
fn train_18_status_follows_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let config = run_config(true, "", 8);
    let out = tmp.path().join("run");
    let dir = RunDir::new(&out);
    let id = identity(&data);
    assert_eq!(dir.status(&config, &id).unwrap(), RunStatus::Empty);

    // Interrupted after 6 steps: partial at its last checkpoint (every 3).
    run(&config, &data, &out, false, Some(6));
    assert_eq!(
        dir.status(&config, &id).unwrap(),
        RunStatus::Partial {
            checkpoint: Some(6)
        }
    );
    assert!(!dir.has_final() && dir.has_initial());
    assert_eq!(dir.trained_model(8), Some((dir.checkpoint_dir(6), 6)));

    // Another config is not this run, whatever its progress.
    let mut other = config.clone();
    other.train.lr *= 2.0;
    assert_eq!(dir.status(&other, &id).unwrap(), RunStatus::OtherConfig);

    // Resumed to the end: complete, with its final model.
    run(&config, &data, &out, true, None);
    assert_eq!(
        dir.status(&config, &id).unwrap(),
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
    match RunDir::new(&out).status(&config, &identity(&data)).unwrap() {
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

// Checks: TRAIN-23
#[test]
fn train_23_values_training_cannot_use_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let one = moe_testkit::small_prepared_at(tmp.path(), &[("a", "some text")], 20, 0.2, 1);
    let out = tmp.path().join("run");
    let err = train::<common::B>(
        &run_config(false, "", 2),
        &options(&one, &out, false, None),
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("block_size 1") && err.contains("at least 2"),
        "{err}"
    );
    assert!(!out.exists());
    let base = "[run]\nname = \"t\"\n[model]\ninit = \"scratch\"\npreset = \"tiny\"\n";
    for (extra, want) in [
        (
            "upcycle_noise = nan\n[model.moe]\nlayers = [1]\nn_experts = 2\ntop_k = 1\n",
            "upcycle_noise",
        ),
        (
            "upcycle_noise = -0.1\n[model.moe]\nlayers = [1]\nn_experts = 2\ntop_k = 1\n",
            "upcycle_noise",
        ),
        (
            "[model.moe]\nlayers = []\nn_experts = 2\ntop_k = 1\n",
            "at least one layer",
        ),
    ] {
        let text = format!("{base}{extra}[train]\nsteps = 2\nmicro_batch = 1\nlr = 1e-3\n");
        let err = moe_train::RunConfig::parse(&text, Path::new("bad.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.toml") && err.contains(want),
            "{extra}: {err}"
        );
    }
}
