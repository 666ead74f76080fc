//! Severity rules: measurements in, findings out (AUDIT-3). Every threshold
//! is a named constant below and is quoted in the finding it sets, so a
//! reader sees the rule next to the evidence. The same constants are listed
//! in `specs/audit.md`.
//!
//! - **high** — would invalidate a specialization or evaluation claim;
//! - **medium** — biases routing or evaluation measurably;
//! - **low** — worth knowing, rarely decisive;
//! - **info** — a check that found nothing wrong.

mod dups;
mod shape;
mod text;

pub use dups::{duplicates, leakage};
pub use shape::{balance, held_out, lengths, sources, tails};
pub use text::{first_chars, invisible, leading_whitespace, literal_eos, markers, prefixes};

use serde::Serialize;

use crate::tokenizer::Gpt2Tokenizer;

use super::docs::Doc;
use super::text::{code, pct};

/// A prefix in at least this share of a domain's documents, and under
/// [`EXCLUSIVE_MAX`] in every other domain, is high.
pub const PREFIX_HIGH: f64 = 0.9;
/// A prefix in at least this share of a domain's documents is medium
/// (low when it is as common elsewhere).
pub const PREFIX_MEDIUM: f64 = 0.5;
/// A prefix in at least this share of a domain's documents is low.
pub const PREFIX_LOW: f64 = 0.2;
/// Prefixes whose shares differ by less than this count as equally common;
/// the longest of them is reported.
pub const PREFIX_SHARE_TIE: f64 = 0.01;
/// "Exclusive to a domain": under this share in every other domain.
pub const EXCLUSIVE_MAX: f64 = 0.1;
/// A once-per-document trigram in at least this share of a domain's
/// documents (and exclusive) is a medium template marker.
pub const MARKER_SHARE: f64 = 0.9;
/// A first character in at least this share of a domain (exclusive) is medium.
pub const FIRST_CHAR_SHARE: f64 = 0.9;
/// Leading whitespace in at least this share of a domain is low …
pub const LEADING_WS_LOW: f64 = 0.1;
/// … and medium from this share when exclusive.
pub const LEADING_WS_MEDIUM: f64 = 0.5;
/// Invisible characters in at least this share of a domain's documents are medium (any is low).
pub const INVISIBLE_MEDIUM: f64 = 0.1;
/// Near-duplicate redundancy of a (split, domain) at or above this is medium …
pub const NEAR_DUP_MEDIUM: f64 = 0.1;
/// … and low from this.
pub const NEAR_DUP_LOW: f64 = 0.01;
/// Held-out documents with a train near-duplicate at or above this share are high (any is medium).
pub const LEAK_HIGH: f64 = 0.05;
/// A domain that lost at least this share of its train blocks to balancing is medium.
pub const BALANCE_DROP_MEDIUM: f64 = 0.25;
/// A domain with fewer held-out documents than this is medium.
pub const MIN_HELD_OUT_DOCUMENTS: u64 = 30;
/// A tail above this share of a shard's packed tokens is low.
pub const TAIL_LOW: f64 = 0.01;
/// Median document lengths differing by this factor across domains are low.
pub const LENGTH_RATIO_LOW: f64 = 10.0;
/// Complete-document coverage under this share of a shard is low.
pub const COVERAGE_LOW: f64 = 0.5;
/// A source dropping at least this share of its records is low.
pub const SOURCE_DROP_LOW: f64 = 0.2;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Would invalidate a claim.
    High,
    /// Biases results measurably.
    Medium,
    /// Worth knowing.
    Low,
    /// A check that passed.
    Info,
}

impl Severity {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }
}

/// One finding with its evidence, rule and recommendation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Severity.
    pub severity: Severity,
    /// Which check raised it (`prefix`, `leakage` …).
    pub check: String,
    /// The spec statement of the check.
    pub spec: String,
    /// The domain it is about, if one.
    pub domain: Option<String>,
    /// One line: what was found.
    pub title: String,
    /// The measured facts behind it.
    pub evidence: Vec<String>,
    /// The rule that set the severity.
    pub rule: String,
    /// What to do (empty for info).
    pub recommendation: String,
}

/// What the rules need besides the measurements.
pub struct Context<'a> {
    /// Domain names in manifest order.
    pub domains: &'a [String],
    /// The rebuilt documents (for examples).
    pub docs: &'a [Doc],
    /// For decoding token sequences.
    pub tokenizer: &'a Gpt2Tokenizer,
}

impl Context<'_> {
    /// Tokens as a quoted, escaped code span.
    pub fn show(&self, tokens: &[u16]) -> String {
        let ids: Vec<u32> = tokens.iter().map(|&t| u32::from(t)).collect();
        code(&self.tokenizer.decode(&ids))
    }

    /// The start of document `i` (60 characters), as a code span.
    pub fn preview(&self, i: usize) -> String {
        let text: String = self.docs[i].text.chars().take(60).collect();
        code(&text)
    }

    /// `name share` for every domain but `d`.
    pub fn others(&self, d: usize, shares: &[f64]) -> String {
        let v: Vec<String> = (0..self.domains.len())
            .filter(|&o| o != d)
            .map(|o| {
                format!(
                    "{} {}",
                    self.domains[o],
                    pct(shares.get(o).copied().unwrap_or(0.0))
                )
            })
            .collect();
        if v.is_empty() {
            "no other domain".into()
        } else {
            v.join(", ")
        }
    }
}

/// Whether every domain but `d` is under [`EXCLUSIVE_MAX`].
pub fn exclusive(d: usize, shares: &[f64]) -> bool {
    shares
        .iter()
        .enumerate()
        .all(|(o, &s)| o == d || s < EXCLUSIVE_MAX)
}

/// Severity of a prefix shared by `share` of its domain.
pub fn prefix_severity(share: f64, is_exclusive: bool) -> Option<Severity> {
    match share {
        s if s >= PREFIX_HIGH && is_exclusive => Some(Severity::High),
        s if s >= PREFIX_MEDIUM && is_exclusive => Some(Severity::Medium),
        s if s >= PREFIX_LOW => Some(Severity::Low),
        _ => None,
    }
}
