//! GPT-2 (`GPT2LMHeadModel`, MODEL-3) with optional MoE blocks, top to
//! bottom: the forward options and outputs, [`Gpt2`] (embeddings, blocks,
//! final LayerNorm, LM head tied to the token embedding), [`Block`]
//! (pre-LayerNorm: `x + attn(ln_1(x))`, then `x + ffn(ln_2(x))`, the
//! feed-forward part the dense [`Mlp`] or [`MoeLayer`], MOE-1) and
//! [`Attention`]. The ops they call are in [`crate::ops`], the MoE layer in
//! [`crate::moe`], the MLP (also each expert) in `mlp.rs`.

use burn::module::Module;
use burn::nn::{Embedding, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::config::{ModelConfig, MoeConfig};
use crate::init;
use crate::moe::{ExpertMask, LayerRouting, MoeLayer, RouterNoise, mean_of};
use crate::ops::{LmLoss, causal_self_attention, linear_rows, lm_head_cross_entropy};

pub use crate::mlp::Mlp;
pub use crate::ops::LayerNorm;
use crate::precision::Precision;
use crate::seeds::{NormalRng, Stream};

/// Per-call inputs besides the tokens.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForwardOptions {
    /// Router logit noise for routing decisions (std 0 = none; the trainer
    /// anneals the std with [`noise_std_at`](crate::moe::noise_std_at) and
    /// derives the seed per step).
    pub router_noise: RouterNoise,
    /// The dtype of the blocks' matmuls and activations (MODEL-19).
    pub precision: Precision,
    /// Experts never chosen, per MoE block (MOE-14; eval only, for the
    /// causal analyses). Empty by default: nothing is masked.
    pub expert_mask: ExpertMask,
}

/// Router losses averaged over the MoE layers.
#[derive(Debug, Clone)]
pub struct AuxLosses<B: Backend> {
    /// Mean load-balancing loss (micro-batch scope). `[1]`
    pub lb: Tensor<B, 1>,
    /// Mean z-loss. `[1]`
    pub z: Tensor<B, 1>,
}

/// Everything a forward pass returns.
#[derive(Debug, Clone)]
pub struct ModelOutput<B: Backend> {
    /// Next-token logits. `[batch, seq, vocab]`
    pub logits: Tensor<B, 3>,
    /// One record per MoE block, in block order (empty for a dense model).
    pub routing: Vec<LayerRouting<B>>,
    /// Averaged router losses; `None` for a dense model.
    pub aux: Option<AuxLosses<B>>,
}

/// What [`Gpt2::lm_loss`] returns: the next-token loss instead of the logits.
#[derive(Debug, Clone)]
pub struct LmOutput<B: Backend> {
    /// Per-token cross-entropies `[batch * seq]` (row-major) and their mean.
    pub loss: LmLoss<B>,
    /// One record per MoE block, in block order (empty for a dense model).
    pub routing: Vec<LayerRouting<B>>,
    /// Averaged router losses; `None` for a dense model.
    pub aux: Option<AuxLosses<B>>,
}

/// GPT-2 with optional MoE blocks.
#[derive(Module, Debug)]
pub struct Gpt2<B: Backend> {
    /// Token embedding `[vocab, d_model]`, also the LM head.
    pub wte: Embedding<B>,
    /// Learned positions `[n_positions, d_model]`.
    pub wpe: Embedding<B>,
    /// The blocks.
    pub h: Vec<Block<B>>,
    /// Final LayerNorm.
    pub ln_f: LayerNorm<B>,
}

impl<B: Backend> Gpt2<B> {
    /// A fresh model with GPT-2's initialisation (N(0, 0.02²), residual
    /// projections N(0, (0.02/√(2·n_layer))²), LayerNorm 1/0), seeded (MODEL-5).
    /// `config` must be valid ([`ModelConfig::validate`]).
    pub fn init(config: &ModelConfig, seed: u64, device: &B::Device) -> Self {
        let g = &config.gpt2;
        let proj_std = 0.02 / (2.0 * g.n_layer as f64).sqrt();
        let mut rng = NormalRng::for_stream(seed, Stream::Embeddings);
        let wte = init::embedding(&mut rng, g.vocab_size, g.d_model, 0.02, device);
        let wpe = init::embedding(&mut rng, g.n_positions, g.d_model, 0.01, device);
        let h = (0..g.n_layer)
            .map(|i| {
                let mut rng = NormalRng::for_stream(seed, Stream::Block(i));
                let mlp = match config.moe_for_layer(i) {
                    Some(moe) => FeedForward::Moe(MoeLayer::init(
                        &mut rng, moe, i, g.d_model, g.d_ff, proj_std, device,
                    )),
                    None => {
                        FeedForward::Dense(Mlp::init(&mut rng, g.d_model, g.d_ff, proj_std, device))
                    }
                };
                Block {
                    ln_1: init::layer_norm(g.d_model, g.layer_norm_eps, device),
                    attn: Attention::init(&mut rng, g.d_model, g.n_head, proj_std, device),
                    ln_2: init::layer_norm(g.d_model, g.layer_norm_eps, device),
                    mlp,
                }
            })
            .collect();
        Self {
            wte,
            wpe,
            h,
            ln_f: init::layer_norm(g.d_model, g.layer_norm_eps, device),
        }
    }

