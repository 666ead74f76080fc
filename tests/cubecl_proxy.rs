//! The CubeCL proxy (BACK-1 … BACK-6, BACK-11): the model and the trainer on Burn's
//! wgpu backend — the CubeCL kernels, autotune, memory management and
//! burn-fusion the CUDA backend shares (BACK-6) — against the flex CPU
//! backend from the same seed.
//!
//! Needs `--features wgpu` and a Vulkan driver; Mesa's software driver
//! (lavapipe, Debian's `mesa-vulkan-drivers`) is enough:
//!
//! ```sh
//! cargo test --release --features wgpu --test cubecl_proxy
//! ```
//!
//! All tests share one wgpu device, so a panic inside CubeCL in one of them
//! could surface in the others as well.
#![cfg(feature = "wgpu")]

mod common;
mod proxy_support;

use std::path::{Path, PathBuf};

use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use moe_emergence::backend::{Device, DeviceSlot};
use moe_emergence::runs::train_on;
use moe_model::NormalRng;
use moe_model::model::Mlp;
use moe_model::moe::{DispatchPlan, capacity, dispatch_combine};
use moe_model::{CpuAutodiff, ForwardOptions, Gpt2, ModelConfig, RouterNoise};
use moe_testkit::rel_err;
use moe_train::metrics::{Event, read_events};
use moe_train::sampler::MicroBatch;
use moe_train::step::step_gradients;
use moe_train::{RunConfig, TrainOptions};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use proxy_support::*;

type F = CpuAutodiff;

/// The error bound of every comparison with flex (relative, per tensor).
const TOL: f64 = 1e-5;

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

fn ints<B: Backend, const D: usize>(t: Tensor<B, D, Int>) -> Vec<i64> {
    t.into_data().convert::<i64>().to_vec().unwrap()
}

/// Every float parameter's gradient (flattened; empty when it got none)
/// with its module path, in visit order.
fn collect_grads<B: AutodiffBackend>(
    model: &Gpt2<B>,
    grads: &GradientsParams,
) -> Vec<(String, Vec<f32>)> {
    moe_testkit::param_grads(model, grads)
        .into_iter()
        .map(|g| (g.path.clone(), g.values().to_vec()))
        .collect()
}

/// What one model does with one batch on one backend: the forward outputs and
/// the gradients of the training loss.
struct Outcome {
    logits: Vec<f32>,
    aux: Option<(Vec<f32>, Vec<f32>)>,
    routing: Vec<(Vec<i64>, Vec<usize>, usize)>,
    loss: f64,
    grads: Vec<(String, Vec<f32>)>,
}

fn outcome<B: AutodiffBackend>(
    config: &ModelConfig,
    rows: &[i64],
    block: usize,
    noise: RouterNoise,
) -> Outcome {
    let device = B::Device::default();
    let model = Gpt2::<B>::init(config, 11, &device);
    let n_rows = rows.len() / block;
    let inputs: Vec<i64> = rows
        .chunks(block)
        .flat_map(|r| r[..block - 1].to_vec())
        .collect();
    let tokens =
        Tensor::<B, 2, Int>::from_data(TensorData::new(inputs, [n_rows, block - 1]), &device);
    let options = ForwardOptions {
        router_noise: noise,
        ..ForwardOptions::default()
    };
    let out = model.forward(tokens, &options);
    let aux = out
        .aux
        .map(|a| (values(a.lb.detach()), values(a.z.detach())));
    let routing = out
        .routing
        .into_iter()
        .map(|r| (ints(r.expert_idx), r.tokens_per_expert, r.dropped))
        .collect();
    let logits = values(out.logits.detach());
    let (grads, stats) = step_gradients(
        &model,
        &train_section(),
        &[MicroBatch::from_tokens(rows.to_vec(), block)],
        noise,
        &device,
    );
    Outcome {
        logits,
        aux,
        routing,
        loss: stats.loss,
        grads: collect_grads(&model, &grads),
    }
}

