//! TRAIN-*: the options do what they say — global-batch load balancing, a
//! refused resume that changes nothing, the same-expert collapse rule, the
//! sampler's purity and mixing, global-norm clipping.

use crate::common;

use std::path::Path;

use burn::optim::GradientsParams;

use common::{B, options, run, run_config, small_data, small_data_with, snapshot};
use moe_model::{Gpt2, LbScope, ModelConfig};
use moe_train::RunConfig;
use moe_train::clip::{clip_global_norm, global_norm};
use moe_train::collapse::CollapseDetector;
use moe_train::config::Mixing;
use moe_train::sampler::{MicroBatch, Sampler};
use moe_train::step::step_gradients;
use moe_train::{Blocks, DomainBlocks};
use proptest::prelude::*;

fn all_grads(model: &Gpt2<B>, grads: &GradientsParams) -> Vec<Vec<f32>> {
    moe_testkit::param_grads(model, grads)
        .iter()
        .map(|g| g.values().to_vec())
        .collect()
}

fn max_rel_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    let scale = b
        .iter()
        .flatten()
        .map(|x| x.abs())
        .fold(0.0f32, f32::max)
        .max(1e-12);
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
        / scale
}

fn moe_model_for(config: &RunConfig, seed: u64) -> Gpt2<B> {
    let mc: ModelConfig = config.model_config().unwrap();
    let dense = Gpt2::<B>::init(
        &ModelConfig {
            moe: None,
            ..mc.clone()
        },
        seed,
        &Default::default(),
    );
    dense.upcycle(mc.moe.as_ref().unwrap(), 0.05, seed)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    // Checks: TRAIN-13
    #[test]
    fn train_13_step_scope_equals_one_batch_of_all_rows(seed in 0u64..1000, salt in 1i64..50_000) {
        let rows: Vec<i64> = (0..8 * 16).map(|i| (i * salt + seed as i64) % 50257).collect();
        let split: Vec<MicroBatch> = rows
            .chunks(2 * 16)
            .map(|c| MicroBatch::from_tokens(c.to_vec(), 16))
            .collect();
        let whole = [MicroBatch::from_tokens(rows.clone(), 16)];
        let mut config = run_config(true, "", 10);
        config.train.lb_coef = 1.0;
        config.train.z_coef = 0.0;
        let model = moe_model_for(&config, seed);
        let grads = |config: &RunConfig, batches: &[MicroBatch]| {
            let (g, stats) =
                step_gradients(&model, &config.train, batches, 0.0.into(), &Default::default());
            (all_grads(&model, &g), stats.lb.unwrap())
        };
        config.train.lb_scope = LbScope::Step;
        let (g4, lb4) = grads(&config, &split);
        let (g1, lb1) = grads(&config, &whole);
        prop_assert!((lb4 - lb1).abs() <= 1e-5 * lb1.abs(), "LB {lb4} vs {lb1}");
        let rel = max_rel_diff(&g4, &g1);
        prop_assert!(rel <= 1e-4, "step scope: gradients differ by {rel}");
        // Micro scope balances each micro-batch on its own: another loss.
        config.train.lb_scope = LbScope::Micro;
        let (gm, lbm) = grads(&config, &split);
        prop_assert!((lbm - lb1).abs() > 1e-6, "micro scope gave the global LB {lbm}");
        prop_assert!(max_rel_diff(&gm, &g1) > 1e-4);
    }
}

// Checks: TRAIN-14, TRAIN-8
#[test]
fn train_14_a_refused_start_or_resume_changes_no_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let mut config = run_config(true, "", 8);
    config.model.compact_vocab = true;
    let out = tmp.path().join("run");
    run(&config, &data, &out, false, Some(4));
    let before = snapshot(&out);
    assert!(before.iter().any(|(p, _)| p.ends_with("vocab.json")));
    // Starting over without --resume.
    let err = moe_train::train::<B>(
        &config,
        &options(&data, &out, false, None),
        &Default::default(),
    );
    assert!(err.unwrap_err().to_string().contains("--resume"));
    assert_eq!(snapshot(&out), before);
    // Resuming with another config.
    let mut other = config.clone();
    other.train.weight_decay = 0.5;
    let err = moe_train::train::<B>(
        &other,
        &options(&data, &out, true, None),
        &Default::default(),
    );
    assert!(err.unwrap_err().to_string().contains("another config"));
    assert_eq!(snapshot(&out), before, "a refused resume changed the run");
    // Resuming on other data (another vocabulary).
    let other_dir = tempfile::tempdir().unwrap();
    let other_data = small_data_with(other_dir.path(), " zebra quokka");
    let err = moe_train::train::<B>(
        &config,
        &options(&other_data, &out, true, None),
        &Default::default(),
    );
    assert!(err.is_err());
    assert_eq!(snapshot(&out), before, "a refused resume changed the run");
}

