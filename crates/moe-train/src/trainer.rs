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
use moe_model::{ForwardOptions, Gpt2, ModelConfig, ParamCounts, noise_std_at};
use sha2::{Digest, Sha256};

use crate::checkpoint::{self, CheckpointState};
use crate::clip::clip_global_norm;
use crate::collapse::CollapseDetector;
use crate::config::{Init, RunConfig, TrainSection};
use crate::error::{Result, TrainError};
use crate::eval::{ValBlocks, evaluate};
use crate::metrics::{Event, MetricsLog};
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
    pub stopped: Option<String>,
    /// The last eval event.
    pub last_eval: Option<Event>,
}

/// Trains `config` on `opts.data` into `opts.out` on backend `B`.
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
    let (mut train_blocks, mut val) = load_blocks(&data, config.eval.max_blocks)?;
    let config_sha = prepare_run_dir(config, opts)?;
    if config.model.compact_vocab {
        let map = compact_vocab(&data)?;
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
        map.save(&opts.out)?;
    }
    let steps = config.train.steps;
    let optim = AdamWConfig::new()
        .with_weight_decay(config.train.weight_decay as f32)
        .with_epsilon(1e-8)
        .init::<B, Gpt2<B>>();
    let model = initial_model::<B>(config, &model_config, device)?;
    let (mut model, mut optim, mut state) =
        match checkpoint::list(&opts.out).last().filter(|_| opts.resume) {
            Some(&step) => {
                let (m, o, s) = checkpoint::load(&opts.out, step, model, optim, device)?;
                if s.config_sha256 != config_sha {
                    return Err(TrainError::Mismatch(format!(
                        "{}: the checkpoint belongs to another config",
                        opts.out.display()
                    )));
                }
                (m, o, s)
            }
            None => (
                model,
                optim,
                CheckpointState {
                    step: 0,
                    run: config.run.name.clone(),
                    config_sha256: config_sha,
                    collapse: CollapseDetector::default(),
                },
            ),
        };
    let start = state.step;
    let mut log = MetricsLog::open(&opts.out, opts.resume.then_some(start))?;
    let counts = ParamCounts::of(&model_config);
    let tokens_per_step = config.tokens_per_step(block_size);
    log.write(&Event::Start {
        step: start,
        total_steps: steps,
        tokens_per_step,
        params_total: counts.total() as u64,
        params_active: counts.active() as u64,
        device: opts.device_name.clone(),
        resumed: start > 0,
    })?;
    let end = opts.max_steps.map_or(steps, |m| m.min(steps));
    let bar = progress(opts.progress, start, end);
    let mut last_eval = None;
    let mut stopped = None;
    let mut since = (Instant::now(), 0u64);
    let mut step = start;
    while step < end {
        let lr = crate::schedule::lr_at(
            step,
            steps,
            config.train.lr,
            config.train.warmup_frac,
            config.train.min_lr_frac,
        );
        let noise = moe_model::RouterNoise {
            std: noise_std_at(
                step,
                steps,
                config.train.router_noise_std,
                config.train.router_noise_anneal_frac,
            ),
            seed: seed_for(config.run.seed, step),
        };
        let micro_batches: Vec<Vec<i64>> = (0..config.train.grad_accum)
            .map(|micro| {
                let picks = train_blocks.picks(
                    config.run.seed,
                    config.data.mixing,
                    step,
                    micro,
                    config.train.grad_accum,
                    config.train.micro_batch,
                );
                train_blocks.gather(&picks).0
            })
            .collect();
        let (grads, stats) = step_gradients(
            &model,
            &config.train,
            &micro_batches,
            block_size,
            noise,
            device,
        );
        if !stats.loss.is_finite() {
            let reason = format!(
                "non-finite loss at step {}; stopped; the last good checkpoint is {}",
                step + 1,
                checkpoint::list(&opts.out)
                    .last()
                    .map_or("none".into(), |s| checkpoint::checkpoint_dir(&opts.out, *s)
                        .display()
                        .to_string())
            );
            log.write(&Event::Stop {
                step,
                reason: reason.clone(),
            })?;
            stopped = Some(reason);
            break;
        }
        let mut grads = grads;
        let grad_norm = clip_global_norm::<B, Gpt2<B>>(&model, &mut grads, config.train.grad_clip);
        model = optim.step(lr, model, grads);
        step += 1;
        since.1 += tokens_per_step;
        bar.set_position(step);
        bar.set_message(format!("loss {:.3}", stats.loss));
        let mut collapse = None;
        if step % config.log.every == 0 || step == end {
            let tok_per_s = since.1 as f64 / since.0.elapsed().as_secs_f64().max(1e-9);
            since = (Instant::now(), 0);
            let routing = stats.routing.summary();
            log.write(&Event::Train {
                step,
                loss: stats.loss,
                lm_loss: stats.lm,
                lb_loss: stats.lb,
                z_loss: stats.z,
                lr,
                grad_norm,
                noise_std: noise.std,
                tok_per_s,
                routing: routing.clone(),
            })?;
            if model_config.moe.is_some() {
                let layers: Vec<(usize, Vec<f64>)> = routing
                    .iter()
                    .map(|r| (r.layer, r.shares.clone()))
                    .collect();
                if let Some(c) =
                    state
                        .collapse
                        .check(&layers, config.collapse.threshold, config.collapse.checks)
                {
                    let reason = format!(
                        "routing collapse at step {step}: expert {} took {:.0}% of block {}'s tokens at {} consecutive checks",
                        c.expert,
                        100.0 * c.share,
                        c.layer,
                        config.collapse.checks
                    );
                    collapse = Some(reason);
                }
            }
        }
        let last = step == end || collapse.is_some();
        if step % config.eval.every == 0 || last {
            last_eval = Some(eval_and_log::<B>(
                &model, &val, config, step, device, &mut log,
            )?);
        }
        if step % config.checkpoint.every == 0 || last {
            save(
                &opts.out,
                &model,
                &model_config,
                &optim,
                &mut state,
                step,
                config,
                &mut log,
            )?;
        }
        if let Some(reason) = collapse {
            log.write(&Event::Stop {
                step,
                reason: reason.clone(),
            })?;
            stopped = Some(reason);
            break;
        }
    }
    bar.finish_and_clear();
    if stopped.is_none() && step == steps {
        moe_model::save_model_dir(&model, &model_config, &opts.out.join("final"))?;
    }
    Ok(TrainSummary {
        steps: step,
        stopped,
        last_eval,
    })
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
            loss = loss + aux.lb.clone() * t.lb_coef + aux.z.clone() * t.z_coef;
            *stats.lb.get_or_insert(0.0) += scalar(aux.lb) * scale;
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

