//! The training loop (TRAIN-*): micro-batches with gradient accumulation,
//! AdamW, warmup + cosine, global-norm clipping, LM + router losses, eval,
//! routing statistics, collapse detection, a NaN/Inf guard, checkpoints and
//! exact resume.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use moe_data::prepared::PreparedData;
use moe_data::split::Split;
use moe_model::{
    ForwardOptions, Gpt2, LbAccumulator, LbScope, ModelConfig, ParamCounts, noise_std_at,
};
use sha2::{Digest, Sha256};

use crate::checkpoint::{self, CheckpointState};
use crate::clip::clip_global_norm;
use crate::collapse::CollapseDetector;
use crate::config::{Init, RunConfig, TrainSection};
use crate::error::{Result, TrainError};
use crate::eval::{ValBlocks, evaluate};
use crate::metrics::{Event, MetricsLog, StopReason};
use crate::routing_stats::RoutingSums;
use crate::sampler::TrainBlocks;
use crate::step::{scalar, token_losses, tokens_tensor};
use crate::vocab::VocabMap;

/// Options of `moe train` besides the config.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Prepared data directory.
    pub data: PathBuf,
    /// Run directory.
    pub out: PathBuf,
    /// Continue from the last checkpoint in `out`.
    pub resume: bool,
    /// Stop after this many steps in total (the schedule still spans `train.steps`).
    pub max_steps: Option<u64>,
    /// Draw a progress bar.
    pub progress: bool,
    /// Backend name for the logs.
    pub device_name: String,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// Steps done.
    pub steps: u64,
    /// Why it stopped early, if it did.
    pub stopped: Option<StopReason>,
    /// The last eval event.
    pub last_eval: Option<Event>,
}

/// Directory of the model a MoE run starts from (step 0), never pruned.
pub const INITIAL_DIR: &str = "initial";

/// Trains `config` on `opts.data` into `opts.out` on backend `B`.
///
/// Every check (the data, the config against a run already in `opts.out`,
/// the checkpoint to resume) happens before anything in `opts.out` is
/// written (TRAIN-14).
pub fn train<B: AutodiffBackend>(
    config: &RunConfig,
    opts: &TrainOptions,
    device: &B::Device,
) -> Result<TrainSummary> {
    let data = PreparedData::open(&opts.data)?;
    let mut model_config = config.model_config().map_err(TrainError::Mismatch)?;
    let block_size = data.block_size();
    if block_size - 1 > model_config.gpt2.n_positions {
        return Err(TrainError::Mismatch(format!(
            "block_size {block_size} needs {} positions, the model has {}",
            block_size - 1,
            model_config.gpt2.n_positions
        )));
    }
    let (config_text, config_sha) = resolved_config(config)?;
    let resume_from = check_run_dir(opts, &config_sha)?;
    let (mut train_blocks, mut val) = load_blocks(&data, config.eval.max_blocks)?;
    let vocab = if config.model.compact_vocab {
        let map = compact_vocab(&data)?;
        check_vocab(&opts.out, &opts.data, &map)?;
        model_config.gpt2.vocab_size = map.len();
        for (_, tokens) in train_blocks
            .domains
            .iter_mut()
            .chain(val.domains.iter_mut())
        {
            *tokens = map.to_model(tokens).ok_or_else(|| {
                TrainError::Mismatch("a token is missing from the vocab map".into())
            })?;
        }
        Some(map)
    } else {
        None
    };
    let optim = AdamWConfig::new()
        .with_weight_decay(config.train.weight_decay as f32)
        .with_epsilon(1e-8)
        .init::<B, Gpt2<B>>();
    let model = initial_model::<B>(config, &model_config, device)?;
    let (model, optim, state) = match resume_from {
        Some(step) => checkpoint::load(&opts.out, step, model, optim, device)?,
        None => {
            let state = CheckpointState {
                step: 0,
                run: config.run.name.clone(),
                config_sha256: config_sha,
                collapse: CollapseDetector::default(),
            };
            (model, optim, state)
        }
    };
    // Every check passed: from here on the run directory changes.
    write_config(&opts.out, &config_text)?;
    if let Some(map) = &vocab {
        map.save(&opts.out)?;
    }
    if state.step == 0 && model_config.moe.is_some() {
        save_initial(&opts.out, &model, &model_config)?;
    }
    let log = MetricsLog::open(&opts.out, opts.resume.then_some(state.step))?;
    let mut run = Run {
        config,
        opts,
        model_config,
        train_blocks,
        val,
        log,
        state,
        device,
        block_size,
    };
    run.run(model, optim)
}

