//! Document filters: each answers keep, or drop with a reason, and every drop
//! is counted by reason in the manifest (FILT-*).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::SourceConfig;

/// Why a row did not become a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Empty or whitespace only after formatting.
    Empty,
    /// Fewer characters than `min_chars`.
    TooShort,
    /// More characters than `max_chars`.
    TooLong,
    /// Not valid UTF-8 (policy `skip`).
    InvalidUtf8,
    /// Same text as an earlier document (any domain).
    Duplicate,
    /// `require_suffix` did not match.
    SuffixMismatch,
}

/// Drop counts by reason, ordered for stable output.
pub type DropCounts = BTreeMap<DropReason, u64>;

/// The length filters of one source (empty, min and max characters).
pub fn check_length(text: &str, source: &SourceConfig) -> Result<(), DropReason> {
    if text.trim().is_empty() {
        return Err(DropReason::Empty);
    }
    let chars = text.chars().count();
    if chars < source.min_chars {
        return Err(DropReason::TooShort);
    }
    if source.max_chars.is_some_and(|max| chars > max) {
        return Err(DropReason::TooLong);
    }
    Ok(())
}

/// The `require_suffix` filter on the value of its field.
pub fn check_suffix(value: Option<&str>, source: &SourceConfig) -> Result<(), DropReason> {
    match (&source.require_suffix, value) {
        (None, _) => Ok(()),
        (Some(rule), Some(v)) if rule.suffixes.iter().any(|s| v.ends_with(s.as_str())) => Ok(()),
        _ => Err(DropReason::SuffixMismatch),
    }
}

/// 128-bit content key for exact-duplicate detection (FILT-4): XXH3-128
/// of the text, a tenth of SHA-256's cost on every kept byte. Two
/// different texts share a key by chance with odds about 2^-128 a pair; a
/// pair crafted to collide would drop the second text as a duplicate.
pub fn content_key(text: &str) -> [u8; 16] {
    xxhash_rust::xxh3::xxh3_128(text.as_bytes()).to_le_bytes()
}
