//! Shared by `benches/tokenize.rs` and `crates/moe-data/tests/tokenizer_parity.rs`: the
//! embedded corpora as documents, and the peer GPT-2 encoders built from the
//! same vocabulary as ours.
//!
//! - `tiktoken-rs` ships its own copy of `r50k_base` (GPT-2's vocabulary);
//! - HF `tokenizers` and the `bpe` crate are built here from the shipped
//!   `assets/gpt2/vocab.json` + `merges.txt`.

#![allow(dead_code)] // each including target uses a subset

use std::path::Path;

use moe_data::tokenizer::{EOS_ID, Gpt2Tokenizer, MERGES_TXT, VOCAB_JSON};

/// One domain of the embedded corpora: its documents as the pipeline formats them.
pub struct Domain {
    /// `code`, `math` or `prose`.
    pub name: &'static str,
    /// Document texts.
    pub docs: Vec<String>,
}

impl Domain {
    /// Total UTF-8 bytes of the documents.
    pub fn bytes(&self) -> usize {
        self.docs.iter().map(String::len).sum()
    }
}

/// The workspace's `assets/`, from the root package (the benches) or a
/// crate (moe-data's tokenizer parity test).
pub fn assets() -> std::path::PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|p| p.join("assets"))
        .find(|p| p.join("gpt2").is_dir())
        .unwrap_or_else(|| here.join("assets"))
}

/// The three embedded corpora (`assets/corpora/*/`), ~380-410 KB of text each.
///
/// Code and prose documents are the `text` field; math documents are
/// `question` + `answer` in the demo config's template.
pub fn embedded_corpora() -> Vec<Domain> {
    let root = assets().join("corpora");
    ["code", "math", "prose"]
        .into_iter()
        .map(|name| {
            let mut files: Vec<_> = std::fs::read_dir(root.join(name))
                .expect("assets/corpora/<domain> exists")
                .map(|e| e.expect("readable dir entry").path())
                .collect();
            files.sort();
            let docs = files.iter().flat_map(|f| read_docs(f)).collect();
            Domain { name, docs }
        })
        .collect()
}

fn read_docs(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("readable corpus file");
    text.lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).expect("jsonl row");
            let field = |k: &str| row[k].as_str().map(str::to_owned);
            match (field("text"), field("question"), field("answer")) {
                (Some(t), _, _) => t,
                (None, Some(q), Some(a)) => format!("Problem: {q}\n\nSolution: {a}"),
                _ => panic!("{}: row without text or question+answer", path.display()),
            }
        })
        .collect()
}

/// Our encoder.
pub fn ours() -> Gpt2Tokenizer {
    Gpt2Tokenizer::embedded().expect("embedded vocabulary loads")
}

/// The GPT-2 `tokenizer.json` (format 1.0, as the Hub ships it) built from
/// the shipped vocabulary: ByteLevel pre-tokenizer and decoder, BPE model.
///
/// With `eos_added_token` the file also declares `<|endoftext|>` as a special
/// added token, as the Hub's `gpt2/tokenizer.json` does: then a literal
/// `<|endoftext|>` in the text becomes id 50256 unless `encode_special_tokens`
/// is set (TOK-3).
pub fn hf_gpt2_json(eos_added_token: bool) -> String {
    let vocab: serde_json::Value = serde_json::from_str(VOCAB_JSON).expect("vocab.json");
    let merges: Vec<&str> = MERGES_TXT
        .lines()
        .filter(|l| !l.starts_with("#version") && !l.is_empty())
        .collect();
    let added = if eos_added_token {
        serde_json::json!([{
            "id": EOS_ID, "content": "<|endoftext|>", "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": true, "special": true
        }])
    } else {
        serde_json::json!([])
    };
    let byte_level = serde_json::json!({
        "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true
    });
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": byte_level,
        "post_processor": null,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": "", "end_of_word_suffix": "",
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges
        }
    })
    .to_string()
}

