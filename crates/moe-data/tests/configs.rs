//! DATA-1, TOK-5: every checked-in data config parses and validates, and
//! every source caps its documents with `max_chars`.

mod common;

use moe_data::config::{DataConfig, SourceKind};

// Checks: DATA-1, TOK-5
#[test]
fn data_1_checked_in_configs_are_valid() {
    let dir = common::repo_root().join("configs/data");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = DataConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                config
                    .domains
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>(),
                ["code", "math", "prose"]
            );
            // TOK-5: a bounded piece length starts with a bounded document.
            for source in config.domains.iter().flat_map(|d| &d.sources) {
                assert!(
                    source.max_chars.is_some(),
                    "{}: {} has no max_chars",
                    path.display(),
                    source.label()
                );
            }
            seen.push(path.file_stem().unwrap().to_string_lossy().to_string());
        }
    }
    seen.sort();
    assert_eq!(seen, ["demo", "seed", "v3"]);
    let seed = DataConfig::load(&dir.join("seed.toml")).unwrap();
    let math = &seed.domains[1].sources;
    assert_eq!(math[0].repo.as_deref(), Some("openai/gsm8k"));
    assert_eq!(math[1].kind, SourceKind::Hf);
}
