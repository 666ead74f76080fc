//! Filters, targets, splits, warnings, manifest and shard checks of
//! `prepare` on small fixed corpora (FILT-*, DATA-2, SPLIT-1, BAL-3, MAN-*,
//! SHARD-2, SHARD-3, TOK-4).

mod common;

use std::path::Path;

use common::write_jsonl;
use moe_data::config::DataConfig;
use moe_data::filter::DropReason;
use moe_data::manifest::Manifest;
use moe_data::prepare::{PrepareOptions, prepare};
use moe_data::prepared::PreparedData;
use moe_data::shard::{decode_shard, encode_shard};
use moe_data::split::Split;
use serde_json::json;
use sha2::{Digest, Sha256};

fn run(dir: &Path, config: &str) -> moe_data::Result<Manifest> {
    let path = dir.join("data.toml");
    std::fs::write(&path, config).unwrap();
    let config = DataConfig::load(&path)?;
    prepare(
        &config,
        &path,
        &PrepareOptions {
            out: dir.join("out"),
            ..Default::default()
        },
    )
}

/// Writes `<dir>/<name>.jsonl` with one `words(i, n)` document per `i` in `ids`.
fn write_words(dir: &Path, name: &str, ids: std::ops::Range<usize>, n: usize) {
    let rows: Vec<_> = ids.map(|i| json!({"text": words(i, n)})).collect();
    write_jsonl(&dir.join(format!("{name}.jsonl")), &rows);
}

fn words(i: usize, n: usize) -> String {
    (0..n)
        .map(|k| format!("w{}", i * 31 + k))
        .collect::<Vec<_>>()
        .join(" ")
}

// Checks: FILT-1, FILT-2, FILT-4, FILT-5, FILT-6
#[test]
fn filt_1_2_4_5_6_drops_are_counted_by_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rows = vec![
        json!({"text": "", "path": "a.py"}),                // empty
        json!({"text": "  \n\t", "path": "a.py"}),          // whitespace only
        json!({"text": "short", "path": "a.py"}),           // too short
        json!({"text": "x".repeat(500), "path": "a.py"}),   // too long
        json!({"text": words(1, 12), "path": "notes.txt"}), // suffix mismatch
        json!({"text": words(2, 12), "path": "b.py"}),      // kept
        json!({"text": words(2, 12), "path": "c.py"}),      // duplicate text
    ];
    rows.extend((3..30).map(|i| json!({"text": words(i, 12), "path": format!("m{i}.py")})));
    write_jsonl(&tmp.path().join("code.jsonl"), &rows);
    let config = "[pipeline]\nblock_size = 8\n[[domains]]\nname = \"code\"\n[[domains.sources]]\nkind = \"local\"\npath = \"code.jsonl\"\nformat = \"jsonl\"\nfields = [\"text\"]\nmin_chars = 20\nmax_chars = 400\nrequire_suffix = { field = \"path\", suffixes = [\".py\"] }\n";
    let m = run(tmp.path(), config).unwrap();
    let s = &m.sources[0];
    let drops: Vec<(DropReason, u64)> = s.drops.iter().map(|(r, n)| (*r, *n)).collect();
    assert_eq!(
        drops,
        [
            (DropReason::Empty, 2),
            (DropReason::TooShort, 1),
            (DropReason::TooLong, 1),
            (DropReason::Duplicate, 1),
            (DropReason::SuffixMismatch, 1)
        ]
    );
    assert_eq!(s.records_read, rows.len() as u64);
    assert_eq!(s.documents_kept, 28);
}

// Checks: FILT-4
#[test]
fn filt_4_duplicates_are_dropped_across_domains() {
    let tmp = tempfile::tempdir().unwrap();
    let rows: Vec<_> = (0..20).map(|i| json!({"text": words(i, 10)})).collect();
    write_jsonl(&tmp.path().join("a.jsonl"), &rows);
    let mut b = rows[..5].to_vec();
    b.extend((20..40).map(|i| json!({"text": words(i, 10)})));
    write_jsonl(&tmp.path().join("b.jsonl"), &b);
    let m = run(
        tmp.path(),
        &common::local_config(8, "none", &[("a", "a.jsonl"), ("b", "b.jsonl")], ""),
    )
    .unwrap();
    assert_eq!(m.sources[1].drops.get(&DropReason::Duplicate), Some(&5));
    assert_eq!(m.sources[1].documents_kept, 20);
}