fn eval_and_log<B: AutodiffBackend>(
    model: &Gpt2<B>,
    val: &ValBlocks,
    config: &RunConfig,
    step: u64,
    device: &B::Device,
    log: &mut MetricsLog,
) -> Result<Event> {
    let inner = model.valid();
    let event = evaluate(&inner, val, config.train.micro_batch.max(1), step, device);
    log.write(&event)?;
    Ok(event)
}

#[allow(clippy::too_many_arguments)]
fn save<B: AutodiffBackend, O: Optimizer<Gpt2<B>, B>>(
    run_dir: &Path,
    model: &Gpt2<B>,
    model_config: &ModelConfig,
    optim: &O,
    state: &mut CheckpointState,
    step: u64,
    config: &RunConfig,
    log: &mut MetricsLog,
) -> Result<()> {
    state.step = step;
    let dir = checkpoint::save(
        run_dir,
        model,
        model_config,
        optim,
        state,
        config.checkpoint.keep,
    )?;
    let rel = dir
        .strip_prefix(run_dir)
        .unwrap_or(&dir)
        .display()
        .to_string();
    log.write(&Event::Checkpoint { step, path: rel })
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

/// Creates the run directory (refusing an existing run unless resuming) and
/// writes the resolved config; returns its sha256.
fn prepare_run_dir(config: &RunConfig, opts: &TrainOptions) -> Result<String> {
    let text = toml::to_string(config)
        .map_err(|e| TrainError::Mismatch(format!("config serialisation: {e}")))?;
    let sha = hex::encode(Sha256::digest(text.as_bytes()));
    let metrics = opts.out.join("metrics.jsonl");
    if metrics.exists() && !opts.resume {
        return Err(TrainError::Mismatch(format!(
            "{}: a run is already there (use --resume, or another --out)",
            opts.out.display()
        )));
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| TrainError::io(&opts.out, e))?;
    let path = opts.out.join("config.toml");
    std::fs::write(&path, text).map_err(|e| TrainError::io(&path, e))?;
    Ok(sha)
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
