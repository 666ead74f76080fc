//! Training history from `metrics.jsonl` (ANA-13): loss and throughput per
//! train row, expert shares and router entropy per layer over training, the
//! collapse timeline, and eval loss per domain.

use std::collections::BTreeMap;

use moe_train::config::CollapseSection;
use moe_train::metrics::{Event, StopReason};

use crate::load_balance::DEAD_THRESHOLD;
use crate::schema::{
    Collapse, EvalPoint, History, LayerCollapse, LayerHistory, StopInfo, Throughput, TrainPoint,
};

/// Builds the history from a run's events and its collapse settings.
pub fn history(events: &[Event], collapse: &CollapseSection) -> History {
    let mut train = Vec::new();
    let mut layers: BTreeMap<usize, LayerHistory> = BTreeMap::new();
    let mut eval = Vec::new();
    let mut stop = None;
    for event in events {
        match event {
            Event::Train {
                step,
                loss,
                lm_loss,
                lb_loss,
                tok_per_s,
                routing,
                ..
            } => {
                train.push(TrainPoint {
                    step: *step,
                    loss: *loss,
                    lm_loss: *lm_loss,
                    lb_loss: *lb_loss,
                    tok_per_s: *tok_per_s,
                });
                push_routing(&mut layers, *step, routing);
            }
            Event::Eval {
                step,
                loss,
                domains,
                ..
            } => eval.push(eval_point(*step, *loss, domains)),
            Event::Stop {
                step,
                reason,
                message,
            } => {
                stop = Some(StopInfo {
                    step: *step,
                    reason: reason.clone(),
                    message: message.clone(),
                })
            }
            _ => {}
        }
    }
    let layers: Vec<LayerHistory> = layers.into_values().collect();
    History {
        collapse: Collapse {
            threshold: collapse.threshold,
            checks: collapse.checks,
            layers: layers
                .iter()
                .map(|h| layer_collapse(h, collapse.threshold))
                .collect(),
            stopped_by_collapse: stop
                .as_ref()
                .is_some_and(|s| matches!(s.reason, StopReason::Collapse { .. })),
        },
        throughput: throughput(events, &train),
        train,
        layers,
        eval,
        stop,
    }
}

/// Adds one train row's routing to each layer's history.
fn push_routing(
    layers: &mut BTreeMap<usize, LayerHistory>,
    step: u64,
    routing: &[moe_train::metrics::RoutingSummary],
) {
    for r in routing {
        let h = layers.entry(r.layer).or_insert_with(|| LayerHistory {
            layer: r.layer,
            steps: Vec::new(),
            shares: Vec::new(),
            max_share: Vec::new(),
            entropy: Vec::new(),
        });
        h.steps.push(step);
        h.shares.push(r.shares.clone());
        h.max_share.push(r.max_share);
        h.entropy.push(r.entropy);
    }
}

/// An eval row: the total, each domain's loss and its per-block losses.
fn eval_point(
    step: u64,
    loss: f64,
    domains: &BTreeMap<String, moe_train::metrics::DomainEval>,
) -> EvalPoint {
    EvalPoint {
        step,
        loss,
        domains: domains.iter().map(|(d, e)| (d.clone(), e.loss)).collect(),
        blocks: domains
            .iter()
            .filter(|(_, e)| !e.block_losses.is_empty())
            .map(|(d, e)| (d.clone(), e.block_losses.clone()))
            .collect(),
    }
}

/// The collapse timeline of one layer.
pub fn layer_collapse(h: &LayerHistory, threshold: f64) -> LayerCollapse {
    let (longest, first_row) = moe_train::collapse::longest_same_expert_run(&h.shares, threshold);
    let first = first_row.map(|i| h.steps[i]);
    let (mut peak, mut peak_step, mut peak_expert) = (0.0, 0, 0);
    for (i, &m) in h.max_share.iter().enumerate() {
        if m > peak {
            peak = m;
            peak_step = h.steps[i];
            peak_expert = argmax(&h.shares[i]);
        }
    }
    let last = h.shares.last().cloned().unwrap_or_default();
    LayerCollapse {
        layer: h.layer,
        first_step_above: first,
        longest_run_above: longest,
        peak_max_share: peak,
        peak_step,
        peak_expert,
        final_max_share: h.max_share.last().copied().unwrap_or(0.0),
        final_dead_experts: last
            .iter()
            .enumerate()
            .filter(|(_, s)| **s < DEAD_THRESHOLD)
            .map(|(e, _)| e)
            .collect(),
    }
}

fn argmax(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f64::MIN),
            |best, (i, &x)| if x > best.1 { (i, x) } else { best },
        )
        .0
}

fn throughput(events: &[Event], train: &[TrainPoint]) -> Throughput {
    let start = events.iter().rev().find_map(|e| match e {
        Event::Start {
            device,
            params_total,
            params_active,
            tokens_per_step,
            ..
        } => Some((
            device.clone(),
            *params_total,
            *params_active,
            *tokens_per_step,
        )),
        _ => None,
    });
    let (device, params_total, params_active, tokens_per_step) =
        start.unwrap_or_else(|| ("unknown".into(), 0, 0, 0));
    let mut speeds: Vec<f64> = train
        .iter()
        .map(|t| t.tok_per_s)
        .filter(|v| v.is_finite())
        .collect();
    speeds.sort_by(f64::total_cmp);
    let median = match speeds.len() {
        0 => 0.0,
        n if n % 2 == 1 => speeds[n / 2],
        n => 0.5 * (speeds[n / 2 - 1] + speeds[n / 2]),
    };
    let steps_done = train.last().map_or(0, |t| t.step);
    let tokens_seen = steps_done * tokens_per_step;
    Throughput {
        device,
        params_total,
        params_active,
        tokens_per_step,
        steps_done,
        tokens_seen,
        median_tok_per_s: median,
        estimated_train_seconds: if median > 0.0 {
            tokens_seen as f64 / median
        } else {
            0.0
        },
    }
}
