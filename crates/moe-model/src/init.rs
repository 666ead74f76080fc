//! Seeded parameter initialisation on the host, identical on every backend.
//!
//! Values are drawn with ChaCha8 and a Box-Muller transform, then uploaded, so a
//! model built from the same seed is bit-identical on the CPU and on CUDA.

use burn::module::Param;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::norm::LayerNorm;

/// A deterministic stream of normal samples.
pub struct NormalRng {
    rng: ChaCha8Rng,
    spare: Option<f64>,
}

impl NormalRng {
    /// A stream for `seed` and a `stream` number (e.g. layer and expert index).
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Self { rng, spare: None }
    }

    /// One sample of N(0, 1).
    pub fn sample(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        // Box-Muller: u1 in (0, 1] so that ln(u1) is finite.
        let u1: f64 = 1.0 - self.rng.random::<f64>();
        let u2: f64 = self.rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }

    /// `n` samples of N(0, std²) as f32.
    pub fn samples(&mut self, n: usize, std: f64) -> Vec<f32> {
        (0..n).map(|_| (self.sample() * std) as f32).collect()
    }
}

/// A float tensor of `shape` filled with N(0, std²) from `rng`.
pub fn normal_tensor<B: Backend, const D: usize>(
    rng: &mut NormalRng,
    shape: [usize; D],
    std: f64,
    device: &B::Device,
) -> Tensor<B, D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(rng.samples(n, std), shape), device)
}

/// A `Linear` `[d_in, d_out]` with N(0, std²) weights and zero bias (GPT-2 init).
pub fn linear<B: Backend>(
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
pub fn linear_from<B: Backend>(weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Linear<B> {
    let [d_in, d_out] = weight.dims();
    let mut layer = LinearConfig::new(d_in, d_out)
        .with_bias(bias.is_some())
        .init::<B>(&weight.device());
    layer.weight = Param::from_tensor(weight);
    layer.bias = bias.map(Param::from_tensor);
    layer
}

/// An `Embedding` `[n, d]` with N(0, std²) rows.
pub fn embedding<B: Backend>(
    rng: &mut NormalRng,
    n: usize,
    d: usize,
    std: f64,
    device: &B::Device,
) -> Embedding<B> {
    embedding_from(normal_tensor(rng, [n, d], std, device))
}

/// An `Embedding` with the given table `[n, d]`.
pub fn embedding_from<B: Backend>(weight: Tensor<B, 2>) -> Embedding<B> {
    let [n, d] = weight.dims();
    let mut layer = EmbeddingConfig::new(n, d).init::<B>(&weight.device());
    layer.weight = Param::from_tensor(weight);
    layer
}

/// A `LayerNorm` over `d` with the given scale and shift (`weight`/`bias` in HF).
pub fn layer_norm_from<B: Backend>(
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
pub fn layer_norm<B: Backend>(d: usize, eps: f64, device: &B::Device) -> LayerNorm<B> {
    layer_norm_from(Tensor::ones([d], device), Tensor::zeros([d], device), eps)
}

#[cfg(test)]
mod tests {
    use super::*;

    // MODEL-5
    #[test]
    fn model_5_normal_rng_is_seeded_and_roughly_standard() {
        let a = NormalRng::new(7, 1).samples(20_000, 1.0);
        let b = NormalRng::new(7, 1).samples(20_000, 1.0);
        let c = NormalRng::new(7, 2).samples(20_000, 1.0);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
    }
}
