//! The merge list as a pair → (rank, merged id) lookup that hashes nothing.
//!
//! Every piece starts as single bytes, whose GPT-2 ids are all below 256, so
//! the first round of pairs of every piece is answered by a dense 256 × 256
//! table: one indexed load. Any other pair is found among the right ids that
//! merge with its left id, kept sorted in one array per left id (offsets
//! into a shared array, as in a sparse matrix) and searched by bisection.
//! Entries pack the rank and the merged id into 16 bits each, so the dense
//! table is 256 KiB. The lookup only changes speed, never ids (TOK-7).

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
    /// `rights[starts[left]..starts[left + 1]]`: right ids merging with `left`, sorted.
    starts: Box<[u32]>,
    rights: Box<[u32]>,
    /// Packed entries beside `rights`.
    packed: Box<[u32]>,
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
        let ids = merges
            .iter()
            .map(|&((l, r), (_, m))| l.max(r).max(m))
            .max()
            .map_or(0, |m| m as usize + 1);
        let mut dense = vec![NONE; DENSE * DENSE].into_boxed_slice();
        let mut by_left: Vec<(u32, u32, u32)> = Vec::with_capacity(merges.len());
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
            }
            by_left.push((left, right, entry));
        }
        by_left.sort_unstable();
        let mut starts = vec![0u32; ids + 1];
        for &(left, _, _) in &by_left {
            starts[left as usize + 1] += 1;
        }
        for i in 0..ids {
            starts[i + 1] += starts[i];
        }
        Ok(Self {
            dense,
            starts: starts.into_boxed_slice(),
            rights: by_left.iter().map(|e| e.1).collect(),
            packed: by_left.iter().map(|e| e.2).collect(),
        })
    }

    /// `(rank, merged id)` of an adjacent pair; rank `u32::MAX` when it never merges.
    #[inline(always)]
    pub fn get(&self, left: u32, right: u32) -> (u32, u32) {
        let (l, r) = (left as usize, right as usize);
        if l < DENSE && r < DENSE {
            return unpack(self.dense[l * DENSE + r]);
        }
        let (Some(&lo), Some(&hi)) = (self.starts.get(l), self.starts.get(l + 1)) else {
            return (u32::MAX, 0);
        };
        let (lo, hi) = (lo as usize, hi as usize);
        match self.rights[lo..hi].binary_search(&right) {
            Ok(i) => unpack(self.packed[lo + i]),
            Err(_) => (u32::MAX, 0),
        }
    }
}
