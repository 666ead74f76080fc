//! Duplicates, near-duplicates and split leakage among complete documents
//! (AUDIT-11 … AUDIT-13). MinHash, the LSH bands, the union-find of
//! clusters and the tally share one document index, so they live together.
//!
//! Exact duplicates are identical token sequences; `prepare` drops them
//! before splitting (FILT-4), so the audit expects none and says so.
//! Near-duplicates use MinHash over `shingle`-token windows: each window is
//! hashed, `permutations` seeded hash functions keep their minimum, and the
//! fraction of equal minima estimates the Jaccard similarity of two
//! documents' window sets. Banded locality-sensitive hashing (`bands` bands
//! of `permutations / bands` rows) proposes candidates; a candidate counts
//! when its estimated similarity reaches `threshold`.
//!
//! Within a (split, domain), near-duplicates are clustered by comparing each
//! bucket member with the bucket's first member of the same group (union-find);
//! the redundant documents are those beyond one per cluster. Across splits
//! and domains every candidate pair is compared: a held-out document with a
//! train near-duplicate is leaked.
//!
//! MinHash needs whole documents, and balancing may leave a long train
//! document only as pieces. So leakage is also measured as overlap: the
//! share of a held-out document's `overlap_ngram`-token n-grams found
//! anywhere in the train shards; at `overlap_threshold` or more the document
//! is contained in train.

use std::collections::BTreeMap;

use rand::Rng;
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

use crate::seeded::rng_for;
use crate::split::Split;

use super::docs::Doc;

/// Near-duplicate and overlap parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DedupConfig {
    /// Seed of the hash functions.
    pub seed: u64,
    /// Tokens per shingle (documents shorter than this are one shingle).
    pub shingle: usize,
    /// Number of hash functions.
    pub permutations: usize,
    /// LSH bands (must divide `permutations`).
    pub bands: usize,
    /// Estimated Jaccard similarity at which two documents are near-duplicates.
    pub threshold: f64,
    /// Tokens per n-gram of the held-out overlap measure.
    pub overlap_ngram: usize,
    /// A held-out document with at least this share of its n-grams anywhere
    /// in the train shards is contained in train.
    pub overlap_threshold: f64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            shingle: 5,
            permutations: 128,
            bands: 32,
            threshold: 0.8,
            overlap_ngram: 13,
            overlap_threshold: 0.8,
        }
    }
}

/// Duplicate facts of one (split, domain).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupDuplicates {
    /// The split.
    pub split: Split,
    /// Index of the domain.
    pub domain: usize,
    /// Complete documents compared.
    pub documents: u64,
    /// Documents identical to an earlier one of the same group.
    pub exact: u64,
    /// Documents beyond one per near-duplicate cluster (exact ones included).
    pub near: u64,
    /// Held-out documents identical to a train document.
    pub exact_leaked: u64,
    /// Held-out documents with a train near-duplicate (exact ones included).
    pub near_leaked: u64,
    /// Held-out documents with at least `overlap_threshold` of their n-grams in train.
    pub contained: u64,
    /// Mean share of a held-out document's n-grams found in train (documents
    /// with at least one n-gram).
    pub mean_overlap: f64,
    /// Held-out documents leaked by any of the three measures.
    pub leaked: u64,
    /// Documents with an identical or near-duplicate document in another domain.
    pub cross_domain: u64,
}

/// A pair of near-duplicate documents, for the evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pair {
    /// Index of the first document (the held-out one for a leak).
    pub a: usize,
    /// Index of the second document (the train one for a leak).
    pub b: usize,
    /// Estimated Jaccard similarity.
    pub similarity: f64,
}

/// Everything the duplicate measures found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Duplicates {
    /// Per (split, domain), in first-seen order of the documents.
    pub groups: Vec<GroupDuplicates>,
    /// Leaked pairs (held-out, train), most similar first.
    #[serde(skip)]
    pub leaks: Vec<Pair>,
    /// Near-duplicate pairs within a group, most similar first.
    #[serde(skip)]
    pub within: Vec<Pair>,
    /// Held-out documents contained in train and their overlap, highest first.
    #[serde(skip)]
    pub contained: Vec<(usize, f64)>,
}

/// Shingle hashes of a document.
fn shingles(tokens: &[u16], k: usize) -> Vec<u64> {
    let k = k.max(1).min(tokens.len().max(1));
    tokens
        .windows(k)
        .map(|w| {
            let h = w.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &t| {
                (h ^ u64::from(t)).wrapping_mul(0x0000_0100_0000_01b3)
            });
            mix(h)
        })
        .collect()
}

