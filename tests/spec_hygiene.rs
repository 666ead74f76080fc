//! Repository hygiene: every spec ID is cited by a test, unless the spec
//! marks it *(untested: reason)*.

use std::collections::BTreeSet;
use std::path::Path;

fn spec_ids(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for block in text.split("\n- **").skip(1) {
        let Some((id, rest)) = block.split_once("**") else {
            continue;
        };
        let body = rest.split("\n- ").next().unwrap_or(rest);
        out.push((id.to_string(), body.contains("*(untested")));
    }
    out
}

fn rust_sources(dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && !path.ends_with("target") {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

#[test]
fn every_spec_id_is_cited_by_a_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut code = String::new();
    for dir in ["tests", "crates", "benches", "src"] {
        rust_sources(&root.join(dir), &mut code);
    }
    let mut missing = BTreeSet::new();
    let mut total = 0;
    for entry in std::fs::read_dir(root.join("specs")).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        for (id, untested) in spec_ids(&text) {
            total += 1;
            if !untested && !code.contains(&id) {
                missing.insert(id);
            }
        }
    }
    assert!(
        total > 30,
        "found only {total} spec IDs: is the spec format still `- **ID**`?"
    );
    assert!(missing.is_empty(), "spec IDs cited by no test: {missing:?}");
}
