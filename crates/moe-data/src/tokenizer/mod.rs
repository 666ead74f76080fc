//! GPT-2 byte-level BPE tokenizer, ids identical to the reference (TOK-*).
//!
//! The vocabulary (`assets/gpt2/vocab.json`, `assets/gpt2/merges.txt`) is
//! compiled into the binary, so the pipeline needs no download. Document text
//! is always encoded as *plain text*: a literal `<|endoftext|>` inside a
//! document becomes ordinary tokens, never [`EOS_ID`] (TOK-3); only the
//! packer appends EOS.
//!
//! The pipeline talks to tokenizers through [`TokenEncoder`], so a faster
//! encoder with identical ids can replace [`Gpt2Tokenizer`] without touching
//! the stages.

mod bpe;
mod cache;
mod pretokenize;
mod ranks;

pub use bpe::{BpeTables, TablesError, byte_to_unicode};
pub use cache::PieceCache;
pub use pretokenize::{Pieces, pieces, pieces_bytewise};
pub use ranks::PairRanks;

use sha2::{Digest, Sha256};

/// Id of `<|endoftext|>`, the document separator.
pub const EOS_ID: u32 = 50256;
/// Number of ids in the GPT-2 vocabulary.
pub const VOCAB_SIZE: usize = 50257;

/// The GPT-2 `vocab.json` shipped in `assets/gpt2/`.
pub const VOCAB_JSON: &str = include_str!("../../../../assets/gpt2/vocab.json");
/// The GPT-2 `merges.txt` shipped in `assets/gpt2/`.
pub const MERGES_TXT: &str = include_str!("../../../../assets/gpt2/merges.txt");

/// Something that turns plain text into GPT-2 ids.
///
/// Implementations must give ids identical to the reference GPT-2 tokenizer
/// and must never emit [`EOS_ID`] for document text.
pub trait TokenEncoder: Sync {
    /// Per-thread scratch state (caches); created once per worker thread.
    type Scratch: Default + Send;
    /// Appends the ids of `text` to `out`.
    fn encode_into(&self, text: &str, scratch: &mut Self::Scratch, out: &mut Vec<u32>);
}

/// GPT-2 byte-level BPE with a per-thread piece cache.
#[derive(Debug, Clone)]
pub struct Gpt2Tokenizer {
    tables: BpeTables,
    hash: String,
}

impl Gpt2Tokenizer {
    /// The tokenizer from the files compiled into the binary.
    pub fn embedded() -> Result<Self, TablesError> {
        Self::from_texts(VOCAB_JSON, MERGES_TXT)
    }

    /// A tokenizer from the text of `vocab.json` and `merges.txt`.
    pub fn from_texts(vocab_json: &str, merges_txt: &str) -> Result<Self, TablesError> {
        let tables = BpeTables::from_texts(vocab_json, merges_txt)?;
        let mut h = Sha256::new();
        h.update(vocab_json.as_bytes());
        h.update(merges_txt.as_bytes());
        Ok(Self {
            tables,
            hash: hex::encode(h.finalize()),
        })
    }

    /// sha256 over `vocab.json` then `merges.txt`; recorded in manifests.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Encodes `text` as plain text (no special tokens).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3);
        self.encode_into(text, &mut PieceCache::default(), &mut out);
        out
    }

    /// The bytes of a sequence of ids; EOS decodes to `<|endoftext|>`.
    pub fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for &id in ids {
            if let Some(bytes) = self.tables.decoder.get(id as usize) {
                out.extend_from_slice(bytes);
            }
        }
        out
    }

    /// Decodes ids to text, replacing invalid UTF-8 (from a cut) with U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.decode_bytes(ids)).into_owned()
    }

    /// The bytes of one token id, if it exists.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.tables.decoder.get(id as usize).map(Vec::as_slice)
    }
}

impl TokenEncoder for Gpt2Tokenizer {
    type Scratch = PieceCache;

    fn encode_into(&self, text: &str, cache: &mut PieceCache, out: &mut Vec<u32>) {
        let all = text.as_bytes();
        let mut start = 0;
        for piece in pieces(text) {
            let end = start + piece.len();
            if piece.len() > cache::MAX_PIECE {
                self.tables.encode_piece(piece.as_bytes(), out);
            } else if !cache.get_into(all, start, end, out) {
                let first = out.len();
                self.tables.encode_piece(piece.as_bytes(), out);
                cache.insert(all, start, end, &out[first..]);
            }
            start = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tok_1_known_ids() {
        let tok = Gpt2Tokenizer::embedded().unwrap();
        // "Hello world" is [15496, 995] in GPT-2.
        assert_eq!(tok.encode("Hello world"), vec![15496, 995]);
        assert_eq!(
            tok.decode(&[15496, 995, EOS_ID]),
            "Hello world<|endoftext|>"
        );
    }

    #[test]
    fn tok_3_literal_eos_is_plain_text() {
        let tok = Gpt2Tokenizer::embedded().unwrap();
        let ids = tok.encode("a<|endoftext|>b");
        assert!(!ids.contains(&EOS_ID));
        assert_eq!(tok.decode(&ids), "a<|endoftext|>b");
    }
}
