//! Safetensors weights with HF GPT-2 names: HF model directories in, our
//! checkpoints out and back in (MODEL-4, MODEL-6, MOE-13).
//!
//! Names follow `GPT2LMHeadModel`'s state dict without the `transformer.`
//! prefix (accepted on load): `wte.weight`, `wpe.weight`, `h.{i}.ln_1.weight`,
//! `h.{i}.attn.c_attn.weight`, …, `ln_f.bias`. HF's Conv1D stores weights
//! `[in, out]`, Burn's `Linear` too: they load untransposed. LayerNorm
//! `weight`/`bias` are Burn's `gamma`/`beta`. MoE blocks store
//! `h.{i}.mlp.router.weight` `[d_model, n_experts]` and
//! `h.{i}.mlp.experts.{e}.{c_fc,c_proj}.{weight,bias}`, and a router that
//! balances with a bias (MOE-15) `h.{i}.mlp.router.expert_bias`
//! `[n_experts]` (optional on load). The published files'
//! `h.*.attn.bias` / `h.*.attn.masked_bias` mask buffers are ignored; a
//! `lm_head.weight` is accepted only when equal to `wte.weight` (tied head).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::{Param, ParamId};
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::hf_config::{HfGpt2Config, read_hf_config};
use crate::init;
use crate::model::{Attention, Block, FeedForward, Gpt2, Mlp};
use crate::moe::{MoeLayer, Router};
use crate::ops::LayerNorm;

/// Weights file name inside a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Config file name inside a model directory.
pub const CONFIG_FILE: &str = "config.json";

/// Tensors read from a safetensors file, as f32, by name (prefix stripped).
struct WeightFile {
    path: PathBuf,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

/// `h.{i}.attn.bias` and `h.{i}.attn.masked_bias`: mask buffers, not parameters.
fn is_ignored(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    matches!(
        parts.as_slice(),
        ["h", i, "attn", "bias" | "masked_bias"] if i.parse::<usize>().is_ok()
    )
}

impl WeightFile {
    fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Safetensors {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut tensors = HashMap::new();
        for (raw_name, view) in st.tensors() {
            let name = raw_name.strip_prefix("transformer.").unwrap_or(&raw_name);
            if is_ignored(name) {
                continue;
            }
            let dtype = match view.dtype() {
                Dtype::F32 => DType::F32,
                Dtype::F16 => DType::F16,
                Dtype::BF16 => DType::BF16,
                other => {
                    return Err(ModelError::UnsupportedDtype {
                        path: path.to_path_buf(),
                        name: name.to_string(),
                        dtype: format!("{other:?}"),
                    });
                }
            };
            let shape = view.shape().to_vec();
            let data = TensorData::from_bytes_vec(view.data().to_vec(), shape.clone(), dtype);
            let values: Vec<f32> = data.iter::<f32>().collect();
            tensors.insert(name.to_string(), (shape, values));
        }
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
        })
    }

    fn take_raw(&mut self, name: &str, expected: &[usize]) -> Result<Vec<f32>> {
        let (shape, values) =
            self.tensors
                .remove(name)
                .ok_or_else(|| ModelError::MissingTensor {
                    path: self.path.clone(),
                    name: name.to_string(),
                })?;
        if shape != expected {
            return Err(ModelError::ShapeMismatch {
                path: self.path.clone(),
                name: name.to_string(),
                expected: expected.to_vec(),
                actual: shape,
            });
        }
        Ok(values)
    }

    fn take<B: Backend, const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        let values = self.take_raw(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    fn linear<B: Backend>(
        &mut self,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        device: &B::Device,
    ) -> Result<Linear<B>> {
        let w = self.take(&format!("{prefix}.weight"), [d_in, d_out], device)?;
        let b = self.take(&format!("{prefix}.bias"), [d_out], device)?;
        Ok(init::linear_from(w, Some(b)))
    }

    fn layer_norm<B: Backend>(
        &mut self,
        prefix: &str,
        d: usize,
        eps: f64,
        device: &B::Device,
    ) -> Result<LayerNorm<B>> {
        let g = self.take(&format!("{prefix}.weight"), [d], device)?;
        let b = self.take(&format!("{prefix}.bias"), [d], device)?;
        Ok(init::layer_norm_from(g, b, eps))
    }

    fn mlp<B: Backend>(
        &mut self,
        prefix: &str,
        d_model: usize,
        d_ff: usize,
        device: &B::Device,
    ) -> Result<Mlp<B>> {
        Ok(Mlp {
            c_fc: self.linear(&format!("{prefix}.c_fc"), d_model, d_ff, device)?,
            c_proj: self.linear(&format!("{prefix}.c_proj"), d_ff, d_model, device)?,
        })
    }
}