/// A run in progress: what every step reads, and the state it keeps.
struct Run<'a, B: AutodiffBackend> {
    config: &'a RunConfig,
    opts: &'a TrainOptions,
    model_config: ModelConfig,
    train_blocks: TrainBlocks,
    val: ValBlocks,
    log: MetricsLog,
    state: CheckpointState,
    device: &'a B::Device,
    block_size: usize,
}

impl<B: AutodiffBackend> Run<'_, B> {
    /// The loop: step, guard, log and collapse check, eval, checkpoint; then
    /// the one place a run ends.
    fn run<O: Optimizer<Gpt2<B>, B>>(
        &mut self,
        mut model: Gpt2<B>,
        mut optim: O,
    ) -> Result<TrainSummary> {
        let (config, steps) = (self.config, self.config.train.steps);
        let start = self.state.step;
        self.log_start(start)?;
        let end = self.opts.max_steps.map_or(steps, |m| m.min(steps));
        let bar = progress(self.opts.progress, start, end);
        let mut last_eval = None;
        let mut since = (Instant::now(), 0u64);
        let mut step = start;
        let stop = loop {
            if step >= end {
                break None;
            }
            let lr = crate::schedule::lr_at(
                step,
                steps,
                config.train.lr,
                config.train.warmup_frac,
                config.train.min_lr_frac,
            );
            let noise = self.noise_at(step);
            let (mut grads, stats) = step_gradients(
                &model,
                &config.train,
                &self.micro_batches(step),
                self.block_size,
                noise,
                self.device,
            );
            if let Some(reason) = self.guard_finite(&stats, step) {
                break Some(reason);
            }
            let grad_norm =
                clip_global_norm::<B, Gpt2<B>>(&model, &mut grads, config.train.grad_clip);
            model = optim.step(lr, model, grads);
            step += 1;
            since.1 += config.tokens_per_step(self.block_size);
            bar.set_position(step);
            bar.set_message(format!("loss {:.3}", stats.loss));
            let mut collapse = None;
            if step.is_multiple_of(config.log.every) || step == end {
                let seconds = since.0.elapsed().as_secs_f64().max(1e-9);
                let tok_per_s = since.1 as f64 / seconds;
                since = (Instant::now(), 0);
                let train = TrainLog {
                    step,
                    lr,
                    grad_norm,
                    noise_std: noise.std,
                    tok_per_s,
                };
                collapse = self.log_train(&stats, &train)?;
            }
            let last = step == end || collapse.is_some();
            if step.is_multiple_of(config.eval.every) || last {
                last_eval = Some(self.eval(&model, step)?);
            }
            if step.is_multiple_of(config.checkpoint.every) || last {
                self.checkpoint(&model, &optim, step)?;
            }
            if collapse.is_some() {
                break collapse;
            }
        };
        bar.finish_and_clear();
        self.finish(&model, step, stop, last_eval)
    }

    fn log_start(&mut self, start: u64) -> Result<()> {
        let counts = ParamCounts::of(&self.model_config);
        self.log.write(&Event::Start {
            step: start,
            total_steps: self.config.train.steps,
            tokens_per_step: self.config.tokens_per_step(self.block_size),
            params_total: counts.total() as u64,
            params_active: counts.active() as u64,
            device: self.opts.device_name.clone(),
            resumed: start > 0,
        })
    }

    /// Router noise of `step`: the annealed std and a seed of its own.
    fn noise_at(&self, step: u64) -> moe_model::RouterNoise {
        let t = &self.config.train;
        moe_model::RouterNoise {
            std: noise_std_at(
                step,
                t.steps,
                t.router_noise_std,
                t.router_noise_anneal_frac,
            ),
            seed: seed_for(self.config.run.seed, step),
        }
    }

    /// The tokens of each micro-batch of `step` (TRAIN-3).
    fn micro_batches(&self, step: u64) -> Vec<Vec<i64>> {
        let (config, t) = (self.config, &self.config.train);
        (0..t.grad_accum)
            .map(|micro| {
                let picks = self.train_blocks.picks(
                    config.run.seed,
                    config.data.mixing,
                    step,
                    micro,
                    t.grad_accum,
                    t.micro_batch,
                );
                self.train_blocks.gather(&picks).0
            })
            .collect()
    }

    /// A non-finite loss stops the run before its update (TRAIN-10).
    fn guard_finite(&self, stats: &StepStats, step: u64) -> Option<StopReason> {
        (!stats.loss.is_finite()).then(|| StopReason::NonFiniteLoss {
            failed_step: step + 1,
            last_checkpoint: checkpoint::list(&self.opts.out).last().map(|s| {
                let dir = checkpoint::checkpoint_dir(&self.opts.out, *s);
                relative(&self.opts.out, &dir)
            }),
        })
    }

    /// Writes a train event; feeds the collapse detector (TRAIN-6).
    fn log_train(&mut self, stats: &StepStats, t: &TrainLog) -> Result<Option<StopReason>> {
        let routing = stats.routing.summary();
        self.log.write(&Event::Train {
            step: t.step,
            loss: stats.loss,
            lm_loss: stats.lm,
            lb_loss: stats.lb,
            z_loss: stats.z,
            lr: t.lr,
            grad_norm: t.grad_norm,
            noise_std: t.noise_std,
            tok_per_s: t.tok_per_s,
            routing: routing.clone(),
        })?;
        if self.model_config.moe.is_none() {
            return Ok(None);
        }
        let layers: Vec<(usize, Vec<f64>)> =
            routing.into_iter().map(|r| (r.layer, r.shares)).collect();
        let c = &self.config.collapse;
        Ok(self
            .state
            .collapse
            .check(&layers, c.threshold, c.checks)
            .map(|fired| StopReason::Collapse {
                layer: fired.layer,
                expert: fired.expert,
                share: fired.share,
                checks: c.checks,
            }))
    }

    fn eval(&mut self, model: &Gpt2<B>, step: u64) -> Result<Event> {
        let inner = model.valid();
        let batch = self.config.train.micro_batch.max(1);
        let event = evaluate(&inner, &self.val, batch, step, self.device);
        self.log.write(&event)?;
        Ok(event)
    }

    fn checkpoint<O: Optimizer<Gpt2<B>, B>>(
        &mut self,
        model: &Gpt2<B>,
        optim: &O,
        step: u64,
    ) -> Result<()> {
        self.state.step = step;
        let dir = checkpoint::save(
            &self.opts.out,
            model,
            &self.model_config,
            optim,
            &self.state,
            self.config.checkpoint.keep,
        )?;
        let path = relative(&self.opts.out, &dir);
        self.log.write(&Event::Checkpoint { step, path })
    }

    /// The one end of a run: a stop event, or `final/` when the schedule is done.
    fn finish(
        &mut self,
        model: &Gpt2<B>,
        step: u64,
        stop: Option<StopReason>,
        last_eval: Option<Event>,
    ) -> Result<TrainSummary> {
        match &stop {
            Some(reason) => self.log.write(&Event::Stop {
                step,
                reason: reason.clone(),
                message: reason.message(),
            })?,
            None if step == self.config.train.steps => {
                let dir = self.opts.out.join("final");
                moe_model::save_model_dir(model, &self.model_config, &dir)?;
            }
            None => {}
        }
        Ok(TrainSummary {
            steps: step,
            stopped: stop,
            last_eval,
        })
    }
}

