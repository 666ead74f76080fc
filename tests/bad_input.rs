//! DATA-1, DATA-3, DATA-4, DATA-5, DATA-7, SRC-1 … SRC-3, SRC-8, FILT-3: bad
//! input ends `moe data prepare` with a one-line error naming the file and
//! the row or key, a non-zero exit, and no output directory; MAN-3: a bad
//! manifest is a one-line error of the commands that read it.

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use common::{entries, local_config, moe, write_jsonl};
use serde_json::json;

/// Runs prepare in `dir` with `config`; asserts failure, one line naming
/// `needles`, no output (DATA-3, and DATA-5: no temporary directory either).
fn assert_fails(dir: &Path, config: &str, needles: &[&str]) {
    std::fs::write(dir.join("data.toml"), config).unwrap();
    let before = entries(dir);
    let out = moe(
        dir,
        &["data", "prepare", "--config", "data.toml", "--out", "out"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{needle:?} not in {:?}",
            lines[0]
        );
    }
    assert_eq!(entries(dir), before, "output left behind");
}

fn good_rows(n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| json!({ "text": format!("document number {i} with some words in it") }))
        .collect()
}

// Checks: SRC-1
#[test]
fn src_1_missing_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    assert_fails(
        tmp.path(),
        &local_config(8, "tokens", &[("a", "nope.jsonl")], ""),
        &["nope.jsonl", "no file matches"],
    );
}

// Checks: SRC-3
#[test]
fn src_3_truncated_gzip_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for r in good_rows(2000) {
        writeln!(gz, "{r}").unwrap();
    }
    let bytes = gz.finish().unwrap();
    std::fs::write(tmp.path().join("a.jsonl.gz"), &bytes[..bytes.len() / 2]).unwrap();
    let config =
        local_config(8, "tokens", &[("a", "a.jsonl.gz")], "").replace("\"jsonl\"", "\"jsonl.gz\"");
    assert_fails(
        tmp.path(),
        &config,
        &["a.jsonl.gz", "row", "truncated or corrupt"],
    );
}

// Checks: SRC-3
#[test]
fn src_3_corrupt_parquet_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("a.parquet"),
        b"PAR1 this is not parquet at all PAR1",
    )
    .unwrap();
    let config =
        local_config(8, "tokens", &[("a", "a.parquet")], "").replace("\"jsonl\"", "\"parquet\"");
    assert_fails(tmp.path(), &config, &["a.parquet", "corrupt parquet"]);
}

// Checks: SRC-3
#[test]
fn src_3_invalid_json_names_the_row() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("a.jsonl"),
        "{\"text\": \"ok\"}\n{\"text\": \n",
    )
    .unwrap();
    assert_fails(
        tmp.path(),
        &local_config(8, "tokens", &[("a", "a.jsonl")], ""),
        &["a.jsonl row 2", "invalid JSON"],
    );
}

// Checks: SRC-2
#[test]
fn src_2_missing_field_names_row_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    write_jsonl(
        &tmp.path().join("a.jsonl"),
        &[json!({"text": "fine"}), json!({"body": "no text"})],
    );
    assert_fails(
        tmp.path(),
        &local_config(8, "tokens", &[("a", "a.jsonl")], ""),
        &["a.jsonl row 2", "missing field `text`"],
    );
}

// Checks: SRC-2
#[test]
fn src_2_non_string_field_names_what_was_found() {
    let tmp = tempfile::tempdir().unwrap();
    write_jsonl(&tmp.path().join("a.jsonl"), &[json!({"text": 5})]);
    assert_fails(
        tmp.path(),
        &local_config(8, "tokens", &[("a", "a.jsonl")], ""),
        &["a.jsonl row 1", "`text` is a number"],
    );
}

// Checks: DATA-1
#[test]
fn data_1_invalid_toml_and_unknown_key_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    assert_fails(tmp.path(), "[pipeline\nblock_size = 8", &["data.toml"]);
    let config = local_config(8, "tokens", &[("a", "a.jsonl")], "blok_size = 3");
    assert_fails(tmp.path(), &config, &["data.toml", "blok_size"]);
}