/// Builds a model of `config` from the safetensors file at `path`.
pub fn load_safetensors<B: Backend>(
    path: &Path,
    config: &ModelConfig,
    device: &B::Device,
) -> Result<Gpt2<B>> {
    config.validate()?;
    let g = &config.gpt2;
    let (d, eps) = (g.d_model, g.layer_norm_eps);
    let mut w = WeightFile::read(path)?;
    let wte_values = w.take_raw("wte.weight", &[g.vocab_size, d])?;
    if let Some((_, head)) = w.tensors.remove("lm_head.weight")
        && head != wte_values
    {
        return Err(ModelError::Config(format!(
            "{}: lm_head.weight differs from wte.weight (untied heads are not supported)",
            path.display()
        )));
    }
    let wte = Tensor::from_data(TensorData::new(wte_values, [g.vocab_size, d]), device);
    let wpe = w.take("wpe.weight", [g.n_positions, d], device)?;
    let mut h = Vec::with_capacity(g.n_layer);
    for i in 0..g.n_layer {
        let p = format!("h.{i}");
        let mlp = match config.moe_for_layer(i) {
            Some(moe) => {
                let router_w = w.take(
                    &format!("{p}.mlp.router.weight"),
                    [d, moe.n_experts],
                    device,
                )?;
                let bias_name = format!("{p}.mlp.router.expert_bias");
                let expert_bias = match w.tensors.contains_key(&bias_name) {
                    true => Some(Param::initialized(
                        ParamId::new(),
                        w.take::<B, 1>(&bias_name, [moe.n_experts], device)?,
                    )),
                    false => None,
                };
                let router = Router {
                    linear: init::linear_from(router_w, None),
                    expert_bias,
                };
                let experts = (0..moe.n_experts)
                    .map(|e| w.mlp(&format!("{p}.mlp.experts.{e}"), d, g.d_ff, device))
                    .collect::<Result<Vec<_>>>()?;
                FeedForward::Moe(MoeLayer::from_parts(router, experts, moe, i))
            }
            None => FeedForward::Dense(w.mlp(&format!("{p}.mlp"), d, g.d_ff, device)?),
        };
        h.push(Block {
            ln_1: w.layer_norm(&format!("{p}.ln_1"), d, eps, device)?,
            attn: Attention {
                c_attn: w.linear(&format!("{p}.attn.c_attn"), d, 3 * d, device)?,
                c_proj: w.linear(&format!("{p}.attn.c_proj"), d, d, device)?,
                n_head: g.n_head,
            },
            ln_2: w.layer_norm(&format!("{p}.ln_2"), d, eps, device)?,
            mlp,
        });
    }
    let ln_f = w.layer_norm("ln_f", d, eps, device)?;
    let mut left: Vec<_> = w.tensors.keys().cloned().collect();
    left.sort();
    if let Some(name) = left.into_iter().next() {
        return Err(ModelError::UnexpectedTensor { path: w.path, name });
    }
    Ok(Gpt2 {
        wte: init::embedding_from(wte),
        wpe: init::embedding_from(wpe),
        h,
        ln_f,
    })
}

/// Loads an HF model directory (`config.json` + `model.safetensors`), ours or
/// `transformers`'. An MoE checkpoint's `config.json` carries a `moe` key.
pub fn load_model_dir<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(ModelConfig, Gpt2<B>)> {
    let config = read_hf_config(&dir.join(CONFIG_FILE))?;
    let model = load_safetensors(&dir.join(WEIGHTS_FILE), &config, device)?;
    Ok((config, model))
}