/// What a train event reports besides the step's statistics.
struct TrainLog {
    step: u64,
    lr: f64,
    grad_norm: f64,
    noise_std: f64,
    tok_per_s: f64,
}

fn relative(run_dir: &Path, dir: &Path) -> String {
    dir.strip_prefix(run_dir)
        .unwrap_or(dir)
        .display()
        .to_string()
}

/// Statistics of one optimizer step.
#[derive(Debug, Clone)]
pub struct StepStats {
    /// Total loss, mean over micro-batches.
    pub loss: f64,
    /// LM loss, mean over micro-batches.
    pub lm: f64,
    /// Load-balancing loss (MoE).
    pub lb: Option<f64>,
    /// z-loss (MoE).
    pub z: Option<f64>,
    /// Routing counts of the step.
    pub routing: RoutingSums,
}

/// Forward and backward over one optimizer step's micro-batches (each
/// `block_size`-token rows back to back); returns the gradients of
/// `mean over micro-batches of (LM + lb_coef·LB + z_coef·Z)` (TRAIN-5).
///
/// Under `lb_scope = "step"` (TRAIN-13) a gradient-free routing pass over all
/// micro-batches first gives the step's f; each micro-batch's LB is then
/// `N Σ f_step·P_micro`, whose mean over the micro-batches is the global-batch
/// loss `N Σ f_step·P_step` and whose accumulated gradients are its gradients.
pub fn step_gradients<B: AutodiffBackend>(
    model: &Gpt2<B>,
    t: &TrainSection,
    micro_batches: &[Vec<i64>],
    block_size: usize,
    noise: moe_model::RouterNoise,
    device: &B::Device,
) -> (GradientsParams, StepStats) {
    let mut acc = GradientsAccumulator::<Gpt2<B>>::new();
    let mut stats = StepStats {
        loss: 0.0,
        lm: 0.0,
        lb: None,
        z: None,
        routing: RoutingSums::default(),
    };
    let options = ForwardOptions {
        router_noise_std: noise.std,
        router_noise_seed: noise.seed,
    };
    let scale = 1.0 / micro_batches.len().max(1) as f64;
    let step_lb = (t.lb_scope == LbScope::Step)
        .then(|| step_routing(model, micro_batches, block_size, &options, device));
    for flat in micro_batches {
        let rows = flat.len() / block_size;
        let (losses, records, aux) = token_losses(
            model,
            tokens_tensor::<B>(flat.clone(), rows, device),
            &options,
        );
        let lm = losses.mean();
        let mut loss = lm.clone();
        if let Some(aux) = aux {
            let lb = match &step_lb {
                Some(acc) => acc.micro_loss(&records).unwrap_or(aux.lb),
                None => aux.lb,
            };
            loss = loss + lb.clone() * t.lb_coef + aux.z.clone() * t.z_coef;
            *stats.lb.get_or_insert(0.0) += scalar(lb) * scale;
            *stats.z.get_or_insert(0.0) += scalar(aux.z) * scale;
        }
        stats.routing.add(&records);
        let grads = (loss.clone() * scale).backward();
        stats.loss += scalar(loss.detach()) * scale;
        stats.lm += scalar(lm.detach()) * scale;
        acc.accumulate(model, GradientsParams::from_grads(grads, model));
    }
    (acc.grads(), stats)
}

