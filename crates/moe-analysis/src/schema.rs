//! `analysis.json` (ANA-14): what `moe analyze` writes and `moe report`
//! reads. Every field is documented in `specs/analysis.md`. Entropies and
//! mutual information are in nats; shares are fractions in [0, 1]. Over 400
//! lines because it is only type declarations: the whole JSON format reads
//! top to bottom in one file, as its spec does.

use std::collections::BTreeMap;

use moe_train::metrics::StopReason;
use serde::{Deserialize, Serialize};

/// Version of this schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole of `analysis.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Analysis {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run and the checkpoint analysed.
    pub run: RunInfo,
    /// The settings of the analysis.
    pub options: OptionsRecord,
    /// The val tokens analysed.
    pub val: ValInfo,
    /// Where the step-0 router came from.
    pub baseline: BaselineInfo,
    /// One entry per MoE layer, in block order (empty for a dense run).
    pub layers: Vec<LayerAnalysis>,
    /// What `metrics.jsonl` says about training.
    pub history: History,
    /// Router saturation over training from the run's routing probe
    /// (ANA-29; absent for dense runs, runs trained before the probe, and
    /// analyses made before it).
    #[serde(default)]
    pub saturation: Option<Saturation>,
    /// Figures written, relative to the directory of `analysis.json`.
    pub figures: Vec<String>,
}

/// Router saturation (ANA-29): how much of the final routing each step had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saturation {
    /// Probe tokens per MoE block.
    pub probe_tokens: u64,
    /// The step whose routing is the reference (the analysed model's).
    pub reference_step: u64,
    /// The agreement a block must exceed to count as saturated.
    pub threshold: f64,
    /// One entry per MoE block, in block order.
    pub layers: Vec<LayerSaturation>,
}

/// One MoE block's saturation curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerSaturation {
    /// Block index.
    pub layer: usize,
    /// Probe steps up to the reference step.
    pub steps: Vec<u64>,
    /// Share of probe tokens whose top-1 expert equals the reference's.
    pub agreement: Vec<f64>,
    /// The agreement of independent routers with the same loads, per step.
    pub chance: Vec<f64>,
    /// First probe step before the reference step whose agreement exceeds
    /// the threshold (`None`: no step before it does).
    pub first_step_above: Option<u64>,
}

/// The run and checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInfo {
    /// `run.name` of the config.
    pub name: String,
    /// `run.seed` of the config (model init, batches, router noise).
    #[serde(default)]
    pub seed: u64,
    /// The run directory as given.
    pub run_dir: String,
    /// The checkpoint directory analysed.
    pub checkpoint: String,
    /// Training step of that checkpoint, when known.
    pub checkpoint_step: Option<u64>,
    /// Steps the run's schedule spans.
    pub total_steps: u64,
    /// MoE blocks (empty when dense).
    pub moe_layers: Vec<usize>,
    /// Experts per MoE layer (0 when dense).
    pub n_experts: usize,
    /// Experts per token.
    pub top_k: usize,
    /// Load-balancing loss coefficient.
    pub lb_coef: f64,
    /// z-loss coefficient.
    pub z_coef: f64,
    /// Router noise std at step 0.
    #[serde(default)]
    pub router_noise_std: f64,
    /// `micro` or `step` (TRAIN-13).
    #[serde(default)]
    pub lb_scope: moe_model::LbScope,
    /// Step of the auxiliary-loss-free balancing bias (TRAIN-26; 0 = none).
    /// With a bias, the analysed model routes the val tokens as training
    /// did: its top-k chosen by logits plus the bias.
    #[serde(default)]
    pub bias_rate: f64,
}

impl RunInfo {
    /// Whether the run balances its experts at all: an LB loss or a bias.
    pub fn balanced(&self) -> bool {
        self.lb_coef > 0.0 || self.bias_rate > 0.0
    }

    /// The run facts of `config`, for `checkpoint` (empty when none was analysed).
    pub fn from_config(
        config: &moe_train::RunConfig,
        run_dir: &std::path::Path,
        checkpoint: String,
        checkpoint_step: Option<u64>,
    ) -> Self {
        let moe = config.model.moe.as_ref();
        Self {
            name: config.run.name.clone(),
            seed: config.run.seed,
            run_dir: run_dir.display().to_string(),
            checkpoint,
            checkpoint_step,
            total_steps: config.train.steps,
            moe_layers: moe.map_or(Vec::new(), |m| m.layers.clone()),
            n_experts: moe.map_or(0, |m| m.n_experts),
            top_k: moe.map_or(0, |m| m.top_k),
            lb_coef: config.train.lb_coef,
            z_coef: config.train.z_coef,
            router_noise_std: config.train.router_noise_std,
            lb_scope: config.train.lb_scope,
            bias_rate: config.train.bias_rate,
        }
    }
}

