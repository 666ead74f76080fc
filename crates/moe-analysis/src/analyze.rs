//! `moe analyze`: a run's checkpoint over the val shards, its step-0
//! baseline, the metrics history, the experts' weights against step 0,
//! `analysis.json` and figures (ANA-1, ANA-6, ANA-14, ANA-15, ANA-30).

use std::path::{Path, PathBuf};

use moe_data::prepared::PreparedData;
use moe_data::tokenizer::Gpt2Tokenizer;
use moe_model::{CpuBackend, Gpt2, ModelConfig, load_model_dir};
use moe_train::Blocks;
use moe_train::config::Init;
use moe_train::vocab::VocabMap;
use moe_train::{DataIdentity, RunConfig, RunDir};

use crate::code_types::{PythonLexer, TokenClass};
use crate::error::{AnalysisError, Result};
use crate::expert_weights::{expert_vectors, layer_weights};
use crate::keep_k::keep_k;
use crate::layer::{Context, Draws, analyze_layer};
use crate::masked::{MaskedLoss, ModelLoss};
use crate::removal::expert_removal;
use crate::route_val::collect;
use crate::schema::{
    Analysis, BaselineInfo, DriftPoint, ExpertWeights, LayerAnalysis, OptionsRecord, RunInfo,
    SCHEMA_VERSION, ValInfo,
};
use crate::token_routes::TokenRoutes;

/// The file `moe analyze` writes into its output directory.
pub const ANALYSIS_FILE: &str = "analysis.json";

/// Settings of `moe analyze`.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzeOptions {
    /// Checkpoint directory to analyse (default: `<run>/final`, else the last checkpoint).
    pub checkpoint: Option<PathBuf>,
    /// Permutations of the document-level test (≥ 1000 for reported p-values).
    pub permutations: usize,
    /// Draws of the random-router null.
    pub random_router_draws: usize,
    /// Draws of the token-identity control.
    pub control_draws: usize,
    /// Val blocks per domain (0 = all).
    pub max_blocks: usize,
    /// Blocks per forward pass.
    pub batch: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// The domain lexed as Python for token types.
    pub code_domain: String,
    /// Top tokens kept per expert.
    pub top_tokens: usize,
    /// Write SVG and PNG figures.
    pub figures: bool,
    /// Val blocks per domain of the masked evals of expert removal and
    /// keep-k (ANA-25, ANA-26), the first of those analysed; 0 skips both.
    pub causal_blocks: usize,
    /// Random draws per k of keep-k's random-experts line (ANA-26).
    pub keep_k_draws: usize,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        Self {
            checkpoint: None,
            permutations: 1000,
            random_router_draws: 200,
            control_draws: 10,
            max_blocks: 0,
            batch: 8,
            seed: 0,
            code_domain: "code".into(),
            top_tokens: 10,
            figures: true,
            causal_blocks: 4,
            keep_k_draws: 2,
        }
    }
}

