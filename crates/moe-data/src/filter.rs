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
    // A UTF-8 text of n bytes has between n/4 and n chars: count them only
    // when those bounds do not settle both limits.
    let bytes = text.len();
    let max_ok = |chars: usize| source.max_chars.is_none_or(|max| chars <= max);
    if bytes.div_ceil(4) >= source.min_chars && max_ok(bytes) {
        return Ok(());
    }
    let chars = text.chars().count();
    if chars < source.min_chars {
        return Err(DropReason::TooShort);
    }
    if !max_ok(chars) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn source(min_chars: usize, max_chars: Option<usize>) -> SourceConfig {
        let mut text =
            format!("kind = \"local\"\npath = \"x\"\nformat = \"text\"\nmin_chars = {min_chars}\n");
        if let Some(max) = max_chars {
            text += &format!("max_chars = {max}\n");
        }
        toml::from_str(&text).unwrap()
    }

    proptest! {
        // FILT-1, FILT-2: the length filter is its definition — empty or
        // whitespace-only, then fewer than `min_chars` or more than
        // `max_chars` characters — whether or not it counts the characters
        // (it skips counting when the byte length settles both limits).
        #[test]
        fn filt_2_length_limits_count_characters(
            text in "[ a\u{e9}\u{4e2d}\u{1f600}\n]{0,40}",
            min_chars in 0usize..50,
            max_chars in proptest::option::of(0usize..60),
        ) {
            let chars = text.chars().count();
            let expected = if text.trim().is_empty() {
                Err(DropReason::Empty)
            } else if chars < min_chars {
                Err(DropReason::TooShort)
            } else if max_chars.is_some_and(|m| chars > m) {
                Err(DropReason::TooLong)
            } else {
                Ok(())
            };
            prop_assert_eq!(check_length(&text, &source(min_chars, max_chars)), expected);
        }
    }
}
