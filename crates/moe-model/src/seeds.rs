//! Every random draw of the model, each from its own named stream.
//!
//! A [`Stream`] names what a draw is for; [`NormalRng::new`] turns (seed,
//! stream number) into a ChaCha8 stream of N(0, 1) samples (Box-Muller).
//! The data pipeline and the analysis have their own named streams
//! (`moe_data::seeded`); the trainer's per-step router-noise seed is
//! [`router_noise_seed`].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// What a model's random draw is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The token and position embeddings of a fresh model.
    Embeddings,
    /// Everything else of block `i` of a fresh model (attention, MLP or
    /// experts, router), drawn in that order.
    Block(usize),
    /// The noise added to expert `expert` of `layer` when upcycling.
    UpcycledExpert {
        /// Block index.
        layer: usize,
        /// Expert index.
        expert: usize,
    },
    /// The fresh router of `layer` when upcycling.
    UpcycledRouter(usize),
    /// The router logit noise of `layer` in one forward pass (under the
    /// pass's own seed, [`router_noise_seed`]).
    RouterNoise(usize),
}

impl Stream {
    /// The ChaCha8 stream number.
    pub fn number(self) -> u64 {
        match self {
            Stream::Embeddings => 0,
            Stream::Block(i) => 1 + i as u64,
            Stream::UpcycledExpert { layer, expert } => ((layer as u64) << 32) | expert as u64,
            Stream::UpcycledRouter(layer) => ((layer as u64) << 32) | u32::MAX as u64,
            Stream::RouterNoise(layer) => layer as u64,
        }
    }
}

/// The seed of the router noise at `step` of a run seeded `seed`: the first
/// 8 bytes (little-endian) of SHA-256 of `"noise/{seed}/{step}"`.
pub fn router_noise_seed(seed: u64, step: u64) -> u64 {
    let digest = Sha256::digest(format!("noise/{seed}/{step}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// A deterministic stream of normal samples.
pub struct NormalRng {
    rng: ChaCha8Rng,
    spare: Option<f64>,
}

impl NormalRng {
    /// The samples of `stream` under `seed`.
    pub fn for_stream(seed: u64, stream: Stream) -> Self {
        Self::new(seed, stream.number())
    }

    /// A stream for `seed` and a raw `stream` number (tests and benches
    /// drawing inputs; the model's own draws use [`NormalRng::for_stream`]).
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
