//! Property tests of split, pack, balance, shuffle and shards, at the unit
//! level on the very functions `prepare` runs (`DocSpool`, `Packer`,
//! `balance::write_shard`; PACK-1, PACK-2, DATA-18, BAL-2) and end to end through `prepare` on random
//! corpora with empty documents, documents longer than a block, Unicode and
//! the literal `<|endoftext|>` (SPLIT-2, PACK-3, PACK-4, BAL-1, SHARD-1, DATA-6).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use moe_data::balance::{block_order, write_shard};
use moe_data::config::DataConfig;
use moe_data::manifest::Manifest;
use moe_data::pack::{DocSpool, PackedFile, Packer};
use moe_data::prepare::{PrepareOptions, prepare};
use moe_data::shard::{HEADER_BYTES, read_shard};
use moe_data::split::Split;
use moe_data::tokenizer::{EOS_ID, Gpt2Tokenizer};
use proptest::prelude::*;

const EOS: u16 = EOS_ID as u16;

fn docs_strategy() -> impl Strategy<Value = Vec<Vec<u16>>> {
    let doc = prop_oneof![
        1 => Just(Vec::new()),
        4 => proptest::collection::vec(0u16..EOS, 1..12),
        1 => proptest::collection::vec(0u16..EOS, 20..60),
    ];
    proptest::collection::vec(doc, 0..30)
}

/// Spools `docs` to `dir/<name>.docs` and packs those `chosen` marks (all
/// when `chosen` is empty) with the pipeline's packer.
fn pack_some(dir: &Path, name: &str, docs: &[Vec<u16>], chosen: &[bool], bs: usize) -> PackedFile {
    let mut spool = DocSpool::create(&dir.join(format!("{name}.docs"))).unwrap();
    for doc in docs {
        let ids: Vec<u32> = doc.iter().map(|&t| t as u32).collect();
        spool.push(&ids).unwrap();
    }
    let spool = spool.finish().unwrap();
    let mut packer = Packer::new(bs);
    for (i, (start, len)) in spool.documents().enumerate() {
        if chosen.get(i).copied().unwrap_or(true) {
            packer.push(start, len);
        }
    }
    packer.finish(&spool.path)
}

/// Packs all of `docs`.
fn pack(dir: &Path, name: &str, docs: &[Vec<u16>], bs: usize) -> PackedFile {
    pack_some(dir, name, docs, &[], bs)
}

/// Every whole block of `packed`, in order, as the shard writer reads them.
fn blocks_of(packed: &PackedFile) -> Vec<u16> {
    let spool = std::fs::File::open(&packed.path).unwrap();
    let mut block = vec![0u8; 2 * packed.block_size];
    let mut tokens = Vec::new();
    for i in 0..packed.n_blocks() {
        packed.read_block(&spool, i, &mut block).unwrap();
        tokens.extend(block.chunks(2).map(|b| u16::from_le_bytes([b[0], b[1]])));
    }
    tokens
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// PACK-1, PACK-2, DATA-18: the blocks read from the spool are the
    /// EOS-joined stream of the documents packed (any subset of the
    /// spool's, as a split takes), cut at whole blocks.
    #[test]
    fn pack_1_pack_2_packer_keeps_docs_contiguous_and_counts_tail(
        all_docs in docs_strategy(),
        chosen in proptest::collection::vec(proptest::bool::weighted(0.7), 30),
        bs in 1usize..24,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let packed = pack_some(tmp.path(), "p", &all_docs, &chosen, bs);
        let docs: Vec<&Vec<u16>> = all_docs.iter().zip(&chosen).filter(|(_, c)| **c).map(|(d, _)| d).collect();
        let tokens = blocks_of(&packed);
        let stream: Vec<u16> = docs.iter().flat_map(|d| d.iter().copied().chain([EOS])).collect();
        let whole = stream.len() / bs * bs;
        prop_assert_eq!(tokens.len() % bs, 0);
        prop_assert_eq!(&tokens[..], &stream[..whole]);
        prop_assert_eq!(packed.stats.tokens as usize, whole);
        prop_assert_eq!(packed.n_blocks(), whole / bs);
        prop_assert_eq!(packed.stats.tail_dropped as usize, stream.len() - whole);
        prop_assert_eq!(packed.stats.documents as usize, docs.len());
        // Split at EOS: complete runs are exactly the documents, in order.
        let runs: Vec<&[u16]> = tokens.split(|&t| t == EOS).collect();
        let complete = runs.len() - 1;
        prop_assert_eq!(packed.stats.eos_count as usize, complete);
        for (run, doc) in runs[..complete].iter().zip(&docs) {
            prop_assert_eq!(*run, &doc[..]);
        }
        let last = runs[complete];
        prop_assert!(docs.get(complete).is_none_or(|d| d.starts_with(last)));
    }

    /// BAL-2, SHARD-1: the shard writer `prepare` runs keeps a sub-multiset of
    /// whole blocks, `keep` of them, in the order `block_order` gives, under a
    /// header that counts them; its sha256 and EOS count are those of the file.
    #[test]
    fn bal_2_shard_1_write_shard_only_drops_and_permutes_blocks(docs in docs_strategy(), bs in 1usize..8, keep in 0usize..40) {
        let tmp = tempfile::tempdir().unwrap();
        let packed = pack(tmp.path(), "p", &docs, bs);
        let input = blocks_of(&packed);
        let path = tmp.path().join("s.bin");
        let written = write_shard(&path, &packed, keep, 3, "t").unwrap();
        let shard = read_shard(&path).unwrap();
        let n = keep.min(packed.n_blocks());
        prop_assert_eq!(shard.tokens.len(), n * bs);
        prop_assert_eq!(written.tokens as usize, n * bs);
        prop_assert_eq!(shard.block_size, Some(bs));
        prop_assert_eq!(&written.sha256, &shard.sha256);
        prop_assert_eq!(written.eos_count as usize, shard.tokens.iter().filter(|&&t| t == EOS).count());
        let order = block_order(packed.n_blocks(), keep, 3, "t");
        prop_assert_eq!(order.len(), n);
        let mut pool: BTreeMap<&[u16], usize> = BTreeMap::new();
        input.chunks(bs).for_each(|b| *pool.entry(b).or_default() += 1);
        for (block, &i) in shard.tokens.chunks(bs).zip(&order) {
            prop_assert_eq!(block, &input[i * bs..(i + 1) * bs]);
            let left = pool.get_mut(block);
            prop_assert!(left.as_ref().is_some_and(|c| **c > 0), "block not in input");
            *left.unwrap() -= 1;
        }
    }
}

