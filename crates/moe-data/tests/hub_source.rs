//! SRC-4, HUB-1, HUB-3, HUB-4, DATA-5 through `prepare`: a Hub source whose
//! server answers with a path-like ETag, a cut body, an HTML page or
//! nothing at all ends `prepare` with an error naming the repo and the
//! file; nothing is written outside the cache, nothing is cached, and no
//! output or temporary directory is left.

mod common;
#[path = "../../moe-hub/tests/common/fake_hub.rs"]
mod fake_hub;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::entries;
use fake_hub::{FakeHub, Reply, hostile_files, serve, serve_with};
use moe_data::config::DataConfig;
use moe_data::prepare::{PrepareOptions, prepare};
use moe_data::sources::{HubOptions, NetOptions};

const FILE: &str = "data/train-00000.jsonl";

fn repos() -> fake_hub::Repos {
    let rows: String = (0..40)
        .map(|i| format!("{{\"text\": \"hub document {i} with some words\"}}\n"))
        .collect();
    BTreeMap::from([(
        "fake/ds".to_string(),
        BTreeMap::from([(FILE.to_string(), rows.into_bytes())]),
    )])
}

const CONFIG: &str = "[pipeline]\nblock_size = 8\nval_fraction = 0.2\n\n[[domains]]\nname = \"hub\"\n[[domains.sources]]\nkind = \"hf\"\nrepo = \"fake/ds\"\nfiles = [\"data/*.jsonl\"]\nformat = \"jsonl\"\n";

fn run(dir: &Path, hub: &FakeHub) -> moe_data::Result<()> {
    let path = dir.join("data.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let config = DataConfig::load(&path)?;
    let opts = PrepareOptions {
        out: dir.join("out"),
        hub: HubOptions {
            cache_dir: Some(dir.join("cache")),
            endpoint: Some(hub.url.clone()),
            net: NetOptions {
                connect_timeout: Some(Duration::from_secs(2)),
                read_timeout: Some(Duration::from_millis(300)),
                retries: Some(1),
                backoff: Some(Duration::from_millis(10)),
            },
            ..Default::default()
        },
        ..Default::default()
    };
    prepare(&config, &path, &opts).map(drop)
}

/// Files (not folders) under `dir`.
fn files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

fn hostile(f: impl Fn(Reply) -> Reply + Send + Sync + 'static) -> FakeHub {
    hostile_files(repos(), f)
}

// Checks: SRC-4, HUB-2
#[test]
fn src_4_an_honest_hub_prepares() {
    let tmp = tempfile::tempdir().unwrap();
    run(tmp.path(), &serve(repos())).unwrap();
    assert_eq!(entries(tmp.path()), ["cache", "data.toml", "out"]);
}

// Checks: HUB-1, HUB-3, HUB-4, DATA-5
#[test]
fn hub_3_hostile_answers_end_prepare_with_nothing_cached_or_left() {
    let cases: Vec<(&str, FakeHub)> = vec![
        ("ETag", hostile(|r| r.set("ETag", "\"/tmp/moe-owned\""))),
        (
            "X-Repo-Commit",
            hostile(|r| r.set("X-Repo-Commit", "../../x")),
        ),
        (
            "nothing was cached",
            hostile(|mut r| {
                r.cut_after = Some(10);
                r
            }),
        ),
        (
            "HTML page",
            hostile(|r| {
                Reply::new("200 OK", r.headers.clone(), b"<html>oops</html>".to_vec())
                    .set("Content-Type", "text/html")
            }),
        ),
        (
            "after 2 tries",
            serve_with(|_, _| Reply {
                hang: Some(Duration::from_secs(5)),
                ..Reply::new("200 OK", vec![], vec![])
            }),
        ),
    ];
    for (needle, hub) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let err = run(tmp.path(), &hub).unwrap_err().to_string();
        assert!(
            err.contains("fake/ds") && err.contains(needle),
            "{needle}: {err}"
        );
        assert_eq!(files(&tmp.path().join("cache")), 0, "{err}");
        let left: Vec<String> = entries(tmp.path())
            .into_iter()
            .filter(|e| e != "cache")
            .collect();
        assert_eq!(left, ["data.toml"], "{err}");
    }
    assert!(!Path::new("/tmp/moe-owned").exists());
}
