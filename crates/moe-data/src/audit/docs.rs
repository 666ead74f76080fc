//! Rebuilding documents from a prepared directory (AUDIT-2).
//!
//! A shard holds whole blocks in a seeded order, and balancing may have
//! dropped some of them. The shuffle is a seeded permutation of the packed
//! blocks (purpose `shuffle/<split>/<domain>`, as in `prepare`), so the audit
//! recomputes it, puts the kept blocks back in packing order, joins blocks
//! that were neighbours, and splits the stream at EOS. A run is a
//! [`DocKind::Complete`] document when its start (stream start or just after
//! an EOS) and its EOS are both visible without a gap; a [`DocKind::Head`]
//! when only its start is; anything else is a fragment, only counted.

use std::path::Path;

use serde::Serialize;

use crate::balance::{block_order, shuffle_purpose};
use crate::manifest::ShardInfo;
use crate::split::Split;
use crate::tokenizer::{EOS_ID, Gpt2Tokenizer};

use super::AuditError;

/// How much of a document the kept blocks show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    /// Start and EOS visible, no gap between.
    Complete,
    /// Start visible, end cut by a dropped block or the packing tail.
    Head,
    /// Start not visible (after a dropped block).
    Fragment,
}

/// One rebuilt document, document head or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// Split it was packed into.
    pub split: Split,
    /// Index of its domain in the manifest's domain order.
    pub domain: usize,
    /// Its tokens, without EOS.
    pub tokens: Vec<u16>,
    /// Its decoded text.
    pub text: String,
    /// Whether the end is visible.
    pub kind: DocKind,
}

impl Doc {
    /// A document from text, encoded with `tokenizer` (for tests and tools).
    pub fn from_text(
        tokenizer: &Gpt2Tokenizer,
        split: Split,
        domain: usize,
        text: &str,
        kind: DocKind,
    ) -> Self {
        let tokens = tokenizer.encode(text).iter().map(|&t| t as u16).collect();
        Self {
            split,
            domain,
            tokens,
            text: text.to_string(),
            kind,
        }
    }

    /// Whether the whole document is visible.
    pub fn is_complete(&self) -> bool {
        self.kind == DocKind::Complete
    }

    /// Whether the document's start is visible.
    pub fn has_start(&self) -> bool {
        self.kind != DocKind::Fragment
    }
}

/// What rebuilding found in one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardCoverage {
    /// The split.
    pub split: Split,
    /// The domain.
    pub domain: String,
    /// Documents packed (manifest).
    pub documents: u64,
    /// Complete documents rebuilt.
    pub complete: u64,
    /// Document heads rebuilt (start visible, end cut).
    pub heads: u64,
    /// Runs whose start was dropped.
    pub fragments: u64,
    /// EOS tokens found in the shard.
    pub eos_found: u64,
}

/// A token run between boundaries, before decoding: its tokens and how
/// much of its document is visible.
pub type Run = (Vec<u16>, DocKind);

/// Original (packing) index of each block of a shard, by shard position.
pub fn original_order(info: &ShardInfo, seed: u64) -> Vec<usize> {
    let purpose = shuffle_purpose(info.split, &info.domain);
    block_order(
        info.blocks_before_balance as usize,
        info.blocks as usize,
        seed,
        &purpose,
    )
}

/// Splits kept blocks, given with their original indices in ascending
/// order, into runs at EOS and at gaps.
pub fn split_runs<'a>(blocks: impl IntoIterator<Item = (usize, &'a [u16])>) -> Vec<Run> {
    let eos = EOS_ID as u16;
    let mut runs = Vec::new();
    let mut cur: Vec<u16> = Vec::new();
    let mut start_known = false;
    let mut prev: Option<usize> = None;
    let kind = |start_known: bool, end: DocKind| match start_known {
        true => end,
        false => DocKind::Fragment,
    };
    let cut = |cur: &mut Vec<u16>, start_known: bool, runs: &mut Vec<Run>| {
        if !cur.is_empty() {
            runs.push((std::mem::take(cur), kind(start_known, DocKind::Head)));
        }
    };
    for (idx, block) in blocks {
        if prev.is_none_or(|p| p + 1 != idx) {
            cut(&mut cur, start_known, &mut runs);
            start_known = idx == 0;
        }
        prev = Some(idx);
        for &t in block {
            if t != eos {
                cur.push(t);
                continue;
            }
            if !cur.is_empty() {
                runs.push((
                    std::mem::take(&mut cur),
                    kind(start_known, DocKind::Complete),
                ));
            }
            start_known = true;
        }
    }
    cut(&mut cur, start_known, &mut runs);
    runs
}

/// Rebuilds the documents of one shard from its tokens.
pub fn rebuild_shard(
    dir: &Path,
    info: &ShardInfo,
    domain: usize,
    tokens: &[u16],
    block_size: usize,
    seed: u64,
    tokenizer: &Gpt2Tokenizer,
) -> Result<(Vec<Doc>, ShardCoverage), AuditError> {
    let inconsistent = |reason: String| AuditError::Inconsistent {
        path: dir.join(&info.file),
        reason,
    };
    if info.blocks > info.blocks_before_balance {
        return Err(inconsistent(format!(
            "{} blocks kept out of {} before balancing",
            info.blocks, info.blocks_before_balance
        )));
    }
    let eos_found = tokens.iter().filter(|&&t| t == EOS_ID as u16).count() as u64;
    if eos_found != info.eos_count {
        return Err(inconsistent(format!(
            "{eos_found} EOS tokens, the manifest says {}",
            info.eos_count
        )));
    }
    let mut blocks: Vec<(usize, &[u16])> = original_order(info, seed)
        .into_iter()
        .zip(tokens.chunks(block_size.max(1)))
        .collect();
    blocks.sort_unstable_by_key(|(idx, _)| *idx);
    let mut coverage = ShardCoverage {
        split: info.split,
        domain: info.domain.clone(),
        documents: info.documents,
        complete: 0,
        heads: 0,
        fragments: 0,
        eos_found,
    };
    let mut docs = Vec::new();
    for (tokens, kind) in split_runs(blocks) {
        match kind {
            DocKind::Complete => coverage.complete += 1,
            DocKind::Head => coverage.heads += 1,
            DocKind::Fragment => coverage.fragments += 1,
        }
        let ids: Vec<u32> = tokens.iter().map(|&t| t as u32).collect();
        docs.push(Doc {
            split: info.split,
            domain,
            text: tokenizer.decode(&ids),
            tokens,
            kind,
        });
    }
    Ok((docs, coverage))
}
