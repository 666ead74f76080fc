//! GPT-2's parameter initialisers and the upcycling perturbation, drawn on
//! the host from [`NormalRng`] streams and uploaded, so a model built from
//! the same seed is bit-identical on every backend (MODEL-5).

use crate::ops::LayerNorm;
use crate::seeds::NormalRng;
use burn::module::Param;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// A float tensor of `shape` filled with N(0, std²) from `rng`.
pub(crate) fn normal_tensor<B: Backend, const D: usize>(
    rng: &mut NormalRng,
    shape: [usize; D],
    std: f64,
    device: &B::Device,
) -> Tensor<B, D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(rng.samples(n, std), shape), device)
}

/// A `Linear` `[d_in, d_out]` with N(0, std²) weights and zero bias (GPT-2 init).
pub(crate) fn linear<B: Backend>(
    rng: &mut NormalRng,
    d_in: usize,
    d_out: usize,
    std: f64,
    bias: bool,
    device: &B::Device,
) -> Linear<B> {
    let mut layer = LinearConfig::new(d_in, d_out)
        .with_bias(bias)
        .init::<B>(device);
    layer.weight = Param::from_tensor(normal_tensor(rng, [d_in, d_out], std, device));
    layer.bias = bias.then(|| Param::from_tensor(Tensor::zeros([d_out], device)));
    layer
}

/// A `Linear` with the given weight `[d_in, d_out]` and bias `[d_out]`.
pub(crate) fn linear_from<B: Backend>(
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Linear<B> {
    let [d_in, d_out] = weight.dims();
    let mut layer = LinearConfig::new(d_in, d_out)
        .with_bias(bias.is_some())
        .init::<B>(&weight.device());
    layer.weight = Param::from_tensor(weight);
    layer.bias = bias.map(Param::from_tensor);
    layer
}

/// An `Embedding` `[n, d]` with N(0, std²) rows.
pub(crate) fn embedding<B: Backend>(
    rng: &mut NormalRng,
    n: usize,
    d: usize,
    std: f64,
    device: &B::Device,
) -> Embedding<B> {
    embedding_from(normal_tensor(rng, [n, d], std, device))
}

/// An `Embedding` with the given table `[n, d]`.
pub(crate) fn embedding_from<B: Backend>(weight: Tensor<B, 2>) -> Embedding<B> {
    let [n, d] = weight.dims();
    let mut layer = EmbeddingConfig::new(n, d).init::<B>(&weight.device());
    layer.weight = Param::from_tensor(weight);
    layer
}

/// A `LayerNorm` over `d` with the given scale and shift (`weight`/`bias` in HF).
pub(crate) fn layer_norm_from<B: Backend>(
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f64,
) -> LayerNorm<B> {
    LayerNorm {
        gamma: Param::from_tensor(gamma),
        beta: Some(Param::from_tensor(beta)),
        epsilon: eps,
    }
}

/// A `LayerNorm` over `d` with scale 1 and shift 0.
pub(crate) fn layer_norm<B: Backend>(d: usize, eps: f64, device: &B::Device) -> LayerNorm<B> {
    layer_norm_from(Tensor::ones([d], device), Tensor::zeros([d], device), eps)
}

/// A copy of `layer` with each parameter plus N(0, std²) from `rng`,
/// detached (upcycling noise, MOE-12).
pub(crate) fn perturb_linear<B: Backend>(
    layer: &Linear<B>,
    rng: &mut NormalRng,
    std: f64,
) -> Linear<B> {
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
    let noise = normal_tensor::<B, D>(rng, dims, std, &t.device());
    // Detach again: a parameter must be a leaf of the autodiff graph.
    (t + noise).detach()
}
