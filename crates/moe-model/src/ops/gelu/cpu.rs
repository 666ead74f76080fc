//! `gelu_new` on the CPU (MODEL-13, MODEL-15): value and derivative in one
//! parallel pass, as a `burn-autodiff` `Backward` op whose backward is one
//! parallel multiply by the stored derivative.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, unary};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::ops::cpu::{CHUNK, exp_f32, f32s, off_flex, on_flex, run_op, tensor_of};

/// `gelu_new(x)` and its derivative at one point (MODEL-13), through
/// `gelu_new(x) = x·σ(2u)`, `u = √(2/π)·(x + 0.044715·x³)` (the same value as
/// `0.5·x·(1 + tanh u)`, without its cancellation for negative `x`):
/// `gelu_new'(x) = σ(2u)·(1 + 2x·(1 − σ(2u))·√(2/π)·(1 + 3·0.044715·x²))`.
#[inline(always)]
pub(crate) fn gelu_new_point(x: f32) -> (f32, f32) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const CUBIC: f32 = 0.044_715;
    let x2 = x * x;
    let u = SQRT_2_OVER_PI * (x + CUBIC * (x2 * x));
    let m = exp_f32(-2.0 * u); // e^{−2u}
    let s = 1.0 / (1.0 + m); // σ(2u)
    let one_minus_s = m * s;
    let q = SQRT_2_OVER_PI * (1.0 + (3.0 * CUBIC) * x2);
    (x * s, s * (1.0 + 2.0 * x * one_minus_s * q))
}

/// `gelu_new` of every element of `x`, and its derivative when asked, in one
/// parallel pass.
pub(crate) fn gelu_new(x: &FlexTensor, with_derivative: bool) -> (FlexTensor, Option<FlexTensor>) {
    let input = x.as_slice::<f32>().expect("to_flex gives contiguous f32");
    let shape = x.layout().shape().clone();
    let mut y = vec![0.0f32; input.len()];
    if !with_derivative {
        y.par_chunks_mut(CHUNK)
            .zip(input.par_chunks(CHUNK))
            .for_each(|(y, x)| {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = gelu_new_point(x).0;
                }
            });
        return (tensor_of(y, shape), None);
    }
    let mut d = vec![0.0f32; input.len()];
    y.par_chunks_mut(CHUNK)
        .zip(d.par_chunks_mut(CHUNK))
        .zip(input.par_chunks(CHUNK))
        .for_each(|((y, d), x)| {
            for ((y, d), &x) in y.iter_mut().zip(d.iter_mut()).zip(x) {
                (*y, *d) = gelu_new_point(x);
            }
        });
    (tensor_of(y, shape.clone()), Some(tensor_of(d, shape)))
}

/// `g ⊙ d`, element-wise in parallel.
fn multiply(g: &FlexTensor, d: &FlexTensor) -> FlexTensor {
    let g = g.to_contiguous();
    let (gs, ds) = (f32s(&g), f32s(d));
    assert_eq!(gs.len(), ds.len(), "gradient and derivative have one shape");
    let mut out = vec![0.0f32; gs.len()];
    out.par_chunks_mut(CHUNK)
        .zip(gs.par_chunks(CHUNK).zip(ds.par_chunks(CHUNK)))
        .for_each(|(o, (g, d))| {
            for ((o, &g), &d) in o.iter_mut().zip(g).zip(d) {
                *o = g * d;
            }
        });
    tensor_of(out, d.layout().shape().clone())
}

/// The derivative, kept for backward.
#[derive(Clone)]
struct Derivative(FlexTensor);

impl std::fmt::Debug for Derivative {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Derivative")
            .field(&self.0.layout().shape())
            .finish()
    }
}

/// The `burn-autodiff` op.
#[derive(Debug)]
struct GeluNew;

impl Backward<Flex, 1> for GeluNew {
    type State = Derivative;

    fn backward(self, ops: Ops<Derivative, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let Derivative(d) = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |g| multiply(&g, &d));
    }
}

/// `gelu_new(x)` on a CPU backend, differentiable under autodiff; `x` back
/// unchanged on any other backend.
pub(crate) fn gelu_new_op<B: Backend, const D: usize>(
    x: Tensor<B, D>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    let x = on_flex(x)?;
    Ok(off_flex(run_op(GeluNew, [x], |[x], tracked| {
        let (y, d) = gelu_new(&x, tracked);
        (y, d.map(Derivative))
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Shape;

    // MODEL-15: value, derivative and backward multiply are bit-identical
    // on 1 and 3 threads (many tasks).
    #[test]
    fn model_15_gelu_does_not_depend_on_threads() {
        let n = 70_001;
        let values = |k: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * k % 10007) as f32 / 1000.0) - 5.0)
                .collect()
        };
        let (x, g) = (values(7919), values(31));
        let run = |threads: usize| {
            crate::ops::cpu::on_threads(threads, || {
                let x = tensor_of(x.clone(), Shape::new([n]));
                let (y, d) = gelu_new(&x, true);
                let d = d.unwrap();
                let dx = multiply(&tensor_of(g.clone(), Shape::new([n])), &d);
                [y, d, dx].map(|t| f32s(&t).to_vec())
            })
        };
        assert_eq!(run(1), run(3));
    }
}
