//! Parameter counts per component, total and active (MODEL-7).
//!
//! Computed from the config; a test checks them against Burn's own count of a
//! built model. "Active" counts the parameters one token goes through: `top_k`
//! experts of each MoE layer instead of all of them.

use serde::Serialize;

use crate::config::ModelConfig;

/// Parameters by component. The LM head is tied to `wte` and counts 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ParamCounts {
    /// Token embedding `wte` (also the LM head).
    pub token_embedding: usize,
    /// Position embedding `wpe`.
    pub position_embedding: usize,
    /// All attention layers (`c_attn`, `c_proj`, weights and biases).
    pub attention: usize,
    /// All LayerNorms (`ln_1`, `ln_2` per block and `ln_f`).
    pub layer_norms: usize,
    /// The MLPs of dense blocks.
    pub dense_mlp: usize,
    /// The routers of MoE blocks.
    pub routers: usize,
    /// All experts of MoE blocks.
    pub experts: usize,
    /// The experts one token uses (`top_k` per MoE block).
    pub experts_active: usize,
}

impl ParamCounts {
    /// Counts for a model of `config`.
    pub fn of(config: &ModelConfig) -> Self {
        let g = &config.gpt2;
        let (d, ff, l) = (g.d_model, g.d_ff, g.n_layer);
        let mlp = d * ff + ff + ff * d + d;
        let (n_moe, n_experts, top_k) = config
            .moe
            .as_ref()
            .map_or((0, 0, 0), |m| (m.layers.len(), m.n_experts, m.top_k));
        Self {
            token_embedding: g.vocab_size * d,
            position_embedding: g.n_positions * d,
            attention: l * (d * 3 * d + 3 * d + d * d + d),
            layer_norms: (2 * l + 1) * 2 * d,
            dense_mlp: (l - n_moe) * mlp,
            routers: n_moe * d * n_experts,
            experts: n_moe * n_experts * mlp,
            experts_active: n_moe * top_k * mlp,
        }
    }

    fn shared(&self) -> usize {
        self.token_embedding
            + self.position_embedding
            + self.attention
            + self.layer_norms
            + self.dense_mlp
            + self.routers
    }

    /// All parameters.
    pub fn total(&self) -> usize {
        self.shared() + self.experts
    }

    /// Parameters used per token.
    pub fn active(&self) -> usize {
        self.shared() + self.experts_active
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MoeConfig;

    // MODEL-7
    #[test]
    fn model_7_gpt2_small_has_124m_parameters() {
        let dense = ModelConfig::preset("gpt2").unwrap();
        let c = ParamCounts::of(&dense);
        assert_eq!(c.total(), 124_439_808);
        assert_eq!(c.active(), c.total());
        let moe = ModelConfig {
            moe: Some(MoeConfig::default_for(12)),
            ..dense
        };
        let m = ParamCounts::of(&moe);
        // 8 dense MLPs + 4 × 8 experts + 4 routers of 768 × 8.
        let mlp = 2 * 768 * 3072 + 3072 + 768;
        assert_eq!(m.total(), c.total() - 4 * mlp + 32 * mlp + 4 * 768 * 8);
        assert_eq!(m.active(), c.total() + 4 * 768 * 8);
    }
}
