//! GPT-2's causal self-attention on the CPU as one op with a hand-written
//! backward (MODEL-16).
//!
//! Input: the `c_attn` output `qkv` `[batch·seq, 3·d_model]` (query, key,
//! value side by side, each `n_head` heads of `head_dim` columns); output:
//! the heads' results merged, `[batch·seq, d_model]`, the layout `c_proj`
//! reads. The generic version (narrow, reshape, swap, Burn's `attention`,
//! swap, reshape) copies each head out and back in both passes and records
//! ten element-wise ops per score matrix; here every (sequence, head) pair
//! is one rayon task that reads its strided columns of `qkv` in place and
//! writes its columns of the output:
//!
//! forward `S = scale·Q·Kᵀ`, causal softmax `P` (kept for backward), `O = P·V`;
//! backward `dV = Pᵀ·dO`, `dP = dO·Vᵀ`, `dS = P ⊙ (dP − rowsum(dP ⊙ P))`,
//! `dQ = scale·dS·K`, `dK = scale·dSᵀ·Q`.
//!
//! Under `Autodiff<Flex>` it is a `burn-autodiff` `Backward` op whose state
//! is `qkv` and `P`. Each task's output columns are its own, and each row is
//! reduced by one thread in a fixed order, so results do not depend on the
//! number of threads.

use std::sync::Arc;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, unary};
use burn::tensor::Shape;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::ops::cpu::{OnFlex, View, exp_f32, f32s, gemm_views, run_op, tensor_of};

/// The shapes of one attention call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    seq: usize,
    n_head: usize,
    head_dim: usize,
}

impl Dims {
    fn new(qkv: &FlexTensor, batch: usize, n_head: usize) -> Self {
        let shape = qkv.layout().shape();
        let (rows, width) = (shape[0], shape[1]);
        assert!(batch > 0 && rows % batch == 0, "qkv rows are batch·seq");
        assert!(
            width % (3 * n_head) == 0,
            "qkv is [rows, 3·n_head·head_dim]"
        );
        Self {
            batch,
            seq: rows / batch,
            n_head,
            head_dim: width / (3 * n_head),
        }
    }

    fn d_model(self) -> usize {
        self.n_head * self.head_dim
    }

    /// `1/√head_dim`, GPT-2's `scale_attn_weights`.
    fn scale(self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }

    /// The first element of (sequence `b`, head `h`)'s query in `qkv`; its
    /// key is `d_model` further, its value `2·d_model`.
    fn qkv_offset(self, b: usize, h: usize) -> usize {
        b * self.seq * 3 * self.d_model() + h * self.head_dim
    }

    /// The first element of (sequence `b`, head `h`)'s block of the output.
    fn out_offset(self, b: usize, h: usize) -> usize {
        b * self.seq * self.d_model() + h * self.head_dim
    }
}

/// A raw pointer that tasks writing disjoint parts of one buffer share.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: each task writes only its own (sequence, head) columns (Dims'
// offsets), so no two threads touch the same element.
unsafe impl Send for SharedMut {}
// SAFETY: as above.
unsafe impl Sync for SharedMut {}

/// A read-only raw pointer shared by the tasks.
#[derive(Clone, Copy)]
struct Shared(*const f32);
// SAFETY: only read while the op runs; the owner outlives the tasks.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

