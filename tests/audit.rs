//! `moe data audit` on small prepared fixtures with planted problems (a
//! constant `Problem:` prefix, invisible characters, a literal
//! `<|endoftext|>`, near-duplicate paragraphs, an exact duplicate): document
//! rebuilding, the Markdown report (snapshot), the JSON form, errors and
//! determinism (AUDIT-*).

mod common;

use std::path::{Path, PathBuf};

use common::{local_config, moe, write_jsonl};
use moe_data::audit::render::markdown;
use moe_data::audit::rules::Severity;
use moe_data::audit::{AuditOptions, audit, rebuild};
use moe_data::config::DataConfig;
use moe_data::prepare::{PrepareOptions, prepare};
use moe_data::prepared::PreparedData;
use moe_data::split::{Split, assign};
use moe_data::tokenizer::Gpt2Tokenizer;
use serde_json::{Value, json};

fn snapshot_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"));
    s.set_prepend_module_to_snapshot(false);
    s
}

const NAMES: [&str; 8] = ["Ada", "Bram", "Cleo", "Dov", "Esme", "Finn", "Gus", "Hana"];
const PLACES: [&str; 5] = ["harbor", "market", "mill", "chapel", "bridge"];

fn code_texts() -> Vec<String> {
    (0..96)
        .map(|i| match i % 4 {
            0 => format!("def f{i}(x):\n    return x * {i} + 1\n"),
            1 => format!("class C{i}:\n    size = {i}\n"),
            2 => format!("import os{i}\nprint(os{i}.name)\n"),
            _ => format!("    total_{i} = {i} * 2  # indented\n"),
        })
        .collect()
}

fn math_texts() -> Vec<String> {
    (0..72)
        .map(|i| {
            let (a, b) = (3 * i + 1, 7 * i + 2);
            let ask = ["What is", "Add", "Compute", "Find"][i % 4];
            format!(
                "Problem: {ask} {a} plus {b}?\n\nSolution: {a} + {b} = {}.",
                a + b
            )
        })
        .collect()
}

fn prose_texts() -> Vec<String> {
    // Every tenth sentence hides a no-break space.
    let mut v: Vec<String> = (0..40)
        .map(|i| {
            let gap = if i % 10 == 3 { "\u{00A0}" } else { " " };
            format!(
                "{} walked{gap}to the {} at dawn on day {i}.",
                NAMES[i % 8],
                PLACES[i % 5]
            )
        })
        .collect();
    v.push("The\u{00A0}clock\u{200B}tower rang twice before noon.".into());
    v.push("A sign read <|endoftext|> in bold letters.".into());
    v.push(v[0].clone());
    let paragraph = "The keeper of the northern light kept a ledger of every ship that passed the rocks, \
        noting the hour, the wind, the colour of the sails and the songs the sailors sang as they rounded the point. \
        In winter the ice crept down the channel and no ship came for weeks, so he mended nets, \
        wrote letters to his sister in the valley, and counted the gulls that sheltered under the gallery. \
        When spring returned he climbed the tower each dawn, polished the great lens until it shone, \
        and waited for the first mast to rise above the grey line of the sea.";
    for w in [
        "ledger", "hour", "wind", "sails", "songs", "point", "nets", "letters", "gulls", "lens",
    ] {
        v.push(paragraph.replacen(w, "log", 1));
    }
    v
}

/// Writes the three corpora and prepares them; returns the prepared directory.
fn prepared_fixture(dir: &Path, balance: &str) -> PathBuf {
    let rows = |texts: Vec<String>| -> Vec<Value> {
        texts.into_iter().map(|t| json!({ "text": t })).collect()
    };
    write_jsonl(&dir.join("code.jsonl"), &rows(code_texts()));
    write_jsonl(&dir.join("math.jsonl"), &rows(math_texts()));
    write_jsonl(&dir.join("prose.jsonl"), &rows(prose_texts()));
    let text = local_config(
        16,
        balance,
        &[
            ("code", "code.jsonl"),
            ("math", "math.jsonl"),
            ("prose", "prose.jsonl"),
        ],
        "",
    );
    let config_path = dir.join("data.toml");
    std::fs::write(&config_path, text).unwrap();
    let config = DataConfig::load(&config_path).unwrap();
    let out = dir.join("out");
    let opts = PrepareOptions {
        out: out.clone(),
        ..Default::default()
    };
    prepare(&config, &config_path, &opts).unwrap();
    out
}

