//! Byte-level BPE over the GPT-2 vocabulary and merge list.
//!
//! GPT-2 maps every byte to a printable character before building its
//! vocabulary (`Ġ` is the space byte, and so on); [`byte_to_unicode`] is that
//! map. We undo it when loading, so the encoder works on raw bytes: a piece is
//! split into single bytes and the lowest-ranked adjacent pair is merged until
//! no pair is in the merge list, in time `n log n` in the piece's length.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use super::ranks::PairRanks;

/// GPT-2's reversible byte → printable character map.
pub fn byte_to_unicode() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        map[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next).unwrap_or('\0');
            next += 1;
            c
        };
    }
    map
}

/// Pieces up to this many bytes merge by array scan; longer ones by heap.
const SHORT_PIECE: usize = 64;

/// Merge list as read: for a pair of token ids, the merge rank and the
/// merged id (a later line for the same pair wins).
pub type Merges = FxHashMap<(u32, u32), (u32, u32)>;

/// The loaded vocabulary: bytes ↔ ids, plus the merge table.
#[derive(Debug, Clone)]
pub struct BpeTables {
    /// Token bytes → id.
    pub encoder: FxHashMap<Vec<u8>, u32>,
    /// Id → token bytes.
    pub decoder: Vec<Vec<u8>>,
    /// Single byte → id.
    pub byte_ids: [u32; 256],
    /// `(left, right)` → `(rank, merged)`, without hashing (TOK-7).
    pub ranks: PairRanks,
}