/// Forward pass: the merged heads `[batch·seq, d_model]` and the causal
/// softmax `P` `[batch·n_head·seq·seq]` (zero above the diagonal).
fn forward(qkv: &FlexTensor, dims: Dims) -> (FlexTensor, Vec<f32>) {
    let Dims { seq, n_head, .. } = dims;
    let (d, w3) = (dims.d_model() as isize, 3 * dims.d_model() as isize);
    let qkv_ptr = Shared(f32s(qkv).as_ptr());
    let mut out = Vec::<f32>::with_capacity(dims.batch * seq * dims.d_model());
    let out_ptr = SharedMut(out.as_mut_ptr());
    let mut probs = vec![0.0f32; dims.batch * n_head * seq * seq];
    let par = gemm::Parallelism::None;
    probs
        .par_chunks_mut(seq * seq)
        .enumerate()
        .for_each(|(task, p)| {
            let (b, h) = (task / n_head, task % n_head);
            let (qkv_ptr, out_ptr) = (qkv_ptr, out_ptr);
            // SAFETY: the offsets stay inside qkv `[batch·seq, 3·d]` and out
            // `[batch·seq, d]`; this task alone writes its head's columns of out
            // (all of them: O is [seq, head_dim]) and its own `p`.
            unsafe {
                let q = qkv_ptr.0.add(dims.qkv_offset(b, h));
                let (k, v) = (q.offset(d), q.offset(2 * d));
                let q = View::new(q, w3, 1);
                let k = View::new(k, w3, 1);
                let sizes = [seq, seq, dims.head_dim];
                gemm_views(
                    sizes,
                    p.as_mut_ptr(),
                    seq as isize,
                    false,
                    q,
                    k.t(),
                    dims.scale(),
                    par,
                );
                causal_softmax(p, seq);
                let o = out_ptr.0.add(dims.out_offset(b, h));
                let p_view = View::new(p.as_ptr(), seq as isize, 1);
                let sizes = [seq, dims.head_dim, seq];
                gemm_views(sizes, o, d, false, p_view, View::new(v, w3, 1), 1.0, par);
            }
        });
    // SAFETY: the tasks wrote every element: each (b, h) its seq rows of
    // head_dim columns, and the pairs tile [batch·seq, d_model].
    unsafe { out.set_len(dims.batch * seq * dims.d_model()) };
    let shape = Shape::new([dims.batch * seq, dims.d_model()]);
    (tensor_of(out, shape), probs)
}

/// Row `i` of `p` `[seq, seq]` (scores) becomes the softmax of its first
/// `i + 1` entries, followed by zeros.
fn causal_softmax(p: &mut [f32], seq: usize) {
    for (i, row) in p.chunks_exact_mut(seq).enumerate() {
        let (seen, future) = row.split_at_mut(i + 1);
        let max = seen.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0.0f32;
        for v in seen.iter_mut() {
            *v = exp_f32(*v - max);
            sum += *v;
        }
        let inv = 1.0 / sum;
        seen.iter_mut().for_each(|v| *v *= inv);
        future.fill(0.0);
    }
}

/// Backward pass: `∂qkv` `[batch·seq, 3·d_model]` from the output's
/// gradient `[batch·seq, d_model]`.
fn backward(qkv: &FlexTensor, probs: &[f32], grad: &FlexTensor, dims: Dims) -> FlexTensor {
    let Dims { seq, n_head, .. } = dims;
    let (d, w3) = (dims.d_model() as isize, 3 * dims.d_model() as isize);
    let grad = grad.to_contiguous();
    let (qkv_ptr, dout_ptr) = (Shared(f32s(qkv).as_ptr()), Shared(f32s(&grad).as_ptr()));
    let len = dims.batch * seq * 3 * dims.d_model();
    let mut dqkv = Vec::<f32>::with_capacity(len);
    let dqkv_ptr = SharedMut(dqkv.as_mut_ptr());
    let par = gemm::Parallelism::None;
    let scale = dims.scale();
    probs
        .par_chunks(seq * seq)
        .enumerate()
        .for_each(|(task, p)| {
            let (b, h) = (task / n_head, task % n_head);
            let (qkv_ptr, dout_ptr, dqkv_ptr) = (qkv_ptr, dout_ptr, dqkv_ptr);
            let mut ds = vec![0.0f32; seq * seq];
            // SAFETY: offsets as in `forward`; this task alone writes its head's
            // query, key and value columns of dqkv, each [seq, head_dim] in full.
            unsafe {
                let q = qkv_ptr.0.add(dims.qkv_offset(b, h));
                let (q, k, v) = (
                    View::new(q, w3, 1),
                    View::new(q.offset(d), w3, 1),
                    View::new(q.offset(2 * d), w3, 1),
                );
                let dout = View::new(dout_ptr.0.add(dims.out_offset(b, h)), d, 1);
                let p_view = View::new(p.as_ptr(), seq as isize, 1);
                let dq = dqkv_ptr.0.add(dims.qkv_offset(b, h));
                let (dk, dv) = (dq.offset(d), dq.offset(2 * d));
                let hd = dims.head_dim;
                gemm_views([seq, hd, seq], dv, w3, false, p_view.t(), dout, 1.0, par); // dV = Pᵀ·dO
                let ds_ptr = ds.as_mut_ptr();
                gemm_views(
                    [seq, seq, hd],
                    ds_ptr,
                    seq as isize,
                    false,
                    dout,
                    v.t(),
                    1.0,
                    par,
                ); // dP
                softmax_backward(&mut ds, p, seq);
                let ds_view = View::new(ds.as_ptr(), seq as isize, 1);
                gemm_views([seq, hd, seq], dq, w3, false, ds_view, k, scale, par); // dQ
                gemm_views([seq, hd, seq], dk, w3, false, ds_view.t(), q, scale, par); // dK
            }
        });
    // SAFETY: the tasks wrote every element (their q, k and v columns tile
    // the rows of [batch·seq, 3·d_model]).
    unsafe { dqkv.set_len(len) };
    tensor_of(dqkv, Shape::new([dims.batch * seq, 3 * dims.d_model()]))
}

