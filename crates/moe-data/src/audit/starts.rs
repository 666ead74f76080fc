//! What a router could key on besides content: fixed prefixes (the most
//! common first 1–3 tokens of a domain's documents, AUDIT-7), template
//! markers (a token trigram in nearly every document, about once each,
//! AUDIT-8), leading whitespace and first characters (AUDIT-9), invisible
//! Unicode (AUDIT-10) and literal `<|endoftext|>` text (AUDIT-19), per domain.
//!
//! Start measures use the documents whose start is visible (complete
//! documents and heads); template markers and trailing whitespace need the
//! whole document (complete documents only); invisible characters and
//! literal EOS text are counted in every rebuilt piece, fragments included.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use unicode_general_category::{GeneralCategory, get_general_category};

use crate::tokenizer::Gpt2Tokenizer;

use super::docs::Doc;

/// Longest prefix measured, in tokens.
pub const MAX_PREFIX_TOKENS: usize = 3;
/// Length of a template-marker n-gram, in tokens.
pub const MARKER_TOKENS: usize = 3;
/// A marker candidate occurs at most this often per containing document on
/// average: a template string appears once, content words recur.
pub const MARKER_MAX_PER_DOCUMENT: f64 = 1.5;

/// The most common first `n` tokens of a domain's documents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prefix {
    /// Number of tokens.
    pub n: usize,
    /// The token ids.
    pub tokens: Vec<u16>,
    /// The tokens decoded.
    pub text: String,
    /// Documents (with at least `n` tokens) that start with it.
    pub count: u64,
    /// Documents with a visible start in the domain.
    pub total: u64,
    /// Share of this prefix among the documents of each domain, in domain order.
    pub share_by_domain: Vec<f64>,
}

/// A token trigram found in most documents of a domain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Marker {
    /// The token ids.
    pub tokens: Vec<u16>,
    /// The tokens decoded.
    pub text: String,
    /// Complete documents containing it.
    pub documents: u64,
    /// Mean occurrences per containing document.
    pub per_document: f64,
    /// Document frequency among complete documents of each domain, in domain order.
    pub share_by_domain: Vec<f64>,
}

/// Start and character facts of one domain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainStarts {
    /// The domain.
    pub domain: String,
    /// Documents with a visible start.
    pub documents: u64,
    /// Complete documents.
    pub complete: u64,
    /// The most common prefix of 1, 2 and 3 tokens.
    pub prefixes: Vec<Prefix>,
    /// Up to three once-per-document trigrams with the highest document frequency.
    pub markers: Vec<Marker>,
    /// Documents whose text starts with whitespace.
    pub leading_whitespace: u64,
    /// Complete documents whose text ends with whitespace.
    pub trailing_whitespace: u64,
    /// First characters by count, most common first (up to five).
    pub first_chars: Vec<(char, u64)>,
    /// Share of the domain's most common first character among every domain's documents.
    pub first_char_share_by_domain: Vec<f64>,
    /// Invisible characters by kind: occurrences in all pieces.
    pub invisible: BTreeMap<String, u64>,
    /// Rebuilt pieces of the domain: complete documents, heads and fragments.
    pub pieces: u64,
    /// Pieces with at least one invisible character.
    pub invisible_pieces: u64,
    /// Pieces containing the literal text `<|endoftext|>`.
    pub literal_eos_pieces: u64,
}

/// The kind of an invisible or look-alike character, if it is one.
pub fn invisible_kind(c: char) -> Option<&'static str> {
    match c {
        '\u{FEFF}' => Some("bom"),
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' => Some("zero_width"),
        '\u{00A0}' | '\u{202F}' => Some("nbsp"),
        '\u{00AD}' => Some("soft_hyphen"),
        '\t' | '\n' | '\r' | ' ' => None,
        _ => match get_general_category(c) {
            GeneralCategory::Format => Some("other_format"),
            GeneralCategory::SpaceSeparator => Some("other_space"),
            GeneralCategory::Control => Some("control"),
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
                Some("line_separator")
            }
            _ => None,
        },
    }
}

/// Measures the starts and characters of every domain.
pub fn measure(docs: &[Doc], domains: &[String], tokenizer: &Gpt2Tokenizer) -> Vec<DomainStarts> {
    let pieces: Vec<Vec<&Doc>> = (0..domains.len())
        .map(|d| docs.iter().filter(|doc| doc.domain == d).collect())
        .collect();
    let by_domain: Vec<Vec<&Doc>> = pieces
        .iter()
        .map(|ds| ds.iter().copied().filter(|doc| doc.has_start()).collect())
        .collect();
    let complete: Vec<Vec<&Doc>> = by_domain
        .iter()
        .map(|ds| ds.iter().copied().filter(|doc| doc.is_complete()).collect())
        .collect();
    let mut out: Vec<DomainStarts> = domains
        .iter()
        .enumerate()
        .map(|(d, name)| measure_domain(name, &pieces[d], &by_domain[d], &complete[d]))
        .collect();
    for s in &mut out {
        for p in &mut s.prefixes {
            p.text = decode(tokenizer, &p.tokens);
            p.share_by_domain = by_domain
                .iter()
                .map(|ds| prefix_share(ds, &p.tokens))
                .collect();
        }
        for m in &mut s.markers {
            m.text = decode(tokenizer, &m.tokens);
            m.share_by_domain = complete
                .iter()
                .map(|ds| share(ds, |doc| contains(&doc.tokens, &m.tokens)))
                .collect();
        }
        let first = s.first_chars.first().map(|(c, _)| *c);
        s.first_char_share_by_domain = by_domain
            .iter()
            .map(|ds| {
                share(ds, |doc| {
                    first.is_some() && doc.text.chars().next() == first
                })
            })
            .collect();
    }
    out
}

