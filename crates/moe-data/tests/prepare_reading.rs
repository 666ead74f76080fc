//! How `prepare` reads its files: hashed while read (DATA-14), read and
//! parsed on a thread ahead of tokenization without changing the output or
//! the errors (DATA-15), tokenized a batch ahead of keeping (DATA-17).

mod common;

use std::io::Write;
use std::path::Path;

use common::write_jsonl;
use moe_data::config::DataConfig;
use moe_data::manifest::Manifest;
use moe_data::prepare::{PrepareOptions, prepare};
use serde_json::json;
use sha2::{Digest, Sha256};

fn run(dir: &Path, config: &str, threads: usize) -> moe_data::Result<Manifest> {
    let path = dir.join("data.toml");
    std::fs::write(&path, config).unwrap();
    let config = DataConfig::load(&path)?;
    let out = dir.join(format!("out-{threads}"));
    let _ = std::fs::remove_dir_all(&out);
    prepare(
        &config,
        &path,
        &PrepareOptions {
            out,
            threads: Some(threads),
            ..Default::default()
        },
    )
}

fn rows(ids: std::ops::Range<usize>) -> Vec<serde_json::Value> {
    ids.map(|i| {
        let text: Vec<String> = (0..20).map(|k| format!("w{}", i * 31 + k)).collect();
        json!({"text": text.join(" "), "id": i})
    })
    .collect()
}

fn sha256_of(path: &Path) -> (String, u64) {
    let bytes = std::fs::read(path).unwrap();
    (hex::encode(Sha256::digest(&bytes)), bytes.len() as u64)
}

fn source(path: &str, format: &str) -> String {
    format!("[[domains.sources]]\nkind = \"local\"\npath = \"{path}\"\nformat = \"{format}\"\n")
}

// Checks: DATA-14
#[test]
fn data_14_files_are_hashed_whole_though_read_once_and_in_part() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("a")).unwrap();
    write_jsonl(&dir.join("a/1.jsonl"), &rows(0..2000));
    write_jsonl(&dir.join("a/2.jsonl"), &rows(2000..2100));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for row in rows(3000..5000) {
        writeln!(gz, "{row}").unwrap();
    }
    std::fs::write(dir.join("b.jsonl.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(dir.join("c.txt"), "one text file, one document ".repeat(5)).unwrap();
    let config = format!(
        "[pipeline]\nblock_size = 8\ntokens_per_domain = 1000\n[[domains]]\nname = \"a\"\n{}[[domains]]\nname = \"b\"\n{}{}",
        source("a/*.jsonl", "jsonl"),
        source("c.txt", "text"),
        source("b.jsonl.gz", "jsonl.gz"),
    );
    let m = run(dir, &config, 2).unwrap();
    // The target stops every domain early in its first file.
    assert!(
        m.sources[0].records_read < 100,
        "{}",
        m.sources[0].records_read
    );
    let files: Vec<_> = m.sources.iter().flat_map(|s| s.files.clone()).collect();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a/1.jsonl", "a/2.jsonl", "c.txt", "b.jsonl.gz"]);
    for file in &files {
        let (sha256, bytes) = sha256_of(&dir.join(&file.name));
        assert_eq!(
            (&file.sha256, file.bytes),
            (&sha256, bytes),
            "{}",
            file.name
        );
    }
}

// Checks: DATA-15
#[test]
fn data_15_reading_ahead_changes_neither_output_nor_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A bad row in the second batch of 256, which the reading thread
    // reaches while the first batch is tokenized.
    let path = dir.join("d.jsonl");
    write_jsonl(&path, &rows(0..2000));
    let mut text = std::fs::read_to_string(&path).unwrap();
    let at = text.match_indices('\n').nth(299).unwrap().0 + 1;
    text.insert_str(at, "{not json\n");
    std::fs::write(&path, &text).unwrap();
    let config = format!(
        "[pipeline]\nblock_size = 8\ntokens_per_domain = 1000\n[[domains]]\nname = \"d\"\n{}",
        source("d.jsonl", "jsonl")
    );
    // The target is met in the first batch: the bad row changes nothing.
    let one = run(dir, &config, 1).unwrap();
    let two = run(dir, &config, 2).unwrap();
    assert_eq!(one.to_json(), two.to_json());
    for split in ["train", "val"] {
        let file = format!("{split}/d.bin");
        assert_eq!(
            std::fs::read(dir.join("out-1").join(&file)).unwrap(),
            std::fs::read(dir.join("out-2").join(&file)).unwrap()
        );
    }
    assert_eq!(one.sources[0].files[0].sha256, sha256_of(&path).0);
    // Without a target the domain reads on to the bad row: an error naming it.
    let config = config.replace("tokens_per_domain = 1000\n", "");
    for threads in [1, 2] {
        let err = run(dir, &config, threads).unwrap_err().to_string();
        assert!(err.contains("d.jsonl") && err.contains("301"), "{err}");
    }
}