/// Every parameter with its HF-style name, in a fixed order.
pub fn named_tensors<B: Backend>(model: &Gpt2<B>) -> Vec<(String, TensorData)> {
    let mut out = vec![
        ("wte.weight".to_string(), model.wte.weight.val().into_data()),
        ("wpe.weight".to_string(), model.wpe.weight.val().into_data()),
    ];
    for (i, block) in model.h.iter().enumerate() {
        push_norm(&mut out, format!("h.{i}.ln_1"), &block.ln_1);
        push_linear(&mut out, format!("h.{i}.attn.c_attn"), &block.attn.c_attn);
        push_linear(&mut out, format!("h.{i}.attn.c_proj"), &block.attn.c_proj);
        push_norm(&mut out, format!("h.{i}.ln_2"), &block.ln_2);
        match &block.mlp {
            FeedForward::Dense(mlp) => push_mlp(&mut out, format!("h.{i}.mlp"), mlp),
            FeedForward::Moe(moe) => {
                push_linear(&mut out, format!("h.{i}.mlp.router"), &moe.router.linear);
                if let Some(b) = &moe.router.expert_bias {
                    out.push((format!("h.{i}.mlp.router.expert_bias"), b.val().into_data()));
                }
                for (e, mlp) in moe.experts.iter().enumerate() {
                    push_mlp(&mut out, format!("h.{i}.mlp.experts.{e}"), mlp);
                }
            }
        }
    }
    push_norm(&mut out, "ln_f".into(), &model.ln_f);
    out
}

type Named = Vec<(String, TensorData)>;

fn push_linear<B: Backend>(out: &mut Named, prefix: String, l: &Linear<B>) {
    out.push((format!("{prefix}.weight"), l.weight.val().into_data()));
    if let Some(b) = &l.bias {
        out.push((format!("{prefix}.bias"), b.val().into_data()));
    }
}

fn push_norm<B: Backend>(out: &mut Named, prefix: String, n: &LayerNorm<B>) {
    out.push((format!("{prefix}.weight"), n.gamma.val().into_data()));
    if let Some(b) = &n.beta {
        out.push((format!("{prefix}.bias"), b.val().into_data()));
    }
}

fn push_mlp<B: Backend>(out: &mut Named, prefix: String, mlp: &Mlp<B>) {
    push_linear(out, format!("{prefix}.c_fc"), &mlp.c_fc);
    push_linear(out, format!("{prefix}.c_proj"), &mlp.c_proj);
}

/// Writes the model's weights as f32 safetensors at `path`, atomically.
pub fn save_safetensors<B: Backend>(model: &Gpt2<B>, path: &Path) -> Result<()> {
    let mut views = Vec::new();
    for (name, data) in named_tensors(model) {
        let shape = data.shape.to_vec();
        let values =
            data.convert::<f32>()
                .into_vec::<f32>()
                .map_err(|e| ModelError::TensorRead {
                    name: name.clone(),
                    reason: format!("{e:?}"),
                })?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        views.push((name, shape, bytes));
    }
    let st_err = |reason: String| ModelError::Safetensors {
        path: path.to_path_buf(),
        reason,
    };
    let tensors = views
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| st_err(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    // `transformers` requires the "format" metadata to load a safetensors file.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes =
        safetensors::serialize(tensors, Some(metadata)).map_err(|e| st_err(e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Saves `config.json` and `model.safetensors` into `dir` (created if needed),
/// each written atomically (temporary file, then rename).
pub fn save_model_dir<B: Backend>(model: &Gpt2<B>, config: &ModelConfig, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let hf = HfGpt2Config::from_model_config(config);
    let path = dir.join(CONFIG_FILE);
    let json = serde_json::to_vec_pretty(&hf).map_err(|source| ModelError::Json {
        path: path.clone(),
        source,
    })?;
    write_atomic(&path, &json)?;
    save_safetensors(model, &dir.join(WEIGHTS_FILE))
}

/// Writes `bytes` to `path` through a temporary file in the same directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| ModelError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))
}
