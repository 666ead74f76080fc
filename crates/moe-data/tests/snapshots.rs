//! Snapshot tests (insta, stored in the top-level `snapshots/`) of formatted
//! samples for each template and clean-up (FMT-1 … FMT-4) and of
//! `moe data inspect` on a fixed fixture (CLI-2).

mod common;

use std::ops::ControlFlow;
use std::path::Path;

use common::write_jsonl;
use moe_data::config::{DataConfig, Utf8Policy};
use moe_data::inspect::inspect;
use moe_data::prepare::{PrepareOptions, prepare};
use moe_data::prepared::PreparedData;
use moe_data::sources::{Candidate, SourceFile, read_candidates};
use serde_json::json;

fn snapshot_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(common::repo_root().join("snapshots"));
    s.set_prepend_module_to_snapshot(false);
    s
}

/// Formats every row of `rows` with the single source of `source_toml`.
fn formatted(dir: &Path, rows: &[serde_json::Value], source_toml: &str) -> String {
    let file = dir.join("rows.jsonl");
    write_jsonl(&file, rows);
    let text = format!(
        "[pipeline]\n[[domains]]\nname = \"d\"\n[[domains.sources]]\nkind = \"local\"\npath = \"rows.jsonl\"\nformat = \"jsonl\"\n{source_toml}"
    );
    let config = DataConfig::parse(&text, Path::new("t.toml")).unwrap();
    let source = &config.domains[0].sources[0];
    let mut docs = Vec::new();
    let mut visit = |c: Candidate| {
        if let Candidate::Doc(row, text) = c {
            docs.push(format!("--- document from row {row} ---\n{text}"));
        }
        Ok(ControlFlow::Continue(()))
    };
    let sf = SourceFile {
        name: "rows.jsonl".into(),
        path: file,
    };
    read_candidates(&sf, source, Utf8Policy::Skip, &mut visit).unwrap();
    docs.join("\n")
}

// Checks: FMT-1, FMT-2
#[test]
fn fmt_1_fmt_2_gsm8k_template_and_calculator_annotations() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = [json!({
        "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
        "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
    })];
    let source = "fields = [\"question\", \"answer\"]\ntemplate = \"Problem: {question}\\n\\nSolution: {answer}\"\nstrip_calc_annotations = true\n";
    snapshot_settings()
        .bind(|| insta::assert_snapshot!("format_gsm8k", formatted(tmp.path(), &rows, source)));
}

// Checks: FMT-1
#[test]
fn fmt_1_math_template_keeps_latex() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = [json!({
        "problem": "If $x^2 + 2x + 1 = 0$, what is $x$?",
        "level": "Level 1",
        "solution": "We have $(x+1)^2 = 0$, so $x = \\boxed{-1}$."
    })];
    let source = "fields = [\"problem\", \"solution\"]\ntemplate = \"Problem: {problem}\\n\\nSolution: {solution}\"\n";
    snapshot_settings()
        .bind(|| insta::assert_snapshot!("format_math", formatted(tmp.path(), &rows, source)));
}

// Checks: FMT-3, FMT-4
#[test]
fn fmt_3_fmt_4_wikitext_articles_and_repair() {
    let tmp = tempfile::tempdir().unwrap();
    let lines = [
        "",
        " = Valkyria Chronicles III = \n",
        "",
        " Senjō no Valkyria 3 is a tactical role @-@ playing game released in 2 @,@ 011 .\n",
        "",
        " = = Gameplay = = \n",
        "",
        " The game scores 8 @.@ 5 out of 10 .\n",
        "",
        " = Tower Building = \n",
        "",
        " The tower is 1 @,@ 200 feet tall .\n",
    ];
    let rows: Vec<_> = lines.iter().map(|l| json!({ "text": l })).collect();
    let source = "wikitext_articles = true\nwikitext_detokenize = true\n";
    snapshot_settings()
        .bind(|| insta::assert_snapshot!("format_wikitext", formatted(tmp.path(), &rows, source)));
}

// Checks: CLI-2
#[test]
fn cli_2_inspect_output_on_a_fixed_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let code: Vec<_> = (0..30)
        .map(|i| json!({"text": format!("def f{i}(x):\n    return x * {i} + 1\n")}))
        .collect();
    let mut prose: Vec<_> = (0..40).map(|i| json!({"text": format!("The {i}th lighthouse keeper wrote a long letter home about the sea.")})).collect();
    prose.push(json!({"text": "tiny"}));
    write_jsonl(&tmp.path().join("code.jsonl"), &code);
    write_jsonl(&tmp.path().join("prose.jsonl"), &prose);
    let text = common::local_config(
        16,
        "tokens",
        &[("code", "code.jsonl"), ("prose", "prose.jsonl")],
        "",
    )
    .replace(
        "path = \"prose.jsonl\"\nformat = \"jsonl\"\n",
        "path = \"prose.jsonl\"\nformat = \"jsonl\"\nmin_chars = 10\n",
    );
    let config_path = tmp.path().join("data.toml");
    std::fs::write(&config_path, text).unwrap();
    let config = DataConfig::load(&config_path).unwrap();
    prepare(
        &config,
        &config_path,
        &PrepareOptions {
            out: tmp.path().join("out"),
            ..Default::default()
        },
    )
    .unwrap();
    let report = inspect(&PreparedData::open(&tmp.path().join("out")).unwrap(), 4).unwrap();
    assert!(report.contains("⟨EOS⟩"));
    snapshot_settings().bind(|| insta::assert_snapshot!("inspect_fixture", report));
}