// Checks: TRAIN-6
#[test]
fn train_6_experts_taking_turns_are_not_a_collapse() {
    let over = |e: usize| {
        let mut s = vec![0.1; 4];
        s[e] = 0.7;
        vec![(8, s)]
    };
    let mut d = CollapseDetector::default();
    for i in 0..12 {
        assert_eq!(d.check(&over(i % 2), 0.6, 3), None, "check {i}");
    }
    // The same expert three times in a row fires, naming it.
    let mut d = CollapseDetector::default();
    assert_eq!(d.check(&over(2), 0.6, 3), None);
    assert_eq!(d.check(&over(2), 0.6, 3), None);
    let fired = d.check(&over(2), 0.6, 3).expect("same expert, 3 checks");
    assert_eq!((fired.layer, fired.expert), (8, 2));
    // Below 0.5 two experts can be over at once; each keeps its own streak.
    let mut d = CollapseDetector::default();
    let two = vec![(3, vec![0.45, 0.45, 0.05, 0.05])];
    assert_eq!(d.check(&two, 0.4, 2), None);
    assert!(d.check(&two, 0.4, 2).is_some());
}

// Checks: TRAIN-6, TRAIN-1
#[test]
fn train_6_collapse_threshold_must_be_in_zero_one() {
    for bad in ["0.0", "-0.1", "1.5", "nan"] {
        let mut text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/runs/moe-tiny.toml"),
        )
        .unwrap();
        text = text.replace("threshold = 0.6", &format!("threshold = {bad}"));
        let err = RunConfig::parse(&text, Path::new("moe-tiny.toml")).unwrap_err();
        assert!(
            err.to_string().contains("collapse.threshold"),
            "{bad}: {err}"
        );
    }
}

fn blocks(sizes: &[usize]) -> Blocks {
    Blocks {
        block_size: 4,
        domains: sizes
            .iter()
            .enumerate()
            .map(|(d, &n)| DomainBlocks {
                name: format!("d{d}"),
                tokens: vec![d as u16; n * 4],
            })
            .collect(),
    }
}

proptest! {
    // Checks: TRAIN-3
    #[test]
    fn train_3_picks_are_a_pure_function_and_mix_as_configured(
        sizes in proptest::collection::vec(1usize..40, 1..4),
        seed in 0u64..1000,
        step in 0u64..10_000,
        micro in 0usize..4,
    ) {
        let b = blocks(&sizes);
        for mixing in [Mixing::Mixed, Mixing::PerDomain] {
            let sampler = Sampler { seed, mixing, micro_per_step: 4, batch: 6 };
            let p = sampler.picks(&b, step, micro);
            prop_assert_eq!(&p, &sampler.picks(&b, step, micro));
            prop_assert_eq!(p.len(), 6);
            prop_assert!(p.iter().all(|pick| pick.domain < sizes.len() && pick.block < sizes[pick.domain]));
            let batch = sampler.micro_batch(&b, step, micro);
            prop_assert_eq!((batch.rows(), batch.seq()), (6, 4));
            prop_assert!(batch.tokens().chunks(4).zip(&p).all(|(t, pick)| t.iter().all(|&x| x == pick.domain as i64)));
            if mixing == Mixing::PerDomain {
                let want = (step as usize * 4 + micro) % sizes.len();
                prop_assert!(p.iter().all(|pick| pick.domain == want));
            }
        }
    }
}

// Checks: TRAIN-3
#[test]
fn train_3_mixed_draws_every_domain_in_proportion_to_its_blocks() {
    let b = blocks(&[10, 30, 60]);
    let mut counts = [0usize; 3];
    for step in 0..400 {
        let sampler = Sampler {
            seed: 7,
            mixing: Mixing::Mixed,
            micro_per_step: 1,
            batch: 5,
        };
        for pick in sampler.picks(&b, step, 0) {
            counts[pick.domain] += 1;
        }
    }
    let total = counts.iter().sum::<usize>() as f64;
    for (d, want) in [0.1, 0.3, 0.6].into_iter().enumerate() {
        let got = counts[d] as f64 / total;
        assert!((got - want).abs() < 0.03, "domain {d}: {got} vs {want}");
    }
}

// Checks: TRAIN-4
#[test]
fn train_4_clipping_scales_every_gradient_by_one_global_factor() {
    let config = run_config(true, "", 10);
    let model = moe_model_for(&config, 5);
    let rows: Vec<i64> = (0..2 * 16).map(|i| (i * 7919 % 50257) as i64).collect();
    let (mut grads, _) = step_gradients(
        &model,
        &config.train,
        &[MicroBatch::from_tokens(rows, 16)],
        0.0.into(),
        &Default::default(),
    );
    let before = all_grads(&model, &grads);
    let by_hand = before
        .iter()
        .flatten()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    let norm = global_norm::<B, Gpt2<B>>(&model, &grads);
    assert!(
        (norm - by_hand).abs() <= 1e-5 * by_hand,
        "{norm} vs {by_hand}"
    );
    let max_norm = norm / 4.0;
    let reported = clip_global_norm::<B, Gpt2<B>>(&model, &mut grads, max_norm);
    assert_eq!(reported, norm);
    let after = all_grads(&model, &grads);
    let clipped = after
        .iter()
        .flatten()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    assert!(
        (clipped - max_norm).abs() <= 1e-4 * max_norm,
        "{clipped} vs {max_norm}"
    );
    // One factor for every tensor (per-tensor clipping would give several).
    let factor = max_norm / norm;
    for (a, b) in after.iter().flatten().zip(before.iter().flatten()) {
        assert!((f64::from(*a) - f64::from(*b) * factor).abs() <= 1e-6 * by_hand);
    }
    // Under the limit nothing changes.
    let again = clip_global_norm::<B, Gpt2<B>>(&model, &mut grads, norm * 10.0);
    assert!((again - max_norm).abs() <= 1e-4 * max_norm);
    assert_eq!(all_grads(&model, &grads), after);
}