    /// Replaces the MLP of every block in `moe.layers` by an MoE layer whose
    /// experts are copies of it (+ seeded noise, MOE-12). Blocks that are already
    /// MoE are left as they are.
    pub fn upcycle(mut self, moe: &MoeConfig, noise_std: f64, seed: u64) -> Self {
        for (i, block) in self.h.iter_mut().enumerate() {
            if let (true, FeedForward::Dense(mlp)) = (moe.is_moe_layer(i), &block.mlp) {
                block.mlp = FeedForward::Moe(MoeLayer::upcycle(mlp, moe, i, noise_std, seed));
            }
        }
        self
    }

    /// Gives every MoE block's router a balancing bias of zeros (MOE-15);
    /// routers that have one keep it.
    pub fn with_expert_bias(mut self) -> Self {
        for block in &mut self.h {
            if let FeedForward::Moe(moe) = &mut block.mlp {
                moe.router = moe.router.clone().with_zero_bias();
            }
        }
        self
    }

    /// The balancing bias of each MoE block that has one: (block, values).
    pub fn expert_biases(&self) -> Vec<(usize, Vec<f32>)> {
        self.h
            .iter()
            .enumerate()
            .filter_map(|(i, block)| match &block.mlp {
                FeedForward::Moe(moe) => moe.router.bias_values().map(|b| (i, b)),
                FeedForward::Dense(_) => None,
            })
            .collect()
    }

    /// One bias update per MoE block from its assignments per expert over
    /// an optimizer step (`loads[j]` for the j-th MoE block, MOE-15);
    /// blocks without a bias are left as they are.
    pub fn update_expert_bias(mut self, loads: &[Vec<u64>], rate: f64) -> Self {
        let moe_blocks = self.h.iter_mut().filter_map(|block| match &mut block.mlp {
            FeedForward::Moe(moe) => Some(moe),
            FeedForward::Dense(_) => None,
        });
        for (moe, load) in moe_blocks.zip(loads) {
            moe.router = moe.router.clone().update_expert_bias(load, rate);
        }
        self
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.wte.weight.dims()[0]
    }

    /// Longest sequence the position table covers.
    pub fn n_positions(&self) -> usize {
        self.wpe.weight.dims()[0]
    }

    /// Logits for `tokens`, the routing records of the MoE blocks and their
    /// averaged losses. Never does I/O. Token ids must be `< vocab_size` and
    /// `seq <= n_positions` (checked where input is read, not here).
    ///
    /// # Shapes
    /// - `tokens`: `[batch, seq]` → logits `[batch, seq, vocab]`
    pub fn forward(&self, tokens: Tensor<B, 2, Int>, options: &ForwardOptions) -> ModelOutput<B> {
        let (x, routing) = self.hidden_states(tokens, options); // [batch, seq, d_model]
        let [batch, seq, d_model] = x.dims();
        let out_dtype = x.dtype();
        let x = options.precision.compute(x);
        let head = self.wte.weight.val().cast(x.dtype()).transpose(); // [d_model, vocab]
        let logits = x
            .reshape([batch * seq, d_model])
            .matmul(head) // [batch * seq, vocab]
            .cast(out_dtype)
            .reshape([batch, seq, self.vocab_size()]);
        let aux = aux_losses(&routing);
        ModelOutput {
            logits,
            routing,
            aux,
        }
    }

    /// Cross-entropy of `targets` under the next-token distribution at each
    /// position of `inputs`, through the fused head + loss (MODEL-14): the
    /// logits never enter the autodiff graph. Same preconditions as
    /// [`forward`](Self::forward); the targets must be `< vocab_size`.
    ///
    /// # Shapes
    /// - `inputs`, `targets`: `[batch, seq]` → per-token losses `[batch * seq]`
    pub fn lm_loss(
        &self,
        inputs: Tensor<B, 2, Int>,
        targets: Tensor<B, 2, Int>,
        options: &ForwardOptions,
    ) -> LmOutput<B> {
        let (x, routing) = self.hidden_states(inputs, options); // [batch, seq, d_model]
        let [batch, seq, d_model] = x.dims();
        let loss = lm_head_cross_entropy(
            options.precision.compute(x).reshape([batch * seq, d_model]),
            self.wte.weight.val(),
            targets.reshape([batch * seq]),
        );
        let aux = aux_losses(&routing);
        LmOutput { loss, routing, aux }
    }

    /// The final LayerNorm's output (what the LM head multiplies) and the
    /// routing records.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, seq]` → `[batch, seq, d_model]`
    fn hidden_states(
        &self,
        tokens: Tensor<B, 2, Int>,
        options: &ForwardOptions,
    ) -> (Tensor<B, 3>, Vec<LayerRouting<B>>) {
        let (x, routing) = self.trunk(tokens, options, self.h.len());
        (self.ln_f.forward(x), routing)
    }

