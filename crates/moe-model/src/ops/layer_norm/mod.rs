//! GPT-2's LayerNorm (HF `nn.LayerNorm`, MODEL-17): `(x − mean)/√(var + ε)·γ
//! + β` over the last dimension, biased variance.
//!
//! The same parameters as Burn's `LayerNorm` (`gamma`, `beta`, `epsilon`),
//! with ε readable: on the CPU backends one kernel with a hand-written
//! backward ([`cpu::layer_norm`]); elsewhere Burn's `layer_norm`.

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};

use super::cpu_or_generic;

pub(crate) mod cpu;

/// LayerNorm over the last dimension.
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// Scale `[d]` (HF `weight`).
    pub gamma: Param<Tensor<B, 1>>,
    /// Shift `[d]` (HF `bias`).
    pub beta: Option<Param<Tensor<B, 1>>>,
    /// Added to the variance.
    pub epsilon: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// Normalises the last dimension of `x`.
    ///
    /// # Shapes
    /// - `x`: `[..., d]` → same
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dims = x.dims();
        let d = dims[D - 1];
        let rows = x.shape().num_elements() / d.max(1);
        let gamma = self.gamma.val();
        let beta = self.beta.as_ref().map(|b| b.val());
        let (g, b) = (gamma.clone(), beta.clone());
        cpu_or_generic(
            x.reshape([rows, d]),
            |x| cpu::layer_norm(x, g, b, self.epsilon),
            |x| layer_norm_by_ops(x, gamma, beta, self.epsilon),
        )
        .reshape(dims)
    }
}

/// [`LayerNorm::forward`] through Burn's `layer_norm`.
pub fn layer_norm_by_ops<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Option<Tensor<B, 1>>,
    epsilon: f64,
) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(B::layer_norm(
        x.into_primitive().tensor(),
        gamma.into_primitive().tensor(),
        beta.map(|b| b.into_primitive().tensor()),
        epsilon,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::layer_norm_from;
    use crate::seeds::NormalRng;
    use burn::tensor::TensorData;
    use proptest::prelude::*;

    type Ad = crate::CpuAutodiff;

    fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    /// (y, ∂x, ∂γ, ∂β) of Σ(g·y) for the CPU op (`by_ops` false) or Burn's.
    fn run(by_ops: bool, x: &[f32], gamma: &[f32], beta: &[f32], g: &[f32]) -> [Vec<f32>; 4] {
        let dev = Default::default();
        let d = gamma.len();
        let shape = [x.len() / d, d];
        let xt =
            Tensor::<Ad, 2>::from_data(TensorData::new(x.to_vec(), shape), &dev).require_grad();
        let gt = Tensor::<Ad, 2>::from_data(TensorData::new(g.to_vec(), shape), &dev);
        let norm = layer_norm_from(
            Tensor::<Ad, 1>::from_floats(gamma, &dev),
            Tensor::<Ad, 1>::from_floats(beta, &dev),
            1e-5,
        );
        let y = if by_ops {
            layer_norm_by_ops(
                xt.clone(),
                norm.gamma.val(),
                norm.beta.as_ref().map(|b| b.val()),
                1e-5,
            )
        } else {
            norm.forward(xt.clone())
        };
        let grads = (y.clone() * gt).sum().backward();
        let grad_of = |p: &Param<Tensor<Ad, 1>>| values(p.val().grad(&grads).unwrap());
        [
            values(y),
            values(xt.grad(&grads).unwrap()),
            grad_of(&norm.gamma),
            grad_of(norm.beta.as_ref().unwrap()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        // MODEL-17: the CPU op's output and the gradients of x, γ and β
        // equal Burn's op-by-op layer_norm within 1e-4 relative to the
        // largest term (1/σ of the rows scales ∂x), without autodiff too.
        #[test]
        fn model_17_cpu_layer_norm_equals_burn(
            rows in 1usize..40,
            d in 1usize..70,
            shift in -3.0f64..3.0,
            scale in 0.01f64..4.0,
            seed in 0u64..1000,
        ) {
            let mut rng = NormalRng::new(seed, 5);
            let x: Vec<f32> = rng.samples(rows * d, scale).iter().map(|v| v + shift as f32).collect();
            let gamma = rng.samples(d, 1.0);
            let beta = rng.samples(d, 1.0);
            let g = rng.samples(rows * d, 1.0);
            let got = run(false, &x, &gamma, &beta, &g);
            let want = run(true, &x, &gamma, &beta, &g);
            for (what, (a, b)) in ["y", "dx", "dgamma", "dbeta"].iter().zip(got.iter().zip(&want)) {
                let magnitude = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                let err = a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                prop_assert!(err <= 1e-4 * magnitude, "{what}: error {err} (magnitude {magnitude})");
            }
            let dev = Default::default();
            let plain = layer_norm_from::<crate::CpuBackend>(
                Tensor::from_floats(gamma.as_slice(), &dev),
                Tensor::from_floats(beta.as_slice(), &dev),
                1e-5,
            );
            let xp = Tensor::<crate::CpuBackend, 2>::from_data(TensorData::new(x.clone(), [rows, d]), &dev);
            prop_assert_eq!(values(plain.forward(xp)), got[0].clone());
        }
    }
}