/// Every leaf of a config as `section.key = value`.
fn flat(config: &RunConfig) -> std::collections::BTreeMap<String, String> {
    fn walk(prefix: &str, v: &toml::Value, out: &mut std::collections::BTreeMap<String, String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk("", &toml::Value::try_from(config).unwrap(), &mut out);
    out
}

// Checks: TRAIN-16
#[test]
fn train_16_ablations_differ_from_the_main_run_only_in_what_they_say() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/runs");
    let load = |name: &str| RunConfig::load(&dir.join(format!("{name}.toml"))).unwrap();
    let ablations: [(&str, &[&str]); 6] = [
        (
            "moe-no-lb",
            &[
                "train.lb_coef",
                "train.router_noise_std",
                "collapse.checks",
                "train.steps",
            ],
        ),
        ("moe-lb-off", &["train.lb_coef", "collapse.checks"]),
        ("moe-noise-off", &["train.router_noise_std"]),
        ("moe-no-z", &["train.z_coef"]),
        ("moe-lb-step", &["train.lb_scope"]),
        ("moe-bias", &["train.lb_coef", "train.bias_rate"]),
    ];
    // The GPU runs, the demo's tiny runs and the CPU study's (its own folder).
    for (folder, tiny) in [("", ""), ("", "-tiny"), ("cpu-study/", "")] {
        let load = |name: &str| load(&format!("{folder}{name}"));
        let main = flat(&load(&format!("moe{tiny}")));
        for (name, changes) in ablations {
            let full = format!("{name}{tiny}");
            let config = load(&full);
            assert_eq!(config.run.name, full);
            let purpose = config.run.purpose.clone().unwrap_or_default();
            assert!(!purpose.is_empty(), "{full}: no purpose line");
            let other = flat(&config);
            let differ: Vec<&str> = main
                .keys()
                .chain(other.keys())
                .filter(|k| main.get(*k) != other.get(*k))
                .map(String::as_str)
                .filter(|k| !["run.name", "run.purpose"].contains(k))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            // The CPU no-LB runs keep the main run's steps; the GPU one stops at 2000.
            let gpu = folder.is_empty() && tiny.is_empty();
            let mut want: Vec<&str> = changes
                .iter()
                .copied()
                .filter(|k| *k != "train.steps" || gpu)
                .collect();
            want.sort();
            assert_eq!(
                differ, want,
                "{folder}{full} differs from moe{tiny} in other keys"
            );
            // The header's "Differs from … only in: …" line names each key.
            let text = std::fs::read_to_string(dir.join(format!("{folder}{full}.toml"))).unwrap();
            let header = text
                .lines()
                .take_while(|l| l.starts_with('#'))
                .find(|l| l.contains("only in:"))
                .unwrap_or_else(|| panic!("{folder}{full}: no \"only in:\" header line"));
            for key in differ.iter().filter(|k| **k != "train.steps") {
                let leaf = key.rsplit('.').next().unwrap();
                assert!(
                    header.contains(leaf),
                    "{folder}{full}: header does not name {key}"
                );
            }
        }
    }
    // The CPU study's dense run is its MoE run without the MoE keys.
    let study = |name: &str| flat(&load(&format!("cpu-study/{name}")));
    let (moe, dense) = (study("moe"), study("dense"));
    let moe_only: Vec<&String> = moe
        .keys()
        .filter(|k| dense.get(*k) != moe.get(*k))
        .filter(|k| !k.starts_with("run."))
        .filter(|k| {
            !(k.starts_with("model.moe")
                || k.starts_with("collapse.")
                || k.starts_with("train.lb_")
                || k.starts_with("train.z_")
                || k.starts_with("train.router_noise")
                || *k == "model.upcycle_noise")
        })
        .collect();
    assert!(
        moe_only.is_empty(),
        "cpu-study dense differs from moe in {moe_only:?}"
    );
    // Every run config says what it is for.
    for folder in [dir.clone(), dir.join("cpu-study")] {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            if entry.path().is_dir() {
                continue;
            }
            let config = RunConfig::load(&entry.path()).unwrap();
            assert!(config.run.purpose.is_some(), "{}", entry.path().display());
        }
    }
}