/// Settings used, so that a result can be reproduced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionsRecord {
    /// Seed of every random draw of the analysis.
    pub seed: u64,
    /// Permutations of the document-level test.
    pub permutations: usize,
    /// Draws of the random-router null.
    pub random_router_draws: usize,
    /// Draws of the token-identity control.
    pub control_draws: usize,
    /// Val blocks per domain (0 = all).
    pub max_blocks: usize,
    /// The domain lexed as Python for token types.
    pub code_domain: String,
}

/// The val tokens analysed, per domain in `domains` order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValInfo {
    /// Block size of the prepared data.
    pub block_size: usize,
    /// Domain names.
    pub domains: Vec<String>,
    /// Routed tokens per domain.
    pub tokens: Vec<u64>,
    /// Documents (EOS-delimited runs within a block) per domain.
    pub documents: Vec<u64>,
}

/// The step-0 router's provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineInfo {
    /// `rebuilt initial model`, `checkpoint <dir>`, or `none`.
    pub source: String,
    /// Its training step (0 when rebuilt).
    pub step: Option<u64>,
    /// Why there is none or why a fallback was used.
    pub note: Option<String>,
}

/// Everything about one MoE layer on the val tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerAnalysis {
    /// Block index.
    pub layer: usize,
    /// Experts.
    pub n_experts: usize,
    /// Top-1 token counts, `[expert][domain]`.
    pub counts: Vec<Vec<u64>>,
    /// Row shares: of each expert's tokens, the share from each domain. `[expert][domain]`
    pub expert_domain_shares: Vec<Vec<f64>>,
    /// Column shares: of each domain's tokens, the share sent to each expert. `[domain][expert]`
    pub domain_expert_shares: Vec<Vec<f64>>,
    /// NMI(expert; domain) and its nulls and controls.
    pub specialization: Specialization,
    /// Load balance.
    pub load: Load,
    /// How confident the router is, against a uniform router.
    pub confidence: Confidence,
    /// Routing entropy and gate per domain, in `val.domains` order.
    pub domains: Vec<DomainRouting>,
    /// Most frequent tokens of each expert. `[expert][rank]`
    pub top_tokens: Vec<Vec<TopToken>>,
    /// Token-type routing of the code domain (absent without it).
    pub code_token_types: Option<TokenTypes>,
    /// Do consecutive tokens share an expert more often than chance?
    pub consistency: Consistency,
    /// Each expert masked in turn: every domain's loss change (ANA-25;
    /// absent in analyses made before it, or without the causal analyses).
    #[serde(default)]
    pub removal: Option<ExpertRemoval>,
    /// Each domain's loss keeping only k experts (ANA-26; absent as `removal`).
    #[serde(default)]
    pub keep_k: Option<KeepK>,
    /// Token specialization for the input and next token (ANA-27; absent
    /// in analyses made before it).
    #[serde(default)]
    pub token_specialization: Option<TokenSpecialization>,
    /// Co-activation with the previous MoE layer (ANA-28; absent for the
    /// first MoE layer and in analyses made before it).
    #[serde(default)]
    pub coactivation: Option<CoActivation>,
    /// The experts' weights: drift from step 0 and pairwise similarity
    /// (ANA-30; absent for a run without a step-0 model and in analyses
    /// made before it).
    #[serde(default)]
    pub expert_weights: Option<ExpertWeights>,
}

/// The experts' weights in one MoE layer (ANA-30). Each expert is one
/// vector: `c_fc.weight`, `c_fc.bias`, `c_proj.weight`, `c_proj.bias`
/// flattened in that order. Cosine distance is `1 − cos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpertWeights {
    /// Parameters per expert (the vector's length).
    pub parameters: usize,
    /// Step of the reference weights (`baseline`'s model: 0, or the
    /// earliest kept checkpoint standing in for it).
    pub reference_step: u64,
    /// Per step (the reference, each kept checkpoint, the analysed model;
    /// in step order), each expert's cosine distance from its reference weights.
    pub drift: Vec<DriftPoint>,
    /// Step of the analysed model (`None` for a checkpoint directory not
    /// named by its step; then it is not in `drift`).
    pub analysed_step: Option<u64>,
    /// Per expert, its cosine distance from the reference at the analysed model.
    pub distance: Vec<f64>,
    /// Per expert, `‖w − w₀‖ / ‖w₀‖` at the analysed model (`None` when `w₀ = 0`).
    pub relative_change: Vec<Option<f64>>,
    /// `[i][j]`: cosine similarity of experts i and j of the analysed model.
    pub similarity: Vec<Vec<f64>>,
    /// Mean of `similarity` off its diagonal (`None` with one expert).
    pub mean_similarity: Option<f64>,
    /// The same mean for the reference experts (step `reference_step`).
    pub reference_mean_similarity: Option<f64>,
}