/// The routing of every micro-batch of a step, without gradients: the step's f.
fn step_routing<B: AutodiffBackend>(
    model: &Gpt2<B>,
    micro_batches: &[Vec<i64>],
    block_size: usize,
    options: &ForwardOptions,
    device: &B::Device,
) -> LbAccumulator {
    let inner = model.valid();
    let mut acc = LbAccumulator::new();
    for flat in micro_batches {
        let rows = flat.len() / block_size;
        let tokens = tokens_tensor::<B::InnerBackend>(flat.clone(), rows, device);
        let [batch, seq] = tokens.dims();
        acc.push(&inner.route(tokens.slice([0..batch, 0..seq - 1]), options));
    }
    acc
}

/// The model a run starts from: fresh (`Gpt2::init(dense, run.seed)`) or
/// pretrained, then upcycled with `upcycle_noise` and `run.seed` when MoE.
/// Public so that analysis can rebuild a run's step-0 router.
pub fn initial_model<B: burn::tensor::backend::Backend>(
    config: &RunConfig,
    model_config: &ModelConfig,
    device: &B::Device,
) -> Result<Gpt2<B>> {
    let dense_config = ModelConfig {
        gpt2: model_config.gpt2.clone(),
        moe: None,
    };
    let dense = match config.model.init {
        Init::Scratch => Gpt2::<B>::init(&dense_config, config.run.seed, device),
        Init::Pretrained => {
            let dir = match &config.model.hf_dir {
                Some(dir) => dir.clone(),
                None => moe_model::hub::fetch_gpt2()?,
            };
            let (loaded, model) = moe_model::load_model_dir::<B>(&dir, device)?;
            if loaded.gpt2 != dense_config.gpt2 {
                return Err(TrainError::Mismatch(format!(
                    "{}: weights are not the `{}` preset's shape",
                    dir.display(),
                    config.model.preset
                )));
            }
            model
        }
    };
    Ok(match &model_config.moe {
        Some(moe) => dense.upcycle(moe, config.model.upcycle_noise, config.run.seed),
        None => dense,
    })
}

