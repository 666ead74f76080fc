//! The most frequent tokens of each expert, decoded (ANA-10).

use std::collections::HashMap;

use moe_data::tokenizer::Gpt2Tokenizer;

use crate::schema::TopToken;

/// Up to `k` tokens per expert by count (ties by id), with the share of all
/// occurrences of that id the expert received.
pub fn top_tokens(
    ids: &[u32],
    expert: &[u16],
    n_experts: usize,
    k: usize,
    tokenizer: &Gpt2Tokenizer,
) -> Vec<Vec<TopToken>> {
    let mut per_expert: Vec<HashMap<u32, u64>> = vec![HashMap::new(); n_experts];
    let mut per_id: HashMap<u32, u64> = HashMap::new();
    for (&v, &e) in ids.iter().zip(expert) {
        *per_expert[e as usize].entry(v).or_default() += 1;
        *per_id.entry(v).or_default() += 1;
    }
    per_expert
        .into_iter()
        .map(|counts| {
            let mut ranked: Vec<(u32, u64)> = counts.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            ranked
                .into_iter()
                .take(k)
                .map(|(id, count)| TopToken {
                    token_id: id,
                    text: display(&tokenizer.decode(&[id])),
                    count,
                    share_of_token: count as f64 / per_id[&id].max(1) as f64,
                })
                .collect()
        })
        .collect()
}

/// A token's text with control characters and edge spaces made visible.
pub fn display(text: &str) -> String {
    let escaped: String = text.chars().flat_map(char::escape_debug).collect();
    escaped.replace(' ', "␣")
}