// BACK-2, BACK-3: forward (logits, aux losses, routing) and the gradient of
// every parameter, dense and MoE top-1/top-2 with and without capacity.
#[test]
fn back_2_back_3_forward_and_gradients_match_flex() {
    let _serial = serial();
    let cases = [
        ("dense", micro(None, None)),
        ("top-1", micro(Some(1), None)),
        ("top-2", micro(Some(2), None)),
        ("top-1 capacity 1.0", micro(Some(1), Some(1.0))),
        ("top-2 capacity 0.75", micro(Some(2), Some(0.75))),
    ];
    let block = 32;
    let rows = token_rows(5, 4, block, 96);
    let noise = RouterNoise { std: 0.1, seed: 17 };
    for (name, config) in cases {
        let f = outcome::<F>(&config, &rows, block, noise);
        let w = outcome::<W>(&config, &rows, block, noise);
        let err = rel_err(&w.logits, &f.logits);
        eprintln!("{name}: logits rel err {err:.2e}");
        assert!(err <= TOL, "{name}: logits rel err {err:.2e}");
        assert_eq!(w.routing, f.routing, "{name}: routing differs");
        if let Some(moe) = &config.moe {
            let dropped: usize = f.routing.iter().map(|r| r.2).sum();
            if moe.capacity_factor.is_some() {
                assert!(
                    dropped > 0,
                    "{name}: the capacity case should drop something"
                );
            }
        }
        match (&w.aux, &f.aux) {
            (Some((wl, wz)), Some((fl, fz))) => {
                assert!(rel_err(wl, fl) <= TOL, "{name}: LB {wl:?} vs {fl:?}");
                assert!(rel_err(wz, fz) <= TOL, "{name}: z {wz:?} vs {fz:?}");
            }
            (None, None) => assert!(config.moe.is_none()),
            _ => panic!("{name}: aux losses on one backend only"),
        }
        assert!(
            (w.loss - f.loss).abs() <= TOL * f.loss.abs(),
            "{name}: loss {} vs {}",
            w.loss,
            f.loss
        );
        assert_eq!(w.grads.len(), f.grads.len(), "{name}: parameter count");
        let mut worst = (0.0, String::new());
        for ((path, wg), (fpath, fg)) in w.grads.iter().zip(&f.grads) {
            assert_eq!(path, fpath);
            assert!(!fg.is_empty(), "{name}: {path} has no gradient on flex");
            let err = rel_err(wg, fg);
            if err > worst.0 {
                worst = (err, path.clone());
            }
        }
        eprintln!(
            "{name}: worst gradient rel err {:.2e} ({})",
            worst.0, worst.1
        );
        assert!(
            worst.0 <= TOL,
            "{name}: gradient of {} rel err {:.2e}",
            worst.1,
            worst.0
        );
    }
}

/// Three small domains at block size 32 in `dir/data`.
fn small_data(dir: &Path) -> PathBuf {
    let domains = [
        ("code", "def f(x):\n    return x + 1\n"),
        ("math", "Problem: 3 + 4 = ?\n\nSolution: 7"),
        ("prose", "The keeper of the lighthouse wrote home."),
    ];
    common::small_prepared_at(dir, &domains, 80, 0.1, 32)
}

fn train_events(out: &Path) -> Vec<(u64, f64, f64)> {
    read_events(&out.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Train {
                step,
                loss,
                grad_norm,
                ..
            } => Some((step, loss, grad_norm)),
            _ => None,
        })
        .collect()
}

