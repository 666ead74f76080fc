//! `moe model …`: inspect a GPT-2 / MoE model and dump its logits (MODEL-11).
//!
//! `--model` is an HF model directory (`config.json` + `model.safetensors`,
//! ours or `transformers`'), `hub:gpt2` (GPT-2 small at the pinned revision,
//! from the HF cache or downloaded), or a preset name (`gpt2`, `tiny`,
//! `micro`: random GPT-2 initialisation from `--seed`). MoE flags turn the
//! dense model into an upcycled MoE model.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::{Int, Tensor, TensorData};
use moe_model::{
    CpuBackend, ForwardOptions, Gpt2, HostLayerRouting, ModelConfig, ModelSource, MoeConfig,
    PRESETS, ParamCounts, load_model_dir,
};

/// Model subcommands.
#[derive(clap::Subcommand)]
pub enum ModelCommand {
    /// Print total and active parameters per component.
    Info {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Run the model on a token list; write float32 logits [n_tokens, vocab] as .npy.
    Logits {
        #[command(flatten)]
        model: ModelArgs,
        /// Comma-separated token ids, e.g. 464,2068,7586.
        #[arg(long)]
        tokens: String,
        /// Output .npy file.
        #[arg(long)]
        out: PathBuf,
        /// Also write the per-layer routing records as JSON here.
        #[arg(long)]
        routing: Option<PathBuf>,
    },
}

/// Which model, and how to make it MoE.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// HF model directory, `hub:gpt2`, or a preset (gpt2, tiny, micro).
    #[arg(long)]
    model: String,
    /// Blocks to turn into MoE layers, e.g. 8,9,10,11 (default: the last four
    /// when any MoE flag is given).
    #[arg(long, value_delimiter = ',')]
    moe_layers: Option<Vec<usize>>,
    /// Experts per MoE layer [default: 8].
    #[arg(long)]
    n_experts: Option<usize>,
    /// Experts per token [default: 1].
    #[arg(long)]
    top_k: Option<usize>,
    /// Expert capacity factor (default: dropless).
    #[arg(long)]
    capacity_factor: Option<f64>,
    /// Std of the noise added to upcycled experts.
    #[arg(long, default_value_t = 0.0)]
    upcycle_noise: f64,
    /// Seed for preset initialisation, routers and upcycling noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl ModelArgs {
    fn wants_moe(&self) -> bool {
        self.moe_layers.is_some()
            || self.n_experts.is_some()
            || self.top_k.is_some()
            || self.capacity_factor.is_some()
    }

    /// The MoE layout the flags ask for, if any.
    fn moe_config(&self, n_layer: usize) -> Option<MoeConfig> {
        self.wants_moe().then(|| {
            let default = MoeConfig::default_for(n_layer);
            MoeConfig {
                layers: self.moe_layers.clone().unwrap_or(default.layers),
                n_experts: self.n_experts.unwrap_or(default.n_experts),
                top_k: self.top_k.unwrap_or(default.top_k),
                capacity_factor: self.capacity_factor,
                group_alignment: None,
            }
        })
    }

    /// The config after applying the MoE flags (no weights touched).
    fn config(&self) -> Result<ModelConfig> {
        let mut config = self.source()?.config()?;
        self.apply_moe(&mut config)?;
        Ok(config)
    }

    fn apply_moe(&self, config: &mut ModelConfig) -> Result<()> {
        if let Some(moe) = self.moe_config(config.gpt2.n_layer) {
            if config.moe.is_some() {
                bail!(
                    "{}: the model already has MoE layers; drop the MoE flags",
                    self.model
                );
            }
            moe.validate(config.gpt2.n_layer)?;
            config.moe = Some(moe);
        }
        Ok(())
    }

    fn source(&self) -> Result<ModelSource> {
        if self.model == "hub:gpt2" {
            return Ok(ModelSource::HubGpt2);
        }
        let path = Path::new(&self.model);
        if path.is_dir() {
            return Ok(ModelSource::Dir(path.to_path_buf()));
        }
        if PRESETS.contains(&self.model.as_str()) {
            return Ok(ModelSource::Scratch(ModelConfig::preset(&self.model)?));
        }
        bail!(
            "--model {:?} is neither a directory, hub:gpt2, nor a preset ({})",
            self.model,
            PRESETS.join(", ")
        )
    }

