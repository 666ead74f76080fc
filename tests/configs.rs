//! DATA-1: every checked-in data config parses and validates.

use moe_data::config::{DataConfig, SourceKind};

// Checks: DATA-1
#[test]
fn data_1_checked_in_configs_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/data");
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
