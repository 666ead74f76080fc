//! TRAIN-*: schedule, accumulation, LB gradient, collapse detector, metrics
//! schema, resume bit-exactness and a falling loss, on a tiny model.

use crate::common;

use std::path::Path;

use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use common::{B, run, run_config, small_data, train_losses};
use moe_model::{ForwardOptions, Gpt2, ModelConfig};
use moe_train::collapse::CollapseDetector;
use moe_train::losses::batch_losses;
use moe_train::metrics::{Event, StopReason, read_events};
use moe_train::sampler::MicroBatch;
use moe_train::schedule::lr_at;
use moe_train::step::step_gradients;
use moe_train::{RunConfig, TrainOptions, train};

// Checks: TRAIN-2
#[test]
fn train_2_warmup_then_cosine() {
    let lr = |s| lr_at(s, 100, 1.0, 0.1, 0.1);
    assert!((lr(0) - 0.1).abs() < 1e-12);
    assert!((lr(9) - 1.0).abs() < 1e-12);
    assert!((lr(10) - 1.0).abs() < 1e-12);
    assert!((lr(55) - (0.1 + 0.9 * 0.5)).abs() < 1e-12);
    assert!((lr(100) - 0.1).abs() < 1e-12);
    assert!((1..100).all(|s| s < 10 || lr(s) <= lr(s - 1)));
}

fn grad_of_wte(model: &Gpt2<B>, grads: &GradientsParams) -> Vec<f32> {
    let g: Tensor<moe_model::CpuBackend, 2> = grads.get(model.wte.weight.id).unwrap();
    g.into_data().to_vec().unwrap()
}

// Checks: TRAIN-5
#[test]
fn train_5_accumulation_equals_one_big_batch() {
    let config = run_config(false, "", 10);
    let model = Gpt2::<B>::init(&config.model_config().unwrap(), 1, &Default::default());
    let rows: Vec<i64> = (0..4 * 16).map(|i| (i * 7919 % 50257) as i64).collect();
    let (a, _) = step_gradients(
        &model,
        &config.train,
        &[
            MicroBatch::from_tokens(rows[..32].to_vec(), 16),
            MicroBatch::from_tokens(rows[32..].to_vec(), 16),
        ],
        0.0.into(),
        &Default::default(),
    );
    let (b, _) = step_gradients(
        &model,
        &config.train,
        &[MicroBatch::from_tokens(rows.clone(), 16)],
        0.0.into(),
        &Default::default(),
    );
    let (ga, gb) = (grad_of_wte(&model, &a), grad_of_wte(&model, &b));
    let max_diff = ga
        .iter()
        .zip(&gb)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    let scale = gb.iter().map(|x| x.abs()).fold(0.0f32, f32::max);
    assert!(
        scale > 0.0 && max_diff <= 1e-5 * scale.max(1.0),
        "max diff {max_diff} vs scale {scale}"
    );
}

fn router_grad(model: &Gpt2<B>, config: &RunConfig, rows: &[i64]) -> Vec<f32> {
    let (grads, _) = step_gradients(
        model,
        &config.train,
        &[MicroBatch::from_tokens(rows.to_vec(), 16)],
        0.0.into(),
        &Default::default(),
    );
    let moe_model::model::FeedForward::Moe(moe) = &model.h[1].mlp else {
        panic!("block 1 is not MoE")
    };
    let g: Tensor<moe_model::CpuBackend, 2> = grads.get(moe.router.linear.weight.id).unwrap();
    g.into_data().to_vec().unwrap()
}

