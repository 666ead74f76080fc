//! The audit fixture: three small corpora with planted problems (a constant
//! `Problem:` prefix, invisible characters, a literal `<|endoftext|>`,
//! near-duplicate paragraphs, an exact duplicate), prepared at block size 16.

use std::path::{Path, PathBuf};

use moe_data::config::DataConfig;
use moe_data::prepare::{PrepareOptions, prepare};
use serde_json::{Value, json};

use super::{local_config, write_jsonl};

pub const NAMES: [&str; 8] = ["Ada", "Bram", "Cleo", "Dov", "Esme", "Finn", "Gus", "Hana"];
pub const PLACES: [&str; 5] = ["harbor", "market", "mill", "chapel", "bridge"];

pub fn code_texts() -> Vec<String> {
    (0..96)
        .map(|i| match i % 4 {
            0 => format!("def f{i}(x):\n    return x * {i} + 1\n"),
            1 => format!("class C{i}:\n    size = {i}\n"),
            2 => format!("import os{i}\nprint(os{i}.name)\n"),
            _ => format!("    total_{i} = {i} * 2  # indented\n"),
        })
        .collect()
}

pub fn math_texts() -> Vec<String> {
    (0..72)
        .map(|i| {
            let (a, b) = (3 * i + 1, 7 * i + 2);
            let ask = ["What is", "Add", "Compute", "Find"][i % 4];
            format!(
                "Problem: {ask} {a} plus {b}?\n\nSolution: {a} + {b} = {}.",
                a + b
            )
        })
        .collect()
}

pub fn prose_texts() -> Vec<String> {
    // Every tenth sentence hides a no-break space.
    let mut v: Vec<String> = (0..40)
        .map(|i| {
            let gap = if i % 10 == 3 { "\u{00A0}" } else { " " };
            format!(
                "{} walked{gap}to the {} at dawn on day {i}.",
                NAMES[i % 8],
                PLACES[i % 5]
            )
        })
        .collect();
    v.push("The\u{00A0}clock\u{200B}tower rang twice before noon.".into());
    v.push("A sign read <|endoftext|> in bold letters.".into());
    v.push(v[0].clone());
    let paragraph = "The keeper of the northern light kept a ledger of every ship that passed the rocks, \
        noting the hour, the wind, the colour of the sails and the songs the sailors sang as they rounded the point. \
        In winter the ice crept down the channel and no ship came for weeks, so he mended nets, \
        wrote letters to his sister in the valley, and counted the gulls that sheltered under the gallery. \
        When spring returned he climbed the tower each dawn, polished the great lens until it shone, \
        and waited for the first mast to rise above the grey line of the sea.";
    for w in [
        "ledger", "hour", "wind", "sails", "songs", "point", "nets", "letters", "gulls", "lens",
    ] {
        v.push(paragraph.replacen(w, "log", 1));
    }
    v
}

/// Writes the three corpora and prepares them; returns the prepared directory.
pub fn prepared_fixture(dir: &Path, balance: &str) -> PathBuf {
    let rows = |texts: Vec<String>| -> Vec<Value> {
        texts.into_iter().map(|t| json!({ "text": t })).collect()
    };
    write_jsonl(&dir.join("code.jsonl"), &rows(code_texts()));
    write_jsonl(&dir.join("math.jsonl"), &rows(math_texts()));
    write_jsonl(&dir.join("prose.jsonl"), &rows(prose_texts()));
    let text = local_config(
        16,
        balance,
        &[
            ("code", "code.jsonl"),
            ("math", "math.jsonl"),
            ("prose", "prose.jsonl"),
        ],
        "",
    );
    let config_path = dir.join("data.toml");
    std::fs::write(&config_path, text).unwrap();
    let config = DataConfig::load(&config_path).unwrap();
    let out = dir.join("out");
    let opts = PrepareOptions {
        out: out.clone(),
        ..Default::default()
    };
    prepare(&config, &config_path, &opts).unwrap();
    out
}
