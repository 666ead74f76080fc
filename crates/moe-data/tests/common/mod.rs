//! Helpers of the data tests, shared by moe-data's tests and (through a
//! `#[path]` module in `tests/common/mod.rs`) the workspace's: small
//! corpora, configs and prepared directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The workspace root (where `Cargo.lock` is), from any crate's tests.
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|p| p.join("Cargo.lock").is_file())
        .unwrap_or(here)
        .to_path_buf()
}

/// Writes `rows` (one JSON object each) as a jsonl file.
pub fn write_jsonl(path: &Path, rows: &[serde_json::Value]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// A config with one local jsonl source per `(domain, file)`, field `text`.
pub fn local_config(
    block_size: usize,
    balance: &str,
    domains: &[(&str, &str)],
    extra_pipeline: &str,
) -> String {
    let mut s = format!(
        "[pipeline]\nblock_size = {block_size}\nseed = 7\nval_fraction = 0.2\nbalance = \"{balance}\"\n{extra_pipeline}\n"
    );
    for (name, file) in domains {
        s += &format!(
            "\n[[domains]]\nname = \"{name}\"\n[[domains.sources]]\nkind = \"local\"\npath = \"{file}\"\nformat = \"jsonl\"\n"
        );
    }
    s
}

/// Names of the entries of `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

/// Prepares `rows` documents per domain, `"{base} #{i}"` each, at block size
/// 16 into `dir/data` (the tiny corpus of the training and analysis tests).
pub fn small_prepared(dir: &Path, domains: &[(&str, &str)], rows: usize, val: f64) -> PathBuf {
    small_prepared_at(dir, domains, rows, val, 16)
}

/// [`small_prepared`] at another block size.
pub fn small_prepared_at(
    dir: &Path,
    domains: &[(&str, &str)],
    rows: usize,
    val: f64,
    block_size: usize,
) -> PathBuf {
    let files: Vec<(&str, String)> = domains
        .iter()
        .map(|(name, base)| {
            let docs: Vec<serde_json::Value> = (0..rows)
                .map(|i| serde_json::json!({ "text": format!("{base} #{i}") }))
                .collect();
            let file = format!("{name}.jsonl");
            write_jsonl(&dir.join(&file), &docs);
            (*name, file)
        })
        .collect();
    let listed: Vec<(&str, &str)> = files.iter().map(|(n, f)| (*n, f.as_str())).collect();
    let config = local_config(block_size, "tokens", &listed, "")
        .replace("val_fraction = 0.2", &format!("val_fraction = {val}"))
        .replace("seed = 7\n", "");
    let path = dir.join("data.toml");
    std::fs::write(&path, config).unwrap();
    let out = dir.join("data");
    let data_config = moe_data::config::DataConfig::load(&path).unwrap();
    let opts = moe_data::prepare::PrepareOptions {
        out: out.clone(),
        ..Default::default()
    };
    moe_data::prepare::prepare(&data_config, &path, &opts).unwrap();
    out
}

/// A small uncompressed parquet file: one UTF8 column `text`, six rows.
pub fn small_parquet() -> Vec<u8> {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let schema = parquet::schema::parser::parse_message_type(
        "message schema { REQUIRED BYTE_ARRAY text (UTF8); }",
    )
    .unwrap();
    let props = std::sync::Arc::new(
        WriterProperties::builder()
            .set_compression(parquet::basic::Compression::UNCOMPRESSED)
            .build(),
    );
    let mut bytes = Vec::new();
    let mut writer =
        SerializedFileWriter::new(&mut bytes, std::sync::Arc::new(schema), props).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut col = group.next_column().unwrap().unwrap();
    let values: Vec<ByteArray> = (0..6)
        .map(|i| ByteArray::from(format!("doc {}", i % 3).as_str()))
        .collect();
    col.typed::<ByteArrayType>()
        .write_batch(&values, None, None)
        .unwrap();
    col.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
    bytes
}
pub mod audit_fixture;
pub mod fuzz;
