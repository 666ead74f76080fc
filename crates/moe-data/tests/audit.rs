//! The data audit on small prepared fixtures with planted problems
//! (`common::audit_fixture`): document rebuilding, planted duplicates and
//! the Markdown report (snapshot) (AUDIT-*). The `moe data audit` command's JSON form, errors
//! and determinism are tested at the workspace root (`tests/audit_cli.rs`).

mod common;

use common::audit_fixture::{code_texts, math_texts, prepared_fixture, prose_texts};
use moe_data::audit::render::markdown;
use moe_data::audit::rules::Severity;
use moe_data::audit::{AuditOptions, audit, rebuild};
use moe_data::prepared::PreparedData;
use moe_data::split::{Split, assign};
use moe_data::tokenizer::Gpt2Tokenizer;

fn snapshot_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(common::repo_root().join("snapshots"));
    s.set_prepend_module_to_snapshot(false);
    s
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