    /// Loads (or initialises) the model and upcycles it as the flags ask.
    fn load(&self) -> Result<(ModelConfig, Gpt2<CpuBackend>)> {
        let device = Default::default();
        let source = self.source()?;
        let (mut config, model) = source
            .load::<CpuBackend>(self.seed, &device)
            .with_context(|| format!("loading {}", self.model))?;
        let had_moe = config.moe.is_some();
        self.apply_moe(&mut config)?;
        let model = match config.moe.as_ref().filter(|_| !had_moe) {
            Some(moe) => model.upcycle(moe, self.upcycle_noise, self.seed),
            None => model,
        };
        Ok((config, model))
    }
}

/// Runs a model subcommand.
pub fn run(cmd: ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::Info { model } => info(&model),
        ModelCommand::Logits {
            model,
            tokens,
            out,
            routing,
        } => logits(&model, &tokens, &out, routing.as_deref()),
    }
}

fn info(args: &ModelArgs) -> Result<()> {
    let config = args.config()?;
    let c = ParamCounts::of(&config);
    let g = &config.gpt2;
    println!(
        "GPT-2: {} layers, {} heads, d_model {}, d_ff {}, context {}, vocab {}",
        g.n_layer, g.n_head, g.d_model, g.d_ff, g.n_positions, g.vocab_size
    );
    if let Some(m) = &config.moe {
        println!(
            "MoE: layers {:?}, {} experts, top-{}, capacity {}",
            m.layers,
            m.n_experts,
            m.top_k,
            m.capacity_factor
                .map_or("dropless".into(), |c| c.to_string())
        );
    }
    let rows = [
        (
            "token embedding (tied LM head)",
            c.token_embedding,
            c.token_embedding,
        ),
        (
            "position embedding",
            c.position_embedding,
            c.position_embedding,
        ),
        ("attention", c.attention, c.attention),
        ("layer norms", c.layer_norms, c.layer_norms),
        ("dense MLPs", c.dense_mlp, c.dense_mlp),
        ("routers", c.routers, c.routers),
        ("experts", c.experts, c.experts_active),
        ("total", c.total(), c.active()),
    ];
    println!("{:<32} {:>14} {:>14}", "component", "total", "active");
    for (name, total, active) in rows {
        println!("{name:<32} {total:>14} {active:>14}");
    }
    // A checkpoint's balancing bias (MOE-15) is model state: show it.
    if let ModelSource::Dir(dir) = args.source()? {
        let (_, model) = load_model_dir::<CpuBackend>(&dir, &Default::default())
            .with_context(|| format!("loading {}", dir.display()))?;
        for (layer, bias) in model.expert_biases() {
            let min = bias.iter().copied().fold(f32::INFINITY, f32::min);
            let max = bias.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let values: Vec<String> = bias.iter().map(|b| format!("{b:+.4}")).collect();
            println!(
                "balancing bias, block {layer}: min {min:+.4}, max {max:+.4}; per expert [{}]",
                values.join(", ")
            );
        }
    }
    Ok(())
}

/// Parses `a,b,c` into token ids and checks them against the model.
fn parse_tokens(text: &str, vocab_size: usize, n_positions: usize) -> Result<Vec<i64>> {
    let ids = text
        .split(',')
        .map(|s| {
            let s = s.trim();
            s.parse::<u32>()
                .with_context(|| format!("token {s:?} is not a token id"))
        })
        .collect::<Result<Vec<_>>>()?;
    if ids.is_empty() || ids.len() > n_positions {
        bail!(
            "{} tokens given; the model takes 1 to {n_positions}",
            ids.len()
        );
    }
    if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab_size) {
        bail!("token id {bad} is out of range (vocab size {vocab_size})");
    }
    Ok(ids.into_iter().map(i64::from).collect())
}