// BACK-4: a 60-step MoE run through the trainer (AdamW, warmup + cosine,
// clipping, LB + z, annealed router noise, accumulation) logs the same
// per-step losses on wgpu as on flex.
#[test]
fn back_4_training_losses_match_flex() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let text = "[run]\nname = \"proxy\"\nseed = 5\n[model]\ninit = \"scratch\"\npreset = \"micro\"\ncompact_vocab = true\n[model.moe]\nlayers = [0, 1]\nn_experts = 8\ntop_k = 1\n[train]\nsteps = 60\nmicro_batch = 2\ngrad_accum = 2\nlr = 3e-3\nwarmup_frac = 0.1\nlb_coef = 0.01\nz_coef = 0.001\nrouter_noise_std = 0.1\nrouter_noise_anneal_frac = 0.5\n[eval]\nevery = 30\nmax_blocks = 4\n[log]\nevery = 1\n[checkpoint]\nevery = 1000\nkeep = 1\n";
    let config = RunConfig::parse(text, Path::new("proxy.toml")).unwrap();
    let run = |out: &Path, device: &str| TrainOptions {
        data: data.clone(),
        out: out.to_path_buf(),
        device_name: device.into(),
        device_memory: (device == "wgpu")
            .then(|| Device::Wgpu.memory_probe())
            .flatten(),
        ..Default::default()
    };
    let (f_dir, w_dir) = (tmp.path().join("flex"), tmp.path().join("wgpu"));
    let start = std::time::Instant::now();
    // Through the binary's entry point: the trainer is compiled for both
    // backends in the library, not again in this test.
    let slot = DeviceSlot::default_of;
    train_on(slot(Device::Cpu), config.clone(), run(&f_dir, "cpu")).unwrap();
    let flex_s = start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    train_on(slot(Device::Wgpu), config, run(&w_dir, "wgpu")).unwrap();
    eprintln!(
        "60 steps: flex {flex_s:.1} s, wgpu {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let (f, w) = (train_events(&f_dir), train_events(&w_dir));
    assert_eq!(f.len(), 60);
    assert_eq!(w.len(), f.len());
    let mut worst = 0.0f64;
    for ((step, wl, wn), (_, fl, fn_)) in w.iter().zip(&f) {
        let err = (wl - fl).abs() / fl.abs();
        worst = worst.max(err);
        assert!(err <= TOL, "step {step}: loss {wl} vs {fl} (rel {err:.2e})");
        assert!(
            (wn - fn_).abs() <= 1e-3 * fn_.abs(),
            "step {step}: grad norm {wn} vs {fn_}"
        );
    }
    eprintln!("60 steps: worst per-step loss rel err {worst:.2e}");
    // TRAIN-20: the wgpu run's train events carry the device memory in use
    // (the binary's probe), the CPU run's none.
    let bytes = |dir: &Path| -> Vec<Option<u64>> {
        read_events(&dir.join("metrics.jsonl"))
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                Event::Train { device_bytes, .. } => Some(device_bytes),
                _ => None,
            })
            .collect()
    };
    let on_wgpu = bytes(&w_dir);
    assert!(
        on_wgpu.iter().all(|b| b.is_some_and(|b| b > 0)),
        "{on_wgpu:?}"
    );
    assert!(bytes(&f_dir).iter().all(Option::is_none));
    // The run learned something: the check is not comparing two constants.
    assert!(
        f.last().unwrap().1 < f[0].1 - 0.5,
        "loss {} → {}",
        f[0].1,
        f.last().unwrap().1
    );
}

/// A routing for the dispatch property test.
#[derive(Debug, Clone)]
struct RoutingCase {
    n_tokens: usize,
    n_experts: usize,
    /// Chosen experts per token, distinct within a token.
    idx: Vec<Vec<usize>>,
    /// Combine weights per choice.
    gate: Vec<Vec<f32>>,
    capacity_factor: Option<f64>,
}

/// Routings that leave experts empty: all tokens to one expert, tokens
/// spread over a random subset of the experts, or fewer tokens than experts.
fn routing_case() -> impl Strategy<Value = RoutingCase> {
    (
        1usize..24,
        1usize..9,
        1usize..3,
        0usize..3,
        proptest::option::of(0.25f64..1.5),
    )
        .prop_flat_map(|(n_tokens, n_experts, top_k, mode, cf)| {
            let top_k = top_k.min(n_experts);
            // mode 0: one expert (plus the next ones for top-k) gets everything;
            // 1: a random subset of at most half the experts; 2: uniform.
            let used = match mode {
                0 => top_k,
                1 => (n_experts / 2).max(top_k),
                _ => n_experts,
            };
            (
                Just((n_tokens, n_experts, top_k, cf)),
                proptest::sample::subsequence((0..n_experts).collect::<Vec<_>>(), used),
                proptest::collection::vec(
                    proptest::sample::subsequence((0..used).collect::<Vec<_>>(), top_k)
                        .prop_shuffle(),
                    n_tokens,
                ),
                proptest::collection::vec(proptest::collection::vec(0.05f32..1.0, top_k), n_tokens),
            )
        })
        .prop_map(
            |((n_tokens, n_experts, _, cf), experts, picks, gate)| RoutingCase {
                n_tokens,
                n_experts,
                idx: picks
                    .into_iter()
                    .map(|p| p.into_iter().map(|i| experts[i]).collect())
                    .collect(),
                gate,
                capacity_factor: cf,
            },
        )
}