// Checks: DATA-17. Batch k+1 is tokenized while batch k is kept: the
// documents kept, the rows counted as read and the drops are those of
// keeping every row in turn, wherever in a batch of 256 the target falls,
// at 1 and 2 threads.
#[test]
fn data_17_overlapped_batches_stop_where_reading_in_step_stops() {
    use moe_data::filter::DropReason;
    use moe_data::tokenizer::Gpt2Tokenizer;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Empty rows and repeats of row 0 among distinct rows.
    let texts: Vec<String> = rows(0..1200)
        .iter()
        .enumerate()
        .map(|(i, row)| match i {
            _ if i % 97 == 5 => String::new(),
            _ if i % 50 == 7 => rows(0..1)[0]["text"].as_str().unwrap().to_owned(),
            _ => row["text"].as_str().unwrap().to_owned(),
        })
        .collect();
    let jsonl: Vec<_> = texts.iter().map(|t| json!({ "text": t })).collect();
    write_jsonl(&dir.join("d.jsonl"), &jsonl);
    let tokenizer = Gpt2Tokenizer::embedded().unwrap();
    // What keeping the rows one at a time gives: (read, kept, tokens, empty, duplicate).
    let in_step = |target: u64| {
        let mut seen = std::collections::HashSet::new();
        let (mut read, mut kept, mut tokens, mut budget, mut empty, mut dup) = (0, 0, 0, 0, 0, 0);
        for text in &texts {
            read += 1;
            if text.trim().is_empty() {
                empty += 1;
            } else if !seen.insert(text) {
                dup += 1;
            } else {
                let n = tokenizer.encode(text).len() as u64;
                (kept, tokens, budget) = (kept + 1, tokens + n, budget + n + 1);
                if budget >= target {
                    break;
                }
            }
        }
        (read, kept, tokens, empty, dup)
    };
    let total = in_step(u64::MAX);
    assert_eq!(total.0, 1200);
    // Targets met in the first batch, just past the first batch's end, in
    // the third, and never.
    for target in [2_000, total.2 * 257 / 1200, total.2 * 700 / 1200, u64::MAX] {
        let expected = in_step(target);
        let tokens = match target {
            u64::MAX => String::new(),
            t => format!("tokens_per_domain = {t}\n"),
        };
        let config = format!(
            "[pipeline]\nblock_size = 8\n{tokens}[[domains]]\nname = \"d\"\n{}",
            source("d.jsonl", "jsonl")
        );
        for threads in [1, 2] {
            let m = run(dir, &config, threads).unwrap();
            let s = &m.sources[0];
            let drop = |r| s.drops.get(&r).copied().unwrap_or(0);
            assert_eq!(
                (
                    s.records_read,
                    s.documents_kept,
                    s.tokens_kept,
                    drop(DropReason::Empty),
                    drop(DropReason::Duplicate)
                ),
                expected,
                "target {target}, {threads} threads"
            );
        }
    }
}