fn logits(args: &ModelArgs, tokens: &str, out: &Path, routing: Option<&Path>) -> Result<()> {
    // Check the input against the config before any model work.
    let config = args.config()?;
    let ids = parse_tokens(tokens, config.gpt2.vocab_size, config.gpt2.n_positions)?;
    let (config, model) = args.load()?;
    let n = ids.len();
    let input =
        Tensor::<CpuBackend, 2, Int>::from_data(TensorData::new(ids, [1, n]), &Default::default());
    let output = model.forward(input, &ForwardOptions::default());
    let vocab = config.gpt2.vocab_size;
    let values: Vec<f32> = output
        .logits
        .reshape([n, vocab])
        .into_data()
        .iter::<f32>()
        .collect();
    moe_model::weights::write_atomic(out, &npy_f32(&values, [n, vocab]))?;
    println!("wrote {} ({n} × {vocab} float32)", out.display());
    if let Some(path) = routing {
        let records: Vec<HostLayerRouting> = output.routing.iter().map(|r| r.to_host()).collect();
        moe_model::weights::write_atomic(path, &serde_json::to_vec_pretty(&records)?)?;
        println!("wrote {} ({} MoE layers)", path.display(), records.len());
    }
    Ok(())
}

/// A float32, C-order `.npy` file (format version 1.0) of `shape`.
fn npy_f32(values: &[f32], shape: [usize; 2]) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        shape[0], shape[1]
    );
    // magic (6) + version (2) + header length (2) + dict + padding + '\n' ≡ 0 mod 64
    let unpadded = 10 + dict.len() + 1;
    let header_len = dict.len() + 1 + (64 - unpadded % 64) % 64;
    let mut bytes = Vec::with_capacity(10 + header_len + 4 * values.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header_len as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes.resize(10 + header_len - 1, b' ');
    bytes.push(b'\n');
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(model: &str) -> ModelArgs {
        ModelArgs {
            model: model.into(),
            moe_layers: None,
            n_experts: None,
            top_k: None,
            capacity_factor: None,
            upcycle_noise: 0.0,
            seed: 0,
        }
    }

    // MODEL-11
    #[test]
    fn model_11_token_lists_are_checked_before_model_work() {
        assert_eq!(parse_tokens("1, 2,3", 10, 8).unwrap(), vec![1, 2, 3]);
        assert!(parse_tokens("1,x", 10, 8).is_err());
        assert!(parse_tokens("1,,2", 10, 8).is_err());
        assert!(parse_tokens("10", 10, 8).is_err());
        assert!(parse_tokens("-1", 10, 8).is_err());
        assert!(parse_tokens("1,1,1", 10, 2).is_err());
        assert!(args("no-such-model").config().is_err());
    }

    // MODEL-11
    #[test]
    fn model_11_logits_npy_and_routing_json_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let (out, routing) = (dir.path().join("l.npy"), dir.path().join("r.json"));
        let mut a = args("micro");
        a.n_experts = Some(4);
        a.top_k = Some(2);
        logits(&a, "3,1,4,1,5", &out, Some(&routing)).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(
            header.contains("'shape': (5, 96)") && header.ends_with('\n'),
            "{header}"
        );
        assert_eq!(bytes.len(), 10 + header_len + 4 * 5 * 96);
        let records: Vec<HostLayerRouting> =
            serde_json::from_slice(&std::fs::read(&routing).unwrap()).unwrap();
        assert_eq!(records.len(), 2);
        assert!(
            records
                .iter()
                .all(|r| r.expert_idx.len() == 5 && r.expert_idx[0].len() == 2)
        );
        let left = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(left, 2, "no temporary files left");
        // MoE flags on an MoE model are refused.
        let mut twice = a;
        twice.model = "micro".into();
        let mut config = twice.config().unwrap();
        assert!(twice.apply_moe(&mut config).is_err());
    }

    // MODEL-11
    #[test]
    fn model_11_info_counts_active_parameters() {
        let mut a = args("gpt2");
        a.moe_layers = Some(vec![8, 9, 10, 11]);
        let c = ParamCounts::of(&a.config().unwrap());
        assert_eq!(c.total(), 256_692_480);
        assert_eq!(c.active(), 124_464_384);
        info(&a).unwrap();
    }
}
