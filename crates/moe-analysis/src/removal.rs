//! Expert removal (ANA-25): per MoE block and expert e, every domain's val
//! loss with e masked out of that block's routing (its tokens take their
//! next choice, MOE-14) minus the unmasked loss, paired block by block with
//! a 95% t-interval over the val blocks; and each expert's own domain (the
//! domain that routes the largest share of its tokens to it) beside the
//! domain that loses most.

use crate::intervals::t_interval;
use crate::masked::{MaskedLoss, mean};
use crate::schema::{ExpertRemoval, LossDelta};

/// The removal table of MoE block `layer` with `n_experts` experts;
/// `domain_expert_shares[d][e]` is the share of domain d's tokens routed
/// to e (top-1).
pub fn expert_removal(
    eval: &mut impl MaskedLoss,
    layer: usize,
    n_experts: usize,
    domain_expert_shares: &[Vec<f64>],
) -> ExpertRemoval {
    let n_domains = eval.n_domains();
    let full: Vec<Vec<f64>> = (0..n_domains)
        .map(|d| eval.block_losses(d, layer, &[]))
        .collect();
    let delta: Vec<Vec<LossDelta>> = (0..n_experts)
        .map(|e| {
            (0..n_domains)
                .map(|d| paired_delta(&full[d], &eval.block_losses(d, layer, &[e])))
                .collect()
        })
        .collect();
    let own_domain = (0..n_experts)
        .map(|e| own_domain(domain_expert_shares, e))
        .collect();
    let most_hurt = delta
        .iter()
        .map(|row| argmax(row.iter().map(|x| x.mean)))
        .collect();
    ExpertRemoval {
        blocks: full.iter().map(Vec::len).collect(),
        full_loss: full.iter().map(|b| mean(b)).collect(),
        delta,
        own_domain,
        most_hurt,
    }
}

/// `masked − full`, block by block: the mean and its 95% interval.
pub fn paired_delta(full: &[f64], masked: &[f64]) -> LossDelta {
    let diffs: Vec<f64> = masked.iter().zip(full).map(|(m, f)| m - f).collect();
    LossDelta {
        mean: mean(&diffs),
        interval: t_interval(&diffs),
    }
}

/// The domain routing the largest share of its tokens to expert `e`; `None`
/// when no domain routes any (ties: the first domain).
pub fn own_domain(domain_expert_shares: &[Vec<f64>], e: usize) -> Option<usize> {
    let shares = domain_expert_shares
        .iter()
        .map(|row| row.get(e).copied().unwrap_or(0.0));
    let best = argmax(shares.clone())?;
    (shares.clone().nth(best).unwrap_or(0.0) > 0.0).then_some(best)
}

/// Index of the largest value (the first on ties); `None` when empty.
pub fn argmax(values: impl Iterator<Item = f64>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, v) in values.enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}