// Checks: TRAIN-5
#[test]
fn train_5_lb_coef_zero_gives_no_lb_gradient() {
    let rows: Vec<i64> = (0..2 * 16).map(|i| (i * 104729 % 50257) as i64).collect();
    let with = |lb: f64, z: f64| {
        let mut c = run_config(true, "", 10);
        c.train.lb_coef = lb;
        c.train.z_coef = z;
        c
    };
    let config = with(0.0, 0.0);
    let mc: ModelConfig = config.model_config().unwrap();
    let dense = Gpt2::<B>::init(
        &ModelConfig {
            moe: None,
            ..mc.clone()
        },
        1,
        &Default::default(),
    );
    let model = dense.upcycle(mc.moe.as_ref().unwrap(), 0.0, 1);
    let none = router_grad(&model, &with(0.0, 0.0), &rows);
    let zero_lb_with_z = router_grad(&model, &with(0.0, 0.5), &rows);
    let lb_on = router_grad(&model, &with(0.5, 0.0), &rows);
    // LB on changes the router gradient; LB coefficient 0 leaves only LM (+ z).
    assert!(
        none.iter().zip(&lb_on).any(|(a, b)| (a - b).abs() > 1e-7),
        "LB had no effect"
    );
    assert!(
        none.iter()
            .zip(&zero_lb_with_z)
            .any(|(a, b)| (a - b).abs() > 1e-7),
        "z had no effect"
    );
    // With both coefficients 0 the router gradient is the LM loss's alone,
    // computed here without the trainer.
    let batch = MicroBatch::from_tokens(rows.clone(), rows.len() / 2);
    let lm_only = {
        // The same lock the trainer takes (Burn's concurrent-backward race).
        let _autodiff = moe_train::step::autodiff_guard();
        let losses = batch_losses(
            &model,
            &batch,
            &ForwardOptions::default(),
            &Default::default(),
        );
        GradientsParams::from_grads(losses.lm.mean().backward(), &model)
    };
    let moe_model::model::FeedForward::Moe(moe) = &model.h[1].mlp else {
        panic!("block 1 is not MoE")
    };
    let g: Tensor<moe_model::CpuBackend, 2> = lm_only.get(moe.router.linear.weight.id).unwrap();
    let lm_only: Vec<f32> = g.into_data().to_vec().unwrap();
    let max_diff = none
        .iter()
        .zip(&lm_only)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max_diff <= 1e-7,
        "lb_coef = 0 left an LB gradient: {max_diff}"
    );
}

// Checks: TRAIN-6
#[test]
fn train_6_collapse_detector_fires_on_collapse_only() {
    let balanced = vec![(8, vec![0.13, 0.12, 0.12, 0.13, 0.12, 0.13, 0.12, 0.13])];
    let collapsed = vec![(8, vec![0.7, 0.05, 0.05, 0.05, 0.05, 0.04, 0.03, 0.03])];
    let mut d = CollapseDetector::default();
    for _ in 0..10 {
        assert_eq!(d.check(&balanced, 0.6, 3), None);
    }
    assert_eq!(d.check(&collapsed, 0.6, 3), None);
    assert_eq!(d.check(&collapsed, 0.6, 3), None);
    assert_eq!(
        d.check(&balanced, 0.6, 3),
        None,
        "a balanced check resets the streak"
    );
    assert_eq!(d.check(&collapsed, 0.6, 3), None);
    assert_eq!(d.check(&collapsed, 0.6, 3), None);
    let fired = d
        .check(&collapsed, 0.6, 3)
        .expect("third consecutive check fires");
    assert_eq!((fired.layer, fired.expert), (8, 0));
}

// Checks: TRAIN-7, TRAIN-8, TRAIN-27
#[test]
fn train_8_resume_is_bit_exact_and_metrics_parse() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let config = run_config(true, "", 8);
    let straight = tmp.path().join("straight");
    run(&config, &data, &straight, false, None);
    let split = tmp.path().join("split");
    let first = run(&config, &data, &split, false, Some(4));
    assert_eq!(first.steps, 4);
    // A later start without --resume is refused; with --resume it continues from step 3's checkpoint.
    let opts = TrainOptions {
        data: data.clone(),
        out: split.clone(),
        resume: moe_train::Resume::No,
        max_steps: None,
        progress: false,
        device_name: "cpu".into(),
        device_memory: None,
    };
    assert!(
        train::<B>(&config, &opts, &Default::default())
            .unwrap_err()
            .to_string()
            .contains("--resume")
    );
    run(&config, &data, &split, true, None);
    assert_eq!(train_losses(&straight), train_losses(&split));
    assert_eq!(train_losses(&straight).len(), 4);
    // TRAIN-27: the routing probe at step 0 and every eval, the same after a resume.
    let probe = moe_train::RunDir::new(&split).probe().unwrap();
    assert_eq!(probe, moe_train::RunDir::new(&straight).probe().unwrap());
    assert_eq!(probe.iter().map(|r| r.step).collect::<Vec<_>>(), [0, 4, 8]);
    for row in &probe {
        assert_eq!(row.layers.len(), 1);
        let experts = row.layers[0].experts().unwrap();
        let tokens: usize = row.blocks.iter().sum::<usize>() * 15; // block 16 → 15 routed
        assert_eq!(experts.len(), tokens);
        assert!(experts.iter().all(|&e| e < 4));
    }
    // TRAIN-7: every row parses and carries routing for the MoE layer.
    let events = read_events(&split.join("metrics.jsonl")).unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Eval { domains, .. } if domains.len() == 3))
    );
    // TRAIN-7: blocks predict equally many tokens, so the domain loss is the
    // mean of its block losses.
    for e in &events {
        if let Event::Eval { domains, .. } = e {
            for d in domains.values() {
                assert!(!d.block_losses.is_empty());
                let mean = d.block_losses.iter().sum::<f64>() / d.block_losses.len() as f64;
                assert!(
                    (mean - d.loss).abs() < 1e-5 * d.loss,
                    "{mean} vs {}",
                    d.loss
                );
            }
        }
    }
    assert!(events.iter().all(|e| match e {
        Event::Train { routing, .. } =>
            routing.len() == 1 && (routing[0].shares.iter().sum::<f64>() - 1.0).abs() < 1e-9,
        _ => true,
    }));
    assert!(split.join("final/model.safetensors").exists());
    // Checkpoints were pruned to `keep = 2`.
    assert_eq!(moe_train::RunDir::new(&split).checkpoints(), [6, 8]);
    // Resuming with another config is refused.
    let other = run_config(true, "weight_decay = 0.5\n", 8);
    let opts = TrainOptions {
        resume: moe_train::Resume::Checkpoint,
        ..opts
    };
    assert!(
        train::<B>(&other, &opts, &Default::default())
            .unwrap_err()
            .to_string()
            .contains("another config")
    );
}

