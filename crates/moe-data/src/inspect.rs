//! `moe data inspect`: the manifest as tables per split × domain and per
//! source, plus decoded sample blocks with EOS shown as `⟨EOS⟩` (CLI-2).

use std::fmt::Write;

use crate::config::Balance;
use crate::error::Result;
use crate::prepared::PreparedData;
use crate::split::Split;
use crate::tokenizer::{EOS_ID, Gpt2Tokenizer};

/// Renders the inspect report of a prepared directory, decoding `decode` sample blocks.
pub fn inspect(data: &PreparedData, decode: usize) -> Result<String> {
    let m = &data.manifest;
    let mut out = String::new();
    let balance = match m.balance.mode {
        Balance::Tokens => "tokens",
        Balance::None => "none",
    };
    let _ = writeln!(
        out,
        "prepared data: block_size {}, seed {}, balance {balance}",
        m.block_size, m.config.pipeline.seed
    );
    let _ = writeln!(
        out,
        "\n{:<6} {:<10} {:>9} {:>11} {:>8} {:>8} {:>8}",
        "split", "domain", "documents", "tokens", "blocks", "balanced", "tail"
    );
    for s in &m.shards {
        let dropped = s.blocks_before_balance - s.blocks;
        let _ = writeln!(
            out,
            "{:<6} {:<10} {:>9} {:>11} {:>8} {:>8} {:>8}",
            s.split.name(),
            s.domain,
            s.documents,
            s.tokens,
            s.blocks,
            if dropped > 0 {
                format!("-{dropped}")
            } else {
                "0".into()
            },
            s.tail_dropped
        );
    }
    let _ = writeln!(
        out,
        "\n{:<10} {:<28} {:>8} {:>8} {:>11}  drops",
        "domain", "source", "records", "kept", "tokens"
    );
    for src in &m.sources {
        let drops: Vec<String> = src
            .drops
            .iter()
            .map(|(r, n)| {
                format!(
                    "{}={n}",
                    serde_json::to_value(r)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                )
            })
            .collect();
        let label: String = src.label.chars().take(28).collect();
        let _ = writeln!(
            out,
            "{:<10} {:<28} {:>8} {:>8} {:>11}  {}",
            src.domain,
            label,
            src.records_read,
            src.documents_kept,
            src.tokens_kept,
            if drops.is_empty() {
                "-".to_string()
            } else {
                drops.join(" ")
            }
        );
    }
    for w in &m.warnings {
        let _ = writeln!(out, "\nwarning: {w}");
    }
    if decode > 0 {
        write_samples(&mut out, data, decode)?;
    }
    Ok(out)
}

fn write_samples(out: &mut String, data: &PreparedData, decode: usize) -> Result<()> {
    let tokenizer = Gpt2Tokenizer::embedded()?;
    let domains = data.manifest.domains();
    let shards: Vec<Vec<u16>> = domains
        .iter()
        .map(|d| data.load_shard(Split::Train, d))
        .collect::<Result<_>>()?;
    let bs = data.block_size();
    for i in 0..decode {
        let d = i % domains.len();
        let block = i / domains.len();
        let Some(tokens) = shards[d].get(block * bs..(block + 1) * bs) else {
            continue;
        };
        let _ = writeln!(out, "\n--- train/{} block {block} ---", domains[d]);
        let _ = writeln!(out, "{}", render_block(&tokenizer, tokens));
    }
    Ok(())
}

/// Decodes a block, showing each EOS as `⟨EOS⟩`.
pub fn render_block(tokenizer: &Gpt2Tokenizer, tokens: &[u16]) -> String {
    tokens
        .split(|&t| t == EOS_ID as u16)
        .map(|run| tokenizer.decode(&run.iter().map(|&t| t as u32).collect::<Vec<_>>()))
        .collect::<Vec<_>>()
        .join("⟨EOS⟩")
}
