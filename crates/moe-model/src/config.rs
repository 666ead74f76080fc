//! Model configuration: GPT-2 dimensions, the MoE layout, and named presets.
//!
//! Our own serde structs (`deny_unknown_fields`) rather than Burn's derived
//! configs, so that a misspelled key in a run config is an error. The HF
//! `config.json` mapping lives in [`crate::hf_config`].

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// GPT-2 dimensions, as HF `GPT2Config` names them where they exist (MODEL-1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpt2Config {
    /// Vocabulary size (`vocab_size`).
    pub vocab_size: usize,
    /// Longest sequence the learned position table covers (`n_positions`).
    pub n_positions: usize,
    /// Width of the residual stream (`n_embd`).
    pub d_model: usize,
    /// Number of transformer blocks (`n_layer`).
    pub n_layer: usize,
    /// Attention heads per block (`n_head`); must divide `d_model`.
    pub n_head: usize,
    /// Hidden width of the MLP (`n_inner`, default `4 * d_model`).
    pub d_ff: usize,
    /// LayerNorm epsilon (`layer_norm_epsilon`, 1e-5 in GPT-2).
    pub layer_norm_eps: f64,
}

/// Which blocks are MoE and how they route (MOE-1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoeConfig {
    /// Block indices whose MLP is replaced by an MoE layer (GPT-2 small: 8-11).
    pub layers: Vec<usize>,
    /// Experts per MoE layer.
    pub n_experts: usize,
    /// Experts each token is sent to (1 = Switch routing with the straight-through gate).
    pub top_k: usize,
    /// Expert capacity factor; `None` is dropless (the default).
    #[serde(default)]
    pub capacity_factor: Option<f64>,
    /// Rows each expert's group is padded to a multiple of (MOE-16): few
    /// distinct matmul shapes for backends that compile a kernel per shape.
    /// `None` (the default) is the backend's: 1 (no padding) on the CPU,
    /// [`GPU_GROUP_ALIGNMENT`](crate::moe::GPU_GROUP_ALIGNMENT) elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_alignment: Option<usize>,
}

/// A whole model: GPT-2 plus an optional MoE layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The dense GPT-2 dimensions.
    pub gpt2: Gpt2Config,
    /// MoE layout; `None` is the dense model.
    #[serde(default)]
    pub moe: Option<MoeConfig>,
}

/// The preset names [`Gpt2Config::preset`] knows.
pub const PRESETS: [&str; 3] = ["gpt2", "tiny", "micro"];

impl Gpt2Config {
    /// A named preset (MODEL-2): `gpt2` (124M: 12 layers, 12 heads, d_model 768,
    /// context 1024, vocab 50257), `tiny` (GPT-2 vocabulary, 4 layers of width
    /// 128: the CPU demo and the bench) and `micro` (vocab 96, 2 layers of
    /// width 32: unit tests).
    pub fn preset(name: &str) -> Result<Self> {
        let (vocab_size, n_positions, d_model, n_layer, n_head) = match name {
            "gpt2" => (50257, 1024, 768, 12, 12),
            "tiny" => (50257, 256, 128, 4, 4),
            "micro" => (96, 32, 32, 2, 4),
            _ => {
                return Err(ModelError::UnknownPreset {
                    name: name.to_string(),
                    known: PRESETS.join(", "),
                });
            }
        };
        Ok(Self {
            vocab_size,
            n_positions,
            d_model,
            n_layer,
            n_head,
            d_ff: 4 * d_model,
            layer_norm_eps: 1e-5,
        })
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_head
    }

    /// Checks the dimensions are usable (all positive, heads divide `d_model`).
    pub fn validate(&self) -> Result<()> {
        let dims = [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("d_model", self.d_model),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("d_ff", self.d_ff),
        ];
        if let Some((name, _)) = dims.iter().find(|(_, v)| *v == 0) {
            return Err(ModelError::Config(format!("{name} must be positive")));
        }
        if !self.d_model.is_multiple_of(self.n_head) {
            return Err(ModelError::Config(format!(
                "n_head {} does not divide d_model {}",
                self.n_head, self.d_model
            )));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(ModelError::Config(format!(
                "layer_norm_eps must be positive, got {}",
                self.layer_norm_eps
            )));
        }
        Ok(())
    }
}

impl MoeConfig {
    /// The design's default layout for a model of `n_layer` blocks: the last
    /// four blocks (8-11 in GPT-2 small; all blocks when fewer), 8 experts,
    /// top-1, dropless.
    pub fn default_for(n_layer: usize) -> Self {
        Self {
            layers: (n_layer.saturating_sub(4)..n_layer).collect(),
            n_experts: 8,
            top_k: 1,
            capacity_factor: None,
            group_alignment: None,
        }
    }