    /// The routing records alone: runs the blocks up to the last MoE block
    /// and stops there (no LM head). The same records as [`Gpt2::forward`]
    /// gives for the same tokens and options.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, seq]`
    pub fn route(
        &self,
        tokens: Tensor<B, 2, Int>,
        options: &ForwardOptions,
    ) -> Vec<LayerRouting<B>> {
        let last_moe = self
            .h
            .iter()
            .rposition(|b| matches!(b.mlp, FeedForward::Moe(_)))
            .map_or(0, |i| i + 1);
        self.trunk(tokens, options, last_moe).1
    }

    /// Embeddings and the first `n_blocks` blocks. `[batch, seq]` → `[batch, seq, d_model]`
    fn trunk(
        &self,
        tokens: Tensor<B, 2, Int>,
        options: &ForwardOptions,
        n_blocks: usize,
    ) -> (Tensor<B, 3>, Vec<LayerRouting<B>>) {
        let [batch, seq] = tokens.dims();
        let device = tokens.device();
        let positions = Tensor::<B, 1, Int>::arange(0..seq as i64, &device)
            .reshape([1, seq])
            .repeat_dim(0, batch); // [batch, seq]
        let mut x = self.wte.forward(tokens) + self.wpe.forward(positions); // [batch, seq, d_model]
        let mut routing = Vec::new();
        for (i, block) in self.h[..n_blocks].iter().enumerate() {
            let disabled = options.expert_mask.disabled_in(i);
            let (y, record) = block.forward(x, options.router_noise, options.precision, disabled);
            x = y;
            routing.extend(record);
        }
        (x, routing)
    }
}

/// Averages the per-layer router losses (MOE-10).
pub fn aux_losses<B: Backend>(routing: &[LayerRouting<B>]) -> Option<AuxLosses<B>> {
    let lb = mean_of(routing.iter().map(|r| r.lb_loss.clone()).collect())?;
    let z = mean_of(routing.iter().map(|r| r.z_loss.clone()).collect())?;
    Some(AuxLosses { lb, z })
}

/// The feed-forward half of a block.
#[derive(Module, Debug)]
pub enum FeedForward<B: Backend> {
    /// GPT-2's MLP.
    Dense(Mlp<B>),
    /// A Mixture-of-Experts layer.
    Moe(MoeLayer<B>),
}

/// A GPT-2 block (HF `GPT2Block`).
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// LayerNorm before attention.
    pub ln_1: LayerNorm<B>,
    /// Causal self-attention.
    pub attn: Attention<B>,
    /// LayerNorm before the feed-forward part.
    pub ln_2: LayerNorm<B>,
    /// Dense MLP or MoE layer.
    pub mlp: FeedForward<B>,
}

impl<B: Backend> Block<B> {
    /// Applies the block; an MoE block also returns its routing record.
    /// Attention and the feed-forward part run in `precision`'s dtype, the
    /// residual stream and the LayerNorms in `x`'s (MODEL-19). An MoE block
    /// never chooses the experts in `disabled` (MOE-14; empty: none).
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        noise: RouterNoise,
        precision: Precision,
        disabled: &[usize],
    ) -> (Tensor<B, 3>, Option<LayerRouting<B>>) {
        let stream = x.dtype();
        let a = self
            .attn
            .forward(precision.compute(self.ln_1.forward(x.clone()))); // [batch, seq, d_model]
        let x = x + a.cast(stream); // [batch, seq, d_model]
        let h = self.ln_2.forward(x.clone()); // [batch, seq, d_model]
        match &self.mlp {
            FeedForward::Dense(mlp) => (x + mlp.forward(precision.compute(h)).cast(stream), None),
            FeedForward::Moe(moe) => {
                let [batch, seq, d_model] = h.dims();
                let flat = h.reshape([batch * seq, d_model]); // [tokens, d_model]
                let (y, record) = moe.forward_masked(flat, noise, precision, disabled);
                (x + y.reshape([batch, seq, d_model]), Some(record))
            }
        }
    }
}

/// GPT-2 self-attention.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// `[d_model, 3 * d_model]`: q, k, v side by side (HF `c_attn`).
    pub c_attn: Linear<B>,
    /// `[d_model, d_model]` (HF `c_proj`).
    pub c_proj: Linear<B>,
    /// Number of heads.
    pub n_head: usize,
}

impl<B: Backend> Attention<B> {
    /// GPT-2 initialisation (see [`Mlp::init`]).
    pub fn init(
        rng: &mut NormalRng,
        d_model: usize,
        n_head: usize,
        proj_std: f64,
        device: &B::Device,
    ) -> Self {
        Self {
            c_attn: init::linear(rng, d_model, 3 * d_model, 0.02, true, device),
            c_proj: init::linear(rng, d_model, d_model, proj_std, true, device),
            n_head,
        }
    }

    /// Causal self-attention over the sequence.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, d_model]` → `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, seq, d_model] = x.dims();
        let qkv = linear_rows(&self.c_attn, x.reshape([batch * seq, d_model])); // [batch·seq, 3·d_model]
        let y = causal_self_attention(qkv, batch, self.n_head); // [batch·seq, d_model]
        linear_rows(&self.c_proj, y).reshape([batch, seq, d_model])
    }
}