/// Every expert's cosine distance from its reference weights at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftPoint {
    /// Training step.
    pub step: u64,
    /// Per expert.
    pub distance: Vec<f64>,
}

/// Co-activation of this layer's top-1 expert with the previous MoE layer's (ANA-28).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoActivation {
    /// Block index of the previous MoE layer.
    pub from_layer: usize,
    /// `[i][j]`: P(expert j here | expert i in `from_layer`) (a row of 0 when i has no tokens).
    pub conditional: Vec<Vec<f64>>,
    /// `[j]`: P(expert j here), the independence baseline of every row.
    pub independence: Vec<f64>,
    /// Per domain (val order), its most frequent path i → j and the share of its tokens on it.
    pub top_paths: Vec<TopPath>,
    /// NMI(path; domain) over the E × E paths.
    pub path_nmi: f64,
}

/// An expert path across two consecutive MoE layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopPath {
    /// Expert in the previous MoE layer.
    pub from: usize,
    /// Expert in this layer.
    pub to: usize,
    /// Share of the domain's tokens on this path.
    pub share: f64,
}

/// Token specialization of one layer (ANA-27).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpecialization {
    /// Ids seen fewer times are left out.
    pub min_occurrences: u64,
    /// By the routed (input) token's id.
    pub input: SpecializationValue,
    /// By the id of the token it predicts (the next one of its document).
    pub next: SpecializationValue,
    /// `1/E`, a uniform router's value with unlimited occurrences.
    pub uniform: f64,
    /// A random router (each token's expert drawn from the layer's load) on
    /// the same input tokens, one seeded draw.
    pub random_router_input: Option<f64>,
}

/// Mean over ids of `max_e count(id → e) / count(id)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecializationValue {
    /// Ids averaged over.
    pub ids: u64,
    /// The mean (`None` when no id occurs often enough).
    pub value: Option<f64>,
}

/// Expert removal in one MoE block (ANA-25). Losses are val next-token
/// losses in nats over the first `blocks[d]` val blocks of each domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpertRemoval {
    /// Val blocks per domain the losses are over.
    pub blocks: Vec<usize>,
    /// Unmasked loss per domain: the mean of its block losses.
    pub full_loss: Vec<f64>,
    /// `[expert][domain]`: loss with the expert masked in this block minus
    /// the unmasked loss, paired by val block.
    pub delta: Vec<Vec<LossDelta>>,
    /// Per expert, the domain that routes the largest share of its tokens
    /// to it (`None` when no domain routes any).
    pub own_domain: Vec<Option<usize>>,
    /// Per expert, the domain whose loss rises most when it is masked.
    pub most_hurt: Vec<Option<usize>>,
}

/// A loss difference over val blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossDelta {
    /// Mean of the per-block differences (nats).
    pub mean: f64,
    /// Its 95% t-interval over the blocks (`None` with fewer than 2).
    pub interval: Option<crate::intervals::Interval>,
}

/// Keep-k in one MoE block (ANA-26).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepK {
    /// Where the other experts are masked: `this block only`.
    pub scope: String,
    /// Random draws per k.
    pub draws: usize,
    /// One entry per domain, in `val.domains` order.
    pub domains: Vec<KeepKDomain>,
}

/// One domain's keep-k curves; every `Vec` is indexed by `k − 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepKDomain {
    /// The domain.
    pub domain: String,
    /// Experts by the share of this domain's tokens routed to them, most first.
    pub ranking: Vec<usize>,
    /// Loss with every expert kept (nothing masked).
    pub full_loss: f64,
    /// Loss keeping this domain's own top-k experts.
    pub own: Vec<f64>,
    /// Loss keeping another domain's top-k, per other domain.
    pub others: Vec<OtherTopK>,
    /// Loss keeping k random experts: spread over the draws (`None` with 0 draws).
    pub random: Vec<Option<crate::intervals::Spread>>,
}

