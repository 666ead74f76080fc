//! The merge list as a pair → (rank, merged id) lookup.
//!
//! Every piece starts as single bytes, whose GPT-2 ids are all below 256, so
//! the first round of pairs of every piece — most of the lookups — is
//! answered by a dense 256 × 256 table: one indexed load, no hashing. Any
//! other pair (one side already merged) is looked up in a hash map of the
//! remaining merges; sorted right ids per left id searched by bisection were
//! tried there and lost to the map. Entries pack the rank and the merged id
//! into 16 bits each, so the dense table is 256 KiB. The lookup only changes
//! speed, never ids (TOK-7).

use rustc_hash::FxHashMap;

use super::bpe::TablesError;

/// No merge for this pair.
const NONE: u32 = u32::MAX;
/// Ids below this are looked up in the dense table.
const DENSE: usize = 256;

/// One merge: `((left, right), (rank, merged))`.
pub type Merge = ((u32, u32), (u32, u32));

/// Pair → (rank, merged id) for the merges of one vocabulary.
#[derive(Debug, Clone)]
pub struct PairRanks {
    /// `dense[left * 256 + right]`: packed entry for both ids < 256.
    dense: Box<[u32]>,
    /// Packed entries of the pairs with an id ≥ 256.
    rest: FxHashMap<(u32, u32), u32>,
}

#[inline(always)]
fn unpack(entry: u32) -> (u32, u32) {
    if entry == NONE {
        (u32::MAX, 0)
    } else {
        (entry >> 16, entry & 0xFFFF)
    }
}

impl PairRanks {
    /// The lookup for `merges`: `((left, right), (rank, merged))`, each pair
    /// once. Ranks and ids must fit in 16 bits (GPT-2: 50 000 merges, 50 257 ids).
    pub fn new(merges: &[Merge]) -> Result<Self, TablesError> {
        let too_big = |what: &str| TablesError::Merge {
            line: 0,
            reason: format!("{what} does not fit the pair table's 16 bits"),
        };
        let mut dense = vec![NONE; DENSE * DENSE].into_boxed_slice();
        let mut rest = FxHashMap::default();
        for &((left, right), (rank, merged)) in merges {
            if rank >= 0xFFFF {
                return Err(too_big(&format!("merge rank {rank}")));
            }
            if merged > 0xFFFF {
                return Err(too_big(&format!("merged id {merged}")));
            }
            let entry = (rank << 16) | merged;
            if (left as usize) < DENSE && (right as usize) < DENSE {
                dense[left as usize * DENSE + right as usize] = entry;
            } else {
                rest.insert((left, right), entry);
            }
        }
        Ok(Self { dense, rest })
    }

    /// `(rank, merged id)` of an adjacent pair; rank `u32::MAX` when it never merges.
    #[inline(always)]
    pub fn get(&self, left: u32, right: u32) -> (u32, u32) {
        let (l, r) = (left as usize, right as usize);
        if l < DENSE && r < DENSE {
            return unpack(self.dense[l * DENSE + r]);
        }
        unpack(self.rest.get(&(left, right)).copied().unwrap_or(NONE))
    }
}