/// Analyses the run in `dir` on the val shards of `data`, writing
/// `<out>/analysis.json` and `<out>/figures/`; returns what it wrote.
pub fn analyze(
    dir: &RunDir,
    data: &PreparedData,
    out: &Path,
    options: &AnalyzeOptions,
) -> Result<Analysis> {
    let config = dir.config()?;
    dir.check_data(&DataIdentity::of(data)?)?;
    let history = crate::history::history(&dir.events()?, &config.collapse);
    let (ckpt, ckpt_step) = resolve_checkpoint(dir, options, &config)?;
    let device = Default::default();
    let (model_config, model) = load_model_dir::<CpuBackend>(&ckpt, &device)?;
    check_architecture(&config, &model_config, &ckpt)?;
    let (val, vocab) = dir.val_blocks(data, options.max_blocks)?;
    let table = collect(&model, &val, options.batch, vocab.as_ref(), &device)?;
    let (baseline, baseline_table, reference) = if table.layers.is_empty() {
        (none("dense model: no router"), None, None)
    } else {
        baseline(dir, &config, &model_config, &val, options, vocab.as_ref())?
    };
    let tokenizer = Gpt2Tokenizer::embedded()
        .map_err(|e| AnalysisError::run(Path::new("gpt2 tokenizer"), e.to_string()))?;
    let docs = table.documents();
    let classes = code_classes(&table, &docs, &options.code_domain, &tokenizer)?;
    let ctx = Context {
        docs: &docs,
        code_classes: classes
            .as_ref()
            .map(|c| (options.code_domain.as_str(), c.as_slice())),
        tokenizer: &tokenizer,
    };
    let draws = Draws {
        seed: options.seed,
        permutations: options.permutations,
        random_router: options.random_router_draws,
        control: options.control_draws,
        top_tokens: options.top_tokens,
    };
    let mut layers: Vec<_> = (0..table.layers.len())
        .map(|slot| analyze_layer(&table, slot, &ctx, &draws, baseline_table.as_ref()))
        .collect();
    if options.causal_blocks > 0 && !layers.is_empty() {
        let blocks = causal_blocks(&val, options, vocab.as_ref())?;
        let mut eval = ModelLoss::new(&model, &blocks, options.batch, &device);
        for layer in &mut layers {
            causal_layer(layer, &mut eval, &table.domains, options);
        }
    }
    if let (Some(reference), Some(step)) = (reference, baseline.step) {
        let weights = expert_weights(dir, reference, step, &model, ckpt_step)?;
        for (layer, w) in layers.iter_mut().zip(weights) {
            layer.expert_weights = Some(w);
        }
    }
    let mut analysis = Analysis {
        schema_version: SCHEMA_VERSION,
        run: RunInfo::from_config(&config, dir.path(), ckpt.display().to_string(), ckpt_step),
        options: OptionsRecord {
            seed: options.seed,
            permutations: options.permutations,
            random_router_draws: options.random_router_draws,
            control_draws: options.control_draws,
            max_blocks: options.max_blocks,
            code_domain: options.code_domain.clone(),
        },
        val: ValInfo {
            block_size: val.block_size,
            domains: table.domains.clone(),
            tokens: table.tokens_per_domain(),
            documents: table.documents_per_domain(),
        },
        baseline,
        layers,
        history,
        saturation: crate::saturation::saturation(
            &dir.probe()?,
            ckpt_step,
            model_config.moe.as_ref().map_or(0, |m| m.n_experts),
        ),
        figures: Vec::new(),
    };
    std::fs::create_dir_all(out).map_err(|e| AnalysisError::io(out, e))?;
    if options.figures {
        analysis.figures = crate::figures::write_run_figures(&analysis, out)?;
    }
    write_json(&analysis, &out.join(ANALYSIS_FILE))?;
    Ok(analysis)
}

/// The first `causal_blocks` val blocks of each domain, in model ids.
fn causal_blocks(
    val: &Blocks,
    options: &AnalyzeOptions,
    vocab: Option<&VocabMap>,
) -> Result<Blocks> {
    let mut blocks = val.clone();
    for d in &mut blocks.domains {
        d.tokens.truncate(options.causal_blocks * val.block_size);
    }
    match vocab {
        Some(map) => blocks
            .to_model_ids(map)
            .map_err(|e| AnalysisError::run(Path::new("the run's vocabulary"), e.to_string())),
        None => Ok(blocks),
    }
}

/// Expert removal and keep-k of one MoE layer (ANA-25, ANA-26).
fn causal_layer(
    layer: &mut LayerAnalysis,
    eval: &mut impl MaskedLoss,
    domains: &[String],
    options: &AnalyzeOptions,
) {
    let shares = &layer.domain_expert_shares;
    layer.removal = Some(expert_removal(eval, layer.layer, layer.n_experts, shares));
    layer.keep_k = Some(keep_k(
        eval,
        layer.layer,
        shares,
        domains,
        options.keep_k_draws,
        options.seed,
    ));
}