// Checks: AUDIT-2
#[test]
fn audit_2_without_balancing_every_packed_document_is_rebuilt_token_for_token() {
    let tmp = tempfile::tempdir().unwrap();
    let out = prepared_fixture(tmp.path(), "none");
    let data = PreparedData::open(&out).unwrap();
    let tok = Gpt2Tokenizer::embedded().unwrap();
    let (docs, coverage) = rebuild(&data, &tok).unwrap();
    let m = &data.manifest;
    for (d, (name, texts)) in [("code", code_texts()), ("math", math_texts())]
        .into_iter()
        .enumerate()
    {
        let assignment = assign(
            texts.len(),
            m.config.pipeline.val_fraction,
            0.0,
            m.config.pipeline.seed,
            name,
        );
        for (split, indices) in assignment.iter().filter(|(s, _)| *s != Split::Test) {
            let info = m.shard(*split, name).unwrap();
            let whole = (info.blocks as usize) * m.block_size;
            let (mut end, mut heads) = (0, 0);
            let mut expected = Vec::new();
            for &i in indices {
                let ids: Vec<u16> = tok.encode(&texts[i]).iter().map(|&t| t as u16).collect();
                let start = end;
                end += ids.len() + 1;
                if end <= whole {
                    expected.push(ids);
                } else if start < whole {
                    heads += 1;
                }
            }
            let got: Vec<Vec<u16>> = docs
                .iter()
                .filter(|x| x.domain == d && x.split == *split && x.is_complete())
                .map(|x| x.tokens.clone())
                .collect();
            assert_eq!(got, expected, "{split}/{name}");
            let cov = coverage
                .iter()
                .find(|c| c.split == *split && c.domain == name)
                .unwrap();
            assert_eq!((cov.heads, cov.fragments), (heads, 0), "{split}/{name}");
            assert!(cov.complete + cov.heads <= info.documents, "{split}/{name}");
        }
    }
}

// Checks: AUDIT-2
#[test]
fn audit_2_after_balancing_every_complete_document_is_an_input_document() {
    let tmp = tempfile::tempdir().unwrap();
    let out = prepared_fixture(tmp.path(), "tokens");
    let data = PreparedData::open(&out).unwrap();
    assert!(
        data.manifest
            .shards
            .iter()
            .any(|s| s.blocks < s.blocks_before_balance)
    );
    let tok = Gpt2Tokenizer::embedded().unwrap();
    let (docs, coverage) = rebuild(&data, &tok).unwrap();
    let inputs: Vec<String> = [code_texts(), math_texts(), prose_texts()].concat();
    let complete: Vec<_> = docs.iter().filter(|d| d.is_complete()).collect();
    assert!(complete.len() > 50);
    for d in &complete {
        assert!(
            inputs.contains(&d.text),
            "not an input document: {:?}",
            d.text
        );
    }
    for d in docs.iter().filter(|d| d.has_start() && !d.is_complete()) {
        assert!(
            inputs.iter().any(|t| t.starts_with(&d.text)),
            "not an input start: {:?}",
            d.text
        );
    }
    let packed: u64 = coverage.iter().map(|c| c.documents).sum();
    let seen: u64 = coverage.iter().map(|c| c.complete + c.heads).sum();
    assert!(seen < packed);
}

