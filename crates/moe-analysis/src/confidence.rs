//! How sure the router is (ANA-19): the mean top-1 probability against
//! `1/E` and the mean router entropy against `ln E`. A router can route by
//! domain in its argmax while being barely more confident than uniform;
//! the report says so.

use crate::schema::Confidence;
use crate::token_routes::LayerRoutes;

/// A router whose mean entropy is at least this fraction of `ln E` is
/// called near-uniform.
pub const NEAR_UNIFORM_ENTROPY_FRACTION: f64 = 0.95;

/// The confidence of one layer's router over the routed tokens.
pub fn confidence(routes: &LayerRoutes) -> Confidence {
    let n = routes.gate.len().max(1) as f64;
    let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let e = routes.n_experts.max(1) as f64;
    let mean_entropy_nats = mean(&routes.entropy);
    let max_entropy_nats = e.ln();
    let entropy_fraction = if max_entropy_nats > 0.0 {
        mean_entropy_nats / max_entropy_nats
    } else {
        0.0
    };
    Confidence {
        mean_top1_prob: mean(&routes.gate),
        uniform_prob: 1.0 / e,
        mean_entropy_nats,
        max_entropy_nats,
        entropy_fraction,
        near_uniform: entropy_fraction >= NEAR_UNIFORM_ENTROPY_FRACTION,
    }
}