/// splitmix64's finalizer.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// MinHash signatures, `permutations` values per document, back to back.
pub fn signatures(docs: &[&Doc], cfg: &DedupConfig) -> Vec<u64> {
    let mut rng = rng_for(cfg.seed, "audit/minhash");
    let salts: Vec<u64> = (0..cfg.permutations).map(|_| rng.random()).collect();
    docs.par_iter()
        .flat_map_iter(|doc| {
            let sh = shingles(&doc.tokens, cfg.shingle);
            salts
                .iter()
                .map(move |&s| sh.iter().map(|&h| mix(h ^ s)).min().unwrap_or(u64::MAX))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Estimated Jaccard similarity of two signatures.
pub fn similarity(a: &[u64], b: &[u64]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

struct UnionFind(Vec<usize>);

impl UnionFind {
    fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.0[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// Measures duplicates among the complete documents of `docs`. Pair indices
/// refer to `docs`.
pub fn measure(docs: &[Doc], cfg: &DedupConfig) -> Duplicates {
    let idx: Vec<usize> = (0..docs.len()).filter(|&i| docs[i].is_complete()).collect();
    let complete: Vec<&Doc> = idx.iter().map(|&i| &docs[i]).collect();
    let p = cfg.permutations.max(1);
    let sig = signatures(&complete, cfg);
    let sig_of = |i: usize| &sig[i * p..(i + 1) * p];
    let group_of = |d: &Doc| (d.split, d.domain);
    let mut groups: Vec<(Split, usize)> = Vec::new();
    complete.iter().for_each(|d| {
        if !groups.contains(&group_of(d)) {
            groups.push(group_of(d));
        }
    });
    let buckets = lsh_buckets(&sig, complete.len(), cfg);
    let mut uf = UnionFind((0..complete.len()).collect());
    let mut within = Vec::new();
    let mut cross: FxHashSet<(usize, usize)> = FxHashSet::default();
    for members in buckets.values().filter(|m| m.len() > 1) {
        let mut reps: FxHashMap<(Split, usize), usize> = FxHashMap::default();
        for &m in members {
            let rep = *reps.entry(group_of(complete[m])).or_insert(m);
            if rep != m && uf.find(rep) != uf.find(m) {
                let s = similarity(sig_of(rep), sig_of(m));
                if s >= cfg.threshold {
                    uf.union(rep, m);
                    within.push(Pair {
                        a: idx[rep],
                        b: idx[m],
                        similarity: s,
                    });
                }
            }
        }
        cross_candidates(members, &complete, &mut cross);
    }
    let mut cross: Vec<(usize, usize)> = cross.into_iter().collect();
    cross.sort_unstable();
    let scored: Vec<(usize, usize, f64)> = cross
        .par_iter()
        .map(|&(a, b)| (a, b, similarity(sig_of(a), sig_of(b))))
        .filter(|t| t.2 >= cfg.threshold)
        .collect();
    let overlap = overlaps(docs, &complete, cfg);
    let mut out = tally(&complete, &groups, &mut uf, &scored, &idx, &overlap, cfg);
    out.within = sorted(within);
    out
}

fn ngram_hash(w: &[u16]) -> u64 {
    mix(w
        .iter()
        .fold(0x9e37_79b9_7f4a_7c15u64, |h, &t| mix(h ^ u64::from(t))))
}

/// Per complete document: for a held-out one with at least one n-gram, the
/// share of its n-grams that occur anywhere in the train documents
/// (complete, heads and fragments alike).
fn overlaps(docs: &[Doc], complete: &[&Doc], cfg: &DedupConfig) -> Vec<Option<f64>> {
    let n = cfg.overlap_ngram.max(1);
    let train: FxHashSet<u64> = docs
        .iter()
        .filter(|d| d.split == Split::Train)
        .flat_map(|d| d.tokens.windows(n).map(ngram_hash))
        .collect();
    complete
        .par_iter()
        .map(|d| {
            if d.split == Split::Train || d.tokens.len() < n {
                return None;
            }
            let grams = d.tokens.windows(n);
            let total = grams.len();
            let found = grams.filter(|w| train.contains(&ngram_hash(w))).count();
            Some(found as f64 / total as f64)
        })
        .collect()
}

/// Pairs of bucket members that differ in train-ness or domain.
fn cross_candidates(members: &[usize], complete: &[&Doc], out: &mut FxHashSet<(usize, usize)>) {
    let mut classes: BTreeMap<(bool, usize), Vec<usize>> = BTreeMap::new();
    for &m in members {
        let d = complete[m];
        classes
            .entry((d.split == Split::Train, d.domain))
            .or_default()
            .push(m);
    }
    let classes: Vec<Vec<usize>> = classes.into_values().collect();
    for (i, c1) in classes.iter().enumerate() {
        for c2 in &classes[i + 1..] {
            for &a in c1 {
                out.extend(c2.iter().map(|&b| (a.min(b), a.max(b))));
            }
        }
    }
}

/// Banded LSH: bucket key → member indices (ascending).
fn lsh_buckets(sig: &[u64], n: usize, cfg: &DedupConfig) -> FxHashMap<(usize, u64), Vec<usize>> {
    let p = cfg.permutations.max(1);
    let bands = cfg.bands.clamp(1, p);
    let rows = p / bands;
    let mut buckets: FxHashMap<(usize, u64), Vec<usize>> = FxHashMap::default();
    for i in 0..n {
        for band in 0..bands {
            let slice = &sig[i * p + band * rows..i * p + (band + 1) * rows];
            let key = slice.iter().fold(band as u64, |h, &v| mix(h ^ v));
            buckets.entry((band, key)).or_default().push(i);
        }
    }
    buckets
}

fn sorted(mut pairs: Vec<Pair>) -> Vec<Pair> {
    pairs.sort_by(|x, y| {
        y.similarity
            .total_cmp(&x.similarity)
            .then((x.a, x.b).cmp(&(y.a, y.b)))
    });
    pairs
}

/// Per-group counts from clusters, exact copies and scored cross pairs.
fn tally(
    complete: &[&Doc],
    groups: &[(Split, usize)],
    uf: &mut UnionFind,
    scored: &[(usize, usize, f64)],
    idx: &[usize],
    overlap: &[Option<f64>],
    cfg: &DedupConfig,
) -> Duplicates {
    let (mut leaked, mut cross_domain, leaks) = near_flags(complete, scored, idx);
    let (exact, exact_leaked) = exact_flags(complete, &mut leaked, &mut cross_domain);
    let contained: Vec<bool> = overlap
        .iter()
        .map(|o| o.is_some_and(|x| x >= cfg.overlap_threshold))
        .collect();
    let mut contained_docs: Vec<(usize, f64)> = overlap
        .iter()
        .enumerate()
        .filter(|(i, _)| contained[*i])
        .filter_map(|(i, o)| o.map(|x| (idx[i], x)))
        .collect();
    contained_docs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let groups = groups
        .iter()
        .map(|&(split, domain)| {
            let members: Vec<usize> = (0..complete.len())
                .filter(|&i| group_key(complete[i]) == (split, domain))
                .collect();
            let roots: FxHashSet<usize> = members.iter().map(|&i| uf.find(i)).collect();
            let count = |f: &[bool]| members.iter().filter(|&&i| f[i]).count() as u64;
            let measured: Vec<f64> = members.iter().filter_map(|&i| overlap[i]).collect();
            let any: Vec<bool> = (0..complete.len())
                .map(|i| leaked[i] || contained[i])
                .collect();
            GroupDuplicates {
                split,
                domain,
                documents: members.len() as u64,
                exact: count(&exact),
                near: (members.len() - roots.len()) as u64,
                exact_leaked: count(&exact_leaked),
                near_leaked: count(&leaked),
                contained: count(&contained),
                mean_overlap: measured.iter().sum::<f64>() / measured.len().max(1) as f64,
                leaked: count(&any),
                cross_domain: count(&cross_domain),
            }
        })
        .collect();
    Duplicates {
        groups,
        leaks: sorted(leaks),
        within: Vec::new(),
        contained: contained_docs,
    }
}

/// Per document: leaked to or from train by a scored near pair, in a pair
/// across domains; and the train/held-out pairs themselves.
fn near_flags(
    complete: &[&Doc],
    scored: &[(usize, usize, f64)],
    idx: &[usize],
) -> (Vec<bool>, Vec<bool>, Vec<Pair>) {
    let mut leaked = vec![false; complete.len()];
    let mut cross_domain = vec![false; complete.len()];
    let mut leaks = Vec::new();
    for &(a, b, s) in scored {
        let (da, db) = (complete[a], complete[b]);
        if da.domain != db.domain {
            cross_domain[a] = true;
            cross_domain[b] = true;
        }
        if (da.split == Split::Train) != (db.split == Split::Train) {
            let (h, t) = if da.split == Split::Train {
                (b, a)
            } else {
                (a, b)
            };
            leaked[h] = true;
            leaks.push(Pair {
                a: idx[h],
                b: idx[t],
                similarity: s,
            });
        }
    }
    (leaked, cross_domain, leaks)
}

/// Per document: an exact copy of an earlier one in its group, a held-out
/// exact copy of a train document; marks those leaked and cross-domain copies.
fn exact_flags(
    complete: &[&Doc],
    leaked: &mut [bool],
    cross_domain: &mut [bool],
) -> (Vec<bool>, Vec<bool>) {
    let mut by_tokens: FxHashMap<&[u16], Vec<usize>> = FxHashMap::default();
    for (i, d) in complete.iter().enumerate() {
        by_tokens.entry(&d.tokens).or_default().push(i);
    }
    let mut exact = vec![false; complete.len()];
    let mut exact_leaked = vec![false; complete.len()];
    for same in by_tokens.values().filter(|v| v.len() > 1) {
        let has_train = same.iter().any(|&i| complete[i].split == Split::Train);
        for (k, &i) in same.iter().enumerate() {
            let d = complete[i];
            exact[i] = same[..k]
                .iter()
                .any(|&j| group_key(complete[j]) == group_key(d));
            exact_leaked[i] = d.split != Split::Train && has_train;
            leaked[i] |= exact_leaked[i];
            cross_domain[i] |= same.iter().any(|&j| complete[j].domain != d.domain);
        }
    }
    (exact, exact_leaked)
}

fn group_key(d: &Doc) -> (Split, usize) {
    (d.split, d.domain)
}
