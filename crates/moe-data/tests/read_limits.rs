//! SRC-11, SRC-12, MAN-4, MAN-5: what the readers refuse with a clear
//! error — a runaway row, a directory or a looping link as a source, a lone
//! surrogate escape, a manifest that lists a shard twice or another
//! tokenizer, a shard whose header or ids disagree with GPT-2 and the
//! manifest.

mod common;

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;

use common::{small_prepared, write_jsonl};
use moe_data::config::{DataConfig, FileFormat};
use moe_data::manifest::Manifest;
use moe_data::prepared::PreparedData;
use moe_data::shard::{decode_shard, encode_shard};
use moe_data::sources::readers::{MAX_ROW_BYTES, for_each_row};
use moe_data::sources::{HubOptions, resolve};
use moe_data::split::Split;

fn read_all(path: &Path, format: FileFormat) -> moe_data::Result<u64> {
    let mut rows = 0;
    for_each_row(path, format, &["text".to_string()], &mut |_, _| {
        rows += 1;
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(rows)
}

// Checks: SRC-11
#[test]
fn src_11_a_row_over_the_limit_fails_while_streaming() {
    let tmp = tempfile::tempdir().unwrap();
    let long = "a".repeat(MAX_ROW_BYTES as usize + 10);
    let line = format!("{{\"text\": \"short\"}}\n{{\"text\": \"{long}\"}}\n");
    let plain = tmp.path().join("long.jsonl");
    std::fs::write(&plain, &line).unwrap();
    let gz = tmp.path().join("long.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(line.as_bytes()).unwrap();
    enc.finish().unwrap();
    let text = tmp.path().join("long.txt");
    std::fs::write(&text, &long).unwrap();
    for (path, format, row) in [
        (&plain, FileFormat::Jsonl, "row 2"),
        (&gz, FileFormat::JsonlGz, "row 2"),
        (&text, FileFormat::Text, "row 1"),
    ] {
        let err = read_all(path, format).unwrap_err().to_string();
        assert!(
            err.contains(&path.display().to_string()) && err.contains(row),
            "{err}"
        );
        assert!(err.contains("longer than 64 MiB"), "{err}");
    }
    // A row of exactly the limit is read.
    let edge = "b".repeat(MAX_ROW_BYTES as usize);
    std::fs::write(&text, &edge).unwrap();
    assert_eq!(read_all(&text, FileFormat::Text).unwrap(), 1);
}

fn local_source(path: &str) -> moe_data::config::SourceConfig {
    let text = format!(
        "[pipeline]\n[[domains]]\nname = \"d\"\n[[domains.sources]]\nkind = \"local\"\npath = \"{path}\"\nformat = \"jsonl\"\n"
    );
    DataConfig::parse(&text, Path::new("t.toml"))
        .unwrap()
        .domains[0]
        .sources[0]
        .clone()
}

// Checks: SRC-12, SRC-1
#[test]
fn src_12_a_directory_or_a_link_loop_as_a_source_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("corpus");
    write_jsonl(&dir.join("a.jsonl"), &[serde_json::json!({"text": "x"})]);
    let hub = HubOptions::default();
    let err = resolve(&local_source("corpus"), tmp.path(), &hub)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("corpus") && err.contains("is a directory"),
        "{err}"
    );
    #[cfg(unix)]
    {
        let looped = tmp.path().join("loop.jsonl");
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        let err = resolve(&local_source("loop.jsonl"), tmp.path(), &hub)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("loop.jsonl") && err.contains("cannot be followed"),
            "{err}"
        );
        // Through a glob too.
        std::os::unix::fs::symlink(&looped, dir.join("b.jsonl")).unwrap();
        let err = resolve(&local_source("corpus/*.jsonl"), tmp.path(), &hub)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("b.jsonl") && err.contains("cannot be followed"),
            "{err}"
        );
    }
    let err = resolve(&local_source("nothing/*.jsonl"), tmp.path(), &hub)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no file matches"), "{err}");
}