/// The compact vocabulary of all of the data's shards (train, val, test).
fn compact_vocab(data: &PreparedData) -> Result<VocabMap> {
    let mut shards = Vec::new();
    for info in &data.manifest.shards {
        shards.push(data.load_shard(info.split, &info.domain)?);
    }
    Ok(VocabMap::from_shards(shards.iter().map(Vec::as_slice)))
}

fn load_blocks(data: &PreparedData, max_val_blocks: usize) -> Result<(TrainBlocks, ValBlocks)> {
    let bs = data.block_size();
    let mut train = Vec::new();
    let mut val = Vec::new();
    for d in data.manifest.domains() {
        train.push((d.clone(), data.load_shard(Split::Train, &d)?));
        let mut v = data.load_shard(Split::Val, &d)?;
        if max_val_blocks > 0 {
            v.truncate(max_val_blocks * bs);
        }
        val.push((d, v));
    }
    Ok((
        TrainBlocks {
            block_size: bs,
            domains: train,
        },
        ValBlocks {
            block_size: bs,
            domains: val,
        },
    ))
}

/// The resolved config as written to `config.toml`, and its sha256.
fn resolved_config(config: &RunConfig) -> Result<(String, String)> {
    let text = toml::to_string(config)
        .map_err(|e| TrainError::Mismatch(format!("config serialisation: {e}")))?;
    let sha = hex::encode(Sha256::digest(text.as_bytes()));
    Ok((text, sha))
}

/// Refuses an existing run unless resuming, and a resume of another config;
/// returns the checkpoint to resume from. Writes nothing.
fn check_run_dir(opts: &TrainOptions, config_sha: &str) -> Result<Option<u64>> {
    let exists = opts.out.join("metrics.jsonl").exists();
    if exists && !opts.resume {
        return Err(TrainError::Mismatch(format!(
            "{}: a run is already there (use --resume, or another --out)",
            opts.out.display()
        )));
    }
    let last = checkpoint::list(&opts.out).last().copied();
    let Some(step) = last.filter(|_| opts.resume) else {
        return Ok(None);
    };
    let state = checkpoint::read_state(&opts.out, step)?;
    if state.config_sha256 != config_sha {
        return Err(TrainError::Mismatch(format!(
            "{}: the checkpoint belongs to another config",
            opts.out.display()
        )));
    }
    Ok(Some(step))
}

/// A resumed run's `vocab.json` must be the one this data gives.
fn check_vocab(run_dir: &Path, data: &Path, map: &VocabMap) -> Result<()> {
    match VocabMap::load(run_dir)? {
        Some(saved) if saved.gpt2_ids != map.gpt2_ids => Err(TrainError::Mismatch(format!(
            "{}: vocab.json was made from other data than {}",
            run_dir.display(),
            data.display()
        ))),
        _ => Ok(()),
    }
}

fn write_config(run_dir: &Path, text: &str) -> Result<()> {
    std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
    let path = run_dir.join("config.toml");
    std::fs::write(&path, text).map_err(|e| TrainError::io(&path, e))
}

/// Saves the model at step 0 into `<run>/initial/` (written to a temporary
/// directory and renamed), so that analysis has the step-0 router of any run.
fn save_initial<B: AutodiffBackend>(
    run_dir: &Path,
    model: &Gpt2<B>,
    model_config: &ModelConfig,
) -> Result<()> {
    let dir = run_dir.join(INITIAL_DIR);
    let tmp = run_dir.join(format!(".{INITIAL_DIR}.tmp"));
    for d in [&tmp, &dir] {
        if d.exists() {
            std::fs::remove_dir_all(d).map_err(|e| TrainError::io(d, e))?;
        }
    }
    moe_model::save_model_dir(model, model_config, &tmp)?;
    std::fs::rename(&tmp, &dir).map_err(|e| TrainError::io(&dir, e))
}

fn seed_for(seed: u64, step: u64) -> u64 {
    let digest = Sha256::digest(format!("noise/{seed}/{step}").as_bytes());
    u64::from_le_bytes([
        digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
    ])
}

fn progress(enabled: bool, start: u64, end: u64) -> ProgressBar {
    let bar = ProgressBar::new(end);
    bar.set_position(start);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:14} [{elapsed_precise}] {wide_bar} step {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    if !enabled {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}