/// HF `tokenizers` 1.0 (rc): the Hub-format GPT-2 file, upgraded by its own
/// `canonicalize_str`, then read.
pub fn hf_gpt2(eos_added_token: bool) -> tokenizers::pipeline::PipelineTokenizer {
    let canonical = tokenizers::canonicalize_str(&hf_gpt2_json(eos_added_token))
        .expect("tk-convert accepts the GPT-2 tokenizer.json");
    tokenizers::from_json(&canonical).expect("tokenizers reads the canonical GPT-2 file")
}

/// Plain-text encoding options for `tokenizers`: no template specials, and
/// declared special tokens in the text go through the model like any text.
pub fn hf_plain() -> tokenizers::pipeline::EncodeOptions {
    tokenizers::pipeline::EncodeOptions {
        add_special_tokens: false,
        encode_special_tokens: true,
        ..Default::default()
    }
}

/// Encodes with HF `tokenizers` 1.0 (rc), appending ids to `out`.
pub fn hf_encode_into(
    tok: &tokenizers::pipeline::PipelineTokenizer,
    opts: &tokenizers::pipeline::EncodeOptions,
    text: &str,
    out: &mut Vec<tokenizers::pipeline::PipelineToken>,
) {
    tok.encode_into(text, opts, out)
        .expect("tokenizers encodes");
}

/// HF `tokenizers` 0.23 (the current stable line) built through its
/// object model: BPE from the shipped `vocab.json` + `merges.txt`, ByteLevel pre-tokenizer and decoder.
pub fn hf023_gpt2() -> tokenizers_023::Tokenizer {
    use tokenizers_023::models::bpe::BPE;
    use tokenizers_023::{decoders, pre_tokenizers};
    let dir = assets().join("gpt2");
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let bpe = BPE::from_file(&file("vocab.json"), &file("merges.txt"))
        .build()
        .expect("BPE builds from the shipped files");
    let mut tok = tokenizers_023::Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(
        pre_tokenizers::byte_level::ByteLevel::default().add_prefix_space(false),
    ));
    tok.with_decoder(Some(decoders::byte_level::ByteLevel::default()));
    tok
}

/// GPT-2 with the `bpe` crate (GitHub's linear-time BPE): the dictionary is
/// our token list in id order (EOS excluded), and the GPT-2 pattern runs on
/// `regex-automata` with `\s+(?!\S)` spelled as a one-character look-ahead
/// pattern that is trimmed off the match.
pub struct BpeCrate {
    bpe: bpe::byte_pair_encoding::BytePairEncoding,
    pat: regex_automata::meta::Regex,
}

/// The patterns: GPT-2's alternatives; then `\s+\s` standing for
/// `\s+(?!\S)` (its last character is look-ahead); then `\s+`.
const BPE_PATTERNS: [&str; 3] = [
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+$",
    r"\s+\s",
    r"\s+",
];

impl BpeCrate {
    /// Builds the dictionary from `ours`' token bytes (ids 0..50256).
    pub fn new(ours: &Gpt2Tokenizer) -> Self {
        let tokens = (0..EOS_ID).map(|id| ours.token_bytes(id).expect("id in vocab").to_vec());
        let bpe = bpe::byte_pair_encoding::BytePairEncoding::from_dictionary(tokens, None);
        let pat = regex_automata::meta::Regex::new_many(&BPE_PATTERNS).expect("valid patterns");
        Self { bpe, pat }
    }

    /// Appends the ids of `text` to `out`.
    pub fn encode_into(&self, text: &str, out: &mut Vec<u32>) {
        use regex_automata::{Anchored, Input};
        let mut at = 0;
        while at < text.len() {
            let input = Input::new(&text[at..]).anchored(Anchored::Yes);
            let m = self.pat.find(input).expect("the patterns match any char");
            let mut end = at + m.end();
            if m.pattern().as_usize() == 1 {
                let look = text[at..end].chars().next_back().map_or(0, char::len_utf8);
                end -= look;
            }
            out.extend(self.bpe.encode_via_backtracking(&text.as_bytes()[at..end]));
            at = end;
        }
    }
}