/// Whether `cached` (an `analysis.json` read back) still describes `run`:
/// same run and seed, the model it would analyse now is at the same step,
/// and the history from the run's events is the same (compared after the
/// same JSON round trip the cached one went through).
pub fn is_current(cached: &Analysis, run: &RunDir) -> Result<bool> {
    let config = run.config()?;
    let history = crate::history::history(&run.events()?, &config.collapse);
    let text = serde_json::to_string(&history)
        .map_err(|e| AnalysisError::run(run.path(), e.to_string()))?;
    let history: crate::schema::History =
        serde_json::from_str(&text).map_err(|e| AnalysisError::run(run.path(), e.to_string()))?;
    let step = run.trained_model(config.train.steps).map(|(_, s)| s);
    Ok(cached.run.name == config.run.name
        && cached.run.seed == config.run.seed
        && cached.run.checkpoint_step == step
        && cached.history == history)
}

/// Writes `analysis` as pretty JSON.
pub fn write_json(analysis: &Analysis, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(analysis)
        .map_err(|e| AnalysisError::run(path, e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| AnalysisError::io(path, e))
}

/// Reads an `analysis.json`.
pub fn read_json(path: &Path) -> Result<Analysis> {
    let text = std::fs::read_to_string(path).map_err(|e| AnalysisError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| AnalysisError::run(path, e.to_string()))
}

/// The checkpoint to analyse and its step: the option, `final/`, or the last
/// step checkpoint (a run stopped early has no `final/`).
fn resolve_checkpoint(
    run: &RunDir,
    options: &AnalyzeOptions,
    config: &RunConfig,
) -> Result<(PathBuf, Option<u64>)> {
    if let Some(dir) = &options.checkpoint {
        return Ok((dir.clone(), RunDir::checkpoint_step(dir)));
    }
    match run.trained_model(config.train.steps) {
        Some((dir, step)) => Ok((dir, Some(step))),
        None => Err(AnalysisError::run(
            run.path(),
            "no final/ and no checkpoints/step-*/ to analyse",
        )),
    }
}

/// Refuses a checkpoint whose architecture is not the run's (ANA-22): the
/// blocks, width and heads, and the MoE layers, experts and top-k
/// (vocabularies may differ: a compact one is the run's too).
fn check_architecture(config: &RunConfig, found: &ModelConfig, ckpt: &Path) -> Result<()> {
    let expected = config
        .model_config()
        .map_err(|e| AnalysisError::run(ckpt, e))?;
    let shape = |c: &ModelConfig| {
        let g = &c.gpt2;
        let moe = c
            .moe
            .as_ref()
            .map(|m| (m.layers.clone(), m.n_experts, m.top_k));
        (g.n_layer, g.d_model, g.n_head, moe)
    };
    if shape(&expected) == shape(found) {
        return Ok(());
    }
    let describe = |c: &ModelConfig| {
        let g = &c.gpt2;
        let moe = match &c.moe {
            Some(m) => format!(
                "MoE blocks {:?}, {} experts, top-{}",
                m.layers, m.n_experts, m.top_k
            ),
            None => "dense".to_string(),
        };
        format!(
            "{} blocks of width {}, {} heads, {moe}",
            g.n_layer, g.d_model, g.n_head
        )
    };
    Err(AnalysisError::run(
        ckpt,
        format!(
            "not a checkpoint of run `{}`: it has {}, the run {}",
            config.run.name,
            describe(found),
            describe(&expected)
        ),
    ))
}

fn none(note: &str) -> BaselineInfo {
    BaselineInfo {
        source: "none".into(),
        step: None,
        note: Some(note.into()),
    }
}

/// Each MoE layer's experts, per block (ANA-30).
type ExpertVectors = Vec<(usize, Vec<Vec<f32>>)>;

/// The step-0 router's table (ANA-6): the run's saved initial model
/// (`initial/`, TRAIN-15); for a run without one, the initial model rebuilt
/// from the config when that needs no download, else the earliest kept
/// checkpoint, labelled with its step. Also that model's experts, the
/// reference of their drift (ANA-30).
fn baseline(
    run: &RunDir,
    config: &RunConfig,
    model_config: &ModelConfig,
    val: &Blocks,
    options: &AnalyzeOptions,
    vocab: Option<&VocabMap>,
) -> Result<(BaselineInfo, Option<TokenRoutes>, Option<ExpertVectors>)> {
    let device = Default::default();
    let local = config.model.init == Init::Scratch
        || config.model.hf_dir.as_ref().is_some_and(|d| d.exists());
    let (info, model): (BaselineInfo, Gpt2<CpuBackend>) = if run.has_initial() {
        let (_, model) = load_model_dir::<CpuBackend>(&run.initial_dir(), &device)?;
        let info = BaselineInfo {
            source: "the run's initial model".into(),
            step: Some(0),
            note: None,
        };
        (info, model)
    } else if local {
        let model = moe_train::initial_model::<CpuBackend>(config, model_config, &device)?;
        let info = BaselineInfo {
            source: "rebuilt initial model".into(),
            step: Some(0),
            note: None,
        };
        (info, model)
    } else if let Some(&step) = run.checkpoints().first() {
        let dir = run.checkpoint_dir(step);
        let (_, model) = load_model_dir::<CpuBackend>(&dir, &device)?;
        let info = BaselineInfo {
            source: format!("checkpoint {}", dir.display()),
            step: Some(step),
            note: Some(format!(
                "pretrained run without initial/ or a local hf_dir: the earliest kept checkpoint (step {step}) stands in for step 0"
            )),
        };
        (info, model)
    } else {
        return Ok((
            none("pretrained run without initial/, a local hf_dir or a checkpoint"),
            None,
            None,
        ));
    };
    let table = collect(&model, val, options.batch, vocab, &device)?;
    let experts = expert_vectors(&model)?;
    Ok((info, Some(table), Some(experts)))
}

/// Per MoE layer (block order), the experts' drift from `reference` (at
/// `reference_step`) over the run's kept checkpoints and at the analysed
/// `model`, and the analysed experts' similarity (ANA-30). Checkpoints are
/// loaded one at a time; the one at the analysed step is the model itself.
fn expert_weights(
    run: &RunDir,
    reference: ExpertVectors,
    reference_step: u64,
    model: &Gpt2<CpuBackend>,
    analysed_step: Option<u64>,
) -> Result<Vec<ExpertWeights>> {
    let device = Default::default();
    let analysed = expert_vectors(model)?;
    let mut points: Vec<Vec<DriftPoint>> = vec![Vec::new(); reference.len()];
    for step in run.checkpoints() {
        if step == reference_step || Some(step) == analysed_step {
            continue;
        }
        let dir = run.checkpoint_dir(step);
        let (_, ckpt) = load_model_dir::<CpuBackend>(&dir, &device)?;
        let experts = expert_vectors(&ckpt)?;
        for ((slot, (layer, w0)), (ckpt_layer, w)) in reference.iter().enumerate().zip(&experts) {
            if layer != ckpt_layer || w0.len() != w.len() {
                return Err(AnalysisError::run(
                    &dir,
                    format!("its MoE block {ckpt_layer} is not the run's block {layer}"),
                ));
            }
            points[slot].push(DriftPoint {
                step,
                distance: crate::expert_weights::drift(w0, w),
            });
        }
    }
    Ok(reference
        .iter()
        .zip(points)
        .zip(&analysed)
        .map(|(((_, w0), points), (_, w))| {
            layer_weights(w0, reference_step, points, w, analysed_step)
        })
        .collect())
}

/// Python token classes of the code domain's tokens, aligned with `table`.
fn code_classes(
    table: &TokenRoutes,
    docs: &[std::ops::Range<usize>],
    code_domain: &str,
    tokenizer: &Gpt2Tokenizer,
) -> Result<Option<Vec<Option<TokenClass>>>> {
    let Some(d) = table.domains.iter().position(|n| n == code_domain) else {
        return Ok(None);
    };
    let mut lexer = PythonLexer::new()?;
    let mut classes = vec![None; table.len()];
    for r in docs.iter().filter(|r| table.domain[r.start] as usize == d) {
        let got = lexer.classify(&table.token[r.clone()], tokenizer);
        classes[r.clone()].copy_from_slice(&got);
    }
    Ok(Some(classes))
}
