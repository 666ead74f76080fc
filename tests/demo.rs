//! The demo pipeline end to end on a reduced setting (issue: the main job):
//! every artefact is produced and self-consistent, and the summary keeps its
//! shape (numbers masked) — CLI-3.

mod common;

use moe_data::prepared::PreparedData;
use moe_train::metrics::{Event, read_events};

/// Digit runs → `#` and signs before them → `±`, so the snapshot holds the
/// summary's shape, not its values.
fn mask_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let digit_next = chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
        if c.is_ascii_digit() {
            if !out.ends_with('#') {
                out.push('#');
            }
        } else if (c == '+' || c == '-') && digit_next {
            out.push('±');
        } else {
            out.push(c);
        }
    }
    out
}

// Checks: CLI-3
#[test]
fn cli_3_quick_demo_produces_consistent_artefacts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let args = [
        "demo",
        "--out",
        out.to_str().unwrap(),
        "--max-steps",
        "4",
        "--permutations",
        "20",
    ];
    let run = common::moe(tmp.path(), &args);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    // The prepared data verifies against its manifest.
    PreparedData::open(&out.join("data"))
        .unwrap()
        .verify()
        .unwrap();
    for name in ["dense-tiny", "moe-tiny", "moe-no-lb-tiny"] {
        let events = read_events(&out.join(name).join("metrics.jsonl")).unwrap();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Eval { step: 4, .. })),
            "{name}: no eval at step 4"
        );
        assert!(
            out.join(name)
                .join("checkpoints/step-0000004/model.safetensors")
                .exists(),
            "{name}"
        );
    }
    for name in ["moe-tiny", "moe-no-lb-tiny"] {
        let text = std::fs::read_to_string(out.join(name).join("analysis/analysis.json")).unwrap();
        let a: moe_analysis::Analysis = serde_json::from_str(&text).unwrap();
        assert_eq!(a.layers.len(), 2, "{name}: blocks 2 and 3");
        assert!(a.layers.iter().all(|l| l.specialization.rise.is_some()));
        assert!(
            out.join(name)
                .join("analysis/figures/heatmap_layer2.png")
                .exists()
        );
    }
    let report = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    for run in ["dense-tiny", "moe-tiny", "moe-no-lb-tiny"] {
        assert!(report.contains(run), "report lacks {run}");
    }
    // A second run reuses everything (no training, no analysis).
    let again = common::moe(tmp.path(), &args);
    assert!(again.status.success());
    let stderr2 = String::from_utf8_lossy(&again.stderr);
    assert_eq!(
        stderr2.matches("reusing the finished run").count(),
        3,
        "{stderr2}"
    );
    let summary = String::from_utf8_lossy(&run.stdout).replace(out.to_str().unwrap(), "<out>");
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("demo_summary_shape", mask_numbers(&summary)));
}
