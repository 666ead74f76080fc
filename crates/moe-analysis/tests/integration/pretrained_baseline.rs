//! TRAIN-15, ANA-6: a pretrained MoE run, end to end on a local HF-format
//! directory — the run saves its step-0 model in `initial/`, analysis uses
//! it after the pretrained weights are gone, and a run without it labels
//! the checkpoint that stands in for step 0 with its real step.

use std::path::{Path, PathBuf};

use moe_analysis::{AnalyzeOptions, analyze};
use moe_data::prepared::PreparedData;
use moe_model::{CpuAutodiff, CpuBackend, Gpt2, ModelConfig, save_model_dir};
use moe_train::{RunConfig, RunDir, TrainOptions, train};

fn small_data(dir: &Path) -> PathBuf {
    moe_testkit::small_prepared(
        dir,
        &[
            ("code", "def f(x):\n    return x + 1\n"),
            ("math", "Problem: 3 + 4 = ?\n\nSolution: 7"),
            ("prose", "The keeper of the lighthouse wrote home."),
        ],
        40,
        0.2,
    )
}

fn options() -> AnalyzeOptions {
    AnalyzeOptions {
        permutations: 20,
        random_router_draws: 5,
        control_draws: 2,
        figures: false,
        ..AnalyzeOptions::default()
    }
}

// Checks: TRAIN-15, ANA-6
#[test]
fn train_15_pretrained_run_keeps_its_step_0_model_for_analysis() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    // "Pretrained" weights: a seeded tiny GPT-2 saved in HF layout.
    let hf = tmp.path().join("hf");
    let dense = ModelConfig::preset("tiny").unwrap();
    save_model_dir(
        &Gpt2::<CpuBackend>::init(&dense, 11, &Default::default()),
        &dense,
        &hf,
    )
    .unwrap();
    let text = format!(
        "[run]\nname = \"moe-pre\"\nseed = 4\n[model]\ninit = \"pretrained\"\npreset = \"tiny\"\nhf_dir = {hf:?}\nupcycle_noise = 0.01\n[model.moe]\nlayers = [2, 3]\nn_experts = 4\ntop_k = 1\n[train]\nsteps = 6\nmicro_batch = 2\nlr = 1e-3\nlb_coef = 0.01\nz_coef = 0.001\n[eval]\nevery = 3\nmax_blocks = 2\n[log]\nevery = 1\n[checkpoint]\nevery = 2\nkeep = 1\n"
    );
    let config = RunConfig::parse(&text, Path::new("moe-pre.toml")).unwrap();
    let run = tmp.path().join("run");
    let opts = TrainOptions {
        data: data.clone(),
        out: run.clone(),
        progress: false,
        device_name: "cpu".into(),
        device_memory: None,
        ..Default::default()
    };
    train::<CpuAutodiff>(&config, &opts, &Default::default()).unwrap();
    assert!(run.join("initial/model.safetensors").is_file());
    assert_eq!(
        moe_train::RunDir::new(&run).checkpoints(),
        [6],
        "older checkpoints pruned"
    );

    // With the weights at hand and no initial/: the rebuilt initial model.
    let initial = run.join("initial");
    let aside = tmp.path().join("initial-aside");
    std::fs::rename(&initial, &aside).unwrap();
    let rebuilt = analyze(
        &RunDir::new(&run),
        &PreparedData::open(&data).unwrap(),
        &tmp.path().join("a1"),
        &options(),
    )
    .unwrap();
    assert_eq!(rebuilt.baseline.source, "rebuilt initial model");
    // The weights are gone (as on a machine without the Hub): initial/ gives
    // the same step-0 router.
    std::fs::rename(&aside, &initial).unwrap();
    std::fs::remove_dir_all(&hf).unwrap();
    let saved = analyze(
        &RunDir::new(&run),
        &PreparedData::open(&data).unwrap(),
        &tmp.path().join("a2"),
        &options(),
    )
    .unwrap();
    assert_eq!(saved.baseline.step, Some(0));
    assert_eq!(saved.baseline.source, "the run's initial model");
    for (a, b) in saved.layers.iter().zip(&rebuilt.layers) {
        assert_eq!(a.specialization.baseline_nmi, b.specialization.baseline_nmi);
    }
    // Without initial/ and without the weights: the earliest kept checkpoint,
    // labelled with its step everywhere.
    std::fs::remove_dir_all(&initial).unwrap();
    let out = tmp.path().join("a3");
    let fallback = analyze(
        &RunDir::new(&run),
        &PreparedData::open(&data).unwrap(),
        &out,
        &options(),
    )
    .unwrap();
    assert_eq!(fallback.baseline.step, Some(6));
    assert!(
        fallback
            .baseline
            .note
            .as_deref()
            .unwrap()
            .contains("step 6")
    );
    let runs = vec![moe_analysis::report::ReportRun {
        analysis: fallback,
        analyzed: true,
        figures_base: None,
        stale: None,
    }];
    let md = moe_analysis::report::render::render(&runs, &[]);
    assert!(
        md.contains("(step 6)") && md.contains("step-6 router"),
        "{md}"
    );
    assert!(!md.contains("step-0 router's"), "{md}");
}