// Checks: TRAIN-27
#[test]
fn train_27_dense_runs_have_no_routing_probe() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let out = tmp.path().join("dense");
    run(&run_config(false, "", 4), &data, &out, false, None);
    assert!(moe_train::RunDir::new(&out).probe().unwrap().is_empty());
    assert!(!out.join("routing_probe.jsonl").exists());
}

// Checks: TRAIN-9
#[test]
fn train_9_loss_falls_on_a_tiny_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let mut config = run_config(false, "", 40);
    config.train.lr = 1e-2;
    let out = tmp.path().join("run");
    run(&config, &data, &out, false, None);
    let losses = train_losses(&out);
    let (first, last) = (losses[0].1, losses[losses.len() - 1].1);
    assert!(last < first - 2.0, "loss fell only from {first} to {last}");
}

// Checks: TRAIN-19, MODEL-19
// The same tiny MoE run in f32 and in mixed precision: every logged loss
// within 0.1% (measured: 9.7e-5), the bf16 run's loss falls like the f32
// run's, and the run's saved config says bf16 (an f32 run's does not name
// the key, so configs written before it existed still match).
#[test]
fn train_19_bf16_run_tracks_the_f32_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let f32_config = run_config(true, "", 16);
    let bf16_config = run_config(true, "precision = \"bf16\"\n", 16);
    assert_eq!(bf16_config.train.precision, moe_model::Precision::Bf16);
    let (f32_out, bf16_out) = (tmp.path().join("f32"), tmp.path().join("bf16"));
    run(&f32_config, &data, &f32_out, false, None);
    run(&bf16_config, &data, &bf16_out, false, None);
    let (a, b) = (train_losses(&f32_out), train_losses(&bf16_out));
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(&b)
        .map(|((_, x), (_, y))| ((x - y) / x).abs())
        .fold(0.0, f64::max);
    eprintln!("largest relative loss difference: {worst:.2e}");
    assert!(worst <= 1e-3, "losses differ by {worst:.2e}");
    assert!(worst > 0.0, "the bf16 run computed exactly the f32 run");
    assert!(
        b[b.len() - 1].1 < b[0].1 - 0.5,
        "bf16 loss did not fall: {b:?}"
    );
    let saved = std::fs::read_to_string(bf16_out.join("config.toml")).unwrap();
    assert!(saved.contains("precision = \"bf16\""), "{saved}");
    let f32_saved = std::fs::read_to_string(f32_out.join("config.toml")).unwrap();
    assert!(
        !f32_saved.contains("precision"),
        "f32 configs read as before"
    );
}

// Checks: TRAIN-1, TRAIN-11
#[test]
fn train_1_train_11_checked_in_run_configs_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/runs");
    for name in [
        "dense",
        "moe",
        "moe-no-lb",
        "dense-matched",
        "dense-tiny",
        "moe-tiny",
        "moe-no-lb-tiny",
    ] {
        let c =
            RunConfig::load(&dir.join(format!("{name}.toml"))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.run.name, name);
    }
    let moe = RunConfig::load(&dir.join("moe.toml")).unwrap();
    assert_eq!(
        (moe.train.steps, moe.train.micro_batch, moe.train.grad_accum),
        (10000, 2, 4)
    );
    assert_eq!(
        (
            moe.train.lr,
            moe.train.lb_coef,
            moe.train.z_coef,
            moe.train.router_noise_std
        ),
        (5e-5, 0.01, 0.001, 0.1)
    );
    assert_eq!(moe.model.moe.as_ref().unwrap().layers, [8, 9, 10, 11]);
    let no_lb = RunConfig::load(&dir.join("moe-no-lb.toml")).unwrap();
    assert_eq!(
        (
            no_lb.train.steps,
            no_lb.train.lb_coef,
            no_lb.collapse.checks
        ),
        (2000, 0.0, 3)
    );
    let bad = RunConfig::parse(
        "[run]\nname = \"x\"\n[model]\ninit = \"scratch\"\npreset = \"tiny\"\n[train]\nsteps = 1\nmicro_batch = 1\nlr = 1.0\nlb_coef = 0.1\n",
        Path::new("x.toml"),
    );
    assert!(bad.unwrap_err().to_string().contains("need [model.moe]"));
    let unknown = RunConfig::parse("[run]\nname = \"x\"\nnmae = 1\n", Path::new("x.toml"));
    assert!(unknown.unwrap_err().to_string().contains("nmae"));
}