/// A domain's loss keeping another domain's top-k experts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtherTopK {
    /// Whose top-k.
    pub domain: String,
    /// Loss per k.
    pub loss: Vec<f64>,
}

/// The router's confidence over the routed tokens (ANA-19).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confidence {
    /// Mean router probability of the top-1 expert.
    pub mean_top1_prob: f64,
    /// `1/E`, the top-1 probability of a uniform router.
    pub uniform_prob: f64,
    /// Mean entropy of the clean router distribution, nats.
    pub mean_entropy_nats: f64,
    /// `ln E`, the entropy of a uniform router.
    pub max_entropy_nats: f64,
    /// `mean_entropy_nats / max_entropy_nats`.
    pub entropy_fraction: f64,
    /// Entropy at least 95% of `ln E`.
    pub near_uniform: bool,
}

/// NMI(expert; domain) = I(E; D) / H(D) with its reference values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Specialization {
    /// I(E; D), nats.
    pub mi_nats: f64,
    /// H(D) of the routed tokens, nats.
    pub domain_entropy_nats: f64,
    /// I / H(D) (0 when H(D) = 0).
    pub nmi: f64,
    /// Domain labels shuffled across documents.
    pub permutation: PermutationTest,
    /// Each token sent to an expert drawn from the layer's load.
    pub random_router: NullSummary,
    /// The same layer's NMI before training (absent without a baseline).
    pub baseline_nmi: Option<f64>,
    /// Paired document bootstrap of the rise over the step-0 NMI.
    #[serde(default)]
    pub rise: Option<RiseTest>,
    /// Re-routing by token identity alone.
    pub token_identity: TokenIdentity,
}

/// The paired document bootstrap of `NMI − NMI at step 0` (ANA-18).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiseTest {
    /// Bootstrap draws.
    pub draws: usize,
    /// Observed NMI − step-0 NMI.
    pub rise: f64,
    /// 2.5th percentile of the bootstrap rises.
    pub ci95_low: f64,
    /// 97.5th percentile of the bootstrap rises.
    pub ci95_high: f64,
    /// (1 + #{bootstrap rise ≤ 0}) / (1 + draws).
    pub p_value: f64,
}

/// The document-level permutation test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermutationTest {
    /// Documents whose labels were shuffled.
    pub documents: u64,
    /// (1 + #{null ≥ observed}) / (1 + permutations).
    pub p_value: f64,
    /// The null distribution of NMI.
    pub null: NullSummary,
}

/// Summary of a null distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NullSummary {
    /// Draws.
    pub draws: usize,
    /// Mean.
    pub mean: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Largest draw.
    pub max: f64,
}

/// The token-identity control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenIdentity {
    /// Draws averaged.
    pub draws: usize,
    /// Mean NMI of the re-routed tokens.
    pub nmi: f64,
    /// `nmi / observed nmi` (absent when the observed NMI is 0).
    pub surviving_fraction: Option<f64>,
}

/// Load balance of the layer's top-1 choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Share of tokens per expert.
    pub shares: Vec<f64>,
    /// Coefficient of variation of the per-expert counts (population std / mean).
    pub cv: f64,
    /// √((N − 1) / T): the CV of a perfectly balanced router from sampling alone.
    pub cv_floor: f64,
    /// Experts with less than [`Load::dead_threshold`] of the tokens.
    pub dead_experts: Vec<usize>,
    /// 0.01.
    pub dead_threshold: f64,
    /// 1.25.
    pub capacity_factor: f64,
    /// Share of tokens over capacity ⌊factor · T / N⌋ on the whole val set.
    pub would_drop_rate: f64,
}

/// Routing of one domain's tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainRouting {
    /// Domain name.
    pub domain: String,
    /// Tokens.
    pub tokens: u64,
    /// Mean per-token entropy of the router distribution, nats.
    pub mean_router_entropy: f64,
    /// Entropy of the domain's expert usage H(E | D = d), nats.
    pub usage_entropy: f64,
    /// Mean router probability of the chosen expert.
    pub mean_gate_prob: f64,
}

/// One of an expert's most frequent tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopToken {
    /// GPT-2 id.
    pub token_id: u32,
    /// Decoded text (Rust debug escapes for control characters).
    pub text: String,
    /// Tokens with this id sent to the expert.
    pub count: u64,
    /// Of all tokens with this id, the share sent to the expert.
    pub share_of_token: f64,
}

