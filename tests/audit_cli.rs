//! `moe data audit` on the audit fixture (`common::audit_fixture`): the JSON
//! form agrees with the manifest, the output is identical across runs and
//! paths, and a modified shard or manifest is a one-line error (AUDIT-*).

mod common;

use std::path::Path;

use common::audit_fixture::{prepared_fixture, prose_texts};
use common::moe;
use moe_data::prepared::PreparedData;
use moe_data::split::Split;
use serde_json::{Value, json};

fn audit_json(dir: &Path, out: &Path) -> Value {
    let run = moe(
        dir,
        &["data", "audit", out.to_str().unwrap(), "--format", "json"],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_slice(&run.stdout).unwrap()
}

// Checks: AUDIT-1, AUDIT-6, AUDIT-14, AUDIT-16, AUDIT-17, AUDIT-18
#[test]
fn audit_1_json_format_parses_and_agrees_with_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let out = prepared_fixture(tmp.path(), "tokens");
    let j = audit_json(tmp.path(), &out);
    let m = PreparedData::open(&out).unwrap().manifest;
    assert_eq!(j["format"], "moe-emergence/data-audit");
    assert_eq!(j["summary"]["shards"], m.shards.len());
    assert_eq!(j["summary"]["domains"], json!(["code", "math", "prose"]));
    let shape = &j["measurements"]["shape"];
    assert_eq!(shape["ratio_before"], m.balance.token_ratio_before);
    for (d, name) in ["code", "math", "prose"].iter().enumerate() {
        let train = m.shard(Split::Train, name).unwrap();
        let val = m.shard(Split::Val, name).unwrap();
        let f = &shape["domains"][d];
        assert_eq!(f["train_tokens_before"], train.blocks_before_balance * 16);
        assert_eq!(f["train_tokens_after"], train.tokens);
        assert_eq!(f["held_out_documents"], val.documents);
        let eos = f["eos_per_1k_train"].as_f64().unwrap();
        assert!((eos - 1000.0 * train.eos_count as f64 / train.tokens as f64).abs() < 1e-9);
        assert!(f["tokens_per_byte"].as_f64().unwrap() > 0.1);
    }
    for (t, s) in shape["tails"].as_array().unwrap().iter().zip(&m.shards) {
        assert_eq!(t["tail"], s.tail_dropped);
    }
    let prose = shape["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["domain"] == "prose")
        .unwrap();
    assert_eq!(prose["drops"]["duplicate"], 1);
    assert_eq!(prose["records"], prose_texts().len());
    let findings = j["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["severity"] == "high" && f["check"] == "prefix")
    );
    assert!(
        j["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !r["findings"].as_array().unwrap().is_empty())
    );
}

// Checks: AUDIT-4
#[test]
fn audit_4_output_is_identical_across_runs_and_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let out = prepared_fixture(tmp.path(), "tokens");
    let copy = tmp.path().join("elsewhere");
    std::fs::create_dir_all(copy.join("train")).unwrap();
    std::fs::create_dir_all(copy.join("val")).unwrap();
    for f in [
        "manifest.json",
        "train/code.bin",
        "train/math.bin",
        "train/prose.bin",
        "val/code.bin",
        "val/math.bin",
        "val/prose.bin",
    ] {
        std::fs::copy(out.join(f), copy.join(f)).unwrap();
    }
    let a = moe(tmp.path(), &["data", "audit", out.to_str().unwrap()]);
    let b = moe(tmp.path(), &["data", "audit", copy.to_str().unwrap()]);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(audit_json(tmp.path(), &out), audit_json(tmp.path(), &copy));
}

// Checks: AUDIT-1
#[test]
fn audit_1_a_modified_shard_is_a_one_line_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = prepared_fixture(tmp.path(), "tokens");
    let shard = out.join("val/math.bin");
    let mut bytes = std::fs::read(&shard).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&shard, bytes).unwrap();
    let run = moe(tmp.path(), &["data", "audit", out.to_str().unwrap()]);
    assert!(!run.status.success());
    assert!(run.stdout.is_empty());
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("val/math.bin") && err.contains("sha256"),
        "{err}"
    );
}

// Checks: AUDIT-1
#[test]
fn audit_1_a_manifest_contradicting_a_verified_shard_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = prepared_fixture(tmp.path(), "tokens");
    let path = out.join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let eos = m["shards"][0]["eos_count"].as_u64().unwrap();
    m["shards"][0]["eos_count"] = json!(eos + 1);
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let run = moe(tmp.path(), &["data", "audit", out.to_str().unwrap()]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("train/code.bin") && err.contains(&format!("{eos} EOS tokens")),
        "{err}"
    );
}
