//! The piece cache: a memo of pre-tokenized piece → ids, kept per thread.
//!
//! Most pieces of natural text and code repeat, so after warm-up almost every
//! piece is answered here instead of by the merge loop. Pieces of up to 16
//! bytes — nearly all of them — live in an open-addressing table whose slots
//! hold the piece bytes packed into a `u128` and up to three ids inline, so a
//! hit is one hash, one or two slot reads and a copy, with no pointer to
//! follow. Longer pieces (up to [`MAX_PIECE`] bytes) go to an ordinary map.
//! The cache only ever changes speed, never ids.

use rustc_hash::FxHashMap;

/// Pieces longer than this are not memoized (they are rare).
pub const MAX_PIECE: usize = 64;
/// Longest piece kept in the inline table.
const INLINE_KEY: usize = 16;
/// Ids stored in the slot itself; more spill into a shared buffer.
const INLINE_IDS: usize = 3;
/// Slots at first use; the table doubles at half load up to [`MAX_SLOTS`].
const MIN_SLOTS: usize = 1 << 12;
/// Beyond this the table is cleared instead of grown (4 MiB of slots).
const MAX_SLOTS: usize = 1 << 17;
/// The long-piece map is cleared when it grows past this many entries.
const MAX_LONG: usize = 1 << 16;

/// One table slot: 32 bytes. `len == 0` marks an empty slot (pieces are
/// never empty). With more than [`INLINE_IDS`] ids, `ids[0]` is their offset
/// in the spill buffer.
#[derive(Clone, Copy, Default)]
struct Slot {
    key: u128,
    len: u8,
    n_ids: u8,
    ids: [u32; INLINE_IDS],
}

/// Memo of piece → ids; create one per thread and keep it for the whole run.
#[derive(Default)]
pub struct PieceCache {
    slots: Vec<Slot>,
    used: usize,
    spill: Vec<u32>,
    long: FxHashMap<Box<[u8]>, Box<[u32]>>,
}

/// The piece `text[start..end]` packed little-endian into a `u128`, zero
/// padded (`end - start <= 16`): one unaligned load where the text has 16
/// bytes from `start`, a copy otherwise.
#[inline(always)]
fn pack(text: &[u8], start: usize, end: usize) -> u128 {
    let len = end - start;
    if let Some(window) = text.get(start..start + INLINE_KEY) {
        let word = u128::from_le_bytes(window.try_into().unwrap_or([0; INLINE_KEY]));
        let mask = if len == INLINE_KEY {
            !0
        } else {
            (1u128 << (8 * len)) - 1
        };
        return word & mask;
    }
    let mut buf = [0u8; INLINE_KEY];
    buf[..len].copy_from_slice(&text[start..end]);
    u128::from_le_bytes(buf)
}

#[inline(always)]
fn hash(key: u128, len: u8) -> u64 {
    const K1: u64 = 0x9e37_79b9_7f4a_7c15;
    const K2: u64 = 0xd6e8_feb8_6659_fd93;
    let lo = key as u64 ^ K1;
    let hi = (key >> 64) as u64 ^ K2 ^ u64::from(len);
    let p = u128::from(lo) * u128::from(hi);
    (p as u64) ^ ((p >> 64) as u64)
}

impl PieceCache {
    /// Appends the cached ids of the piece `text[start..end]` to `out`;
    /// false when not cached.
    #[inline(always)]
    pub fn get_into(&self, text: &[u8], start: usize, end: usize, out: &mut Vec<u32>) -> bool {
        let piece = &text[start..end];
        if piece.len() > INLINE_KEY {
            return match self.long.get(piece) {
                Some(ids) => {
                    out.extend_from_slice(ids);
                    true
                }
                None => false,
            };
        }
        if self.slots.is_empty() {
            return false;
        }
        let (key, len) = (pack(text, start, end), piece.len() as u8);
        let mask = self.slots.len() - 1;
        let mut i = hash(key, len) as usize & mask;
        loop {
            let slot = &self.slots[i];
            if slot.len == len && slot.key == key {
                let n = slot.n_ids as usize;
                if n <= INLINE_IDS {
                    // A push loop: `extend_from_slice` of 1-3 ids is a memcpy call.
                    for &id in &slot.ids[..n] {
                        out.push(id);
                    }
                } else {
                    let at = slot.ids[0] as usize;
                    out.extend_from_slice(&self.spill[at..at + n]);
                }
                return true;
            }
            if slot.len == 0 {
                return false;
            }
            i = (i + 1) & mask;
        }
    }