// Checks: DATA-1
#[test]
fn data_1_block_size_out_of_range_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_jsonl(&tmp.path().join("a.jsonl"), &good_rows(10));
    for bs in [0, 1025] {
        let config = local_config(bs, "tokens", &[("a", "a.jsonl")], "");
        assert_fails(tmp.path(), &config, &["data.toml", "block_size"]);
    }
}

// Checks: DATA-7
#[test]
fn data_7_domain_with_no_documents_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_jsonl(&tmp.path().join("a.jsonl"), &good_rows(10));
    write_jsonl(
        &tmp.path().join("b.jsonl"),
        &[json!({"text": "   "}), json!({"text": ""})],
    );
    let config = local_config(8, "tokens", &[("a", "a.jsonl"), ("b", "b.jsonl")], "");
    assert_fails(tmp.path(), &config, &["domain `b`", "no documents"]);
}

// Checks: FILT-3
#[test]
fn filt_3_invalid_utf8_fails_with_row_under_fail_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = b"{\"text\": \"fine document here\"}\n".to_vec();
    bytes.extend_from_slice(b"{\"text\": \"bad \xff\xfe bytes\"}\n");
    std::fs::write(tmp.path().join("a.jsonl"), bytes).unwrap();
    let config = local_config(4, "tokens", &[("a", "a.jsonl")], "invalid_utf8 = \"fail\"");
    assert_fails(tmp.path(), &config, &["a.jsonl row 2", "invalid UTF-8"]);
}

// Checks: DATA-4, DATA-5, DATA-10
#[test]
fn data_4_existing_output_is_refused_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    write_jsonl(&tmp.path().join("a.jsonl"), &good_rows(40));
    std::fs::write(
        tmp.path().join("data.toml"),
        local_config(8, "tokens", &[("a", "a.jsonl")], ""),
    )
    .unwrap();
    std::fs::create_dir(tmp.path().join("out")).unwrap();
    std::fs::write(tmp.path().join("out/keep.txt"), "mine").unwrap();
    let out = moe(
        tmp.path(),
        &["data", "prepare", "--config", "data.toml", "--out", "out"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("use --force"));
    assert!(
        tmp.path().join("out/keep.txt").exists(),
        "existing output touched"
    );
    let forced = |out: &str| {
        let args = [
            "data",
            "prepare",
            "--config",
            "data.toml",
            "--out",
            out,
            "--force",
        ];
        moe(tmp.path(), &args)
    };
    // DATA-10: --force does not delete a directory that is not prepared data.
    let out = forced("out");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("only a prepared-data directory"),
        "{stderr}"
    );
    assert!(
        tmp.path().join("out/keep.txt").exists(),
        "existing output touched"
    );
    // It replaces prepared data.
    std::fs::remove_dir_all(tmp.path().join("out")).unwrap();
    for _ in 0..2 {
        let out = forced("out");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(tmp.path().join("out/manifest.json").exists());
    // DATA-5: no temporary directory is left next to the output.
    assert_eq!(entries(tmp.path()), ["a.jsonl", "data.toml", "out"]);
}

/// A parquet file with a UTF8 column `text` and an INT32 column `n`.
fn write_parquet(path: &Path, texts: &[&str]) {
    use parquet::data_type::{ByteArray, ByteArrayType, Int32Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let schema = parquet::schema::parser::parse_message_type(
        "message schema { REQUIRED BYTE_ARRAY text (UTF8); REQUIRED INT32 n; }",
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let props = Arc::new(WriterProperties::builder().build());
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), props).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut col = group.next_column().unwrap().unwrap();
    let values: Vec<ByteArray> = texts.iter().map(|t| ByteArray::from(*t)).collect();
    col.typed::<ByteArrayType>()
        .write_batch(&values, None, None)
        .unwrap();
    col.close().unwrap();
    let mut col = group.next_column().unwrap().unwrap();
    let ns: Vec<i32> = (0..texts.len() as i32).collect();
    col.typed::<Int32Type>()
        .write_batch(&ns, None, None)
        .unwrap();
    col.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
}