// Checks: BAL-1
#[test]
fn bal_1_kept_blocks_are_chosen_by_shuffle_not_by_cutting_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let docs: Vec<Vec<u16>> = (0..100u16).map(|i| vec![i]).collect();
    let packed = pack(tmp.path(), "p", &docs, 1); // 200 one-token blocks: i, EOS, …
    let path = tmp.path().join("s.bin");
    write_shard(&path, &packed, 100, 42, "balance").unwrap();
    let kept: BTreeSet<u16> = read_shard(&path)
        .unwrap()
        .tokens
        .into_iter()
        .filter(|&t| t != EOS)
        .collect();
    assert!(
        kept.iter().any(|&t| t >= 50),
        "only the first blocks were kept: {kept:?}"
    );
}

/// Each domain writes with its own alphabet, so a block's domain is visible in its text.
const ALPHABETS: [(&str, &str, char); 3] = [
    ("code", "abcdefghij", 'C'),
    ("math", "αβγδεζηθικ", 'M'),
    ("prose", "абвгдежзик", 'P'),
];

#[derive(Debug, Clone)]
struct Corpus {
    /// Per domain: documents as (kind, word count) recipes.
    docs: Vec<Vec<(u8, usize, u8)>>,
    block_size: usize,
    balance_tokens: bool,
}

fn corpus_strategy() -> impl Strategy<Value = Corpus> {
    let doc = (0u8..10, 0usize..70, any::<u8>());
    (
        proptest::collection::vec(proptest::collection::vec(doc, 4..40), 3),
        4usize..40,
        any::<bool>(),
    )
        .prop_map(|(docs, block_size, balance_tokens)| Corpus {
            docs,
            block_size,
            balance_tokens,
        })
}

/// The text of one recipe: kind 0 empty, 1 whitespace, 2 a duplicate of the previous
/// document, otherwise a tagged document of `words` words.
fn render(domain: usize, i: usize, recipe: (u8, usize, u8), prev: &str) -> String {
    let (name, alphabet, tag) = ALPHABETS[domain];
    let letters: Vec<char> = alphabet.chars().collect();
    match recipe.0 {
        0 => String::new(),
        1 => " \n\t ".to_string(),
        2 => prev.to_string(),
        _ => {
            let mut s = format!("⟦{tag}{i}⟧");
            for w in 0..recipe.1 {
                let len = 1 + (w + recipe.2 as usize) % 5;
                s.push(' ');
                s.extend(
                    (0..len).map(|k| letters[(w * 7 + k + recipe.2 as usize) % letters.len()]),
                );
                if name == "code" && w % 9 == 4 {
                    s.push_str(" <|endoftext|>");
                }
            }
            s
        }
    }
}

fn write_corpus(dir: &Path, corpus: &Corpus) -> (String, Vec<Vec<String>>) {
    let mut texts = Vec::new();
    for (d, recipes) in corpus.docs.iter().enumerate() {
        let mut prev = String::new();
        let mut domain_texts = Vec::new();
        for (i, r) in recipes.iter().enumerate() {
            let text = render(d, i, *r, &prev);
            prev = text.clone();
            domain_texts.push(text);
        }
        let rows: Vec<serde_json::Value> = domain_texts
            .iter()
            .map(|t| serde_json::json!({ "text": t }))
            .collect();
        common::write_jsonl(&dir.join(format!("{}.jsonl", ALPHABETS[d].0)), &rows);
        texts.push(domain_texts);
    }
    let names: Vec<(&str, String)> = ALPHABETS
        .iter()
        .map(|(n, _, _)| (*n, format!("{n}.jsonl")))
        .collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|(n, f)| (*n, f.as_str())).collect();
    let balance = if corpus.balance_tokens {
        "tokens"
    } else {
        "none"
    };
    (
        common::local_config(corpus.block_size, balance, &pairs, ""),
        texts,
    )
}

