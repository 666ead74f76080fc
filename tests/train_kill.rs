//! TRAIN-8: a `moe train` process killed at an arbitrary step (after a
//! checkpoint, before the next) and resumed gives the same train and eval
//! losses and the same final weights, byte for byte, as an uninterrupted run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use moe_train::metrics::{Event, read_events};

const CONFIG: &str = r#"
[run]
name = "kill"
seed = 5
[model]
init = "scratch"
preset = "tiny"
compact_vocab = true
[model.dims]
d_model = 16
n_layer = 2
n_head = 2
n_positions = 32
[model.moe]
layers = [1]
n_experts = 4
top_k = 1
[train]
steps = 300
micro_batch = 2
grad_accum = 2
lr = 3e-3
lb_coef = 0.01
z_coef = 0.001
router_noise_std = 0.1
[eval]
every = 20
max_blocks = 4
[log]
every = 5
[checkpoint]
every = 25
keep = 2
"#;

fn prepared(dir: &Path) -> PathBuf {
    common::small_prepared(
        dir,
        &[
            ("code", "def f(x):\n    return x + 1\n"),
            ("prose", "The keeper of the lighthouse wrote home."),
        ],
        60,
        0.1,
    )
}

fn train(dir: &Path, data: &Path, out: &Path, resume: bool) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_moe"));
    cmd.args(["train", "--config"])
        .arg(dir.join("run.toml"))
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .stderr(Stdio::null())
        .stdout(Stdio::null());
    if resume {
        cmd.arg("--resume");
    }
    cmd
}

/// Train and eval losses by step.
fn losses(out: &Path) -> Vec<(u64, String, f64)> {
    read_events(&out.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Train { step, loss, .. } => Some((step, "train".into(), loss)),
            Event::Eval { step, loss, .. } => Some((step, "eval".into(), loss)),
            _ => None,
        })
        .collect()
}

// Checks: TRAIN-8
#[test]
fn train_8_kill_at_an_arbitrary_step_then_resume_is_bit_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let data = prepared(tmp.path());
    std::fs::write(tmp.path().join("run.toml"), CONFIG).unwrap();
    let straight = tmp.path().join("straight");
    assert!(
        train(tmp.path(), &data, &straight, false)
            .status()
            .unwrap()
            .success()
    );

    // Kill once the first checkpoint is written and a later step logged.
    let killed = tmp.path().join("killed");
    let mut child = train(tmp.path(), &data, &killed, false).spawn().unwrap();
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(killed.join("metrics.jsonl")).unwrap_or_default();
        if text.contains("\"event\":\"checkpoint\"") && text.contains("\"step\":30,") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint in time"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !killed.join("final").exists(),
        "the run finished before the kill: the test did not kill it"
    );
    let at_kill = losses(&killed).last().map(|l| l.0).unwrap_or(0);
    eprintln!("killed after step {at_kill}");
    assert!(
        train(tmp.path(), &data, &killed, true)
            .status()
            .unwrap()
            .success()
    );

    assert_eq!(losses(&killed), losses(&straight));
    let weights = |dir: &Path| std::fs::read(dir.join("final/model.safetensors")).unwrap();
    assert!(
        weights(&killed) == weights(&straight),
        "final weights differ"
    );
}