fn decode(tokenizer: &Gpt2Tokenizer, tokens: &[u16]) -> String {
    let ids: Vec<u32> = tokens.iter().map(|&t| u32::from(t)).collect();
    tokenizer.decode(&ids)
}

fn measure_domain(name: &str, pieces: &[&Doc], docs: &[&Doc], complete: &[&Doc]) -> DomainStarts {
    let mut invisible = BTreeMap::new();
    let mut invisible_pieces = 0;
    for doc in pieces {
        let mut any = false;
        for kind in doc.text.chars().filter_map(invisible_kind) {
            *invisible.entry(kind.to_string()).or_insert(0) += 1;
            any = true;
        }
        invisible_pieces += u64::from(any);
    }
    let count = |f: &dyn Fn(&Doc) -> bool| docs.iter().filter(|d| f(d)).count() as u64;
    DomainStarts {
        domain: name.to_string(),
        documents: docs.len() as u64,
        complete: count(&|d| d.is_complete()),
        prefixes: (1..=MAX_PREFIX_TOKENS)
            .filter_map(|n| top_prefix(docs, n))
            .collect(),
        markers: top_markers(complete),
        leading_whitespace: count(&|d| d.text.starts_with(char::is_whitespace)),
        trailing_whitespace: count(&|d| d.is_complete() && d.text.ends_with(char::is_whitespace)),
        first_chars: first_chars(docs),
        first_char_share_by_domain: Vec::new(),
        invisible,
        pieces: pieces.len() as u64,
        invisible_pieces,
        literal_eos_pieces: pieces
            .iter()
            .filter(|d| d.text.contains("<|endoftext|>"))
            .count() as u64,
    }
}

fn share(docs: &[&Doc], f: impl Fn(&Doc) -> bool) -> f64 {
    if docs.is_empty() {
        return 0.0;
    }
    docs.iter().filter(|d| f(d)).count() as f64 / docs.len() as f64
}

fn prefix_share(docs: &[&Doc], prefix: &[u16]) -> f64 {
    share(docs, |d| d.tokens.starts_with(prefix))
}

fn contains(tokens: &[u16], gram: &[u16]) -> bool {
    tokens.windows(gram.len()).any(|w| w == gram)
}

/// The most common first `n` tokens (ties: the smallest token sequence).
fn top_prefix(docs: &[&Doc], n: usize) -> Option<Prefix> {
    let mut counts: FxHashMap<&[u16], u64> = FxHashMap::default();
    for d in docs.iter().filter(|d| d.tokens.len() >= n) {
        *counts.entry(&d.tokens[..n]).or_insert(0) += 1;
    }
    let (tokens, count) = counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))?;
    Some(Prefix {
        n,
        tokens: tokens.to_vec(),
        text: String::new(),
        count,
        total: docs.len() as u64,
        share_by_domain: Vec::new(),
    })
}

/// The three trigrams with the highest document frequency among those
/// occurring at most [`MARKER_MAX_PER_DOCUMENT`] times per containing
/// document (ties: fewest occurrences, then smallest sequence).
fn top_markers(docs: &[&Doc]) -> Vec<Marker> {
    let mut df: FxHashMap<[u16; MARKER_TOKENS], (u64, u64)> = FxHashMap::default();
    let mut seen: FxHashSet<[u16; MARKER_TOKENS]> = FxHashSet::default();
    for doc in docs {
        seen.clear();
        for w in doc.tokens.windows(MARKER_TOKENS) {
            let gram = [w[0], w[1], w[2]];
            let entry = df.entry(gram).or_insert((0, 0));
            entry.1 += 1;
            if seen.insert(gram) {
                entry.0 += 1;
            }
        }
    }
    let mut grams: Vec<_> = df
        .into_iter()
        .filter(|(_, (d, n))| *n as f64 <= MARKER_MAX_PER_DOCUMENT * *d as f64)
        .collect();
    grams.sort_unstable_by(|a, b| {
        b.1.0
            .cmp(&a.1.0)
            .then(a.1.1.cmp(&b.1.1))
            .then(a.0.cmp(&b.0))
    });
    grams
        .into_iter()
        .take(3)
        .map(|(gram, (documents, occurrences))| Marker {
            tokens: gram.to_vec(),
            text: String::new(),
            documents,
            per_document: occurrences as f64 / documents as f64,
            share_by_domain: Vec::new(),
        })
        .collect()
}

fn first_chars(docs: &[&Doc]) -> Vec<(char, u64)> {
    let mut counts: BTreeMap<char, u64> = BTreeMap::new();
    for c in docs.iter().filter_map(|d| d.text.chars().next()) {
        *counts.entry(c).or_insert(0) += 1;
    }
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(5);
    v
}
