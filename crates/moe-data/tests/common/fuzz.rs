//! Building blocks of the proptest fuzzers (DATA-9): byte edits, odd TOML
//! values, and a guard that turns a panic into a failed case.

use std::panic::{AssertUnwindSafe, catch_unwind};

use proptest::prelude::*;
use proptest::sample::Index;

/// One byte-level edit: (position, byte, kind).
pub type Edit = (Index, u8, u8);

pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec((any::<Index>(), any::<u8>(), 0u8..4), 1..6)
}

pub fn apply_edits(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for (at, byte, kind) in edits {
        if bytes.is_empty() {
            bytes.push(*byte);
            continue;
        }
        let i = at.index(bytes.len());
        match kind {
            0 => bytes[i] ^= byte.max(&1),
            1 => bytes.insert(i, *byte),
            2 => {
                bytes.remove(i);
            }
            _ => bytes.truncate(i),
        }
    }
    bytes
}

/// Odd values for a TOML line's right-hand side or a JSON leaf.
pub const ODD_TOML: &[&str] = &[
    "0",
    "-1",
    "1",
    "1025",
    "18446744073709551615",
    "9223372036854775807",
    "1e309",
    "nan",
    "-inf",
    "0.9999999",
    "\"\"",
    "\"../../x\"",
    "\"{\"",
    "\"}{\"",
    "\"{{}}\"",
    "[]",
    "[\"\"]",
    "{}",
    "true",
    "\"mixed\"",
    "\"none\"",
];

/// Replaces the value of the `line`-th `key = value` line with `ODD_TOML[value]`.
pub fn mutate_toml(text: &str, line: Index, value: Index) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let assignments: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains(" = "))
        .collect();
    if assignments.is_empty() {
        return text.to_string();
    }
    let target = assignments[line.index(assignments.len())];
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let key = lines[target].split(" = ").next().unwrap_or("");
    out[target] = format!("{key} = {}", ODD_TOML[value.index(ODD_TOML.len())]);
    out.join("\n")
}

pub fn repo_file(rel: &str) -> String {
    std::fs::read_to_string(super::repo_root().join(rel)).unwrap()
}

/// Runs `f`, failing the case (instead of the whole test) on a panic.
pub fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        TestCaseError::fail(format!("{what} panicked: {msg}"))
    })
}
