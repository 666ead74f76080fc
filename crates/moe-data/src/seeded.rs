//! Seeded randomness: one independent ChaCha stream per purpose, so that
//! adding a domain or a stage never shifts the choices of another (DATA-6).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// A ChaCha8 stream for `purpose` (e.g. `"split/code"`) under `seed`.
pub fn rng_for(seed: u64, purpose: &str) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(purpose.as_bytes());
    let digest: [u8; 32] = h.finalize().into();
    ChaCha8Rng::from_seed(digest)
}

/// A seeded permutation of `0..n`.
pub fn permutation(n: usize, seed: u64, purpose: &str) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rng_for(seed, purpose));
    idx
}
