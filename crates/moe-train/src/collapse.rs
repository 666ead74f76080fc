//! The collapse detector (TRAIN-6): a run stops when the same expert takes
//! more than `threshold` of a layer's tokens at `checks` consecutive routing
//! checks (the original study: 60 % at 3 checks). Each expert of each layer
//! has its own streak, so experts that take turns over the threshold never
//! add up to a collapse.

use serde::{Deserialize, Serialize};

/// State of the detector, saved in checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollapseDetector {
    /// Consecutive over-threshold checks per layer and expert. `[layer][expert]`
    #[serde(default)]
    pub streaks: Vec<Vec<u32>>,
}

/// Why the detector fired.
#[derive(Debug, Clone, PartialEq)]
pub struct Collapse {
    /// The MoE block index.
    pub layer: usize,
    /// The expert that stayed over the threshold.
    pub expert: usize,
    /// Its share of the layer's tokens at the last check.
    pub share: f64,
}

impl CollapseDetector {
    /// Feeds one check: per MoE layer `(block index, expert shares)`.
    /// Returns the first (layer, expert) that has now been over `threshold`
    /// for `checks` consecutive checks (`checks = 0` never fires).
    pub fn check(
        &mut self,
        layers: &[(usize, Vec<f64>)],
        threshold: f64,
        checks: u32,
    ) -> Option<Collapse> {
        self.streaks.resize(layers.len(), Vec::new());
        let mut fired = None;
        for ((layer, shares), streaks) in layers.iter().zip(self.streaks.iter_mut()) {
            streaks.resize(shares.len(), 0);
            let mut here: Option<Collapse> = None;
            for (expert, (&share, streak)) in shares.iter().zip(streaks.iter_mut()).enumerate() {
                *streak = if share > threshold { *streak + 1 } else { 0 };
                if checks > 0 && *streak >= checks && here.as_ref().is_none_or(|c| share > c.share)
                {
                    here = Some(Collapse {
                        layer: *layer,
                        expert,
                        share,
                    });
                }
            }
            fired = fired.or(here);
        }
        fired
    }
}

/// The longest run of consecutive rows in which one same expert's share is
/// over `threshold`, and the row where the first such row starts: the
/// detector's rule applied to a whole routing history (for analysis).
pub fn longest_same_expert_run(rows: &[Vec<f64>], threshold: f64) -> (u32, Option<usize>) {
    let mut detector = CollapseDetector::default();
    let (mut longest, mut first) = (0, None);
    for (i, shares) in rows.iter().enumerate() {
        detector.check(&[(0, shares.clone())], threshold, 0);
        let best = detector.streaks[0].iter().copied().max().unwrap_or(0);
        if best > 0 && first.is_none() {
            first = Some(i);
        }
        longest = longest.max(best);
    }
    (longest, first)
}