// Checks: AUDIT-3, AUDIT-5, AUDIT-7, AUDIT-8, AUDIT-10, AUDIT-19
#[test]
fn audit_3_markdown_report_on_a_fixed_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let out = prepared_fixture(tmp.path(), "tokens");
    let report = audit(&PreparedData::open(&out).unwrap(), &AuditOptions::default()).unwrap();
    let md = markdown(&report);
    let at = |s: &str| md.find(s).unwrap_or_else(|| panic!("no {s:?} in\n{md}"));
    assert!(at("## Findings") < at("## Assumptions"));
    assert!(at("## Assumptions") < at("## Recommendations"));
    assert!(at("## Recommendations") < at("## Measurements"));
    let prefix = report
        .findings
        .iter()
        .find(|f| f.check == "prefix" && f.domain.as_deref() == Some("math"))
        .unwrap();
    assert_eq!(prefix.severity, Severity::High);
    assert!(prefix.title.contains("`\"Problem:\"`"), "{}", prefix.title);
    let has = |check: &str, domain: &str| {
        report
            .findings
            .iter()
            .any(|f| f.check == check && f.domain.as_deref() == Some(domain))
    };
    assert!(has("template_marker", "math"));
    assert!(has("invisible_unicode", "prose"));
    assert!(has("literal_eos", "prose"));
    assert!(
        report
            .assumptions
            .iter()
            .any(|a| a.contains("MinHash with 128"))
    );
    snapshot_settings().bind(|| insta::assert_snapshot!("audit_fixture", md));
}

// Checks: AUDIT-3
#[test]
fn audit_3_findings_are_ordered_and_every_recommendation_cites_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = prepared_fixture(tmp.path(), "tokens");
    let report = audit(&PreparedData::open(&out).unwrap(), &AuditOptions::default()).unwrap();
    let sev: Vec<Severity> = report.findings.iter().map(|f| f.severity).collect();
    let mut sorted = sev.clone();
    sorted.sort();
    assert_eq!(sev, sorted);
    for f in &report.findings {
        assert!(!f.rule.is_empty() && f.spec.starts_with("AUDIT-"), "{f:?}");
        assert!(
            f.severity == Severity::Info || !f.evidence.is_empty(),
            "{f:?}"
        );
    }
    let cited: Vec<usize> = report
        .recommendations
        .iter()
        .flat_map(|r| r.findings.clone())
        .collect();
    for (i, f) in report.findings.iter().enumerate() {
        assert_eq!(
            cited.contains(&(i + 1)),
            !f.recommendation.is_empty(),
            "{f:?}"
        );
    }
}

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

// Checks: AUDIT-11, AUDIT-12, AUDIT-13
#[test]
fn audit_11_planted_duplicates_are_dropped_and_near_duplicates_found() {
    let tmp = tempfile::tempdir().unwrap();
    let out = prepared_fixture(tmp.path(), "none");
    let report = audit(&PreparedData::open(&out).unwrap(), &AuditOptions::default()).unwrap();
    let groups = &report.measurements.duplicates.groups;
    assert!(groups.iter().all(|g| g.exact == 0 && g.exact_leaked == 0));
    let exact = report
        .findings
        .iter()
        .find(|f| f.check == "exact_duplicates")
        .unwrap();
    assert_eq!(exact.severity, Severity::Info);
    // Ten paragraphs one word apart: within a split they cluster, and each
    // one in val has its near-copy in train.
    let tok = Gpt2Tokenizer::embedded().unwrap();
    let (docs, _) = rebuild(&PreparedData::open(&out).unwrap(), &tok).unwrap();
    let count = |split: Split| {
        docs.iter()
            .filter(|d| d.is_complete() && d.split == split && d.text.contains("northern light"))
            .count() as u64
    };
    let (t, v) = (count(Split::Train), count(Split::Val));
    assert!(
        t >= 1 && v >= 1,
        "the seeded split put paragraphs on one side only: {t} {v}"
    );
    let g = |split: Split| {
        groups
            .iter()
            .find(|g| g.domain == 2 && g.split == split)
            .unwrap()
    };
    assert_eq!(g(Split::Train).near, t - 1);
    assert_eq!(g(Split::Val).near, v - 1);
    assert_eq!(g(Split::Val).near_leaked, v);
    let leak = report
        .findings
        .iter()
        .find(|f| f.check == "leakage" && f.domain.as_deref() == Some("prose"))
        .unwrap();
    assert!(leak.severity <= Severity::Medium, "{leak:?}");
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
