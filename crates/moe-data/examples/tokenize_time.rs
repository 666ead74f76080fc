//! Times our GPT-2 encoder on the embedded corpora with a warm piece cache
//! and prints the throughput by wall and by process CPU time. A whole
//! process of fixed work, so two builds can be compared run against run
//! (A B A B …, user time) where `cargo bench --bench tokenize`'s wall-time
//! figures move ±30% on a shared machine (BENCHMARKS.md, run 5).
//!
//! `cargo run --release -p moe-data --example tokenize_time -- [DOMAIN] [PASSES]`
//! (DOMAIN: code, math, prose or mixed (default); PASSES after one untimed, default 20).

use std::path::Path;
use std::time::Instant;

use moe_data::tokenizer::{Gpt2Tokenizer, PieceCache, TokenEncoder};

/// The documents of one embedded corpus (`assets/corpora/DOMAIN/*.jsonl`):
/// `text`, or math's `question` + `answer` as the demo config formats them.
fn documents(domain: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/corpora")
        .join(domain);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable corpus file");
        for line in text.lines() {
            let row: serde_json::Value = serde_json::from_str(line).expect("jsonl row");
            let field = |k: &str| row[k].as_str().map(str::to_owned);
            docs.push(match (field("text"), field("question"), field("answer")) {
                (Some(t), _, _) => t,
                (None, Some(q), Some(a)) => format!("Problem: {q}\n\nSolution: {a}"),
                _ => panic!(
                    "{}: a row without text or question + answer",
                    file.display()
                ),
            });
        }
    }
    docs
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let domain = args.get(1).map_or("mixed", String::as_str);
    let passes: usize = args
        .get(2)
        .map_or(20, |p| p.parse().expect("PASSES: a number"));
    let docs: Vec<String> = match domain {
        "mixed" => ["code", "math", "prose"]
            .iter()
            .flat_map(|d| documents(d))
            .collect(),
        one => documents(one),
    };
    let bytes: usize = docs.iter().map(String::len).sum();
    let tokenizer = Gpt2Tokenizer::embedded().expect("embedded vocabulary");
    let (mut cache, mut ids) = (PieceCache::default(), Vec::new());
    let mut pass = |ids: &mut Vec<u32>| {
        let mut tokens = 0;
        for doc in &docs {
            ids.clear();
            tokenizer.encode_into(doc, &mut cache, ids);
            tokens += ids.len();
        }
        tokens
    };
    let tokens = pass(&mut ids); // untimed: warms the cache
    let (wall, cpu) = (Instant::now(), moe_testkit::process_cpu_seconds());
    for _ in 0..passes {
        assert_eq!(pass(&mut ids), tokens);
    }
    let wall = wall.elapsed().as_secs_f64();
    let mb = (bytes * passes) as f64 / 1e6;
    let cpu = cpu
        .zip(moe_testkit::process_cpu_seconds())
        .map(|(a, b)| b - a);
    println!(
        "{domain}: {bytes} bytes, {tokens} tokens, {passes} passes: wall {:.1} MB/s{}",
        mb / wall,
        cpu.map_or(String::new(), |c| format!(", CPU {:.1} MB/s", mb / c))
    );
}
