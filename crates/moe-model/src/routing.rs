//! Per-layer routing records returned by every forward pass (MOE-11).
//!
//! Tensors stay on the device; [`RoutingRecord::to_host`] copies one to plain
//! vectors for logs, analysis and `moe model logits --routing`.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

/// What one MoE layer did with one batch.
#[derive(Debug, Clone)]
pub struct RoutingRecord<B: Backend> {
    /// Block index of the layer.
    pub layer: usize,
    /// Chosen experts, best first. `[tokens, top_k]`
    pub expert_idx: Tensor<B, 2, Int>,
    /// Router probability of each chosen expert (detached). `[tokens, top_k]`
    pub gate_prob: Tensor<B, 2>,
    /// Entropy of the clean router distribution, nats (detached). `[tokens]`
    pub entropy: Tensor<B, 1>,
    /// f: fraction of tokens whose top-1 is each expert (detached). `[n_experts]`
    pub f: Tensor<B, 1>,
    /// P: mean clean router probability of each expert (differentiable). `[n_experts]`
    pub p_mean: Tensor<B, 1>,
    /// Load-balancing loss of this layer, `N Σ f P`. `[1]`
    pub lb_loss: Tensor<B, 1>,
    /// z-loss of this layer. `[1]`
    pub z_loss: Tensor<B, 1>,
    /// Assignments per expert before capacity (all `top_k` choices).
    pub tokens_per_expert: Vec<usize>,
    /// Assignments dropped by the capacity limit (0 when dropless).
    pub dropped: usize,
    /// Tokens routed (batch × sequence).
    pub n_tokens: usize,
}

/// A [`RoutingRecord`] copied to the host, serializable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRoutingRecord {
    /// Block index of the layer.
    pub layer: usize,
    /// Chosen experts per token, best first.
    pub expert_idx: Vec<Vec<u32>>,
    /// Router probability of each chosen expert.
    pub gate_prob: Vec<Vec<f32>>,
    /// Clean router entropy per token (nats).
    pub entropy: Vec<f32>,
    /// Top-1 fraction per expert.
    pub f: Vec<f32>,
    /// Mean clean probability per expert.
    pub p_mean: Vec<f32>,
    /// Load-balancing loss.
    pub lb_loss: f32,
    /// z-loss.
    pub z_loss: f32,
    /// Assignments per expert before capacity.
    pub tokens_per_expert: Vec<usize>,
    /// Dropped assignments.
    pub dropped: usize,
}

impl<B: Backend> RoutingRecord<B> {
    /// Copies the record to the host (a device sync; for logging, not the hot path).
    pub fn to_host(&self) -> HostRoutingRecord {
        let [_, top_k] = self.expert_idx.dims();
        let rows = |flat: Vec<f32>| flat.chunks(top_k.max(1)).map(<[f32]>::to_vec).collect();
        let idx: Vec<u32> = self
            .expert_idx
            .to_data()
            .iter::<i64>()
            .map(|v| v as u32)
            .collect();
        HostRoutingRecord {
            layer: self.layer,
            expert_idx: idx.chunks(top_k.max(1)).map(<[u32]>::to_vec).collect(),
            gate_prob: rows(floats(&self.gate_prob.to_data())),
            entropy: floats(&self.entropy.to_data()),
            f: floats(&self.f.to_data()),
            p_mean: floats(&self.p_mean.to_data()),
            lb_loss: floats(&self.lb_loss.to_data())
                .first()
                .copied()
                .unwrap_or(f32::NAN),
            z_loss: floats(&self.z_loss.to_data())
                .first()
                .copied()
                .unwrap_or(f32::NAN),
            tokens_per_expert: self.tokens_per_expert.clone(),
            dropped: self.dropped,
        }
    }
}

fn floats(data: &burn::tensor::TensorData) -> Vec<f32> {
    data.iter::<f32>().collect()
}
