//! `moe data prepare` end to end (issue 7): read → filter → tokenize → split
//! → pack → balance → shuffle → write, on local files, and the share of the
//! wall time spent outside tokenization.
//!
//! The encoder is `Gpt2Tokenizer` wrapped to time each `encode_into` call, so
//! tokenize time and wall time come from the same run. With one thread,
//! `tokenize / wall` is the pipeline's throughput as a fraction of
//! tokenize-only throughput (target ≥ 0.70). With more threads the tokenize
//! time is summed over workers, so the fraction is not printed for them.
//!
//! Corpus: `MOE_BENCH_CORPUS=DIR` (a directory made by
//! `scripts/make_bench_corpus.py DIR MB`, with its `bench.toml`), else the
//! embedded demo corpora (`configs/data/demo.toml`). Peak RSS needs a process
//! of its own: `scripts/bench_prepare.sh`.
//!
//! `cargo bench --bench prepare` (`MOE_BENCH_THREADS=1,2` by default).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use moe_data::config::DataConfig;
use moe_data::prepare::{PrepareOptions, prepare_with};
use moe_data::tokenizer::{Gpt2Tokenizer, PieceCache, TokenEncoder};

// The binary's allocator, set up in `main` as `moe data` sets it up.
#[global_allocator]
static GLOBAL: moe_alloc::Allocator = moe_alloc::Allocator;

/// `Gpt2Tokenizer` adding the time spent in `encode_into` to a counter.
struct Timed {
    inner: Gpt2Tokenizer,
    nanos: AtomicU64,
}

impl TokenEncoder for Timed {
    type Scratch = PieceCache;

    fn encode_into(&self, text: &str, cache: &mut PieceCache, out: &mut Vec<u32>) {
        let t = Instant::now();
        self.inner.encode_into(text, cache, out);
        let ns = t.elapsed().as_nanos() as u64;
        self.nanos.fetch_add(ns, Ordering::Relaxed);
    }
}

/// Bytes of the local source files.
fn input_bytes(config: &DataConfig, base: &Path) -> u64 {
    config
        .domains
        .iter()
        .flat_map(|d| &d.sources)
        .filter_map(|s| s.local_pattern(base))
        .filter_map(|p| glob::glob(&p.to_string_lossy()).ok())
        .flatten()
        .filter_map(|p| p.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn main() {
    // What `moe data` runs with (DATA-16).
    moe_alloc::purge_freed_memory_after(0);
    moe_alloc::no_transparent_huge_pages();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config_path = match std::env::var_os("MOE_BENCH_CORPUS") {
        Some(dir) => PathBuf::from(dir).join("bench.toml"),
        None => root.join("configs/data/demo.toml"),
    };
    let threads: Vec<usize> = std::env::var("MOE_BENCH_THREADS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect();
    let config = DataConfig::load(&config_path).expect("bench config loads");
    let base = config_path.parent().unwrap_or(Path::new("."));
    let bytes = input_bytes(&config, base);
    let out_root = tempfile::tempdir().expect("temp dir");
    println!("prepare: {} ({bytes} input bytes)", config_path.display());
    for n in threads {
        let encoder = Timed {
            inner: Gpt2Tokenizer::embedded().expect("embedded vocabulary"),
            nanos: AtomicU64::new(0),
        };
        let opts = PrepareOptions {
            out: out_root.path().join(format!("t{n}")),
            threads: Some(n),
            force: true,
            ..Default::default()
        };
        let t = Instant::now();
        let manifest = prepare_with(&config, &config_path, &opts, &encoder, "bench")
            .expect("prepare succeeds");
        let wall = t.elapsed().as_secs_f64();
        let tok = encoder.nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let written: u64 = manifest.shards.iter().map(|s| s.tokens).sum();
        print!(
            "threads {n}: wall {wall:.3} s, {:.1} MB/s of input, {written} tokens written; tokenize {tok:.3} s",
            bytes as f64 / wall / 1e6
        );
        if n == 1 {
            println!(
                " = {:.1}% of wall ({:.1}% outside tokenization; tokenize-only {:.1} MB/s)",
                100.0 * tok / wall,
                100.0 * (1.0 - tok / wall),
                bytes as f64 / tok / 1e6
            );
        } else {
            println!(" (summed over threads)");
        }
    }
}