// Checks: TRAIN-12
#[test]
fn train_12_compact_vocabulary_holds_exactly_the_data_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let mut config = run_config(true, "", 2);
    config.model.compact_vocab = true;
    let out = tmp.path().join("run");
    run(&config, &data, &out, false, None);
    let map = moe_train::RunDir::new(&out)
        .vocab()
        .unwrap()
        .expect("vocab.json");
    let prepared = moe_data::prepared::PreparedData::open(&data).unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for info in &prepared.manifest.shards {
        ids.extend(
            prepared
                .load_shard(info.split, &info.domain)
                .unwrap()
                .into_iter()
                .map(u32::from),
        );
    }
    assert_eq!(map.gpt2_ids, ids.into_iter().collect::<Vec<_>>());
    let (saved, _) =
        moe_model::load_model_dir::<moe_model::CpuBackend>(&out.join("final"), &Default::default())
            .unwrap();
    assert_eq!(saved.gpt2.vocab_size, map.len());
    assert_eq!(map.to_model(&[map.gpt2_ids[3] as u16]), Some(vec![3]));
}

// Checks: TRAIN-10
#[test]
fn train_10_non_finite_loss_stops_the_run_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    // An absurd learning rate blows the weights up after the first update.
    let mut config = run_config(false, "", 20);
    config.train.lr = 1e30;
    config.train.warmup_frac = 0.0;
    config.train.grad_clip = 0.0;
    let out = tmp.path().join("run");
    let summary = run(&config, &data, &out, false, None);
    let reason = summary.stopped.expect("the run must stop");
    assert!(
        matches!(reason, StopReason::NonFiniteLoss { failed_step, .. } if failed_step == summary.steps + 1),
        "{reason:?}"
    );
    assert!(!reason.is_result());
    assert!(summary.steps < 20);
    let events = read_events(&out.join("metrics.jsonl")).unwrap();
    assert!(matches!(
        events.last(),
        Some(Event::Stop {
            reason: StopReason::NonFiniteLoss { .. },
            ..
        })
    ));
    // No checkpoint of a later step than the stop, and no final model.
    assert!(
        moe_train::RunDir::new(&out)
            .checkpoints()
            .iter()
            .all(|&s| s <= summary.steps)
    );
    assert!(!out.join("final").exists());
}

// Checks: TRAIN-6
#[test]
fn train_6_collapse_stops_the_run_with_a_checkpoint_and_no_final() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    // A tiny threshold: every expert with any token is over it, so the 2nd
    // log (step 4) stops the run when one expert had tokens at both checks.
    let mut config = run_config(true, "", 20);
    config.collapse.threshold = 1e-9;
    config.collapse.checks = 2;
    let out = tmp.path().join("run");
    let summary = run(&config, &data, &out, false, None);
    assert_eq!(summary.steps, 4);
    let reason = summary.stopped.unwrap();
    assert!(
        matches!(
            reason,
            StopReason::Collapse {
                layer: 1,
                checks: 2,
                ..
            }
        ),
        "{reason:?}"
    );
    assert!(reason.is_result());
    let events = read_events(&out.join("metrics.jsonl")).unwrap();
    assert!(matches!(
        events.last(),
        Some(Event::Stop {
            step: 4,
            reason: StopReason::Collapse { .. },
            ..
        })
    ));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Eval { step: 4, .. }))
    );
    assert_eq!(moe_train::RunDir::new(&out).checkpoints().last(), Some(&4));
    assert!(!out.join("final").exists());
}