fn all_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for split in ["train", "val"] {
        for (name, _, _) in ALPHABETS {
            let p = dir.join(split).join(format!("{name}.bin"));
            out.insert(format!("{split}/{name}"), std::fs::read(p).unwrap());
        }
    }
    out.insert(
        "manifest".into(),
        std::fs::read(dir.join("manifest.json")).unwrap(),
    );
    out
}

fn check_prepared(dir: &Path, corpus: &Corpus, texts: &[Vec<String>]) -> Result<(), TestCaseError> {
    let tok = Gpt2Tokenizer::embedded().unwrap();
    let manifest = Manifest::load(dir).unwrap();
    let bs = corpus.block_size;
    let mut tag_splits: BTreeMap<String, BTreeSet<Split>> = BTreeMap::new();
    let mut train_blocks = Vec::new();
    for info in &manifest.shards {
        let path = dir.join(&info.file);
        let shard = read_shard(&path).unwrap();
        let file_len = std::fs::metadata(&path).unwrap().len() as usize;
        // SHARD-1
        prop_assert_eq!(shard.tokens.len() % bs, 0);
        prop_assert_eq!(file_len, HEADER_BYTES + 2 * shard.tokens.len());
        prop_assert_eq!(shard.tokens.len() as u64, info.tokens);
        prop_assert_eq!(
            shard.tokens.iter().filter(|&&t| t == EOS).count() as u64,
            info.eos_count
        );
        let d = ALPHABETS
            .iter()
            .position(|(n, _, _)| *n == info.domain)
            .unwrap();
        if info.split == Split::Train {
            train_blocks.push(info.blocks);
        }
        let foreign: Vec<char> = ALPHABETS
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != d)
            .flat_map(|(_, (_, a, _))| a.chars())
            .collect();
        for block in shard.tokens.chunks(bs) {
            let runs: Vec<&[u16]> = block.split(|&t| t == EOS).collect();
            for (r, run) in runs.iter().enumerate() {
                let text = tok.decode(&run.iter().map(|&t| t as u32).collect::<Vec<_>>());
                // PACK-3: no character of another domain's alphabet.
                prop_assert!(
                    !text.chars().any(|c| foreign.contains(&c)),
                    "foreign text in {}: {text:?}",
                    info.file
                );
                // PACK-4: a run bounded by EOS on both sides is a whole input document.
                if r > 0 && r + 1 < runs.len() {
                    prop_assert!(texts[d].contains(&text), "not an input document: {text:?}");
                }
                for tag in text
                    .split('⟦')
                    .skip(1)
                    .filter_map(|t| t.split_once('⟧'))
                    .map(|(t, _)| t)
                {
                    tag_splits
                        .entry(tag.to_string())
                        .or_default()
                        .insert(info.split);
                }
            }
        }
    }
    // SPLIT-2: no document in two splits.
    for (tag, splits) in &tag_splits {
        prop_assert_eq!(splits.len(), 1, "document {} in splits {:?}", tag, splits);
    }
    // BAL-1: equal train block counts when balanced.
    if corpus.balance_tokens {
        prop_assert!(
            train_blocks.windows(2).all(|w| w[0] == w[1]),
            "unbalanced: {:?}",
            train_blocks
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// SPLIT-2, PACK-3, PACK-4, BAL-1, SHARD-1, DATA-6 end to end.
    #[test]
    fn data_6_prepare_properties_and_thread_independence(corpus in corpus_strategy()) {
        let tmp = tempfile::tempdir().unwrap();
        let (config_text, texts) = write_corpus(tmp.path(), &corpus);
        let config_path = tmp.path().join("data.toml");
        std::fs::write(&config_path, &config_text).unwrap();
        let config = DataConfig::load(&config_path).unwrap();
        let mut outputs = Vec::new();
        for threads in [1, 2] {
            let out = tmp.path().join(format!("out{threads}"));
            let opts = PrepareOptions { out: out.clone(), threads: Some(threads), ..Default::default() };
            match prepare(&config, &config_path, &opts) {
                Ok(_) => {
                    check_prepared(&out, &corpus, &texts)?;
                    outputs.push(Some(all_bytes(&out)));
                }
                Err(e) => {
                    // Too little data for a block in some split: a clear error, no output.
                    let msg = e.to_string();
                    prop_assert!(msg.contains("less than one block") || msg.contains("no documents"), "{msg}");
                    prop_assert!(!out.exists());
                    outputs.push(None);
                }
            }
        }
        prop_assert_eq!(&outputs[0], &outputs[1]);
    }
}
