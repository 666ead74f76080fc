//! `y = x·W + b` on the CPU as one op with a hand-written backward
//! (MODEL-18).
//!
//! Flex's matmul zero-fills each output and then copies it into an aligned
//! buffer, and the bias add and its backward sum run on one thread. Here
//! every product is one gemm into a buffer of our own (never zeroed: gemm
//! writes every element), parallel over rayon's pool: forward `y = x·W`,
//! then `+ b` row-parallel; backward `∂x = g·Wᵀ`, `∂W = xᵀ·g` and `∂b =
//! Σ g` summed in fixed blocks of rows, the blocks in order, so no result
//! depends on the number of threads.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::backend::Backend;
use burn::tensor::{Shape, Tensor};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::ops::cpu::{
    backward_parts, column_sums, f32s, matmul, off_flex, on_flex, run_op, tensor_of,
};

/// `x·W + b` for `x` `[rows, in]`, `W` `[in, out]`, `b` `[out]`.
fn forward(x: &FlexTensor, w: &FlexTensor, b: &[f32]) -> FlexTensor {
    let (rows, d_in) = (x.layout().shape()[0], x.layout().shape()[1]);
    let d_out = b.len();
    let mut y = matmul(f32s(x), false, f32s(w), false, [rows, d_out, d_in]);
    add_bias(&mut y, b);
    tensor_of(y, Shape::new([rows, d_out]))
}

/// `y[r] += b` for every row `r` of the row-major `y`, rows in parallel.
pub(crate) fn add_bias(y: &mut [f32], b: &[f32]) {
    if b.is_empty() {
        return;
    }
    y.par_chunks_mut(b.len()).for_each(|row| {
        row.iter_mut().zip(b).for_each(|(y, &b)| *y += b);
    });
}

/// `(∂x, ∂W, ∂b)` from the output gradient `g` `[rows, out]`.
fn backward(x: &FlexTensor, w: &FlexTensor, g: &FlexTensor) -> [FlexTensor; 3] {
    let g = g.to_contiguous();
    let (xs, ws, gs) = (f32s(x), f32s(w), f32s(&g));
    let (rows, d_in) = (x.layout().shape()[0], x.layout().shape()[1]);
    let d_out = w.layout().shape()[1];
    let dx = matmul(gs, false, ws, true, [rows, d_in, d_out]); // g·Wᵀ
    let dw = matmul(xs, true, gs, false, [d_in, d_out, rows]); // xᵀ·g
    let db = column_sums(gs, d_out);
    [
        tensor_of(dx, Shape::new([rows, d_in])),
        tensor_of(dw, Shape::new([d_in, d_out])),
        tensor_of(db, Shape::new([d_out])),
    ]
}

/// What backward needs: the input and the weight.
#[derive(Clone)]
struct State {
    x: FlexTensor,
    w: FlexTensor,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shape = |t: &FlexTensor| t.layout().shape().dims::<2>();
        f.debug_struct("State")
            .field("x", &shape(&self.x))
            .field("w", &shape(&self.w))
            .finish()
    }
}

/// The `burn-autodiff` op: parents `x`, `W`, `b`.
#[derive(Debug)]
struct LinearOp;

impl Backward<Flex, 3> for LinearOp {
    type State = State;

    fn backward(self, ops: Ops<State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        backward_parts(ops, grads, |State { x, w }, g| backward(&x, &w, &g));
    }
}

/// `x·W + b` for `x` `[rows, in]` on a CPU backend, differentiable under
/// autodiff; `x` back unchanged on any other backend or without a bias.
pub(crate) fn linear<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let Some(bias) = bias else { return Err(x) };
    let x = on_flex(x)?;
    let same = "x, W and b share a backend";
    let inputs = [x, on_flex(weight).expect(same), on_flex(bias).expect(same)];
    Ok(off_flex(run_op(LinearOp, inputs, |[x, w, b], tracked| {
        let y = forward(&x, &w, f32s(&b));
        (y, tracked.then_some(State { x, w }))
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    // MODEL-18: forward and backward are bit-identical on 1 and 3 threads
    // (more rows than one block of the bias sums).
    #[test]
    fn model_18_linear_does_not_depend_on_threads() {
        let (rows, d_in, d_out) = (70, 48, 136);
        let values = |n: usize, k: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * k % 1009) as f32 / 300.0) - 1.5)
                .collect()
        };
        let x = tensor_of(values(rows * d_in, 7919), Shape::new([rows, d_in]));
        let w = tensor_of(values(d_in * d_out, 31), Shape::new([d_in, d_out]));
        let g = tensor_of(values(rows * d_out, 104_729), Shape::new([rows, d_out]));
        let b = values(d_out, 37);
        let run = |threads: usize| {
            crate::ops::cpu::on_threads(threads, || {
                let y = forward(&x, &w, &b);
                let [dx, dw, db] = backward(&x, &w, &g);
                [y, dx, dw, db].map(|t| f32s(&t).to_vec())
            })
        };
        assert_eq!(run(1), run(3));
    }

    // MODEL-18: no rows (an expert that got no tokens): an empty output,
    // ∂x empty, ∂W and ∂b exactly zero.
    #[test]
    fn model_18_linear_of_no_rows() {
        let (d_in, d_out) = (5, 3);
        let x = tensor_of(Vec::new(), Shape::new([0, d_in]));
        let w = tensor_of(vec![1.0; d_in * d_out], Shape::new([d_in, d_out]));
        let g = tensor_of(Vec::new(), Shape::new([0, d_out]));
        assert!(f32s(&forward(&x, &w, &[0.5; 3])).is_empty());
        let [dx, dw, db] = backward(&x, &w, &g);
        assert!(f32s(&dx).is_empty());
        assert_eq!(f32s(&dw), vec![0.0; d_in * d_out].as_slice());
        assert_eq!(f32s(&db), [0.0; 3].as_slice());
    }
}
