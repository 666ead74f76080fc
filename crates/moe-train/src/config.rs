//! Run configs (`configs/runs/*.toml`): model, data mixing, optimisation,
//! router losses and noise, eval, logging, checkpoints, collapse detection
//! (TRAIN-1). Our own serde structs with `deny_unknown_fields`.

use std::path::{Path, PathBuf};

use moe_model::{LbScope, ModelConfig, MoeConfig, Precision};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// A whole run config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Name and seed.
    pub run: RunSection,
    /// The model and its initialisation.
    pub model: ModelSection,
    /// How batches are drawn.
    #[serde(default)]
    pub data: DataSection,
    /// Optimisation.
    pub train: TrainSection,
    /// Evaluation.
    #[serde(default)]
    pub eval: EvalSection,
    /// Logging.
    #[serde(default)]
    pub log: LogSection,
    /// Checkpoints.
    #[serde(default)]
    pub checkpoint: CheckpointSection,
    /// Collapse detection (MoE only).
    #[serde(default)]
    pub collapse: CollapseSection,
}

/// `[run]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Short name (`dense`, `moe`, `moe-no-lb` …).
    pub name: String,
    /// Seed of initialisation, batch sampling and router noise.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// What this run is for, in one line (shown in reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

/// Where the weights start.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// Fresh GPT-2 initialisation of `preset`.
    Scratch,
    /// Pretrained GPT-2 weights from `hf_dir` or the Hub (`openai-community/gpt2`).
    Pretrained,
}

/// `[model]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// `scratch` or `pretrained`.
    pub init: Init,
    /// Preset name (`gpt2`, `tiny`, `micro`) for `scratch`, and the shape check for `pretrained`.
    pub preset: String,
    /// HF model directory for `pretrained` (default: the Hub's `openai-community/gpt2`).
    #[serde(default)]
    pub hf_dir: Option<PathBuf>,
    /// The MoE layout; absent for the dense model.
    #[serde(default)]
    pub moe: Option<MoeConfig>,
    /// Std of the noise added to upcycled expert weights (0 = exact copies).
    #[serde(default)]
    pub upcycle_noise: f64,
    /// Overrides of the preset's dimensions (scratch models only).
    #[serde(default)]
    pub dims: Option<DimsOverride>,
    /// Embed only the GPT-2 ids that occur in the data (scratch models only; `vocab.json`).
    #[serde(default)]
    pub compact_vocab: bool,
}

/// `[model.dims]`: a custom size for a model trained from scratch.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DimsOverride {
    /// Residual width.
    pub d_model: Option<usize>,
    /// Blocks.
    pub n_layer: Option<usize>,
    /// Heads.
    pub n_head: Option<usize>,
    /// Learned positions.
    pub n_positions: Option<usize>,
}

/// How micro-batches mix domains.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Mixing {
    /// Every sequence of a micro-batch drawn from all domains' blocks (the original study).
    #[default]
    Mixed,
    /// Each micro-batch from one domain, domains in turn.
    PerDomain,
}

/// `[data]`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Domain mixing of micro-batches.
    #[serde(default)]
    pub mixing: Mixing,
}

/// `[train]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Optimizer steps.
    pub steps: u64,
    /// Sequences per micro-batch.
    pub micro_batch: usize,
    /// Micro-batches per optimizer step.
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Fraction of steps of linear warmup.
    #[serde(default = "default_warmup")]
    pub warmup_frac: f64,
    /// Learning rate at the end of the cosine, as a fraction of `lr`.
    #[serde(default)]
    pub min_lr_frac: f64,
    /// AdamW weight decay.
    #[serde(default = "default_wd")]
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 = off).
    #[serde(default = "one_f")]
    pub grad_clip: f64,
    /// Load-balancing loss coefficient.
    #[serde(default)]
    pub lb_coef: f64,
    /// z-loss coefficient.
    #[serde(default)]
    pub z_coef: f64,
    /// Over what the LB statistics are taken.
    #[serde(default)]
    pub lb_scope: LbScope,
    /// Router logit noise std at step 0.
    #[serde(default)]
    pub router_noise_std: f64,
    /// Fraction of steps over which the noise anneals linearly to 0.
    #[serde(default = "default_anneal")]
    pub router_noise_anneal_frac: f64,
    /// `"f32"` (default) or `"bf16"`: mixed precision, bf16 matmuls and
    /// activations with f32 master weights, router and losses (MODEL-19).
    /// Training and evaluation both run in it. Written to a run's config
    /// only when not the default, so f32 runs' configs read as before.
    #[serde(default, skip_serializing_if = "is_f32")]
    pub precision: Precision,
    /// Auxiliary-loss-free load balancing (TRAIN-26, MOE-15): the step γ of
    /// each MoE block's per-expert selection bias, updated after every
    /// optimizer step by `b_i ← b_i + γ · sign(mean load − load_i)` over
    /// the step's whole batch (Wang et al. 2024; DeepSeek-V3 and
    /// torchtitan use 1e-3). 0 (the default) = no bias; independent of
    /// `lb_coef`, which keeps its meaning. Written to a run's config only
    /// when set, so other runs' configs read as before.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bias_rate: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn is_f32(p: &Precision) -> bool {
    *p == Precision::F32
}