// Checks: DATA-2
#[test]
fn data_2_sources_are_read_in_order_until_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let first: Vec<_> = (0..200).map(|i| json!({"text": words(i, 20)})).collect();
    write_jsonl(&tmp.path().join("first.jsonl"), &first);
    let config = "[pipeline]\nblock_size = 8\ntokens_per_domain = 1000\n[[domains]]\nname = \"math\"\n[[domains.sources]]\nkind = \"local\"\npath = \"first.jsonl\"\nformat = \"jsonl\"\n[[domains.sources]]\nkind = \"local\"\npath = \"missing-second.jsonl\"\nformat = \"jsonl\"\n";
    // The second source does not exist: it must not be opened once the first meets the target.
    let m = run(tmp.path(), config).unwrap();
    assert_eq!(m.sources.len(), 1);
    let tokens_with_eos = m.sources[0].tokens_kept + m.sources[0].documents_kept;
    assert!(tokens_with_eos >= 1000, "{tokens_with_eos}");
    // Reading stopped at the document that met the target.
    let per_doc = tokens_with_eos / m.sources[0].documents_kept;
    assert!(tokens_with_eos < 1000 + 2 * per_doc + 10);
    assert_eq!(m.sources[0].records_read, m.sources[0].documents_kept);
    // Without a target the missing second source is an error naming it.
    std::fs::remove_dir_all(tmp.path().join("out")).unwrap();
    let err = run(
        tmp.path(),
        &config.replace("tokens_per_domain = 1000\n", ""),
    )
    .unwrap_err();
    assert!(err.to_string().contains("missing-second.jsonl"), "{err}");
}

// Checks: SPLIT-1, BAL-3
#[test]
fn split_1_held_out_counts_and_bal_3_warning() {
    let tmp = tempfile::tempdir().unwrap();
    write_words(tmp.path(), "a", 0..50, 8);
    write_words(tmp.path(), "b", 50..250, 8);
    let m = run(
        tmp.path(),
        &common::local_config(
            8,
            "tokens",
            &[("a", "a.jsonl"), ("b", "b.jsonl")],
            "test_fraction = 0.1",
        ),
    )
    .unwrap();
    let docs = |split, d: &str| m.shard(split, d).unwrap().documents;
    assert_eq!(
        (
            docs(Split::Val, "a"),
            docs(Split::Test, "a"),
            docs(Split::Train, "a")
        ),
        (10, 5, 35)
    );
    assert_eq!(
        (
            docs(Split::Val, "b"),
            docs(Split::Test, "b"),
            docs(Split::Train, "b")
        ),
        (40, 20, 140)
    );
    assert!(
        m.warnings.iter().any(|w| w.contains("differ by")),
        "{:?}",
        m.warnings
    );
    assert!(m.balance.token_ratio_before > 3.5);
    assert_eq!(
        m.shard(Split::Train, "a").unwrap().blocks,
        m.shard(Split::Train, "b").unwrap().blocks
    );
}

// Checks: MAN-1, MAN-2
#[test]
fn man_1_man_2_manifest_records_sources_and_shards_without_run_facts() {
    let tmp = tempfile::tempdir().unwrap();
    write_words(tmp.path(), "a", 0..30, 8);
    let m = run(
        tmp.path(),
        &common::local_config(8, "tokens", &[("a", "a.jsonl")], ""),
    )
    .unwrap();
    let file = &m.sources[0].files[0];
    assert_eq!(file.name, "a.jsonl");
    assert_eq!(
        file.sha256,
        hex::encode(Sha256::digest(
            std::fs::read(tmp.path().join("a.jsonl")).unwrap()
        ))
    );
    for shard in &m.shards {
        let bytes = std::fs::read(tmp.path().join("out").join(&shard.file)).unwrap();
        assert_eq!(shard.sha256, hex::encode(Sha256::digest(&bytes)));
        assert_eq!(shard.blocks * 8, shard.tokens);
    }
    let text = std::fs::read_to_string(tmp.path().join("out/manifest.json")).unwrap();
    for word in ["time", "date", "host", "thread", "elapsed"] {
        assert!(
            !text.to_lowercase().contains(word),
            "manifest mentions {word}"
        );
    }
    assert_eq!(Manifest::load(&tmp.path().join("out")).unwrap(), m);
}