// Checks: SRC-12, SRC-3
#[test]
fn src_12_a_lone_surrogate_escape_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.jsonl");
    for (line, escape) in [
        (r#"{"text": "a\ud800b"}"#, Some("\\uD800")),
        (r#"{"text": "a\uDC01"}"#, Some("\\uDC01")),
        (r#"{"text": "\ud83d\ude00 \\ud800"}"#, None),
    ] {
        std::fs::write(&path, format!("{line}\n")).unwrap();
        match (read_all(&path, FileFormat::Jsonl), escape) {
            (Err(e), Some(escape)) => {
                let e = e.to_string();
                assert!(
                    e.contains("row 1")
                        && e.contains(escape)
                        && e.contains("lone UTF-16 surrogate"),
                    "{e}"
                );
            }
            (Ok(1), None) => {}
            (other, _) => panic!("{line}: {other:?}"),
        }
    }
}

/// A small prepared directory and its manifest as JSON.
fn prepared(dir: &Path) -> (std::path::PathBuf, serde_json::Value) {
    let out = small_prepared(
        dir,
        &[("a", "alpha words here"), ("b", "beta words there")],
        30,
        0.2,
    );
    let manifest =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    (out, manifest)
}

fn load_with(out: &Path, manifest: &serde_json::Value) -> String {
    std::fs::write(out.join("manifest.json"), manifest.to_string()).unwrap();
    Manifest::load(out).unwrap_err().to_string()
}

// Checks: MAN-4, MAN-3
#[test]
fn man_4_a_repeated_shard_or_another_tokenizer_is_refused_on_load() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, good) = prepared(tmp.path());
    let mut twice = good.clone();
    let first = twice["shards"][0].clone();
    twice["shards"].as_array_mut().unwrap().push(first);
    let err = load_with(&out, &twice);
    assert!(
        err.contains("manifest.json") && err.contains("listed twice"),
        "{err}"
    );
    for (key, value) in [("vocab_size", 60000), ("eos_id", 0)] {
        let mut other = good.clone();
        other["tokenizer"][key] = value.into();
        let err = load_with(&out, &other);
        assert!(err.contains("manifest.json") && err.contains(key), "{err}");
    }
    std::fs::write(out.join("manifest.json"), good.to_string()).unwrap();
    Manifest::load(&out).unwrap();
}

// Checks: MAN-4
#[test]
fn man_4_a_shard_header_block_size_other_than_the_manifests_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, mut manifest) = prepared(tmp.path());
    let data = PreparedData::open(&out).unwrap();
    let tokens = data.load_shard(Split::Train, "a").unwrap();
    // Same tokens, header saying block size 8 instead of 16; the manifest's
    // sha256 updated so only the block size disagrees.
    let bytes = encode_shard(&tokens, 8).unwrap();
    let path = out.join("train/a.bin");
    std::fs::write(&path, &bytes).unwrap();
    let shard = decode_shard(&path, &bytes).unwrap();
    for s in manifest["shards"].as_array_mut().unwrap() {
        if s["file"] == "train/a.bin" {
            s["sha256"] = shard.sha256.clone().into();
        }
    }
    std::fs::write(out.join("manifest.json"), manifest.to_string()).unwrap();
    let err = PreparedData::open(&out)
        .unwrap()
        .load_shard(Split::Train, "a")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train/a.bin") && err.contains("block size 8") && err.contains("16"),
        "{err}"
    );
}

// Checks: MAN-5, SHARD-2
#[test]
fn man_5_the_shard_reader_refuses_ids_outside_the_vocabulary() {
    let path = Path::new("x/train/a.bin");
    let mut ok = vec![0u16, 50256, 7, 50255];
    decode_shard(path, &encode_shard(&ok, 2).unwrap()).unwrap();
    for bad in [50257u16, 60000, u16::MAX] {
        ok[2] = bad;
        let err = decode_shard(path, &encode_shard(&ok, 2).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x/train/a.bin") && err.contains(&format!("token {bad}")),
            "{err}"
        );
        assert!(
            err.contains("byte offset 1028") && err.contains("50257"),
            "{err}"
        );
    }
}
