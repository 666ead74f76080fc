//! CLI-6, BACK-10: a study spread out. The commands `moe reproduce --list`
//! prints, run stage by stage in a shuffled order two at a time, give the
//! runs, weights and analyses of `moe reproduce` itself; so does `--only`
//! for one run, and the placement on `--devices` changes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{local_config, tiny_run_toml, write_jsonl};
use moe_train::metrics::{Event, read_events};

/// A data config of three small domains and two tiny run configs.
fn inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let texts = [
        ("code", "def f(x):\n    return x + 1\n"),
        ("math", "Problem: 3 + 4 = ?\n\nSolution: 7"),
        ("prose", "The keeper of the lighthouse wrote home."),
    ];
    for (name, base) in texts {
        let rows: Vec<serde_json::Value> = (0..40)
            .map(|i| serde_json::json!({ "text": format!("{base} #{i}") }))
            .collect();
        write_jsonl(&dir.join(format!("{name}.jsonl")), &rows);
    }
    let domains: Vec<(&str, String)> = texts
        .iter()
        .map(|(n, _)| (*n, format!("{n}.jsonl")))
        .collect();
    let listed: Vec<(&str, &str)> = domains.iter().map(|(n, f)| (*n, f.as_str())).collect();
    let data = dir.join("data.toml");
    std::fs::write(&data, local_config(16, "tokens", &listed, "")).unwrap();
    let configs = dir.join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    for (name, moe) in [("dense", false), ("moe", true)] {
        std::fs::write(
            configs.join(format!("{name}.toml")),
            tiny_run_toml(name, moe),
        )
        .unwrap();
    }
    (data, configs)
}

fn reproduce(data: &Path, configs: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_moe"));
    cmd.args([
        "reproduce",
        "--device",
        "cpu",
        "--seeds",
        "2",
        "--runs",
        "dense,moe",
    ])
    .arg("--data-config")
    .arg(data)
    .arg("--configs")
    .arg(configs)
    .arg("--out")
    .arg(out)
    .args(extra);
    cmd.output().unwrap()
}

fn ok(out: std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Runs one listed command (its `moe` is this build's binary).
fn shell(line: &str) -> std::process::Child {
    let bin = env!("CARGO_BIN_EXE_moe");
    let line = line.strip_prefix("moe ").expect("a moe command");
    Command::new("sh")
        .arg("-c")
        .arg(format!("'{bin}' {line}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every run directory's events (wall-clock rates zeroed), final weights
/// and analysis (paths made relative to the study), by path in the study.
fn outputs(study: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for run in ["dense/seed-3", "dense/seed-4", "moe/seed-3", "moe/seed-4"] {
        let dir = study.join(run);
        let events: Vec<String> = read_events(&dir.join("metrics.jsonl"))
            .unwrap()
            .into_iter()
            .map(|mut e| {
                if let Event::Train { tok_per_s, .. } = &mut e {
                    *tok_per_s = 0.0;
                }
                serde_json::to_string(&e).unwrap()
            })
            .collect();
        out.push((format!("{run}/events"), events.join("\n")));
        let weights = std::fs::read(dir.join("final/model.safetensors")).unwrap();
        out.push((format!("{run}/weights"), format!("{:?}", weights)));
        if run.starts_with("moe") {
            let text = std::fs::read_to_string(dir.join("analysis/analysis.json")).unwrap();
            let prefix = format!("{}/", study.display());
            let text = text.replace(&prefix, "");
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            // Wall-clock throughput is the one thing that may differ.
            v["history"]["throughput"] = serde_json::Value::Null;
            for t in v["history"]["train"].as_array_mut().unwrap() {
                t["tok_per_s"] = serde_json::Value::Null;
            }
            out.push((format!("{run}/analysis"), v.to_string()));
        }
    }
    out
}

// Checks: CLI-6, BACK-10
#[test]
fn cli_6_listed_commands_in_any_order_give_the_study() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, configs) = inputs(tmp.path());
    let reference = tmp.path().join("reference");
    ok(reproduce(&data, &configs, &reference, &["--jobs", "2"]));
    let want = outputs(&reference);

    // BACK-10: one device, or the CPU listed twice, places the runs
    // differently and changes nothing.
    for (name, devices) in [("one-device", "cpu"), ("two-devices", "cpu,cpu")] {
        let out = tmp.path().join(name);
        ok(reproduce(&data, &configs, &out, &["--devices", devices]));
        assert_eq!(outputs(&out), want, "--devices {devices}");
    }

    // CLI-6: the listed commands, each stage shuffled, two at a time.
    let sweep = tmp.path().join("sweep");
    let listing = ok(reproduce(&data, &configs, &sweep, &["--list"]));
    assert!(!sweep.exists(), "--list wrote {}", sweep.display());
    let mut stages: Vec<Vec<String>> = Vec::new();
    for line in listing.lines() {
        if line.starts_with("# ") && line[2..].starts_with(|c: char| c.is_ascii_digit()) {
            stages.push(Vec::new());
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            stages
                .last_mut()
                .expect("a stage heading first")
                .push(line.to_string());
        }
    }
    assert_eq!(
        stages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![1, 4, 2, 1],
        "{listing}"
    );
    let mut rng = 7u64;
    for mut stage in stages {
        // A fixed shuffle (xorshift), so the test is deterministic.
        for i in (1..stage.len()).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            stage.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        for pair in stage.chunks(2) {
            let children: Vec<_> = pair.iter().map(|l| shell(l)).collect();
            for (line, child) in pair.iter().zip(children) {
                let out = child.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "{line}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    assert_eq!(outputs(&sweep), want, "the listed commands");
    assert!(sweep.join("report/report.md").is_file());

    // --only trains one run as the study does, and names the runs it knows.
    let only = tmp.path().join("only");
    let err = reproduce(&data, &configs, &only, &["--only", "moe@4"]);
    assert!(!err.status.success(), "--only before the data is prepared");
    std::fs::create_dir_all(&only).unwrap();
    let prepared = Command::new(env!("CARGO_BIN_EXE_moe"))
        .args(["data", "prepare", "--config"])
        .arg(&data)
        .arg("--out")
        .arg(only.join("data"))
        .output()
        .unwrap();
    ok(prepared);
    ok(reproduce(&data, &configs, &only, &["--only", "moe@4"]));
    let one = |study: &Path| {
        read_events(&study.join("moe/seed-4/metrics.jsonl"))
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                Event::Train { step, loss, .. } => Some((step, loss)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(one(&only), one(&reference));
    assert!(!only.join("dense").exists(), "--only trained another run");
    let err = reproduce(&data, &configs, &only, &["--only", "moe@9"]);
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(
        !err.status.success() && stderr.contains("dense@3"),
        "{stderr}"
    );
}