/// Why the vocabulary files could not be turned into BPE tables.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    /// `vocab.json` is not a JSON object of string → integer.
    #[error("vocab.json: {0}")]
    Vocab(String),
    /// A line of `merges.txt` is malformed or names an unknown token.
    #[error("merges.txt line {line}: {reason}")]
    Merge {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

fn unicode_to_bytes(token: &str, inverse: &HashMap<char, u8>) -> Result<Vec<u8>, TablesError> {
    token
        .chars()
        .map(|c| {
            inverse.get(&c).copied().ok_or_else(|| {
                TablesError::Vocab(format!("token {token:?} has unmapped char {c:?}"))
            })
        })
        .collect()
}

impl BpeTables {
    /// Builds the tables from the text of `vocab.json` and `merges.txt`.
    pub fn from_texts(vocab_json: &str, merges_txt: &str) -> Result<Self, TablesError> {
        let vocab: HashMap<String, u32> =
            serde_json::from_str(vocab_json).map_err(|e| TablesError::Vocab(e.to_string()))?;
        let inverse: HashMap<char, u8> = byte_to_unicode()
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        let size = vocab.values().max().map_or(0, |&m| m as usize + 1);
        let mut decoder = vec![Vec::new(); size];
        let mut encoder = FxHashMap::default();
        for (token, &id) in &vocab {
            let bytes = if token == "<|endoftext|>" {
                token.as_bytes().to_vec()
            } else {
                unicode_to_bytes(token, &inverse)?
            };
            decoder[id as usize] = bytes.clone();
            if token != "<|endoftext|>" {
                encoder.insert(bytes, id);
            }
        }
        let mut byte_ids = [0u32; 256];
        for b in 0..=255u8 {
            byte_ids[b as usize] = *encoder
                .get(&vec![b])
                .ok_or_else(|| TablesError::Vocab(format!("no token for byte {b}")))?;
        }
        let merges = parse_merges(merges_txt, &encoder, &inverse)?;
        let merges: Vec<_> = merges.into_iter().collect();
        Ok(Self {
            encoder,
            decoder,
            byte_ids,
            ranks: PairRanks::new(&merges)?,
        })
    }

    /// Encodes one pre-tokenized piece, appending its ids to `out`.
    ///
    /// Whole-token pieces are one lookup. Otherwise the piece starts as its
    /// bytes and the lowest-ranked adjacent pair (the leftmost of equals) is
    /// merged until none is in the merge list. Short pieces scan an array of
    /// pair ranks; longer ones use a heap, so that one long piece costs
    /// `n log n`, not `n²` (TOK-5); both give the same ids.
    pub fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) {
        if let Some(&id) = self.encoder.get(piece) {
            out.push(id);
            return;
        }
        let start = out.len();
        out.extend(piece.iter().map(|&b| self.byte_ids[b as usize]));
        let n = if piece.len() <= SHORT_PIECE {
            self.merge_short(&mut out[start..])
        } else {
            self.merge_long(&mut out[start..])
        };
        out.truncate(start + n);
    }

    /// The merge loop over an array of adjacent-pair ranks; each merge looks
    /// up only the two pairs it changes. Returns the ids left in `parts`.
    fn merge_short(&self, parts: &mut [u32]) -> usize {
        let mut ranks = [u32::MAX; SHORT_PIECE];
        let ranks = &mut ranks[..parts.len()];
        // ranks[i]: rank of (parts[i], parts[i + 1]); the last is always MAX.
        for i in 0..parts.len() - 1 {
            ranks[i] = self.rank(parts[i], parts[i + 1]).0;
        }
        let mut n = parts.len();
        while n > 1 {
            let (mut best, mut at) = (u32::MAX, 0);
            for (i, &r) in ranks[..n - 1].iter().enumerate() {
                if r < best {
                    (best, at) = (r, i);
                }
            }
            if best == u32::MAX {
                break;
            }
            parts[at] = self.rank(parts[at], parts[at + 1]).1;
            parts.copy_within(at + 2..n, at + 1);
            ranks.copy_within(at + 2..n, at + 1);
            n -= 1;
            ranks[at] = if at + 1 < n {
                self.rank(parts[at], parts[at + 1]).0
            } else {
                u32::MAX
            };
            if at > 0 {
                ranks[at - 1] = self.rank(parts[at - 1], parts[at]).0;
            }
        }
        n
    }

    /// The same merges in `n log n`: a linked list of the parts and a
    /// min-heap of `(rank, left position)`, whose order is the short loop's
    /// (lowest rank, then leftmost). An entry is stale once either side has
    /// merged; it records both ids to tell. Returns the ids left in `parts`.
    fn merge_long(&self, parts: &mut [u32]) -> usize {
        use std::cmp::Reverse;
        const NONE: usize = usize::MAX;
        let len = parts.len();
        let mut next: Vec<usize> = (1..=len).map(|i| if i < len { i } else { NONE }).collect();
        let mut prev: Vec<usize> = (0..len).map(|i| i.wrapping_sub(1)).collect();
        prev[0] = NONE;
        type Heap = std::collections::BinaryHeap<Reverse<(u32, usize, u32, u32)>>;
        let mut heap = Heap::with_capacity(len);
        let push = |heap: &mut Heap, parts: &[u32], i: usize, j: usize| {
            let rank = self.rank(parts[i], parts[j]).0;
            if rank != u32::MAX {
                heap.push(Reverse((rank, i, parts[i], parts[j])));
            }
        };
        for i in 0..len - 1 {
            push(&mut heap, parts, i, i + 1);
        }
        while let Some(Reverse((_, i, left, right))) = heap.pop() {
            let j = next[i];
            if j == NONE || parts[i] != left || parts[j] != right {
                continue;
            }
            parts[i] = self.rank(left, right).1;
            next[i] = next[j];
            if next[j] != NONE {
                prev[next[j]] = i;
                push(&mut heap, parts, i, next[i]);
            }
            next[j] = NONE;
            if prev[i] != NONE {
                push(&mut heap, parts, prev[i], i);
            }
        }
        let mut n = 0;
        let mut at = 0;
        while at != NONE {
            parts[n] = parts[at];
            n += 1;
            at = next[at];
        }
        n
    }

    /// `(rank, merged id)` of an adjacent pair; rank `u32::MAX` when it never merges.
    #[inline(always)]
    fn rank(&self, left: u32, right: u32) -> (u32, u32) {
        self.ranks.get(left, right)
    }
}

