//! ANA-1, ANA-6, ANA-10, ANA-11, ANA-13 … ANA-17, ANA-30 end to end: a tiny MoE run
//! and a tiny dense run trained for a few steps on three small domains, then
//! `analyze` and `report` on them.

use std::path::{Path, PathBuf};

use moe_analysis::figures::Figure;
use moe_analysis::figures::heatmap::Heatmap;
use moe_analysis::figures::lines::LineChart;
use moe_analysis::{AnalyzeOptions, analyze, report};
use moe_data::prepared::PreparedData;
use moe_train::{RunConfig, RunDir, TrainOptions, train};

/// Prepares three small domains at block size 16 into `dir/data`.
fn small_data(dir: &Path) -> PathBuf {
    moe_testkit::small_prepared(
        dir,
        &[
            ("code", "def f(x):\n    # add one\n    return x + 1\n"),
            ("math", "Problem: 3 + 4 = ?\n\nSolution: 7"),
            ("prose", "The keeper of the lighthouse wrote home."),
        ],
        40,
        0.2,
    )
}

fn train_run(dir: &Path, data: &Path, name: &str, moe: bool) -> PathBuf {
    let text = moe_testkit::tiny_run_toml(name, moe);
    let config = RunConfig::parse(&text, Path::new("t.toml")).unwrap();
    let out = dir.join(name);
    let opts = TrainOptions {
        data: data.to_path_buf(),
        out: out.clone(),
        progress: false,
        device_name: "cpu".into(),
        device_memory: None,
        ..Default::default()
    };
    train::<moe_model::CpuAutodiff>(&config, &opts, &Default::default()).unwrap();
    out
}

fn options() -> AnalyzeOptions {
    AnalyzeOptions {
        permutations: 50,
        random_router_draws: 10,
        control_draws: 2,
        ..AnalyzeOptions::default()
    }
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (be(16), be(20))
}

