//! GPT-2 BPE throughput (issue 7): our encoder against its peers
//! on the embedded corpora, per domain and mixed, one thread.
//!
//! Every encoder runs on the same documents in the same run, and its ids are
//! checked equal to ours, document by document, before anything is timed.
//! Throughput is in decimal bytes of UTF-8 text per second; the token count
//! of each corpus is printed (and written to
//! `target/criterion/tokenize-tokens.json`) so tokens/s follow from it
//! (`scripts/bench_table.py` does that).
//!
//! - `ours-warm`: `Gpt2Tokenizer` through `TokenEncoder::encode_into` with one
//!   `PieceCache` kept across iterations — the pipeline's steady state, where
//!   each worker keeps its cache for the whole run.
//! - `ours-cold`: a fresh `PieceCache` for every pass over the corpus.
//! - `tiktoken-rs`: `r50k_base().encode_ordinary` (no cache).
//! - `tokenizers-1.0rc3`: HF `tokenizers` 1.0.0-rc.3 `encode_into`, plain text
//!   (its word cache lives in the tokenizer, so it is warm after the first pass).
//! - `tokenizers-0.23`: HF `tokenizers` 0.23 `encode_fast`, one document at a time.
//! - `bpe-crate`: the `bpe` crate's backtracking encoder behind the GPT-2 pattern.
//! - `splintr-0.22`: `splintr` 0.22 (its own JIT regex engine, no rayon)
//!   reading the same GPT-2 `tokenizer.json`, `encode_raw` (no specials).
//!
//! `cargo bench --bench tokenize`

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{BpeCrate, Domain};
use criterion::{Criterion, Throughput};
use moe_data::tokenizer::{Gpt2Tokenizer, PieceCache, TokenEncoder};

// mimalloc that keeps freed memory: large tensors are not page-faulted in
// again on every step (crates/moe-alloc).
#[global_allocator]
static GLOBAL: moe_alloc::Allocator = moe_alloc::Allocator;

/// All encoders under test, built once.
struct Encoders {
    ours: Gpt2Tokenizer,
    tiktoken: tiktoken_rs::CoreBPE,
    hf: tokenizers::pipeline::PipelineTokenizer,
    hf_opts: tokenizers::pipeline::EncodeOptions,
    hf023: tokenizers_023::Tokenizer,
    bpe: BpeCrate,
    splintr: splintr::AnyTokenizer,
}

impl Encoders {
    fn new() -> Self {
        let ours = common::ours();
        let bpe = BpeCrate::new(&ours);
        Self {
            ours,
            tiktoken: tiktoken_rs::r50k_base().expect("r50k_base loads"),
            hf: common::hf_gpt2(false),
            hf_opts: common::hf_plain(),
            hf023: common::hf023_gpt2(),
            bpe,
            splintr: splintr::from_json_bytes(common::hf_gpt2_json(false).as_bytes())
                .expect("splintr reads the GPT-2 tokenizer.json"),
        }
    }

    fn ours(&self, text: &str, cache: &mut PieceCache, out: &mut Vec<u32>) {
        out.clear();
        self.ours.encode_into(text, cache, out);
    }

    fn hf(&self, text: &str, out: &mut Vec<tokenizers::pipeline::PipelineToken>) {
        out.clear();
        common::hf_encode_into(&self.hf, &self.hf_opts, text, out);
    }

    fn hf023(&self, text: &str) -> Vec<u32> {
        let enc = self.hf023.encode_fast(text, false).expect("encodes");
        enc.get_ids().to_vec()
    }

    fn bpe(&self, text: &str, out: &mut Vec<u32>) {
        out.clear();
        self.bpe.encode_into(text, out);
    }

