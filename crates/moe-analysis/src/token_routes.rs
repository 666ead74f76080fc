//! The per-token routing table (ANA-1): for every routed val token, its
//! domain, GPT-2 id, document and position in it, and per MoE layer the
//! top-1 expert, its gate probability and the router entropy. Columnar, in
//! the order the tokens were routed; documents are contiguous ranges.

use moe_data::tokenizer::EOS_ID;

/// One MoE layer's choices for every token of the table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayerRoutes {
    /// Block index.
    pub layer: usize,
    /// Experts of the layer.
    pub n_experts: usize,
    /// Top-1 expert per token.
    pub expert: Vec<u16>,
    /// Router probability of the top-1 expert per token.
    pub gate: Vec<f32>,
    /// Entropy of the clean router distribution per token, nats.
    pub entropy: Vec<f32>,
}

/// Routing of every analysed token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenRoutes {
    /// Domain names; `domain` indexes them.
    pub domains: Vec<String>,
    /// Domain per token.
    pub domain: Vec<u16>,
    /// GPT-2 id per token.
    pub token: Vec<u32>,
    /// Document per token: documents are EOS-delimited runs within a block,
    /// numbered in order, so each is a contiguous range of tokens.
    pub doc: Vec<u32>,
    /// Position of the token in its document (0 at a block start or after EOS).
    pub pos: Vec<u32>,
    /// One entry per MoE layer.
    pub layers: Vec<LayerRoutes>,
}

impl TokenRoutes {
    /// An empty table over `domains` with the given MoE layers `(layer, n_experts)`.
    pub fn new(domains: Vec<String>, layers: &[(usize, usize)]) -> Self {
        Self {
            domains,
            layers: layers
                .iter()
                .map(|&(layer, n_experts)| LayerRoutes {
                    layer,
                    n_experts,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Tokens in the table.
    pub fn len(&self) -> usize {
        self.token.len()
    }

    /// True when no token was routed.
    pub fn is_empty(&self) -> bool {
        self.token.is_empty()
    }

    /// Appends the token ids of one block of domain `domain`; the caller then
    /// pushes the same number of choices to every layer ([`Self::push_routes`]).
    /// A new document starts at the block and after every EOS.
    pub fn push_block(&mut self, domain: u16, tokens: &[u32]) {
        let mut next_doc = self.doc.last().map_or(0, |d| d + 1);
        let mut pos = 0;
        for &t in tokens {
            self.domain.push(domain);
            self.token.push(t);
            self.doc.push(next_doc);
            self.pos.push(pos);
            pos += 1;
            if t == EOS_ID {
                next_doc += 1;
                pos = 0;
            }
        }
    }

    /// Appends choices of layer slot `slot` (experts, gate probabilities, entropies).
    pub fn push_routes(&mut self, slot: usize, expert: &[u16], gate: &[f32], entropy: &[f32]) {
        let l = &mut self.layers[slot];
        l.expert.extend_from_slice(expert);
        l.gate.extend_from_slice(gate);
        l.entropy.extend_from_slice(entropy);
    }

    /// Token ranges of the documents, in order.
    pub fn documents(&self) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut start = 0;
        for i in 1..=self.doc.len() {
            if i == self.doc.len() || self.doc[i] != self.doc[i - 1] {
                out.push(start..i);
                start = i;
            }
        }
        out
    }

    /// Tokens per domain.
    pub fn tokens_per_domain(&self) -> Vec<u64> {
        let mut out = vec![0; self.domains.len()];
        self.domain.iter().for_each(|&d| out[d as usize] += 1);
        out
    }

    /// Documents per domain.
    pub fn documents_per_domain(&self) -> Vec<u64> {
        let mut out = vec![0; self.domains.len()];
        for r in self.documents() {
            out[self.domain[r.start] as usize] += 1;
        }
        out
    }

    /// Top-1 counts of layer slot `slot`, `[expert][domain]`.
    pub fn counts(&self, slot: usize) -> Vec<Vec<u64>> {
        let l = &self.layers[slot];
        let mut m = vec![vec![0u64; self.domains.len()]; l.n_experts];
        for (&e, &d) in l.expert.iter().zip(&self.domain) {
            m[e as usize][d as usize] += 1;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_at_eos_and_block_starts() {
        let mut t = TokenRoutes::new(vec!["a".into(), "b".into()], &[]);
        t.push_block(0, &[1, 2, EOS_ID, 3]);
        t.push_block(1, &[4, EOS_ID]);
        t.push_block(1, &[5]);
        assert_eq!(t.doc, vec![0, 0, 0, 1, 2, 2, 3]);
        assert_eq!(t.pos, vec![0, 1, 2, 0, 0, 1, 0]);
        assert_eq!(t.documents(), vec![0..3, 3..4, 4..6, 6..7]);
        assert_eq!(t.documents_per_domain(), vec![2, 2]);
        assert_eq!(t.tokens_per_domain(), vec![4, 3]);
    }
}