// Checks: ANA-1, ANA-6, ANA-10, ANA-11, ANA-13, ANA-14, ANA-15, ANA-16, ANA-29, ANA-30, TRAIN-18
#[test]
fn ana_14_analyze_and_report_on_tiny_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let moe = train_run(tmp.path(), &data, "moe", true);
    let dense = train_run(tmp.path(), &data, "dense", false);
    let out = moe.join("analysis");
    let a = analyze(
        &RunDir::new(&moe),
        &PreparedData::open(&data).unwrap(),
        &out,
        &options(),
    )
    .unwrap();

    // ANA-1: every val block routed (15 tokens of each 16-token block), final/ used.
    let val = moe_data::prepared::PreparedData::open(&data).unwrap();
    for (d, name) in a.val.domains.iter().enumerate() {
        let blocks = val
            .load_shard(moe_data::split::Split::Val, name)
            .unwrap()
            .len()
            / 16;
        assert_eq!(a.val.tokens[d], 15 * blocks as u64, "{name}");
    }
    assert!(a.run.checkpoint.ends_with("final") && a.run.checkpoint_step == Some(4));
    // ANA-6: the step-0 router comes from the run's initial/ model.
    assert_eq!(a.baseline.source, "the run's initial model");
    assert_eq!(a.baseline.step, Some(0));
    let l = &a.layers[0];
    assert_eq!((l.layer, l.n_experts), (1, 4));
    assert!(l.specialization.baseline_nmi.is_some());
    let total: u64 = l.counts.iter().flatten().sum();
    assert_eq!(total, a.val.tokens.iter().sum::<u64>());
    // ANA-10: decoded top tokens.
    assert!(
        l.top_tokens
            .iter()
            .flatten()
            .all(|t| !t.text.is_empty() && t.count > 0)
    );
    // ANA-11: every non-EOS code token has a class.
    let types = l.code_token_types.as_ref().unwrap();
    let classified: u64 = types.counts.iter().flatten().sum();
    let code = a.val.domains.iter().position(|d| d == "code").unwrap();
    assert!(classified > 0 && classified <= a.val.tokens[code]);
    assert!(
        types.counts[0].iter().sum::<u64>() > 0,
        "no keyword found in `def … return`"
    );
    // ANA-30: the experts' weights against initial/ at every kept
    // checkpoint and the analysed model, in step order.
    let w = l.expert_weights.as_ref().unwrap();
    assert_eq!((w.reference_step, w.analysed_step), (0, Some(4)));
    let mut steps = vec![0];
    steps.extend(RunDir::new(&moe).checkpoints());
    steps.push(4);
    steps.dedup();
    assert!(steps.len() >= 3, "{steps:?}");
    assert_eq!(w.drift.iter().map(|p| p.step).collect::<Vec<_>>(), steps);
    assert!(w.drift[0].distance.iter().all(|d| d.abs() < 1e-12));
    assert_eq!(w.drift.last().unwrap().distance, w.distance);
    assert!(w.distance.iter().all(|&d| d > 0.0), "{:?}", w.distance);
    assert_eq!((w.similarity.len(), w.distance.len()), (4, 4));
    assert!(w.mean_similarity.is_some_and(|m| m < 1.0));
    // ANA-13: history from metrics.jsonl.
    assert_eq!(a.history.train.len(), 4);
    assert_eq!(a.history.layers[0].steps, vec![1, 2, 3, 4]);
    assert_eq!(a.history.eval.last().unwrap().step, 4);
    assert!(a.history.throughput.median_tok_per_s > 0.0);
    // ANA-29: saturation from the run's routing probe, against the final step.
    let sat = a.saturation.as_ref().expect("saturation of an MoE run");
    assert_eq!(sat.reference_step, 4);
    let s = &sat.layers[0];
    assert_eq!(
        (s.layer, s.steps.first(), s.steps.last()),
        (1, Some(&0), Some(&4))
    );
    assert_eq!(s.agreement.last(), Some(&1.0));
    assert!(out.join("figures/saturation.png").exists());

    // ANA-14: analysis.json parses back to the same value; figures are valid.
    let parsed = moe_analysis::analyze::read_json(&out.join("analysis.json")).unwrap();
    assert_eq!(parsed, a);
    // TRAIN-18: the saved analysis describes the run until its history,
    // model step or seed changes.
    let run = moe_train::RunDir::new(&moe);
    assert!(moe_analysis::analyze::is_current(&parsed, &run).unwrap());
    let mut stale = parsed.clone();
    stale.history.eval.pop();
    assert!(!moe_analysis::analyze::is_current(&stale, &run).unwrap());
    let mut stale = parsed.clone();
    stale.run.checkpoint_step = Some(3);
    assert!(!moe_analysis::analyze::is_current(&stale, &run).unwrap());
    let heat = Heatmap::of_layer(l, &a.val.domains, "moe").size();
    let line = LineChart::loss_curves(&a.history, "moe").size();
    let similarity = moe_analysis::figures::weights::similarity_heatmap(w, 1, "moe").size();
    for (stem, size) in [
        ("heatmap_layer1", heat),
        ("load_layer1", line),
        ("loss", line),
        ("expert_drift_layer1", line),
        ("expert_similarity_layer1", similarity),
    ] {
        let png = std::fs::read(out.join(format!("figures/{stem}.png"))).unwrap();
        assert_eq!(png_size(&png), size, "{stem}.png");
        let svg = std::fs::read_to_string(out.join(format!("figures/{stem}.svg"))).unwrap();
        let head = format!("<svg width=\"{}\" height=\"{}\"", size.0, size.1);
        assert!(
            svg.contains(&head) && svg.trim_end().ends_with("</svg>"),
            "{stem}.svg"
        );
        assert!(a.figures.contains(&format!("figures/{stem}.png")));
    }

    // ANA-15: the same inputs give the same bytes.
    let again = tmp.path().join("again");
    analyze(
        &RunDir::new(&moe),
        &PreparedData::open(&data).unwrap(),
        &again,
        &options(),
    )
    .unwrap();
    assert_eq!(
        std::fs::read(out.join("analysis.json")).unwrap(),
        std::fs::read(again.join("analysis.json")).unwrap()
    );

    // ANA-16: a report over an analysed MoE run and an unanalysed dense run.
    let rep = tmp.path().join("report");
    let summary = report(&[dense, moe.clone()], &rep).unwrap();
    let md = std::fs::read_to_string(&summary.path).unwrap();
    assert_eq!(md, summary.markdown);
    assert!(md.contains("| dense | 4 / 4 |") && md.contains("not analysed"));
    assert!(md.contains("The final evals are step-matched."));
    assert!(md.contains("Block 1 of moe: NMI(expert; domain) = "));
    assert!(md.contains("## Expert weights") && md.contains("moe block 1: at step 4 expert "));
    let link = "../moe/analysis/figures/heatmap_layer1.png";
    assert!(md.contains(link) && rep.join(link).exists());
    for f in &summary.figures {
        assert!(rep.join(f).exists(), "{f}");
    }
}

