//! The GPT-2 MLP: `c_fc` → tanh-GELU → `c_proj` (HF `GPT2MLP`, MODEL-3).
//!
//! Also the unit an MoE expert is made of, so an upcycled expert is literally a
//! copy of the dense MLP.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::gelu::gelu_new;
use crate::init::{self, NormalRng};

/// Two linear maps around a tanh-approximated GELU (`gelu_new` in HF, fused:
/// MODEL-13).
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `[d_model, d_ff]` (HF `c_fc`, Conv1D layout `[in, out]`).
    pub c_fc: Linear<B>,
    /// `[d_ff, d_model]` (HF `c_proj`).
    pub c_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// GPT-2 initialisation: N(0, 0.02²) for `c_fc`, `proj_std` for `c_proj`, zero biases.
    pub fn init(
        rng: &mut NormalRng,
        d_model: usize,
        d_ff: usize,
        proj_std: f64,
        device: &B::Device,
    ) -> Self {
        Self {
            c_fc: init::linear(rng, d_model, d_ff, 0.02, true, device),
            c_proj: init::linear(rng, d_ff, d_model, proj_std, true, device),
        }
    }

    /// Applies the MLP to the last dimension.
    ///
    /// # Shapes
    /// - `x`: `[..., d_model]` → `[..., d_model]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let h = linear_rows(&self.c_fc, x); // [..., d_ff]
        linear_rows(&self.c_proj, gelu_new(h)) // [..., d_model]
    }

    /// A copy with fresh parameter ids, each weight plus N(0, noise_std²) from
    /// `rng` (no noise is drawn when `noise_std == 0`), detached from any graph.
    pub fn perturbed_copy(&self, rng: &mut NormalRng, noise_std: f64) -> Self {
        Self {
            c_fc: perturb_linear(&self.c_fc, rng, noise_std),
            c_proj: perturb_linear(&self.c_proj, rng, noise_std),
        }
    }
}

/// `layer` applied to the last dimension of `x`, as one `[rows, in]` matmul.
///
/// Same values as `layer.forward(x)`; on a 3-D input Burn's linear would run
/// a batched matmul per leading index and, in backward, copy the transposed
/// weight to broadcast it and sum per-batch weight gradients. Flattening
/// first makes each of the three matmuls one strided 2-D `gemm` (flex).
///
/// # Shapes
/// - `x`: `[..., in]` → `[..., out]`
pub(crate) fn linear_rows<B: Backend, const D: usize>(
    layer: &Linear<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    if D <= 2 {
        return layer.forward(x);
    }
    let dims = x.dims();
    let d_in = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let y = layer.forward(x.reshape([rows, d_in])); // [rows, out]
    let mut out_dims = dims;
    out_dims[D - 1] = y.dims()[1];
    y.reshape(out_dims)
}

fn perturb_linear<B: Backend>(layer: &Linear<B>, rng: &mut NormalRng, std: f64) -> Linear<B> {
    let weight = perturb(layer.weight.val(), rng, std);
    let bias = layer.bias.as_ref().map(|b| perturb(b.val(), rng, std));
    let mut copy = layer.clone();
    copy.weight = Param::from_tensor(weight);
    copy.bias = bias.map(Param::from_tensor);
    copy
}

fn perturb<B: Backend, const D: usize>(
    t: Tensor<B, D>,
    rng: &mut NormalRng,
    std: f64,
) -> Tensor<B, D> {
    let t = t.detach();
    if std == 0.0 {
        return t;
    }
    let dims = t.dims();
    let noise = init::normal_tensor::<B, D>(rng, dims, std, &t.device());
    // Detach again: a parameter must be a leaf of the autodiff graph.
    (t + noise).detach()
}