/// `[eval]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Evaluate every this many steps (and at the end).
    pub every: u64,
    /// Val blocks per domain per eval (0 = all).
    #[serde(default)]
    pub max_blocks: usize,
}

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// Write a train event (loss, lr, routing statistics) every this many steps.
    pub every: u64,
}

/// `[checkpoint]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSection {
    /// Save every this many steps (and at the end).
    pub every: u64,
    /// Keep this many most recent step checkpoints (0 = all).
    #[serde(default = "default_keep")]
    pub keep: usize,
}

/// `[collapse]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CollapseSection {
    /// Stop when one same expert's share of a layer's tokens exceeds this
    /// (in (0, 1]) …
    pub threshold: f64,
    /// … at this many consecutive routing checks (0 = never stop).
    pub checks: u32,
}

fn default_seed() -> u64 {
    42
}
fn one() -> usize {
    1
}
fn one_f() -> f64 {
    1.0
}
fn default_warmup() -> f64 {
    0.1
}
fn default_wd() -> f64 {
    0.01
}
fn default_anneal() -> f64 {
    0.25
}
fn default_keep() -> usize {
    2
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            every: 200,
            max_blocks: 0,
        }
    }
}
impl Default for LogSection {
    fn default() -> Self {
        Self { every: 10 }
    }
}
impl Default for CheckpointSection {
    fn default() -> Self {
        Self {
            every: 500,
            keep: 2,
        }
    }
}
impl Default for CollapseSection {
    fn default() -> Self {
        Self {
            threshold: 0.6,
            checks: 3,
        }
    }
}

impl RunConfig {
    /// Reads and validates a run config.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses and validates; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let bad = |reason: String| TrainError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let config: RunConfig = toml::from_str(text).map_err(|e| {
            bad(e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "))
        })?;
        config.validate().map_err(bad)?;
        Ok(config)
    }

    /// The model shape: the preset plus the MoE layout.
    pub fn model_config(&self) -> std::result::Result<ModelConfig, String> {
        let mut gpt2 =
            moe_model::Gpt2Config::preset(&self.model.preset).map_err(|e| e.to_string())?;
        if let Some(d) = &self.model.dims {
            gpt2.d_model = d.d_model.unwrap_or(gpt2.d_model);
            gpt2.d_ff = 4 * gpt2.d_model;
            gpt2.n_layer = d.n_layer.unwrap_or(gpt2.n_layer);
            gpt2.n_head = d.n_head.unwrap_or(gpt2.n_head);
            gpt2.n_positions = d.n_positions.unwrap_or(gpt2.n_positions);
        }
        Ok(ModelConfig {
            gpt2,
            moe: self.model.moe.clone(),
        })
    }

    /// Tokens per optimizer step for `block_size`.
    pub fn tokens_per_step(&self, block_size: usize) -> u64 {
        (self.train.micro_batch * self.train.grad_accum * block_size) as u64
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let t = &self.train;
        let positive = [
            ("train.steps", t.steps),
            ("eval.every", self.eval.every),
            ("log.every", self.log.every),
            ("checkpoint.every", self.checkpoint.every),
        ];
        if let Some((k, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{k} must be positive"));
        }
        if t.micro_batch == 0 || t.grad_accum == 0 {
            return Err("train.micro_batch and train.grad_accum must be positive".into());
        }
        if !(t.lr > 0.0 && t.lr.is_finite()) {
            return Err(format!("train.lr = {} must be positive", t.lr));
        }
        for (k, v) in [
            ("warmup_frac", t.warmup_frac),
            ("min_lr_frac", t.min_lr_frac),
            ("router_noise_anneal_frac", t.router_noise_anneal_frac),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("train.{k} = {v} must be in [0, 1]"));
            }
        }
        for (k, v) in [
            ("lb_coef", t.lb_coef),
            ("z_coef", t.z_coef),
            ("router_noise_std", t.router_noise_std),
            ("grad_clip", t.grad_clip),
            ("weight_decay", t.weight_decay),
            ("bias_rate", t.bias_rate),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("train.{k} = {v} must be ≥ 0"));
            }
        }
        let noise = self.model.upcycle_noise;
        if !(noise >= 0.0 && noise.is_finite()) {
            return Err(format!("model.upcycle_noise = {noise} must be ≥ 0"));
        }
        let c = &self.collapse;
        if !(c.threshold > 0.0 && c.threshold <= 1.0) {
            return Err(format!(
                "collapse.threshold = {} must be in (0, 1]",
                c.threshold
            ));
        }
        let model = self.model_config()?;
        model.gpt2.validate().map_err(|e| e.to_string())?;
        if let Some(moe) = &model.moe {
            moe.validate(model.gpt2.n_layer)
                .map_err(|e| format!("model.moe: {e}"))?;
        } else if t.lb_coef > 0.0 || t.z_coef > 0.0 || t.router_noise_std > 0.0 || t.bias_rate > 0.0
        {
            return Err(
                "router settings (lb_coef, z_coef, router_noise_std, bias_rate) need [model.moe]"
                    .into(),
            );
        }
        if self.model.init == Init::Scratch && self.model.hf_dir.is_some() {
            return Err("model.hf_dir is only for init = \"pretrained\"".into());
        }
        if self.model.init == Init::Pretrained
            && (self.model.dims.is_some() || self.model.compact_vocab)
        {
            return Err(
                "model.dims and model.compact_vocab are only for init = \"scratch\"".into(),
            );
        }
        Ok(())
    }
}