/// Routing of the code domain's tokens by Python token type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenTypes {
    /// The domain lexed.
    pub domain: String,
    /// Class names, in row order.
    pub classes: Vec<String>,
    /// Counts `[class][expert]`.
    pub counts: Vec<Vec<u64>>,
    /// Of each class's tokens, the share sent to each expert. `[class][expert]`
    pub class_expert_shares: Vec<Vec<f64>>,
    /// I(E; class) / H(class).
    pub nmi: f64,
}

/// Consecutive-token routing consistency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consistency {
    /// Consecutive pairs within one document.
    pub pairs: u64,
    /// Share of pairs whose top-1 experts agree.
    pub same_expert_rate: f64,
    /// Σ_e p(e)²: agreement of independent draws from the layer's load.
    pub chance_global: f64,
    /// Σ_d w_d Σ_e p(e | d)²: the same within each pair's domain.
    pub chance_within_domain: f64,
}

/// Training history from `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// Train rows.
    pub train: Vec<TrainPoint>,
    /// Per-layer routing over training.
    pub layers: Vec<LayerHistory>,
    /// Eval rows.
    pub eval: Vec<EvalPoint>,
    /// The collapse timeline.
    pub collapse: Collapse,
    /// Throughput and cost.
    pub throughput: Throughput,
    /// The stop event, if the run stopped early.
    pub stop: Option<StopInfo>,
}

/// One train row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainPoint {
    /// Steps done.
    pub step: u64,
    /// Total loss.
    pub loss: f64,
    /// LM loss.
    pub lm_loss: f64,
    /// LB loss (MoE).
    pub lb_loss: Option<f64>,
    /// Tokens per second.
    pub tok_per_s: f64,
}

/// One layer's routing over training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerHistory {
    /// Block index.
    pub layer: usize,
    /// Steps of the train rows.
    pub steps: Vec<u64>,
    /// Expert shares per row. `[row][expert]`
    pub shares: Vec<Vec<f64>>,
    /// Largest share per row.
    pub max_share: Vec<f64>,
    /// Mean router entropy per row, nats.
    pub entropy: Vec<f64>,
}

/// One eval row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalPoint {
    /// Steps done.
    pub step: u64,
    /// Token-weighted loss over domains.
    pub loss: f64,
    /// Loss per domain.
    pub domains: BTreeMap<String, f64>,
    /// Mean loss of each val block per domain, in block order (empty in
    /// metrics written before it was recorded).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub blocks: BTreeMap<String, Vec<f64>>,
}

/// When and how routing concentrated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collapse {
    /// The run's `collapse.threshold`.
    pub threshold: f64,
    /// The run's `collapse.checks`.
    pub checks: u32,
    /// Per MoE layer.
    pub layers: Vec<LayerCollapse>,
    /// Whether a stop event names a routing collapse.
    pub stopped_by_collapse: bool,
}

/// One layer's collapse timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerCollapse {
    /// Block index.
    pub layer: usize,
    /// First train step at which an expert's share exceeded the threshold.
    pub first_step_above: Option<u64>,
    /// Longest run of consecutive train rows in which one same expert is above
    /// the threshold (the collapse detector's rule, TRAIN-6).
    pub longest_run_above: u32,
    /// Largest max share seen.
    pub peak_max_share: f64,
    /// Step of the peak.
    pub peak_step: u64,
    /// Expert holding the peak.
    pub peak_expert: usize,
    /// Max share at the last train row.
    pub final_max_share: f64,
    /// Experts under 1% at the last train row.
    pub final_dead_experts: Vec<usize>,
}

/// Speed and size of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throughput {
    /// Backend of the last start event.
    pub device: String,
    /// Parameters.
    pub params_total: u64,
    /// Parameters a token passes through.
    pub params_active: u64,
    /// Tokens per optimizer step.
    pub tokens_per_step: u64,
    /// Steps done (last train row).
    pub steps_done: u64,
    /// `steps_done · tokens_per_step`.
    pub tokens_seen: u64,
    /// Median tokens per second over train rows.
    pub median_tok_per_s: f64,
    /// `tokens_seen / median_tok_per_s`.
    pub estimated_train_seconds: f64,
}

/// An early stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopInfo {
    /// Steps done.
    pub step: u64,
    /// The trainer's reason.
    pub reason: StopReason,
    /// The same, in words.
    pub message: String,
}
