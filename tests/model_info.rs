//! `moe model info` on a checkpoint shows its balancing bias (MOE-15,
//! TRAIN-26): the bias is model state a user can read without code.

mod common;

use common::{moe, small_prepared, tiny_run_toml};

// Checks: TRAIN-26
#[test]
fn train_26_model_info_shows_a_checkpoints_balancing_bias() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_prepared(
        tmp.path(),
        &[("code", "def f(x): return x"), ("prose", "The cat sat.")],
        40,
        0.2,
    );
    let toml = tiny_run_toml("bias", true).replace("[train]\n", "[train]\nbias_rate = 0.5\n");
    std::fs::write(tmp.path().join("bias.toml"), toml).unwrap();
    let data = data.to_str().unwrap();
    let out = moe(
        tmp.path(),
        &[
            "train",
            "--config",
            "bias.toml",
            "--data",
            data,
            "--out",
            "run",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = moe(tmp.path(), &["model", "info", "--model", "run/final"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("balancing bias, block 1: "))
        .unwrap_or_else(|| panic!("no bias line: {stdout}"));
    // Four experts, each a multiple of 0.5 after 4 steps, not all zero.
    let values: Vec<f64> = line
        .split('[')
        .nth(1)
        .unwrap()
        .trim_end_matches(']')
        .split(", ")
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(values.len(), 4, "{line}");
    assert!(
        values
            .iter()
            .all(|v| (v * 2.0).fract() == 0.0 && v.abs() <= 2.0),
        "{line}"
    );
    assert!(values.iter().any(|v| *v != 0.0), "{line}");
    // The initial model's bias is zero; a model without one shows no line.
    let out = moe(tmp.path(), &["model", "info", "--model", "run/initial"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("min +0.0000, max +0.0000"), "{stdout}");
    let out = moe(tmp.path(), &["model", "info", "--model", "micro"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("balancing bias"));
}