    /// Checks the layout against a model of `n_layer` blocks.
    pub fn validate(&self, n_layer: usize) -> Result<()> {
        if self.n_experts == 0 {
            return Err(ModelError::Config("n_experts must be positive".into()));
        }
        if self.top_k == 0 || self.top_k > self.n_experts {
            return Err(ModelError::Config(format!(
                "top_k {} must be in 1..={}",
                self.top_k, self.n_experts
            )));
        }
        if self.group_alignment == Some(0) {
            return Err(ModelError::Config(
                "group_alignment must be at least 1 (1: no padding)".into(),
            ));
        }
        if self.layers.is_empty() {
            return Err(ModelError::Config(
                "an MoE config needs at least one layer (drop [model.moe] for a dense model)"
                    .into(),
            ));
        }
        if let Some(bad) = self.layers.iter().find(|&&l| l >= n_layer) {
            return Err(ModelError::Config(format!(
                "MoE layer {bad} does not exist (model has {n_layer} blocks)"
            )));
        }
        let mut sorted = self.layers.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.layers.len() {
            return Err(ModelError::Config("MoE layers listed twice".into()));
        }
        if let Some(cf) = self.capacity_factor
            && !(cf.is_finite() && cf > 0.0)
        {
            return Err(ModelError::Config(format!(
                "capacity_factor must be positive, got {cf}"
            )));
        }
        Ok(())
    }

    /// Whether block `layer` is an MoE block.
    pub fn is_moe_layer(&self, layer: usize) -> bool {
        self.layers.contains(&layer)
    }
}

impl ModelConfig {
    /// The dense model of a preset.
    pub fn preset(name: &str) -> Result<Self> {
        Ok(Self {
            gpt2: Gpt2Config::preset(name)?,
            moe: None,
        })
    }

    /// Checks the GPT-2 dimensions and the MoE layout together.
    pub fn validate(&self) -> Result<()> {
        self.gpt2.validate()?;
        if let Some(moe) = &self.moe {
            moe.validate(self.gpt2.n_layer)?;
        }
        Ok(())
    }

    /// The MoE layout of block `layer`, if it is an MoE block.
    pub fn moe_for_layer(&self, layer: usize) -> Option<&MoeConfig> {
        self.moe.as_ref().filter(|m| m.is_moe_layer(layer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // MODEL-2
    #[test]
    fn model_2_gpt2_preset_has_published_dimensions() {
        let c = Gpt2Config::preset("gpt2").unwrap();
        assert_eq!(
            (
                c.vocab_size,
                c.n_positions,
                c.d_model,
                c.n_layer,
                c.n_head,
                c.d_ff
            ),
            (50257, 1024, 768, 12, 12, 3072)
        );
        assert_eq!(c.layer_norm_eps, 1e-5);
        for name in PRESETS {
            Gpt2Config::preset(name).unwrap().validate().unwrap();
        }
        assert!(Gpt2Config::preset("gpt3").is_err());
    }

    // MOE-1
    #[test]
    fn moe_1_default_layout_is_last_four_blocks_top1_dropless() {
        let m = MoeConfig::default_for(12);
        assert_eq!(m.layers, vec![8, 9, 10, 11]);
        assert_eq!((m.n_experts, m.top_k, m.capacity_factor), (8, 1, None));
        m.validate(12).unwrap();
        assert!(m.validate(10).is_err());
        let bad_k = MoeConfig {
            top_k: 9,
            ..m.clone()
        };
        assert!(bad_k.validate(12).is_err());
    }

    // MODEL-1
    #[test]
    fn model_1_config_rejects_unknown_keys_and_bad_heads() {
        let json = r#"{"gpt2":{"vocab_size":8,"n_positions":4,"d_model":6,"n_layer":1,
            "n_head":4,"d_ff":24,"layer_norm_eps":1e-5},"moe":null,"extra":1}"#;
        assert!(serde_json::from_str::<ModelConfig>(json).is_err());
        let mut c = Gpt2Config::preset("micro").unwrap();
        c.n_head = 5;
        assert!(c.validate().is_err());
    }

    // MOE-16: a group alignment of 0 is rejected; 1 and more are accepted.
    #[test]
    fn moe_16_group_alignment_must_be_positive() {
        let mut cfg = MoeConfig::default_for(4);
        cfg.group_alignment = Some(0);
        let err = cfg.validate(4).unwrap_err().to_string();
        assert!(err.contains("group_alignment"), "{err}");
        for ok in [None, Some(1), Some(128)] {
            cfg.group_alignment = ok;
            assert!(cfg.validate(4).is_ok());
        }
    }
}
