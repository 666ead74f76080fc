//! CLI-5: the binary's errors are one line, each cause said once, exit 1;
//! values it cannot use are refused as the arguments are parsed.

mod common;

use common::{moe, repo_root};

/// stderr of a failed `moe` run in a fresh directory.
fn fails(args: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out = moe(tmp.path(), args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
    stderr
}

// Checks: CLI-5
#[test]
fn cli_5_an_error_is_one_line_and_says_each_cause_once() {
    let config = repo_root().join("configs/runs/moe-tiny.toml");
    let config = config.to_str().unwrap();
    let stderr = fails(&[
        "train",
        "--config",
        config,
        "--data",
        "no-such-data",
        "--out",
        "run",
    ]);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert_eq!(
        lines[0].matches("no-such-data").count(),
        1,
        "the path is said more than once: {stderr}"
    );
    let reason = "No such file or directory";
    assert_eq!(lines[0].matches(reason).count(), 1, "{stderr}");
}

// Checks: CLI-5
#[test]
fn cli_5_unusable_values_are_refused_at_parse_time() {
    let stderr = fails(&["demo", "--max-steps", "0"]);
    assert!(stderr.contains("--max-steps"), "{stderr}");
    for rate in ["0", "nan", "-5", "inf"] {
        let flag = format!("--dense-tok-per-s={rate}");
        let stderr = fails(&["reproduce", "--estimate-only", "--out", "o", &flag]);
        assert!(stderr.contains("--dense-tok-per-s"), "{rate}: {stderr}");
    }
}