// Checks: ANA-17
#[test]
fn ana_17_missing_inputs_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty-run");
    std::fs::create_dir_all(&empty).unwrap();
    let err = analyze(
        &RunDir::new(&empty),
        &PreparedData::open(&small_data(tmp.path())).unwrap(),
        &tmp.path().join("o"),
        &options(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("empty-run"), "{err}");
    let err = report(std::slice::from_ref(&empty), &tmp.path().join("r")).unwrap_err();
    assert!(
        err.to_string().contains("empty-run") && err.to_string().contains("neither"),
        "{err}"
    );
}

// Checks: ANA-22, ANA-23, ANA-24
#[test]
fn ana_22_to_24_analysis_and_report_refuse_what_is_not_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let moe = train_run(tmp.path(), &data, "moe", true);
    let dense = train_run(tmp.path(), &data, "dense", false);
    let prepared = PreparedData::open(&data).unwrap();

    // ANA-22: another architecture's checkpoint, and other data.
    let wrong = AnalyzeOptions {
        checkpoint: Some(dense.join("final")),
        ..options()
    };
    let err = analyze(&RunDir::new(&moe), &prepared, &tmp.path().join("a"), &wrong)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not a checkpoint of run `moe`") && err.contains("dense"),
        "{err}"
    );
    let other_dir = tmp.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other =
        moe_testkit::small_prepared(&other_dir, &[("code", "x = 1"), ("math", "1 + 1")], 40, 0.2);
    let err = analyze(
        &RunDir::new(&moe),
        &PreparedData::open(&other).unwrap(),
        &tmp.path().join("b"),
        &options(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("trained on other data"), "{err}");

    // ANA-23: an analysis made before the run went on is left out, saying so.
    let partial = tmp.path().join("partial");
    let text = moe_testkit::tiny_run_toml("partial", true);
    let config = RunConfig::parse(&text, Path::new("t.toml")).unwrap();
    let mut opts = TrainOptions {
        data: data.clone(),
        out: partial.clone(),
        max_steps: Some(2),
        device_name: "cpu".into(),
        ..Default::default()
    };
    train::<moe_model::CpuAutodiff>(&config, &opts, &Default::default()).unwrap();
    let run = RunDir::new(&partial);
    analyze(&run, &prepared, &run.analysis_dir(), &options()).unwrap();
    opts.max_steps = None;
    opts.resume = moe_train::Resume::Checkpoint;
    train::<moe_model::CpuAutodiff>(&config, &opts, &Default::default()).unwrap();
    let summary = report(std::slice::from_ref(&partial), &tmp.path().join("r1")).unwrap();
    assert!(
        summary.markdown.contains("Stale analysis") && summary.markdown.contains("moe analyze"),
        "{}",
        summary.markdown
    );

    // ANA-24: one run given twice, or under two names.
    let err = report(&[moe.clone(), moe.join(".")], &tmp.path().join("r2"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("given twice"), "{err}");
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    for name in ["config.toml", "metrics.jsonl"] {
        std::fs::copy(moe.join(name), copy.join(name)).unwrap();
    }
    let err = report(&[moe, copy], &tmp.path().join("r3"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("would count as two"), "{err}");
}