// Checks: SHARD-2
#[test]
fn shard_2_reader_rejects_bad_magic_version_and_size() {
    let good = encode_shard(&[1, 2, 3, 4], 2).unwrap();
    let p = Path::new("x.bin");
    assert_eq!(decode_shard(p, &good).unwrap().tokens, [1, 2, 3, 4]);
    assert_eq!(decode_shard(p, &good).unwrap().block_size, Some(2));
    let mut bad_magic = good.clone();
    bad_magic[0] ^= 1;
    assert!(
        decode_shard(p, &bad_magic)
            .unwrap_err()
            .to_string()
            .contains("x.bin: magic")
    );
    let mut bad_version = good.clone();
    bad_version[4] = 2;
    assert!(
        decode_shard(p, &bad_version)
            .unwrap_err()
            .to_string()
            .contains("version 2")
    );
    let err = decode_shard(p, &good[..good.len() - 1])
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated"), "{err}");
    assert!(
        decode_shard(p, &good[..100])
            .unwrap_err()
            .to_string()
            .contains("header")
    );
}

// Checks: SHARD-3
#[test]
fn shard_3_loading_verifies_against_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    write_words(tmp.path(), "a", 0..30, 8);
    run(
        tmp.path(),
        &common::local_config(8, "tokens", &[("a", "a.jsonl")], ""),
    )
    .unwrap();
    let data = PreparedData::open(&tmp.path().join("out")).unwrap();
    data.verify().unwrap();
    let path = tmp.path().join("out/train/a.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let err = data.load_shard(Split::Train, "a").unwrap_err().to_string();
    assert!(err.contains("a.bin") && err.contains("sha256"), "{err}");
}

// Checks: TOK-4
#[test]
fn tok_4_shipped_vocabulary_matches_provenance_and_manifest() {
    let root = common::repo_root().join("assets/gpt2");
    let provenance = std::fs::read_to_string(root.join("PROVENANCE.md")).unwrap();
    for file in ["vocab.json", "merges.txt"] {
        let sha = hex::encode(Sha256::digest(std::fs::read(root.join(file)).unwrap()));
        assert!(
            provenance.contains(&sha),
            "{file} sha256 {sha} not in PROVENANCE.md"
        );
    }
    let tok = moe_data::tokenizer::Gpt2Tokenizer::embedded().unwrap();
    let mut h = Sha256::new();
    h.update(std::fs::read(root.join("vocab.json")).unwrap());
    h.update(std::fs::read(root.join("merges.txt")).unwrap());
    assert_eq!(tok.hash(), hex::encode(h.finalize()));
}

/// An encoder that panics on the `n`-th document it sees.
struct PanicsAt(std::sync::atomic::AtomicUsize);

impl moe_data::tokenizer::TokenEncoder for PanicsAt {
    type Scratch = ();
    fn encode_into(&self, text: &str, _: &mut (), out: &mut Vec<u32>) {
        if self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            panic!("encoder bug");
        }
        out.extend(text.bytes().map(u32::from));
    }
}

// Checks: DATA-8, DATA-5
#[test]
fn data_8_a_panic_inside_prepare_leaves_no_temporary_directory() {
    let tmp = tempfile::tempdir().unwrap();
    write_words(tmp.path(), "a", 0..300, 8);
    let path = tmp.path().join("data.toml");
    std::fs::write(
        &path,
        common::local_config(8, "tokens", &[("a", "a.jsonl")], ""),
    )
    .unwrap();
    let config = DataConfig::load(&path).unwrap();
    let before = common::entries(tmp.path());
    for threads in [1, 2] {
        let encoder = PanicsAt(std::sync::atomic::AtomicUsize::new(280));
        let opts = PrepareOptions {
            out: tmp.path().join("out"),
            threads: Some(threads),
            ..Default::default()
        };
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            moe_data::prepare::prepare_with(&config, &path, &opts, &encoder, "test")
        }));
        assert!(run.is_err(), "the encoder did not panic");
        assert_eq!(common::entries(tmp.path()), before, "left behind");
    }
}