/// `dP` → `dS = P ⊙ (dP − rowsum(dP ⊙ P))` in place, row by row (entries
/// above the diagonal, where `P` is 0, become 0).
fn softmax_backward(dp: &mut [f32], p: &[f32], seq: usize) {
    for (dp, p) in dp.chunks_exact_mut(seq).zip(p.chunks_exact(seq)) {
        let dot: f32 = dp.iter().zip(p).map(|(&g, &p)| g * p).sum();
        for (g, &p) in dp.iter_mut().zip(p) {
            *g = p * (*g - dot);
        }
    }
}

/// The state backward needs: the input and the probabilities.
#[derive(Clone)]
struct State {
    qkv: FlexTensor,
    probs: Arc<Vec<f32>>,
    dims: Dims,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("dims", &self.dims).finish()
    }
}

/// The `burn-autodiff` op.
#[derive(Debug)]
struct CausalAttention;

impl Backward<Flex, 1> for CausalAttention {
    type State = State;

    fn backward(self, ops: Ops<State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let State { qkv, probs, dims } = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            backward(&qkv, &probs, &grad, dims)
        });
    }
}

/// Causal self-attention of `qkv` on a CPU backend, differentiable under
/// autodiff (see the module docs).
///
/// # Panics
/// When `qkv` is not `[batch·seq, 3·n_head·head_dim]`.
pub(crate) fn causal_self_attention(qkv: OnFlex, batch: usize, n_head: usize) -> OnFlex {
    run_op(CausalAttention, [qkv], |[qkv], tracked| {
        let dims = Dims::new(&qkv, batch, n_head);
        let (out, probs) = forward(&qkv, dims);
        let probs = Arc::new(probs);
        (out, tracked.then(|| State { qkv, probs, dims }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // MODEL-16: forward and backward are bit-identical on 1 and 3 threads.
    #[test]
    fn model_16_attention_does_not_depend_on_threads() {
        let (batch, seq, n_head, head_dim) = (2, 33, 3, 8);
        let d = n_head * head_dim;
        let values = |n: usize, k: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * k % 1009) as f32 / 500.0) - 1.0)
                .collect()
        };
        let qkv = tensor_of(
            values(batch * seq * 3 * d, 7919),
            Shape::new([batch * seq, 3 * d]),
        );
        let grad = tensor_of(
            values(batch * seq * d, 104_729),
            Shape::new([batch * seq, d]),
        );
        let run = |threads: usize| {
            crate::ops::cpu::on_threads(threads, || {
                let dims = Dims::new(&qkv, batch, n_head);
                let (out, probs) = forward(&qkv, dims);
                let dqkv = backward(&qkv, &probs, &grad, dims);
                [f32s(&out).to_vec(), probs, f32s(&dqkv).to_vec()]
            })
        };
        assert_eq!(run(1), run(3));
    }
}