const D_MODEL: usize = 8;

/// Dispatch + combine of `case` through real MLP experts on backend `B`:
/// the output and the gradients of x, the gates and every expert weight.
fn dispatch_outcome<B: AutodiffBackend>(case: &RoutingCase) -> (Vec<f32>, Vec<Vec<f32>>) {
    let device = B::Device::default();
    let (t, k) = (case.n_tokens, case.idx[0].len());
    let mut rng = NormalRng::new(3, 0);
    let experts: Vec<Mlp<B>> = (0..case.n_experts)
        .map(|_| Mlp::init(&mut rng, D_MODEL, 2 * D_MODEL, 0.5, &device))
        .collect();
    let x = Tensor::<B, 2>::from_data(
        TensorData::new(rng.samples(t * D_MODEL, 1.0), [t, D_MODEL]),
        &device,
    )
    .require_grad();
    let gate_values: Vec<f32> = case.gate.iter().flatten().copied().collect();
    let gate =
        Tensor::<B, 2>::from_data(TensorData::new(gate_values, [t, k]), &device).require_grad();
    let ids: Vec<i64> = case.idx.iter().flatten().map(|&e| e as i64).collect();
    let idx = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [t, k]), &device);
    let cap = case
        .capacity_factor
        .map(|cf| capacity(t, k, case.n_experts, cf));
    let plan = DispatchPlan::new(idx, case.n_experts, cap);
    let y = dispatch_combine(x.clone(), gate.clone(), &plan, |e, xe| {
        assert!(xe.dims()[0] > 0, "BACK-5: expert {e} was run on zero rows");
        experts[e].forward(xe)
    });
    let weights = Tensor::<B, 2>::from_data(
        TensorData::new(rng.samples(t * D_MODEL, 1.0), [t, D_MODEL]),
        &device,
    );
    let grads = (y.clone() * weights).sum().backward();
    let mut out = vec![
        x.grad(&grads).map(values).unwrap_or_default(),
        gate.grad(&grads).map(values).unwrap_or_default(),
    ];
    for expert in &experts {
        for w in [&expert.c_fc.weight, &expert.c_proj.weight] {
            // An expert without kept tokens has no gradient: compare as zeros.
            let g = w.grad(&grads).map(values);
            out.push(g.unwrap_or_else(|| vec![0.0; w.shape().num_elements()]));
        }
    }
    (values(y.detach()), out)
}