// Checks: SRC-1
#[test]
fn src_1_parquet_source_reads_and_non_string_column_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let texts: Vec<String> = (0..40)
        .map(|i| format!("parquet document {i} about things"))
        .collect();
    write_parquet(
        &tmp.path().join("a.parquet"),
        &texts.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let config =
        local_config(8, "tokens", &[("a", "a.parquet")], "").replace("\"jsonl\"", "\"parquet\"");
    std::fs::write(tmp.path().join("data.toml"), &config).unwrap();
    let out = moe(
        tmp.path(),
        &["data", "prepare", "--config", "data.toml", "--out", "out"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = moe_data::manifest::Manifest::load(&tmp.path().join("out")).unwrap();
    assert_eq!(manifest.sources[0].documents_kept, 40);
    std::fs::remove_dir_all(tmp.path().join("out")).unwrap();
    let config = config.replace(
        "format = \"parquet\"",
        "format = \"parquet\"\nfields = [\"n\"]",
    );
    assert_fails(
        tmp.path(),
        &config,
        &["a.parquet row 1", "`n` is a parquet Int"],
    );
}

/// A small uncompressed parquet file with one UTF8 column `text`, with byte
/// `at` flipped by `xor`: with parquet 60.1 both (9, 0x10) and (165, 0x80)
/// make the reader panic (a slice range from a corrupt page header; no
/// dictionary decoder), apache/arrow-rs #7102 and #9705 are of this kind.
fn corrupt_parquet(path: &Path, at: usize, xor: u8) {
    let mut bytes = common::small_parquet();
    bytes[at] ^= xor;
    std::fs::write(path, bytes).unwrap();
}

// Checks: SRC-8, DATA-3, DATA-5
#[test]
fn src_8_a_panicking_parquet_reader_is_a_one_line_error_naming_the_file() {
    for (at, xor) in [(9, 0x10), (165, 0x80)] {
        let tmp = tempfile::tempdir().unwrap();
        corrupt_parquet(&tmp.path().join("bad.parquet"), at, xor);
        let config = local_config(8, "tokens", &[("a", "bad.parquet")], "")
            .replace("\"jsonl\"", "\"parquet\"");
        assert_fails(tmp.path(), &config, &["bad.parquet", "corrupt parquet"]);
    }
}

// Checks: MAN-3
#[test]
fn man_3_a_manifest_with_block_size_zero_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    write_jsonl(&tmp.path().join("a.jsonl"), &good_rows(40));
    std::fs::write(
        tmp.path().join("data.toml"),
        local_config(8, "tokens", &[("a", "a.jsonl")], ""),
    )
    .unwrap();
    let out = moe(
        tmp.path(),
        &["data", "prepare", "--config", "data.toml", "--out", "out"],
    );
    assert!(out.status.success());
    let path = tmp.path().join("out/manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    // The top-level block_size (the config's comes first in the file).
    let at = text.rfind("\"block_size\": 8").unwrap();
    let text = format!("{}\"block_size\": 0{}", &text[..at], &text[at + 15..]);
    std::fs::write(&path, text).unwrap();
    for args in [
        &["data", "inspect", "out", "--decode", "2"][..],
        &["data", "audit", "out"][..],
    ] {
        let run = moe(tmp.path(), args);
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("manifest.json") && err.contains("block_size = 0"),
            "{args:?}: {err}"
        );
    }
}

// Checks: BACK-1 — a backend the binary was built without is a one-line
// error naming the cargo feature, with a non-zero exit.
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
#[test]
fn back_1_device_without_its_feature_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    for (device, args) in [
        (
            "wgpu",
            &["gpu", "matmul", "--size", "8", "--device", "wgpu"][..],
        ),
        ("cuda", &["gpu", "parity", "--preset", "micro"][..]),
    ] {
        let out = moe(tmp.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{device}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&format!("--features {device}")), "{stderr}");
    }
}
