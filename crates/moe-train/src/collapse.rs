//! The collapse detector (TRAIN-6): a run stops when one expert takes more
//! than `threshold` of a layer's tokens at `checks` consecutive routing
//! checks (the original study: 60 % at 3 checks).

use serde::{Deserialize, Serialize};

/// State of the detector, saved in checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollapseDetector {
    /// Consecutive over-threshold checks per layer.
    pub streak: Vec<u32>,
}

/// Why the detector fired.
#[derive(Debug, Clone, PartialEq)]
pub struct Collapse {
    /// The MoE block index.
    pub layer: usize,
    /// The expert holding the largest share.
    pub expert: usize,
    /// Its share of the layer's tokens at the last check.
    pub share: f64,
}

impl CollapseDetector {
    /// Feeds one check: per MoE layer `(block index, expert shares)`.
    /// Returns the first layer that has now been over `threshold` for `checks` checks.
    pub fn check(
        &mut self,
        layers: &[(usize, Vec<f64>)],
        threshold: f64,
        checks: u32,
    ) -> Option<Collapse> {
        self.streak.resize(layers.len(), 0);
        let mut fired = None;
        for (i, (layer, shares)) in layers.iter().enumerate() {
            let (expert, share) =
                shares
                    .iter()
                    .copied()
                    .enumerate()
                    .fold(
                        (0, f64::MIN),
                        |best, (e, s)| if s > best.1 { (e, s) } else { best },
                    );
            self.streak[i] = if share > threshold {
                self.streak[i] + 1
            } else {
                0
            };
            if fired.is_none() && checks > 0 && self.streak[i] >= checks {
                fired = Some(Collapse {
                    layer: *layer,
                    expert,
                    share,
                });
            }
        }
        fired
    }
}