// BACK-5: random routings with empty experts, one expert taking every token,
// fewer tokens than experts and capacity drops: no panic, no zero-row expert
// call, and the output and all gradients of flex.
#[test]
fn back_5_degenerate_routings_match_flex() {
    let _serial = serial();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&routing_case(), |case| {
            let (fy, fg) = dispatch_outcome::<F>(&case);
            let (wy, wg) = dispatch_outcome::<W>(&case);
            prop_assert!(rel_err(&wy, &fy) <= TOL, "output {:.2e}", rel_err(&wy, &fy));
            for (i, (w, f)) in wg.iter().zip(&fg).enumerate() {
                prop_assert!(rel_err(w, f) <= TOL, "gradient {i}: {:.2e}", rel_err(w, f));
            }
            Ok(())
        })
        .unwrap();
    // The named corner cases, whatever proptest drew.
    let one = |n_tokens: usize, n_experts: usize, idx: Vec<Vec<usize>>, cf| RoutingCase {
        n_tokens,
        n_experts,
        gate: idx.iter().map(|r| vec![0.5; r.len()]).collect(),
        idx,
        capacity_factor: cf,
    };
    let cases = [
        one(10, 8, vec![vec![3]; 10], None),    // all to one expert
        one(10, 8, vec![vec![3, 5]; 10], None), // top-2, two experts used
        one(3, 8, vec![vec![0], vec![7], vec![0]], None), // fewer tokens than experts
        one(10, 8, vec![vec![3]; 10], Some(1.0)), // capacity drops 8 of 10
        one(1, 1, vec![vec![0]], None),         // one token, one expert
    ];
    for case in cases {
        let (fy, fg) = dispatch_outcome::<F>(&case);
        let (wy, wg) = dispatch_outcome::<W>(&case);
        assert!(rel_err(&wy, &fy) <= TOL, "{case:?}");
        for (w, f) in wg.iter().zip(&fg) {
            assert!(rel_err(w, f) <= TOL, "{case:?}");
        }
    }
    // A whole model step on a batch smaller than the expert count (3 tokens, 8 experts).
    let config = micro(Some(1), None);
    let rows = token_rows(8, 1, 4, 96);
    let noise = RouterNoise::default();
    let (f, w) = (
        outcome::<F>(&config, &rows, 4, noise),
        outcome::<W>(&config, &rows, 4, noise),
    );
    assert_eq!(w.routing, f.routing);
    assert!(f.routing[0].1.iter().filter(|&&c| c == 0).count() >= 5);
    assert!(rel_err(&w.logits, &f.logits) <= TOL);
    for ((path, wg), (_, fg)) in w.grads.iter().zip(&f.grads) {
        assert!(rel_err(wg, fg) <= TOL, "{path}");
    }
}

// BACK-6: after a warm-up, neither host RSS nor device memory in use grows
// per training step (dense and MoE, micro preset, 200 steps after 30).
#[test]
fn back_6_memory_is_flat_over_training_steps() {
    let _serial = serial();
    for (name, config) in [
        ("dense", micro(None, None)),
        ("moe top-1", micro(Some(1), None)),
    ] {
        let (host, dev, _) = memory_growth_on::<W>(&config, 30, 200);
        eprintln!("{name}: host RSS {host:.0} B/step, device {dev:.0} B/step");
        assert!(
            host <= HOST_BYTES_PER_STEP,
            "{name}: host RSS grows {host:.0} B/step"
        );
        assert!(
            dev <= DEVICE_BYTES_PER_STEP,
            "{name}: device memory grows {dev:.0} B/step"
        );
    }
}

// BACK-1: the binary's `--device wgpu` runs the same generic path (here the
// parity check of `scripts/gpu-check.sh`, CPU against wgpu).
#[test]
fn back_1_cli_device_wgpu_runs_the_parity_check() {
    let _serial = serial();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_moe"))
        .args([
            "gpu", "parity", "--device", "wgpu", "--preset", "micro", "--moe", "--seq", "8",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wgpu_line = stdout
        .lines()
        .find(|l| l.starts_with("parity micro moe wgpu f32:"))
        .unwrap_or_default();
    assert!(
        wgpu_line.contains(") ok") && !stdout.contains("OVER"),
        "{stdout}"
    );
}

// Checks: BACK-11
#[test]
fn back_11_the_bundles_cubecl_toml_parses_as_cubecls_config() {
    use burn::cubecl::config::CubeClRuntimeConfig;
    use burn::cubecl::config::cache::CacheConfig;
    let template =
        std::fs::read_to_string(common::repo_root().join("scripts/cubecl-bundle.toml")).unwrap();
    let text = template.replace("@CACHE@", "gpu-bundle/cubecl-cache");
    // CubeCL panics on a file it cannot parse: parse it as CubeCL does.
    let config: CubeClRuntimeConfig = toml::from_str(&text).unwrap();
    assert_eq!(config.streaming.max_streams, 1);
    let in_bundle = |c: &CacheConfig| matches!(c, CacheConfig::File(p) if p == Path::new("gpu-bundle/cubecl-cache"));
    assert!(in_bundle(&config.autotune.cache), "{config:?}");
    assert!(
        config.compilation.cache.as_ref().is_some_and(in_bundle),
        "{config:?}"
    );
}
