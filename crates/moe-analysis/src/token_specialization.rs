//! Token specialization (ANA-27, OLMoE's definition): for a token id x,
//! `max_e count(x → e) / count(x)` over the tokens with that id, averaged
//! (unweighted) over the ids that occur at least [`MIN_OCCURRENCES`] times;
//! for the input token (the routed one) and for the next token (the one it
//! predicts: the following token of the same document). Beside it `1/E`
//! and a random router's value on the same tokens: each token's expert
//! drawn from the layer's load, which is above `1/E` for ids seen a few
//! times (the maximum of a few draws), so the fair null.

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::schema::{SpecializationValue, TokenSpecialization};

/// Ids seen fewer times are left out (OLMoE's threshold).
pub const MIN_OCCURRENCES: u64 = 10;

/// The specialization of `(token id, expert)` pairs over `n_experts`.
pub fn specialization(
    pairs: impl Iterator<Item = (u32, u16)>,
    n_experts: usize,
) -> SpecializationValue {
    let mut counts: BTreeMap<u32, Vec<u64>> = BTreeMap::new(); // ordered: sums in id order, byte-identical output
    for (id, e) in pairs {
        counts.entry(id).or_insert_with(|| vec![0; n_experts])[e as usize] += 1;
    }
    let per_id: Vec<f64> = counts
        .values()
        .filter_map(|c| {
            let n: u64 = c.iter().sum();
            (n >= MIN_OCCURRENCES).then(|| *c.iter().max().unwrap_or(&0) as f64 / n as f64)
        })
        .collect();
    SpecializationValue {
        ids: per_id.len() as u64,
        value: (!per_id.is_empty()).then(|| per_id.iter().sum::<f64>() / per_id.len() as f64),
    }
}

/// Input- and next-token specialization of one layer's `expert` column,
/// with the random router's input-token value drawn by `rng` from `load`.
pub fn token_specialization(
    token: &[u32],
    doc: &[u32],
    expert: &[u16],
    load: &[f64],
    rng: &mut ChaCha8Rng,
) -> TokenSpecialization {
    let n_experts = load.len();
    let input = specialization(token.iter().copied().zip(expert.iter().copied()), n_experts);
    let next_pairs = (0..token.len().saturating_sub(1))
        .filter(|&i| doc[i + 1] == doc[i])
        .map(|i| (token[i + 1], expert[i]));
    let next = specialization(next_pairs, n_experts);
    let drawn: Vec<u16> = token.iter().map(|_| draw(load, rng)).collect();
    let random = specialization(token.iter().copied().zip(drawn), n_experts);
    TokenSpecialization {
        min_occurrences: MIN_OCCURRENCES,
        input,
        next,
        uniform: 1.0 / n_experts.max(1) as f64,
        random_router_input: random.value,
    }
}

/// An expert drawn with probability `shares[e]`.
fn draw(shares: &[f64], rng: &mut ChaCha8Rng) -> u16 {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (e, s) in shares.iter().enumerate() {
        acc += s;
        if u < acc {
            return e as u16;
        }
    }
    shares.len().saturating_sub(1) as u16
}