fn parse_merges(
    merges_txt: &str,
    encoder: &FxHashMap<Vec<u8>, u32>,
    inverse: &HashMap<char, u8>,
) -> Result<Merges, TablesError> {
    let mut merges = Merges::default();
    let lines = merges_txt
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with("#version") && !l.is_empty());
    for (rank, (idx, line)) in lines.enumerate() {
        let err = |reason: &str| TablesError::Merge {
            line: idx + 1,
            reason: reason.to_string(),
        };
        let (left, right) = line
            .split_once(' ')
            .ok_or_else(|| err("expected two tokens"))?;
        let id_of = |t: &str| -> Result<u32, TablesError> {
            let bytes = unicode_to_bytes(t, inverse)?;
            encoder
                .get(&bytes)
                .copied()
                .ok_or_else(|| err(&format!("unknown token {t:?}")))
        };
        let merged = id_of(&format!("{left}{right}"))?;
        merges.insert((id_of(left)?, id_of(right)?), (rank as u32, merged));
    }
    Ok(merges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> &'static BpeTables {
        static TABLES: std::sync::OnceLock<BpeTables> = std::sync::OnceLock::new();
        TABLES.get_or_init(|| {
            BpeTables::from_texts(crate::tokenizer::VOCAB_JSON, crate::tokenizer::MERGES_TXT)
                .unwrap()
        })
    }

    fn ids_by(tables: &BpeTables, piece: &[u8], long: bool) -> Vec<u32> {
        let mut parts: Vec<u32> = piece.iter().map(|&b| tables.byte_ids[b as usize]).collect();
        let n = if long {
            tables.merge_long(&mut parts)
        } else {
            tables.merge_short(&mut parts)
        };
        parts.truncate(n);
        parts
    }

    // Checks: TOK-5
    #[test]
    fn tok_5_a_long_piece_encodes_in_n_log_n() {
        // The array scan took 7.4 s for 160k repeats of one letter; the heap
        // takes well under a second for 400k, and a quadratic loop ~45 s.
        let tables = tables();
        for piece in [vec![b'x'; 400_000], b"ab".repeat(200_000)] {
            let start = std::time::Instant::now();
            let mut out = Vec::new();
            tables.encode_piece(&piece, &mut out);
            let took = start.elapsed();
            assert!(
                took.as_secs_f64() < 10.0,
                "{} bytes took {took:?}",
                piece.len()
            );
            let decoded: Vec<u8> = out
                .iter()
                .flat_map(|&i| tables.decoder[i as usize].clone())
                .collect();
            assert_eq!(decoded, piece);
        }
    }

    /// The merge list as a hash map, the way the pair table was built from.
    fn merge_map() -> &'static Merges {
        static MAP: std::sync::OnceLock<Merges> = std::sync::OnceLock::new();
        MAP.get_or_init(|| {
            let inverse: HashMap<char, u8> = byte_to_unicode()
                .iter()
                .enumerate()
                .map(|(b, &c)| (c, b as u8))
                .collect();
            parse_merges(crate::tokenizer::MERGES_TXT, &tables().encoder, &inverse).unwrap()
        })
    }

    // Checks: TOK-7
    #[test]
    fn tok_7_pair_table_holds_every_merge() {
        let (tables, map) = (tables(), merge_map());
        assert_eq!(map.len(), 50_000);
        for (&(l, r), &want) in map {
            assert_eq!(tables.ranks.get(l, r), want, "pair ({l}, {r})");
        }
        assert_eq!(tables.ranks.get(u32::MAX, 7), (u32::MAX, 0));
        assert_eq!(tables.ranks.get(7, u32::MAX), (u32::MAX, 0));
    }

    proptest::proptest! {
        // Checks: TOK-5
        #[test]
        fn tok_5_heap_and_array_merges_give_the_same_ids(
            piece in proptest::collection::vec(proptest::prop_oneof![
                proptest::num::u8::ANY,
                proptest::sample::select(b"aeinost ".to_vec()),
            ], 2..=SHORT_PIECE)
        ) {
            let tables = tables();
            proptest::prop_assert_eq!(ids_by(tables, &piece, true), ids_by(tables, &piece, false));
        }

        // Checks: TOK-7
        #[test]
        fn tok_7_pair_table_answers_any_pair_like_the_map(
            l in proptest::prop_oneof![0u32..256, 0u32..50_300],
            r in proptest::prop_oneof![0u32..256, 0u32..50_300],
        ) {
            let want = merge_map().get(&(l, r)).copied().unwrap_or((u32::MAX, 0));
            proptest::prop_assert_eq!(tables().ranks.get(l, r), want);
        }
    }
}
