//! `Linear` on the last dimension as one 2-D product (MODEL-18); the CPU
//! kernel is [`cpu::linear`].

use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module::linear;

use super::cpu_or_generic;

pub(crate) mod cpu;

/// `layer` applied to the last dimension of `x`, as one `[rows, in]` product
/// (MODEL-18): on the CPU backend one op with a hand-written backward
/// ([`cpu::linear`]), elsewhere Burn's `linear` on the
/// flattened rows; in `x`'s dtype, the parameters cast to it (MODEL-19).
///
/// Same values as `layer.forward(x)`; on a 3-D input Burn's linear would run
/// a batched matmul per leading index and, in backward, copy the transposed
/// weight to broadcast it and sum per-batch weight gradients. Flattening
/// first makes each of the three products one strided 2-D gemm.
///
/// # Shapes
/// - `x`: `[..., in]` → `[..., out]`
pub fn linear_rows<B: Backend, const D: usize>(layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    if D < 2 {
        return layer.forward(x);
    }
    let dims = x.dims();
    let d_in = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let x = x.reshape([rows, d_in]);
    // In the input's dtype: f32 master weights meet bf16 activations (MODEL-19).
    let weight = layer.weight.val().cast(x.dtype());
    let bias = layer.bias.as_ref().map(|b| b.val().cast(x.dtype()));
    let (w, b) = (weight.clone(), bias.clone());
    let y = cpu_or_generic(x, |x| cpu::linear(x, w, b), |x| linear(x, weight, bias)); // [rows, out]
    let mut out_dims = dims;
    out_dims[D - 1] = y.dims()[1];
    y.reshape(out_dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::NormalRng;
    use burn::module::Param;
    use burn::tensor::TensorData;
    use proptest::prelude::*;

    type Ad = crate::CpuAutodiff;

    fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    /// (y, ∂x, ∂W, ∂b) of Σ(g·y) through `linear_rows` or Burn's `Linear`.
    fn run(
        burn: bool,
        layer: &Linear<Ad>,
        x: &[f32],
        g: &[f32],
        dims: [usize; 3],
    ) -> [Vec<f32>; 4] {
        let [batch, seq, _] = dims;
        let d_out = layer.weight.dims()[1];
        let dev = Default::default();
        let xt = Tensor::<Ad, 3>::from_data(TensorData::new(x.to_vec(), dims), &dev).require_grad();
        let gt = Tensor::<Ad, 3>::from_data(TensorData::new(g.to_vec(), [batch, seq, d_out]), &dev);
        let y = if burn {
            layer.forward(xt.clone())
        } else {
            linear_rows(layer, xt.clone())
        };
        let grads = (y.clone() * gt).sum().backward();
        let bias = layer.bias.as_ref().unwrap().val();
        [
            values(y),
            values(xt.grad(&grads).unwrap()),
            values(layer.weight.val().grad(&grads).unwrap()),
            values(bias.grad(&grads).unwrap()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        // MODEL-18: the CPU op's output and the gradients of x, W and b
        // equal Burn's Linear on the 3-D input within 1e-5 of the largest
        // term, and the plain (no autodiff) output equals the autodiff one.
        #[test]
        fn model_18_cpu_linear_equals_burn(
            batch in 1usize..4,
            seq in 1usize..40,
            d_in in 1usize..50,
            d_out in 1usize..50,
            seed in 0u64..1000,
        ) {
            let mut rng = NormalRng::new(seed, 7);
            let layer = crate::init::linear::<Ad>(&mut rng, d_in, d_out, 0.5, true, &Default::default());
            let bias = Tensor::from_data(TensorData::new(rng.samples(d_out, 1.0), [d_out]), &Default::default());
            let layer = Linear { bias: Some(Param::from_tensor(bias)), ..layer };
            let x = rng.samples(batch * seq * d_in, 1.0);
            let g = rng.samples(batch * seq * d_out, 1.0);
            let dims = [batch, seq, d_in];
            let got = run(false, &layer, &x, &g, dims);
            let want = run(true, &layer, &x, &g, dims);
            for (what, (a, b)) in ["y", "dx", "dW", "db"].iter().zip(got.iter().zip(&want)) {
                let magnitude = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                let err = a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                prop_assert!(err <= 1e-5 * magnitude, "{what}: error {err} (magnitude {magnitude})");
            }
            let plain = Linear::<crate::CpuBackend> {
                weight: Param::from_tensor(layer.weight.val().inner()),
                bias: layer.bias.as_ref().map(|b| Param::from_tensor(b.val().inner())),
            };
            let dev = Default::default();
            let xp = Tensor::<crate::CpuBackend, 3>::from_data(TensorData::new(x.clone(), dims), &dev);
            prop_assert_eq!(values(linear_rows(&plain, xp)), got[0].clone());
        }
    }
}
