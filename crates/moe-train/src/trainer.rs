//! The training loop (TRAIN-*): micro-batches with gradient accumulation,
//! AdamW, warmup + cosine, global-norm clipping, LM + router losses, eval,
//! routing statistics, collapse detection, a NaN/Inf guard, checkpoints and
//! exact resume.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use moe_data::prepared::PreparedData;
use moe_data::split::Split;
use moe_model::{Gpt2, ModelConfig, ParamCounts, RouterNoise, noise_std_at, router_noise_seed};

use crate::blocks::Blocks;
use crate::checkpoint::{self, CheckpointState};
use crate::clip::clip_global_norm;
use crate::collapse::CollapseDetector;
use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::eval::evaluate;
use crate::metrics::{Event, JsonlLog, MetricsLog, StopReason};
use crate::preflight::{self, Resume};
use crate::probe::RoutingProbe;
use crate::run_dir::{DataIdentity, RunDir};
use crate::sampler::Sampler;
use crate::step::{StepStats, step_gradients};

/// Options of `moe train` besides the config.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Prepared data directory.
    pub data: PathBuf,
    /// Run directory.
    pub out: PathBuf,
    /// Whether to continue a run already in `out`.
    pub resume: Resume,
    /// Stop after this many steps in total (the schedule still spans `train.steps`).
    pub max_steps: Option<u64>,
    /// Draw a progress bar.
    pub progress: bool,
    /// Backend name for the logs.
    pub device_name: String,
    /// Reads the bytes in use on the run's device (CubeCL's memory
    /// manager) at every train event (TRAIN-20); `None` on the CPU.
    pub device_memory: Option<DeviceMemory>,
}

/// How to read the bytes in use on one device: a reader and the device's
/// index (`None`: the backend's default device).
#[derive(Debug, Clone, Copy)]
pub struct DeviceMemory {
    /// Reads the bytes in use on the device of an index.
    pub read: fn(Option<usize>) -> u64,
    /// The device.
    pub index: Option<usize>,
}

