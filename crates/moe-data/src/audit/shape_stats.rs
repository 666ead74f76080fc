//! The shape of a prepared directory: domain token ratios before and after
//! balancing (AUDIT-6), tail losses (AUDIT-14), document lengths (AUDIT-15),
//! EOS density and tokens per byte (AUDIT-16), drops per source
//! (AUDIT-17) and held-out sizes (AUDIT-18). Counts come from the manifest
//! (whose shards were verified) and lengths from the rebuilt documents.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::balance::ratio;
use crate::manifest::Manifest;
use crate::split::Split;

use super::docs::{Doc, ShardCoverage};

/// Per-domain facts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainFacts {
    /// The domain.
    pub domain: String,
    /// Train tokens packed, before balancing.
    pub train_tokens_before: u64,
    /// Train tokens written.
    pub train_tokens_after: u64,
    /// Share of packed train blocks that balancing dropped.
    pub train_blocks_dropped: f64,
    /// Held-out (val and test) documents packed.
    pub held_out_documents: u64,
    /// Held-out tokens written.
    pub held_out_tokens: u64,
    /// EOS per 1000 train tokens written.
    pub eos_per_1k_train: f64,
    /// Tokens per UTF-8 byte over complete documents (0 when there are none).
    pub tokens_per_byte: f64,
}

/// Tokens packing dropped after the last whole block of a shard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tail {
    /// The split.
    pub split: Split,
    /// The domain.
    pub domain: String,
    /// Tail tokens dropped.
    pub tail: u64,
    /// Share of the tokens packed (whole blocks before balancing + tail).
    pub share: f64,
}

/// Document lengths (tokens, EOS excluded) of one shard's complete documents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lengths {
    /// The split.
    pub split: Split,
    /// The domain.
    pub domain: String,
    /// Documents packed (manifest).
    pub documents: u64,
    /// Complete documents rebuilt.
    pub complete: u64,
    /// `complete / documents`.
    pub coverage: f64,
    /// 10th, 50th and 90th percentile (nearest rank) and maximum.
    pub p10: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// Longest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

/// What one source kept and dropped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceDrops {
    /// The domain.
    pub domain: String,
    /// The source label.
    pub source: String,
    /// Records read.
    pub records: u64,
    /// Documents kept.
    pub kept: u64,
    /// Drops by reason.
    pub drops: BTreeMap<String, u64>,
    /// Share of records read that were dropped.
    pub dropped_share: f64,
}

/// Everything in this module, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shape {
    /// Balance mode (`tokens` or `none`).
    pub balance: String,
    /// Largest over smallest train tokens before balancing (manifest).
    pub ratio_before: f64,
    /// Largest over smallest train tokens written.
    pub ratio_after: f64,
    /// Largest over smallest held-out tokens.
    pub held_out_ratio: f64,
    /// The config's warning ratio.
    pub warn_ratio: f64,
    /// Per domain, in config order.
    pub domains: Vec<DomainFacts>,
    /// Per shard.
    pub tails: Vec<Tail>,
    /// Per shard.
    pub lengths: Vec<Lengths>,
    /// Per source.
    pub sources: Vec<SourceDrops>,
}

/// Nearest-rank quantile of sorted values.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Measures the shape of a prepared directory.
pub fn measure(m: &Manifest, docs: &[Doc], coverage: &[ShardCoverage]) -> Shape {
    let domains = m.domains();
    let bs = m.block_size as u64;
    let facts: Vec<DomainFacts> = domains
        .iter()
        .enumerate()
        .map(|(d, name)| domain_facts(m, name, d, docs))
        .collect();
    let sum_by = |f: fn(&DomainFacts) -> u64| facts.iter().map(f).collect::<Vec<_>>();
    Shape {
        balance: serde_json::to_value(m.balance.mode)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        ratio_before: m.balance.token_ratio_before,
        ratio_after: ratio(&sum_by(|f| f.train_tokens_after)),
        held_out_ratio: ratio(&sum_by(|f| f.held_out_tokens)),
        warn_ratio: m.config.pipeline.imbalance_warn_ratio,
        domains: facts,
        tails: m
            .shards
            .iter()
            .map(|s| {
                let packed = s.blocks_before_balance * bs + s.tail_dropped;
                Tail {
                    split: s.split,
                    domain: s.domain.clone(),
                    tail: s.tail_dropped,
                    share: s.tail_dropped as f64 / packed.max(1) as f64,
                }
            })
            .collect(),
        lengths: coverage
            .iter()
            .map(|c| lengths(c, &domains, docs))
            .collect(),
        sources: m.sources.iter().map(source_drops).collect(),
    }
}

fn domain_facts(m: &Manifest, name: &str, d: usize, docs: &[Doc]) -> DomainFacts {
    let bs = m.block_size as u64;
    let train = m.shard(Split::Train, name);
    let held: Vec<_> = m
        .shards
        .iter()
        .filter(|s| s.domain == name && s.split != Split::Train)
        .collect();
    let complete = docs.iter().filter(|x| x.domain == d && x.is_complete());
    let (tokens, bytes) = complete.fold((0u64, 0u64), |(t, b), x| {
        (t + x.tokens.len() as u64, b + x.text.len() as u64)
    });
    let before = train.map_or(0, |s| s.blocks_before_balance);
    let after = train.map_or(0, |s| s.blocks);
    DomainFacts {
        domain: name.to_string(),
        train_tokens_before: before * bs,
        train_tokens_after: after * bs,
        train_blocks_dropped: (before - after.min(before)) as f64 / before.max(1) as f64,
        held_out_documents: held.iter().map(|s| s.documents).sum(),
        held_out_tokens: held.iter().map(|s| s.tokens).sum(),
        eos_per_1k_train: train.map_or(0.0, |s| {
            1000.0 * s.eos_count as f64 / s.tokens.max(1) as f64
        }),
        tokens_per_byte: if bytes == 0 {
            0.0
        } else {
            tokens as f64 / bytes as f64
        },
    }
}

fn lengths(c: &ShardCoverage, domains: &[String], docs: &[Doc]) -> Lengths {
    let d = domains.iter().position(|x| *x == c.domain);
    let mut v: Vec<u64> = docs
        .iter()
        .filter(|x| Some(x.domain) == d && x.split == c.split && x.is_complete())
        .map(|x| x.tokens.len() as u64)
        .collect();
    v.sort_unstable();
    Lengths {
        split: c.split,
        domain: c.domain.clone(),
        documents: c.documents,
        complete: c.complete,
        coverage: c.complete as f64 / c.documents.max(1) as f64,
        p10: quantile(&v, 0.1),
        p50: quantile(&v, 0.5),
        p90: quantile(&v, 0.9),
        max: v.last().copied().unwrap_or(0),
        mean: v.iter().sum::<u64>() as f64 / v.len().max(1) as f64,
    }
}

fn source_drops(s: &crate::manifest::SourceStats) -> SourceDrops {
    let drops: BTreeMap<String, u64> = s
        .drops
        .iter()
        .map(|(r, n)| {
            let name = serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            (name, *n)
        })
        .collect();
    let dropped: u64 = drops.values().sum();
    SourceDrops {
        domain: s.domain.clone(),
        source: s.label.clone(),
        records: s.records_read,
        kept: s.documents_kept,
        dropped_share: dropped as f64 / s.records_read.max(1) as f64,
        drops,
    }
}