    /// Remembers `ids` for the piece `text[start..end]` (of at most
    /// [`MAX_PIECE`] bytes, not cached yet).
    pub fn insert(&mut self, text: &[u8], start: usize, end: usize, ids: &[u32]) {
        let piece = &text[start..end];
        if piece.len() > INLINE_KEY {
            if self.long.len() >= MAX_LONG {
                self.long.clear();
            }
            self.long.insert(piece.into(), ids.into());
            return;
        }
        if 2 * (self.used + 1) > self.slots.len() {
            self.make_room();
        }
        let mut slot = Slot {
            key: pack(text, start, end),
            len: piece.len() as u8,
            n_ids: ids.len() as u8,
            ids: [0; INLINE_IDS],
        };
        if ids.len() <= INLINE_IDS {
            slot.ids[..ids.len()].copy_from_slice(ids);
        } else {
            slot.ids[0] = self.spill.len() as u32;
            self.spill.extend_from_slice(ids);
        }
        self.place(slot);
        self.used += 1;
    }

    fn place(&mut self, slot: Slot) {
        let mask = self.slots.len() - 1;
        let mut i = hash(slot.key, slot.len) as usize & mask;
        while self.slots[i].len != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    /// Doubles the table, or empties it once it is at [`MAX_SLOTS`].
    fn make_room(&mut self) {
        let size = self.slots.len();
        if size >= MAX_SLOTS {
            self.slots.fill(Slot::default());
            self.spill.clear();
            self.used = 0;
            return;
        }
        let old = std::mem::replace(
            &mut self.slots,
            vec![Slot::default(); (size * 2).max(MIN_SLOTS)],
        );
        for slot in old.into_iter().filter(|s| s.len != 0) {
            self.place(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tok_1_cache_returns_what_was_inserted() {
        let mut cache = PieceCache::default();
        let pieces: Vec<Vec<u8>> = (0..20_000u32)
            .map(|i| format!(" w{i}").into_bytes())
            .chain([b"\0".to_vec(), b"\0\0".to_vec(), vec![b'x'; 40]])
            .collect();
        let ids_of = |i: usize| {
            (0..(i % 6 + 1) as u32)
                .map(|k| k * 7 + i as u32)
                .collect::<Vec<_>>()
        };
        // Each piece once at the end of its text (copied key) and once
        // inside a longer text (loaded key): both must find the same slot.
        for (i, p) in pieces.iter().enumerate() {
            assert!(!cache.get_into(p, 0, p.len(), &mut Vec::new()));
            cache.insert(p, 0, p.len(), &ids_of(i));
        }
        for (i, p) in pieces.iter().enumerate() {
            let mut text = b"ab".to_vec();
            text.extend_from_slice(p);
            text.extend_from_slice(&[b'z'; 20]);
            let mut out = vec![9];
            assert!(cache.get_into(&text, 2, 2 + p.len(), &mut out), "piece {i}");
            assert_eq!(out[1..], ids_of(i)[..]);
        }
        assert!(!cache.get_into(b"\0\0\0", 0, 3, &mut Vec::new()));
    }

    proptest::proptest! {
        // Checks: TOK-1
        #[test]
        fn tok_1_cache_answers_like_a_map(
            ops in proptest::collection::vec(
                (proptest::collection::vec(proptest::sample::select(b"ab \0".to_vec()), 1..20), 1u32..6),
                1..400,
            )
        ) {
            let mut cache = PieceCache::default();
            let mut map = std::collections::HashMap::<Vec<u8>, Vec<u32>>::new();
            for (i, (piece, n)) in ops.iter().enumerate() {
                let mut got = Vec::new();
                let hit = cache.get_into(piece, 0, piece.len(), &mut got);
                match map.get(piece) {
                    Some(ids) => {
                        proptest::prop_assert!(hit);
                        proptest::prop_assert_eq!(&got, ids);
                    }
                    None => {
                        proptest::prop_assert!(!hit);
                        let ids: Vec<u32> = (0..*n).map(|k| k + i as u32).collect();
                        cache.insert(piece, 0, piece.len(), &ids);
                        map.insert(piece.clone(), ids);
                    }
                }
            }
        }
    }
}
