//! tanh-GELU, HF's `gelu_new`, with a hand-written derivative (MODEL-13).
//!
//! `gelu_new(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`. Recorded op by
//! op, autodiff would keep eight intermediates and differentiate each; here
//! the value is computed outside the graph and, under autodiff, so is the
//! derivative
//!
//! `gelu_new'(x) = 0.5·(1 + t)·(1 + x·(1 − t)·√(2/π)·(1 + 3·0.044715·x²))`,
//! `t = tanh(√(2/π)·(x + 0.044715·x³))`,
//!
//! which, with generic tensor ops (every backend but the CPU's), reaches the
//! graph through `y = stopgrad(y) + (x·d − stopgrad(x·d))` with `d` a
//! constant: one multiply in backward. On the CPU backend it is one op: value and
//! derivative from one multithreaded pass, backward one parallel multiply
//! ([`cpu::gelu_new_op`], MODEL-15). Both paths are within 1e-6 of HF's formula
//! (tests below).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::{constant, cpu_or_generic};

pub(crate) mod cpu;

/// √(2/π), as Burn's `gelu_approximate` computes it.
const SQRT_2_OVER_PI: f64 = core::f64::consts::FRAC_2_SQRT_PI * core::f64::consts::FRAC_1_SQRT_2;
/// The cubic coefficient of `gelu_new`.
const CUBIC: f64 = 0.044715;

/// HF `gelu_new` element-wise, with its derivative computed in one go under
/// autodiff (MODEL-13).
///
/// # Shapes
/// - `x`: any → same
pub fn gelu_new<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    cpu_or_generic(x, cpu::gelu_new_op, gelu_new_generic)
}

/// [`gelu_new`] on every backend but the CPU's: value and derivative from
/// [`gelu_new_by_ops`], the derivative attached through the surrogate.
fn gelu_new_generic<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let with_grad = B::ad_enabled(&x.device());
    match gelu_new_by_ops(constant(x.clone()), with_grad) {
        (y, Some(d)) => {
            let s = x * d;
            y + (s.clone() - s.detach())
        }
        (y, None) => y,
    }
}

/// `gelu_new` of a constant `x` and, when asked, its derivative, with
/// generic tensor ops: the version every backend but flex runs.
fn gelu_new_by_ops<B: Backend, const D: usize>(
    xd: Tensor<B, D>,
    with_derivative: bool,
) -> (Tensor<B, D>, Option<Tensor<B, D>>) {
    let x2 = xd.clone() * xd.clone();
    let inner = (xd.clone() + x2.clone() * xd.clone() * CUBIC) * SQRT_2_OVER_PI;
    let t1 = inner.tanh() + 1.0; // 1 + t
    let y = (xd.clone() * t1.clone()) * 0.5;
    if !with_derivative {
        return (y, None);
    }
    let q = x2 * (3.0 * CUBIC * SQRT_2_OVER_PI) + SQRT_2_OVER_PI;
    let one_minus_t = t1.clone().neg() + 2.0;
    let d = ((xd * one_minus_t * q + 1.0) * t1) * 0.5;
    (y, Some(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::NormalRng;
    use burn::tensor::TensorData;
    use burn::tensor::activation::gelu_approximate;
    use proptest::prelude::*;

    type Ad = crate::CpuAutodiff;

    fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    /// HF's formula in f64: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    fn hf(x: f64) -> f64 {
        0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
    }

    /// The CPU kernel's path and the generic one.
    const PATHS: [fn(Tensor<Ad, 2>) -> Tensor<Ad, 2>; 2] = [gelu_new, gelu_new_generic];

    /// (value, ∂Σ(g·y)/∂x) of `f` on `x` with upstream weights `g`.
    fn run(f: fn(Tensor<Ad, 2>) -> Tensor<Ad, 2>, x: &[f32], g: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let dev = Default::default();
        let shape = [1, x.len()];
        let xt =
            Tensor::<Ad, 2>::from_data(TensorData::new(x.to_vec(), shape), &dev).require_grad();
        let gt = Tensor::<Ad, 2>::from_data(TensorData::new(g.to_vec(), shape), &dev);
        let y = f(xt.clone());
        let grads = (y.clone() * gt).sum().backward();
        (values(y), values(xt.grad(&grads).unwrap()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        // MODEL-13, MODEL-15: on the CPU kernel (gelu_new here) and on the
        // generic ops (gelu_new_generic) the value is within 1e-6·max(1, |y|) of HF's
        // formula in f64 and of Burn's op-by-op gelu_approximate;
        // for any upstream gradient g the gradient equals autodiff of the
        // op-by-op version within 1e-6·max(1, |x|)·max(1, |g|) (both are f32
        // evaluations of terms as large as x·g).
        #[test]
        fn model_13_fused_gelu_equals_gelu_new(len in 1usize..200, scale in 0.01f64..8.0, seed in 0u64..1000) {
            let mut rng = NormalRng::new(seed, 1);
            let x = rng.samples(len, scale);
            let g = rng.samples(len, 1.0);
            let (y_ref, dx_ref) = run(gelu_approximate, &x, &g);
            for (y, dx) in PATHS.map(|f| run(f, &x, &g)) {
            for i in 0..len {
                let want = hf(x[i] as f64);
                prop_assert!((y[i] as f64 - want).abs() <= 1e-6 * want.abs().max(1.0), "x {}: {} vs {want}", x[i], y[i]);
                let tol = 1e-6 * (x[i].abs().max(1.0) * g[i].abs().max(1.0)) as f64;
                let err = (dx[i] as f64 - dx_ref[i] as f64).abs();
                prop_assert!(err <= tol, "x {}: gradient {} vs {}", x[i], dx[i], dx_ref[i]);
                prop_assert!((y[i] as f64 - y_ref[i] as f64).abs() <= 1e-6 * want.abs().max(1.0));
            }
            }
        }
    }

    // MODEL-13, MODEL-15: on both paths the derivative matches a central difference of HF's formula
    // in f64 (an independent check of the hand-written formula).
    #[test]
    fn model_13_derivative_matches_finite_difference() {
        let x: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.15).collect();
        let ones = vec![1.0; x.len()];
        for f in PATHS {
            let (_, dx) = run(f, &x, &ones);
            for (&xi, &d) in x.iter().zip(&dx) {
                let h = 1e-5;
                let want = (hf(xi as f64 + h) - hf(xi as f64 - h)) / (2.0 * h);
                assert!((d as f64 - want).abs() <= 1e-6, "x {xi}: {d} vs {want}");
            }
        }
    }
}
