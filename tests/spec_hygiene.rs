//! Repository hygiene: every spec ID is cited by a test (SPEC-1), and every
//! clause a spec marks *(untested: reason)* is listed with its reason.
//!
//! A test cites an ID when it names it as a whole word (`MOE-1`, not inside
//! `MOE-10`; or as a test-name prefix `moe_1_…`): anywhere in a file under a
//! `tests/` directory, or inside a `#[test]` function or `proptest!` block
//! elsewhere. Doc comments of library code do not count.

use std::collections::BTreeSet;
use std::path::Path;

/// One spec entry: its ID, the clauses marked untested (clause, reason),
/// and whether anything is left that a test must check.
struct SpecId {
    id: String,
    untested: Vec<(String, String)>,
    needs_test: bool,
}

fn spec_ids(text: &str) -> Vec<SpecId> {
    let mut out = Vec::new();
    for block in text.split("\n- **").skip(1) {
        let Some((id, rest)) = block.split_once("**") else {
            continue;
        };
        let body = rest.split("\n- ").next().unwrap_or(rest);
        let body = body.split("\n#").next().unwrap_or(body);
        let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
        let (untested, rest) = untested_clauses(&body);
        out.push(SpecId {
            id: id.to_string(),
            untested,
            needs_test: rest.contains("MUST") || rest.contains("SHOULD"),
        });
    }
    out
}

/// Splits out every `clause *(untested…)*`: the clause is the sentence
/// before the marker. Returns them and the body without them.
fn untested_clauses(body: &str) -> (Vec<(String, String)>, String) {
    let mut found = Vec::new();
    let mut rest = String::new();
    let mut tail = body;
    while let Some(at) = tail.find("*(untested") {
        let before = &tail[..at];
        let sentence_end = before.trim_end().trim_end_matches('.').len();
        let start = before[..sentence_end].rfind(". ").map_or(0, |i| i + 2);
        rest.push_str(&before[..start]);
        let after = &tail[at..];
        let end = after.find(")*").map_or(after.len(), |i| i + 2);
        let reason = after[..end]
            .trim_start_matches("*(untested")
            .trim_end_matches(")*")
            .trim_start_matches([':', ' '])
            .trim()
            .to_string();
        found.push((before[start..].trim().to_string(), reason));
        tail = &after[end..];
    }
    rest.push_str(tail);
    (found, rest)
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Whether `code` names `id` (`MOE-1`) or its test-name form (`moe_1`) as a whole word.
fn cites(code: &str, id: &str) -> bool {
    let snake = id.to_lowercase().replace('-', "_");
    [id, snake.as_str()].iter().any(|needle| {
        code.match_indices(needle).any(|(i, _)| {
            let before = code[..i].chars().next_back();
            let after = code[i + needle.len()..].chars().next();
            let after_ok = match after {
                Some('_') => *needle != id, // `moe_1_name` cites MOE-1; `MOE-1_` is no ID
                Some(c) => !is_word_char(c),
                None => true,
            };
            !before.is_some_and(is_word_char) && after_ok
        })
    })
}

/// The test code of one file outside `tests/`: each `#[test]` function and
/// `proptest!` block, brace-matched.
fn test_items(text: &str) -> String {
    let mut out = String::new();
    for marker in ["#[test]", "proptest!"] {
        for (i, _) in text.match_indices(marker) {
            let Some(open) = text[i..].find('{').map(|o| i + o) else {
                continue;
            };
            let mut depth = 0usize;
            for (j, c) in text[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            out.push_str(&text[i..open + j + 1]);
                            out.push('\n');
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

fn test_code(dir: &Path, in_tests: bool, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && !path.ends_with("target") {
            test_code(&path, in_tests || path.ends_with("tests"), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if in_tests {
                out.push_str(&text);
            } else {
                out.push_str(&test_items(&text));
            }
            out.push('\n');
        }
    }
}

fn all_spec_ids() -> Vec<SpecId> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut ids = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(root.join("specs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for path in files {
        ids.extend(spec_ids(&std::fs::read_to_string(path).unwrap()));
    }
    ids
}

// Checks: SPEC-1
#[test]
fn spec_1_every_spec_id_is_cited_by_a_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut code = String::new();
    for dir in ["tests", "crates", "benches", "src"] {
        test_code(&root.join(dir), dir == "tests", &mut code);
    }
    let ids = all_spec_ids();
    assert!(
        ids.len() > 30,
        "found only {} spec IDs: is the spec format still `- **ID**`?",
        ids.len()
    );
    let missing: BTreeSet<&str> = ids
        .iter()
        .filter(|s| s.needs_test && !cites(&code, &s.id))
        .map(|s| s.id.as_str())
        .collect();
    assert!(missing.is_empty(), "spec IDs cited by no test: {missing:?}");
}

// Checks: SPEC-2
#[test]
fn spec_2_untested_clauses_are_listed_with_a_reason() {
    let ids = all_spec_ids();
    let mut listed = 0;
    for s in &ids {
        for (clause, reason) in &s.untested {
            listed += 1;
            eprintln!("untested {}: {clause} — {reason}", s.id);
            assert!(
                !reason.is_empty(),
                "{}: untested clause without a reason",
                s.id
            );
            assert!(!clause.is_empty(), "{}: marker without a clause", s.id);
        }
    }
    assert!(
        listed > 0,
        "no untested clause found: has the marker syntax changed?"
    );
}

// Checks: SPEC-1
#[test]
fn spec_1_citation_is_a_whole_word_in_test_code() {
    assert!(cites("// MOE-1\n", "MOE-1"));
    assert!(cites("fn moe_1_router() {}", "MOE-1"));
    assert!(!cites("// MOE-10\n", "MOE-1"));
    assert!(!cites("fn moe_10_x() {}", "MOE-1"));
    assert!(!cites("XMOE-1 ", "MOE-1"));
    let lib = "/// MOE-3 in a doc comment\nfn f() {}\n#[test]\nfn t() { let _ = \"MOE-4\"; }\n";
    let tests = test_items(lib);
    assert!(!cites(&tests, "MOE-3") && cites(&tests, "MOE-4"));
    let (untested, rest) =
        untested_clauses("It MUST do a. It SHOULD do b *(untested: needs a GPU)*. It MUST do c.");
    assert_eq!(
        untested,
        [("It SHOULD do b".to_string(), "needs a GPU".to_string())]
    );
    assert!(rest.contains("do a") && rest.contains("do c") && !rest.contains("do b"));
}

// Checks: SPEC-3
#[test]
fn spec_3_property_tests_draw_from_a_fixed_seed() {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .expect("PROPTEST_RNG_SEED unset: .cargo/config.toml [env] did not reach the test");
    let seed: u64 = seed.parse().expect("PROPTEST_RNG_SEED is not a u64");
    let config = proptest::test_runner::Config::default();
    assert_eq!(
        config.rng_seed,
        proptest::test_runner::RngSeed::Fixed(seed),
        "proptest does not pick up the seed"
    );
    assert!(config.failure_persistence.is_none());
}