impl DeviceMemory {
    /// The bytes in use now.
    pub fn bytes_in_use(&self) -> u64 {
        (self.read)(self.index)
    }
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
    let dir = RunDir::new(&opts.out);
    let mut lock = dir.lock()?;
    let data = PreparedData::open(&opts.data)?;
    let data_identity = DataIdentity::of(&data)?;
    let mut model_config = config.model_config().map_err(TrainError::Mismatch)?;
    let block_size = data.block_size();
    if block_size < 2 {
        return Err(TrainError::Mismatch(format!(
            "{}: block_size {block_size} leaves no next token to predict (at least 2)",
            opts.data.display()
        )));
    }
    if block_size - 1 > model_config.gpt2.n_positions {
        return Err(TrainError::Mismatch(format!(
            "block_size {block_size} needs {} positions, the model has {}",
            block_size - 1,
            model_config.gpt2.n_positions
        )));
    }
    let (config_text, config_sha) = preflight::resolved_config(config)?;
    let resume_from = preflight::check_run_dir(&dir, opts.resume, &config_sha)?;
    if resume_from.is_some() {
        dir.check_data(&data_identity)?;
    }
    let mut train_blocks = Blocks::load(&data, Split::Train, 0)?;
    let mut val = Blocks::load(&data, Split::Val, config.eval.max_blocks)?;
    let vocab = if config.model.compact_vocab {
        let map = preflight::compact_vocab(&data)?;
        preflight::check_vocab(&dir, &opts.data, &map)?;
        model_config.gpt2.vocab_size = map.len();
        train_blocks = train_blocks.to_model_ids(&map)?;
        val = val.to_model_ids(&map)?;
        Some(map)
    } else {
        None
    };
    let optim = AdamWConfig::new()
        .with_weight_decay(config.train.weight_decay as f32)
        .with_epsilon(1e-8)
        .init::<B, Gpt2<B>>();
    let model = crate::initial_model::<B>(config, &model_config, device)?;
    let (model, optim, state) = match resume_from {
        Some(step) => checkpoint::load(&dir, step, model, optim, device)?,
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
    lock.claim()?;
    dir.write_config(&config_text)?;
    dir.save_data_identity(&data_identity)?;
    if let Some(map) = &vocab {
        dir.save_vocab(map)?;
    }
    if state.step == 0 && model_config.moe.is_some() {
        dir.save_initial(&model, &model_config)?;
    }
    let log = dir.open_log((opts.resume != Resume::No).then_some(state.step))?;
    // The routing probe of an MoE run (TRAIN-27).
    let probe = match model_config.moe.is_some() {
        true => Some((RoutingProbe::new(&val), dir.open_probe(state.step)?)),
        false => None,
    };
    let mut run = Run {
        config,
        opts,
        dir,
        model_config,
        sampler: Sampler::of(config),
        train_blocks,
        val,
        log,
        probe,
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
    dir: RunDir,
    model_config: ModelConfig,
    sampler: Sampler,
    train_blocks: Blocks,
    val: Blocks,
    log: MetricsLog,
    /// The routing probe and its log (MoE runs only, TRAIN-27).
    probe: Option<(RoutingProbe, JsonlLog)>,
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
        if start == 0 {
            self.take_probe(&model.valid(), 0)?;
        }
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
                &self.sampler.step(&self.train_blocks, step),
                noise,
                self.device,
            );
            if let Some(reason) = self.guard_finite(&stats, step) {
                break Some(reason);
            }
            let grad_norm = {
                let _autodiff = crate::step::autodiff_guard();
                let norm =
                    clip_global_norm::<B, Gpt2<B>>(&model, &mut grads, config.train.grad_clip);
                model = optim.step(lr, model, grads);
                // Aux-loss-free balancing: the bias follows this step's load (TRAIN-26).
                if config.train.bias_rate > 0.0 {
                    model =
                        model.update_expert_bias(&stats.routing.loads(), config.train.bias_rate);
                }
                norm
            };
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
                collapse = self.log_train(&stats, &train, &model.expert_biases())?;
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
    fn noise_at(&self, step: u64) -> RouterNoise {
        let t = &self.config.train;
        RouterNoise {
            std: noise_std_at(
                step,
                t.steps,
                t.router_noise_std,
                t.router_noise_anneal_frac,
            ),
            seed: router_noise_seed(self.config.run.seed, step),
        }
    }

    /// A non-finite loss stops the run before its update (TRAIN-10).
    fn guard_finite(&self, stats: &StepStats, step: u64) -> Option<StopReason> {
        (!stats.loss.is_finite()).then(|| StopReason::NonFiniteLoss {
            failed_step: step + 1,
            last_checkpoint: self
                .dir
                .checkpoints()
                .last()
                .map(|s| self.dir.relative(&self.dir.checkpoint_dir(*s))),
        })
    }

    /// Writes a train event; feeds the collapse detector (TRAIN-6).
    /// `biases`: each MoE block's balancing bias after the step (TRAIN-26).
    fn log_train(
        &mut self,
        stats: &StepStats,
        t: &TrainLog,
        biases: &[(usize, Vec<f32>)],
    ) -> Result<Option<StopReason>> {
        let mut routing = stats.routing.summary();
        for r in &mut routing {
            r.bias = biases
                .iter()
                .find(|(layer, _)| *layer == r.layer)
                .map(|(_, b)| b.iter().map(|&v| f64::from(v)).collect());
        }
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
            device_bytes: self.opts.device_memory.map(|m| m.bytes_in_use()),
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

    /// Evaluates, and takes the routing probe (TRAIN-27).
    fn eval(&mut self, model: &Gpt2<B>, step: u64) -> Result<Event> {
        let inner = model.valid();
        let batch = self.config.train.micro_batch.max(1);
        let precision = self.config.train.precision;
        let event = evaluate(&inner, &self.val, batch, step, precision, self.device);
        self.log.write(&event)?;
        self.take_probe(&inner, step)?;
        Ok(event)
    }

    /// Writes the probe's routing of `model` (the inner, gradient-free
    /// model) at `step` (MoE runs).
    fn take_probe(&mut self, model: &Gpt2<B::InnerBackend>, step: u64) -> Result<()> {
        let Some((probe, log)) = &mut self.probe else {
            return Ok(());
        };
        match probe.take(model, step, self.config.train.precision, self.device) {
            Some(row) => log.write(&row),
            None => Ok(()),
        }
    }

    fn checkpoint<O: Optimizer<Gpt2<B>, B>>(
        &mut self,
        model: &Gpt2<B>,
        optim: &O,
        step: u64,
    ) -> Result<()> {
        self.state.step = step;
        let dir = checkpoint::save(
            &self.dir,
            model,
            &self.model_config,
            optim,
            &self.state,
            self.config.checkpoint.keep,
        )?;
        let path = self.dir.relative(&dir);
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
                self.dir.save_final(model, &self.model_config)?;
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
