//! CLI-4: the study as a library — runs side by side (`--jobs`) give the
//! same outputs as one after the other, and `parallel_map` keeps order and
//! stops at the first error.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use moe_data::sources::HubOptions;
use moe_emergence::backend::{Device, DeviceSlot};
use moe_emergence::runs::parallel_map;
use moe_emergence::study::{StudyOptions, run_study};
use moe_train::RunDir;
use moe_train::metrics::Event;

/// [`common::tiny_run_toml`] written to `dir/<name>.toml`.
fn config(dir: &Path, name: &str, moe: bool) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, common::tiny_run_toml(name, moe)).unwrap();
    path
}

/// Every event of a run with its wall-clock fields zeroed.
fn events_without_time(dir: &Path) -> Vec<Event> {
    RunDir::new(dir)
        .events()
        .unwrap()
        .into_iter()
        .map(|mut e| {
            if let Event::Train { tok_per_s, .. } = &mut e {
                *tok_per_s = 0.0;
            }
            e
        })
        .collect()
}

// Checks: CLI-4
#[test]
fn cli_4_runs_side_by_side_equal_runs_one_after_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let data_config = {
        common::small_prepared(
            tmp.path(),
            &[
                ("code", "def f(x):\n    return x + 1\n"),
                ("math", "Problem: 3 + 4 = ?\n\nSolution: 7"),
                ("prose", "The keeper of the lighthouse wrote home."),
            ],
            40,
            0.2,
        );
        tmp.path().join("data.toml")
    };
    let configs = vec![
        config(tmp.path(), "dense", false),
        config(tmp.path(), "moe", true),
    ];
    let options = |out: &str, jobs: usize| StudyOptions {
        data_config: data_config.clone(),
        configs: configs.clone(),
        out: tmp.path().join(out),
        seeds: 2,
        seeds_for: Vec::new(),
        max_steps: None,
        permutations: 20,
        devices: vec![DeviceSlot::default_of(Device::Cpu); jobs],
        jobs,
        hub: HubOptions {
            offline: true,
            ..Default::default()
        },
        progress: false,
    };
    let one = run_study(&options("one", 1), Instant::now()).unwrap();
    let two = run_study(&options("two", 2), Instant::now()).unwrap();
    assert_eq!(one.plans.len(), 4, "2 configs × 2 seeds");
    assert_eq!(one.analyses.len(), 2, "the MoE runs");
    for (a, b) in one.plans.iter().zip(&two.plans) {
        assert_eq!(
            events_without_time(&a.out),
            events_without_time(&b.out),
            "{}",
            a.out.display()
        );
        // The trained weights (final/, or the checkpoint of a collapse stop).
        let weights = |dir: &Path| {
            let (model, _) = RunDir::new(dir).trained_model(4).expect("a trained model");
            std::fs::read(model.join("model.safetensors")).unwrap()
        };
        assert!(weights(&a.out) == weights(&b.out), "{}", a.out.display());
        assert_eq!(
            RunDir::new(&a.out).config().unwrap(),
            RunDir::new(&b.out).config().unwrap()
        );
    }
    for (a, b) in one.analyses.iter().zip(&two.analyses) {
        assert_eq!(a.layers, b.layers, "{}", a.run.name);
    }
    // ATLAS-1: the same runs give the same atlas, byte for byte.
    let page = |s: &moe_emergence::study::Study| std::fs::read(&s.atlas.path).unwrap();
    assert!(page(&one) == page(&two), "the atlas depends on --jobs");
}

// Checks: CLI-4
#[test]
fn cli_4_parallel_map_keeps_order_and_stops_at_the_first_error() {
    let items: Vec<u32> = (0..20).collect();
    for jobs in [1, 2, 5] {
        let out = parallel_map(&items, jobs, |x| Ok(x * 2)).unwrap();
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
    }
    let started = std::sync::atomic::AtomicUsize::new(0);
    let err = parallel_map(&items, 1, |x| {
        started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if *x == 3 {
            anyhow::bail!("item {x} failed")
        }
        Ok(*x)
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "item 3 failed");
    assert_eq!(
        started.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "nothing after the failed item starts"
    );
}

// Checks: TRAIN-22
#[test]
fn train_22_a_study_listing_a_run_twice_is_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let moe = config(tmp.path(), "moe", true);
    let options = StudyOptions {
        data_config: tmp.path().join("unused.toml"),
        configs: vec![moe.clone(), moe],
        out: tmp.path().join("study"),
        seeds: 1,
        seeds_for: Vec::new(),
        max_steps: None,
        permutations: 20,
        devices: vec![DeviceSlot::default_of(Device::Cpu); 2],
        jobs: 2,
        hub: HubOptions::default(),
        progress: false,
    };
    let err = moe_emergence::study::plan(&options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("listed twice"), "{err}");
    assert!(!tmp.path().join("study").exists());
}