// Checks: TRAIN-25
#[test]
fn train_25_steps_on_two_threads_give_the_gradients_they_give_alone() {
    let config = run_config(true, "", 10);
    let model_config = config.model_config().unwrap();
    // Each thread's own model and micro-batches; the second micro-batch of a
    // step reuses the parameters after the first one's backward (the case
    // Burn's race hits).
    let grads = |salt: i64| {
        let model = Gpt2::<B>::init(&model_config, 1, &Default::default());
        let tokens: Vec<i64> = (0..4 * 16).map(|i| (i * 7919 + salt) % 50257).collect();
        let batches = [
            MicroBatch::from_tokens(tokens[..32].to_vec(), 16),
            MicroBatch::from_tokens(tokens[32..].to_vec(), 16),
        ];
        let (g, _) = step_gradients(
            &model,
            &config.train,
            &batches,
            0.0.into(),
            &Default::default(),
        );
        grad_of_wte(&model, &g)
    };
    let alone: Vec<Vec<f32>> = (0..2).map(grads).collect();
    for _ in 0..10 {
        let together: Vec<Vec<f32>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2).map(|salt| s.spawn(move || grads(salt))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(together, alone);
    }
}

/// Every MoE block's logged bias of each train event, by step.
fn logged_biases(out: &Path) -> Vec<(u64, Vec<Option<Vec<f64>>>)> {
    read_events(&out.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Train { step, routing, .. } => {
                Some((step, routing.into_iter().map(|r| r.bias).collect()))
            }
            _ => None,
        })
        .collect()
}

// Checks: TRAIN-26, MOE-15
#[test]
fn train_26_bias_balancing_updates_logs_saves_and_resumes_bit_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let rate = 0.25; // large, so a few steps move it visibly
    let config = run_config(true, &format!("bias_rate = {rate}\n"), 8);
    let straight = tmp.path().join("straight");
    run(&config, &data, &straight, false, None);
    let split = tmp.path().join("split");
    run(&config, &data, &split, false, Some(4));
    run(&config, &data, &split, true, None);
    // Resumed = uninterrupted, losses and biases alike.
    assert_eq!(train_losses(&straight), train_losses(&split));
    let logged = logged_biases(&split);
    assert_eq!(logged, logged_biases(&straight));
    assert_eq!(logged.len(), 4);
    // Each step moves each expert's bias by −rate, 0 or +rate, so after
    // `step` steps every value is a multiple of the rate within ±step·rate,
    // and the experts that took more than their share went down.
    for (step, layers) in &logged {
        let bias = layers[0].as_ref().expect("a bias row for the MoE block");
        assert_eq!(bias.len(), 4);
        for b in bias {
            let units = b / rate;
            assert!((units - units.round()).abs() < 1e-6, "{b}");
            assert!(units.abs() <= *step as f64 + 1e-6, "{b} after {step} steps");
        }
    }
    let last = logged.last().unwrap().1[0].clone().unwrap();
    assert!(last.iter().any(|b| *b != 0.0), "the bias never moved");
    // The final model carries the bias it logged, bit for bit; initial/ holds zeros.
    let (_, fin) = moe_model::load_model_dir::<moe_model::CpuBackend>(
        &split.join("final"),
        &Default::default(),
    )
    .unwrap();
    let saved = &fin.expert_biases()[0];
    assert_eq!(saved.0, 1);
    let as_f64: Vec<f64> = saved.1.iter().map(|&v| f64::from(v)).collect();
    assert_eq!(as_f64, last);
    let (_, init) = moe_model::load_model_dir::<moe_model::CpuBackend>(
        &split.join("initial"),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(init.expert_biases(), vec![(1, vec![0.0; 4])]);
    // A run without bias_rate logs none and saves none.
    let plain = tmp.path().join("plain");
    run(&run_config(true, "", 2), &data, &plain, false, None);
    assert!(
        logged_biases(&plain)
            .iter()
            .all(|(_, l)| l.iter().all(Option::is_none))
    );
    let (_, model) = moe_model::load_model_dir::<moe_model::CpuBackend>(
        &plain.join("final"),
        &Default::default(),
    )
    .unwrap();
    assert!(model.expert_biases().is_empty());
    // bias_rate needs MoE layers and a finite non-negative value.
    for (moe, extra) in [(false, "bias_rate = 0.001\n"), (true, "bias_rate = -1.0\n")] {
        let text = format!(
            "[run]\nname = \"t\"\n[model]\ninit = \"scratch\"\npreset = \"tiny\"\n{}[train]\nsteps = 2\nmicro_batch = 1\nlr = 1e-3\n{extra}",
            if moe {
                "[model.moe]\nlayers = [1]\nn_experts = 4\ntop_k = 1\n"
            } else {
                ""
            }
        );
        let err = RunConfig::parse(&text, Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bias_rate"), "{err}");
    }
}