    /// Asserts every peer gives our ids on every document; returns the token count.
    fn check_identical(&self, domain: &Domain) -> usize {
        let (mut cache, mut ids, mut other) = (PieceCache::default(), Vec::new(), Vec::new());
        let mut hf_out = Vec::new();
        let mut tokens = 0;
        for (i, doc) in domain.docs.iter().enumerate() {
            self.ours(doc, &mut cache, &mut ids);
            tokens += ids.len();
            let what = |peer: &str| format!("{peer} differs on {} doc {i}", domain.name);
            assert_eq!(
                ids,
                self.tiktoken.encode_ordinary(doc),
                "{}",
                what("tiktoken")
            );
            self.hf(doc, &mut hf_out);
            assert!(hf_out == ids, "{}", what("tokenizers 1.0"));
            assert_eq!(ids, self.hf023(doc), "{}", what("tokenizers 0.23"));
            self.bpe(doc, &mut other);
            assert_eq!(ids, other, "{}", what("bpe crate"));
            assert_eq!(ids, self.splintr.encode_raw(doc), "{}", what("splintr"));
        }
        tokens
    }
}

/// The three domains, then all their documents together.
fn corpora() -> Vec<Domain> {
    let mut domains = common::embedded_corpora();
    let mixed = domains.iter().flat_map(|d| d.docs.clone()).collect();
    domains.push(Domain {
        name: "mixed",
        docs: mixed,
    });
    domains
}

fn bench_domain(c: &mut Criterion, enc: &Encoders, domain: &Domain) {
    let docs = &domain.docs;
    let mut group = c.benchmark_group(format!("tokenize/{}", domain.name));
    group.throughput(Throughput::BytesDecimal(domain.bytes() as u64));
    let mut out = Vec::new();
    let mut warm = PieceCache::default();
    group.bench_function("ours-warm", |b| {
        b.iter(|| {
            for d in docs {
                enc.ours(d, &mut warm, &mut out);
                black_box(out.len());
            }
        })
    });
    group.bench_function("ours-cold", |b| {
        b.iter(|| {
            let mut cache = PieceCache::default();
            for d in docs {
                enc.ours(d, &mut cache, &mut out);
                black_box(out.len());
            }
        })
    });
    group.bench_function("tiktoken-rs", |b| {
        b.iter(|| {
            docs.iter()
                .map(|d| enc.tiktoken.encode_ordinary(d).len())
                .sum::<usize>()
        })
    });
    let mut hf_out = Vec::new();
    group.bench_function("tokenizers-1.0rc3", |b| {
        b.iter(|| {
            for d in docs {
                enc.hf(d, &mut hf_out);
                black_box(hf_out.len());
            }
        })
    });
    group.bench_function("tokenizers-0.23", |b| {
        b.iter(|| docs.iter().map(|d| enc.hf023(d).len()).sum::<usize>())
    });
    group.bench_function("bpe-crate", |b| {
        b.iter(|| {
            for d in docs {
                enc.bpe(d, &mut out);
                black_box(out.len());
            }
        })
    });
    group.bench_function("splintr-0.22", |b| {
        b.iter(|| {
            docs.iter()
                .map(|d| enc.splintr.encode_raw(d).len())
                .sum::<usize>()
        })
    });
    group.finish();
}

fn write_token_counts(counts: &[(&str, usize, usize)]) {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("criterion");
    let json: serde_json::Map<String, serde_json::Value> = counts
        .iter()
        .map(|&(name, bytes, tokens)| {
            (
                name.to_string(),
                serde_json::json!({ "bytes": bytes, "tokens": tokens }),
            )
        })
        .collect();
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(
            dir.join("tokenize-tokens.json"),
            serde_json::Value::Object(json).to_string(),
        );
    }
}

fn main() {
    let enc = Encoders::new();
    let domains = corpora();
    let mut counts = Vec::new();
    for d in &domains {
        let tokens = enc.check_identical(d);
        let bytes = d.bytes();
        println!(
            "corpus {:5}: {} docs, {bytes} bytes, {tokens} tokens ({:.2} bytes/token), ids identical across all encoders",
            d.name,
            d.docs.len(),
            bytes as f64 / tokens as f64
        );
        counts.push((d.name, bytes, tokens));
    }
    write_token_counts(&counts);
    let mut c = Criterion::default()
        .without_plots()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    for d in &domains {
        bench_domain(&mut c, &enc, d);
    }
    c.final_summary();
}
