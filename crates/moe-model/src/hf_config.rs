//! The HF `config.json` of a GPT-2 model directory, read and written.
//!
//! Reading accepts any `transformers` GPT-2 config and rejects the options that
//! would change what the model computes (MODEL-4). Writing produces a file
//! `transformers` loads unchanged, plus our `moe` key when the model has MoE
//! layers (ignored by `transformers`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{Gpt2Config, ModelConfig, MoeConfig};
use crate::error::{ModelError, Result};

/// The keys of an HF GPT-2 `config.json` that matter to us. Unknown keys are
/// allowed: HF configs carry many (`task_specific_params`, dropout rates, …).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HfGpt2Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Length of the position table.
    pub n_positions: usize,
    /// Residual width.
    pub n_embd: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// MLP width, `null` for `4 * n_embd`.
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// Must be `gelu_new` (tanh GELU) when present.
    #[serde(default)]
    pub activation_function: Option<String>,
    /// Must be true when present.
    #[serde(default)]
    pub scale_attn_weights: Option<bool>,
    /// Must be false when present.
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: Option<bool>,
    /// Must be true when present (we always tie the LM head to `wte`).
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    /// Our extension: the MoE layout of a checkpoint with MoE layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moe: Option<MoeConfig>,
    /// Everything else, kept so that nothing is lost.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

fn default_eps() -> f64 {
    1e-5
}

impl HfGpt2Config {
    /// Maps the HF keys to our config, rejecting what we do not compute.
    pub fn to_model_config(&self) -> Result<ModelConfig> {
        if let Some(act) = &self.activation_function
            && act != "gelu_new"
        {
            return Err(ModelError::Config(format!(
                "activation_function {act:?} is not supported (only gelu_new)"
            )));
        }
        let unsupported = [
            ("scale_attn_weights", self.scale_attn_weights == Some(false)),
            (
                "scale_attn_by_inverse_layer_idx",
                self.scale_attn_by_inverse_layer_idx == Some(true),
            ),
            (
                "tie_word_embeddings",
                self.tie_word_embeddings == Some(false),
            ),
        ];
        if let Some((key, _)) = unsupported.iter().find(|(_, bad)| *bad) {
            return Err(ModelError::Config(format!("{key}: value not supported")));
        }
        let config = ModelConfig {
            gpt2: Gpt2Config {
                vocab_size: self.vocab_size,
                n_positions: self.n_positions,
                d_model: self.n_embd,
                n_layer: self.n_layer,
                n_head: self.n_head,
                d_ff: self.n_inner.unwrap_or(4 * self.n_embd),
                layer_norm_eps: self.layer_norm_epsilon,
            },
            moe: self.moe.clone(),
        };
        config.validate()?;
        Ok(config)
    }

    /// The HF config of one of our models (what `transformers` needs to load it).
    pub fn from_model_config(config: &ModelConfig) -> Self {
        let g = &config.gpt2;
        let mut rest = serde_json::Map::new();
        rest.insert("model_type".into(), "gpt2".into());
        rest.insert(
            "architectures".into(),
            serde_json::json!(["GPT2LMHeadModel"]),
        );
        rest.insert("bos_token_id".into(), 50256.into());
        rest.insert("eos_token_id".into(), 50256.into());
        rest.insert("n_ctx".into(), g.n_positions.into());
        Self {
            vocab_size: g.vocab_size,
            n_positions: g.n_positions,
            n_embd: g.d_model,
            n_layer: g.n_layer,
            n_head: g.n_head,
            n_inner: Some(g.d_ff),
            layer_norm_epsilon: g.layer_norm_eps,
            activation_function: Some("gelu_new".into()),
            scale_attn_weights: Some(true),
            scale_attn_by_inverse_layer_idx: Some(false),
            tie_word_embeddings: Some(true),
            moe: config.moe.clone(),
            rest,
        }
    }
}

/// Reads and validates `config.json` at `path`.
pub fn read_hf_config(path: &Path) -> Result<ModelConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    let hf: HfGpt2Config = serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    hf.to_model_config()
}

#[cfg(test)]
mod tests {
    use super::*;

    // MODEL-4
    #[test]
    fn model_4_hf_config_round_trips_and_rejects_other_activations() {
        let mut config = ModelConfig::preset("micro").unwrap();
        config.moe = Some(MoeConfig::default_for(2));
        let hf = HfGpt2Config::from_model_config(&config);
        let text = serde_json::to_string(&hf).unwrap();
        let back: HfGpt2Config = serde_json::from_str(&text).unwrap();
        assert_eq!(back.to_model_config().unwrap(), config);
        let mut relu = back.clone();
        relu.activation_function = Some("relu".into());
        assert!(relu.to_model_config().is_err());
    }

    // MODEL-4
    #[test]
    fn model_4_published_gpt2_config_parses() {
        let text = r#"{"activation_function":"gelu_new","architectures":["GPT2LMHeadModel"],
          "attn_pdrop":0.1,"bos_token_id":50256,"embd_pdrop":0.1,"eos_token_id":50256,
          "initializer_range":0.02,"layer_norm_epsilon":1e-05,"model_type":"gpt2","n_ctx":1024,
          "n_embd":768,"n_head":12,"n_layer":12,"n_positions":1024,"resid_pdrop":0.1,
          "summary_activation":null,"summary_first_dropout":0.1,"summary_proj_to_labels":true,
          "summary_type":"cls_index","summary_use_proj":true,
          "task_specific_params":{"text-generation":{"do_sample":true,"max_length":50}},
          "vocab_size":50257}"#;
        let hf: HfGpt2Config = serde_json::from_str(text).unwrap();
        let config = hf.to_model_config().unwrap();
        assert_eq!(config, ModelConfig::preset("gpt2").unwrap());
    }
}
