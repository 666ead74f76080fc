//! Splitting a domain's documents into train / val / test, by document and
//! before packing, with a seeded choice (SPLIT-*).

use serde::{Deserialize, Serialize};

use crate::seeded::permutation;

/// A data split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training data.
    Train,
    /// Held out for evaluation during training.
    Val,
    /// Held out for final evaluation (optional).
    Test,
}

impl Split {
    /// The split's name, also its shard folder.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Number of documents a held-out fraction gets: at least one when the fraction is positive.
fn held_out(n: usize, fraction: f64) -> usize {
    if fraction <= 0.0 {
        0
    } else {
        ((n as f64 * fraction).round() as usize).max(1)
    }
}

/// Assigns each of `n` documents a split; returns the document indices per
/// split, each in ascending (source) order.
pub fn assign(
    n: usize,
    val_fraction: f64,
    test_fraction: f64,
    seed: u64,
    domain: &str,
) -> [(Split, Vec<usize>); 3] {
    let perm = permutation(n, seed, &format!("split/{domain}"));
    let n_val = held_out(n, val_fraction).min(n);
    let n_test = held_out(n, test_fraction).min(n - n_val);
    let sorted = |s: &[usize]| {
        let mut v = s.to_vec();
        v.sort_unstable();
        v
    };
    [
        (Split::Train, sorted(&perm[n_val + n_test..])),
        (Split::Val, sorted(&perm[..n_val])),
        (Split::Test, sorted(&perm[n_val..n_val + n_test])),
    ]
}
