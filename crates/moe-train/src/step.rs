//! One optimizer step's gradients over its micro-batches (TRAIN-5,
//! TRAIN-13): each micro-batch's loss scaled by 1/micro-batches and
//! accumulated, so the step's gradients equal one big batch's; the step's
//! statistics for the log.

use std::sync::{Mutex, MutexGuard};

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::AutodiffBackend;
use moe_model::{ForwardOptions, Gpt2, LbAccumulator, LbScope, RouterNoise};

use crate::config::TrainSection;
use crate::losses::{BatchLosses, batch_losses, scalar};
use crate::routing_stats::RoutingTally;
use crate::sampler::MicroBatch;

/// Serialises autodiff work across threads: Burn 0.21's autodiff can free
/// another thread's graph steps during a `backward()` and silently lose a
/// gradient (tracel-ai/burn#5573, fixed after 0.21), and runs of a study
/// train side by side in threads. Held over each step's forward and
/// backward passes and over the optimizer update; evaluation and analysis
/// run on the inner backend and do not take it.
static AUTODIFF: Mutex<()> = Mutex::new(());

/// The autodiff lock ([`AUTODIFF`]); a panicked holder does not poison it.
pub fn autodiff_guard() -> MutexGuard<'static, ()> {
    AUTODIFF
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
    pub routing: RoutingTally,
}

/// Forward and backward over one optimizer step's micro-batches; returns the gradients of
/// `mean over micro-batches of (LM + lb_coef·LB + z_coef·Z)` (TRAIN-5).
///
/// Under `lb_scope = "step"` (TRAIN-13) a gradient-free routing pass over all
/// micro-batches first gives the step's f; each micro-batch's LB is then
/// `N Σ f_step·P_micro`, whose mean over the micro-batches is the global-batch
/// loss `N Σ f_step·P_step` and whose accumulated gradients are its gradients.
pub fn step_gradients<B: AutodiffBackend>(
    model: &Gpt2<B>,
    t: &TrainSection,
    micro_batches: &[MicroBatch],
    router_noise: RouterNoise,
    device: &B::Device,
) -> (GradientsParams, StepStats) {
    let _autodiff = autodiff_guard();
    let mut acc = GradientsAccumulator::<Gpt2<B>>::new();
    let mut stats = StepStats {
        loss: 0.0,
        lm: 0.0,
        lb: None,
        z: None,
        routing: RoutingTally::default(),
    };
    let options = ForwardOptions {
        router_noise,
        precision: t.precision,
        ..ForwardOptions::default()
    };
    let scale = 1.0 / micro_batches.len().max(1) as f64;
    let step_lb =
        (t.lb_scope == LbScope::Step).then(|| step_routing(model, micro_batches, &options, device));
    for batch in micro_batches {
        let BatchLosses {
            lm,
            routing: records,
            aux,
        } = batch_losses(model, batch, &options, device);
        let lm = lm.mean();
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
    micro_batches: &[MicroBatch],
    options: &ForwardOptions,
    device: &B::Device,
) -> LbAccumulator {
    let inner = model.valid();
    let mut acc = LbAccumulator::new();
    for batch in micro_batches {
        let tokens = batch.tensor::<B::InnerBackend>(device);
        let [batch, seq] = tokens.dims();
        acc.push(&inner.route(tokens.slice([0..batch, 0..seq - 1]), options));
    }
    acc
}
