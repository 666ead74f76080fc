//! SRC-4 … SRC-7, SRC-9, SRC-10, HUB-1, DATA-12: `moe data prepare` through
//! `moe-hub` against the fake Hub on 127.0.0.1 (no network): resolve to a
//! commit, download at that commit into `HF_HOME`, record commit and
//! sha256, work offline from the cache, refuse unpinned revisions with
//! `--locked`, refuse unsafe names, revisions and ETags, download file by
//! file and stop at the target, and leave no temporary directory when
//! killed by SIGINT/SIGTERM while waiting for the Hub.

mod common;
#[path = "../crates/moe-hub/tests/common/fake_hub.rs"]
mod fake_hub;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fake_hub::{COMMIT, FakeHub, Reply, hostile_files, serve, serve_with};
use sha2::{Digest, Sha256};

fn jsonl(prefix: &str, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| format!("{{\"text\": \"{prefix} document {i} from the hub with words\"}}\n"))
        .collect::<String>()
        .into_bytes()
}

fn fake_repos() -> fake_hub::Repos {
    let mut ds = BTreeMap::new();
    ds.insert("data/train-00000.jsonl".to_string(), jsonl("first", 30));
    ds.insert("data/train-00001.jsonl".to_string(), jsonl("second", 30));
    ds.insert("README.md".to_string(), b"# fake".to_vec());
    let mut evil = BTreeMap::new();
    evil.insert("data/../../evil.jsonl".to_string(), jsonl("evil", 3));
    // Four parts of ~330 tokens each, listed in order and in reverse.
    let many: BTreeMap<String, Vec<u8>> = (0..4)
        .map(|i| {
            (
                format!("data/train-0000{i}.jsonl"),
                jsonl(&format!("part{i}"), 30),
            )
        })
        .collect();
    BTreeMap::from([
        ("fake/ds".to_string(), ds),
        ("fake/evil".to_string(), evil),
        ("fake/many".to_string(), many.clone()),
        ("fake/many-reversed".to_string(), many),
    ])
}

fn hf_config(repo: &str, revision: &str) -> String {
    format!(
        "[pipeline]\nblock_size = 8\nval_fraction = 0.2\n\n[[domains]]\nname = \"hub\"\n[[domains.sources]]\nkind = \"hf\"\nrepo = \"{repo}\"\nrevision = \"{revision}\"\nfiles = [\"data/*.jsonl\"]\nformat = \"jsonl\"\n"
    )
}

fn prepare(dir: &Path, hub: &FakeHub, out: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_moe"))
        .args(["data", "prepare", "--config", "data.toml", "--out", out])
        .args(extra)
        .current_dir(dir)
        .env("HF_ENDPOINT", &hub.url)
        .env("HF_HOME", dir.join("hf-home"))
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_TOKEN")
        .output()
        .unwrap()
}

// Checks: SRC-4, SRC-6
#[test]
fn src_4_src_6_download_at_commit_then_offline_from_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let repos = fake_repos();
    let hub = serve(repos.clone());
    std::fs::write(tmp.path().join("data.toml"), hf_config("fake/ds", "main")).unwrap();

    let out = prepare(tmp.path(), &hub, "online", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = moe_data::manifest::Manifest::load(&tmp.path().join("online")).unwrap();
    let source = &manifest.sources[0];
    assert_eq!(source.commit.as_deref(), Some(COMMIT));
    let names: Vec<&str> = source.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["data/train-00000.jsonl", "data/train-00001.jsonl"]);
    for f in &source.files {
        assert_eq!(
            f.sha256,
            hex::encode(Sha256::digest(&repos["fake/ds"][&f.name]))
        );
    }
    assert_eq!(source.documents_kept, 60);
    // Files were fetched at the resolved commit, into HF_HOME's hub cache.
    let log = hub.log.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|p| p == &format!("/datasets/fake/ds/resolve/{COMMIT}/data/train-00001.jsonl")),
        "{log:?}"
    );
    assert!(!log.iter().any(|p| p.contains("README")));
    assert!(
        tmp.path()
            .join("hf-home/hub/datasets--fake--ds/refs/main")
            .exists()
    );

    // Offline: the same bytes from the cache, and not one request.
    let before = hub.log.lock().unwrap().len();
    let out = prepare(tmp.path(), &hub, "offline", &["--offline"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        hub.log.lock().unwrap().len(),
        before,
        "offline mode made requests"
    );
    for shard in ["train/hub.bin", "val/hub.bin", "manifest.json"] {
        let a = std::fs::read(tmp.path().join("online").join(shard)).unwrap();
        let b = std::fs::read(tmp.path().join("offline").join(shard)).unwrap();
        assert_eq!(a, b, "{shard}");
    }
}

// Checks: SRC-6
#[test]
fn src_6_offline_without_cache_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = serve(fake_repos());
    std::fs::write(tmp.path().join("data.toml"), hf_config("fake/ds", "main")).unwrap();
    let out = prepare(tmp.path(), &hub, "out", &["--offline"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fake/ds@main") && err.contains("not in the cache"),
        "{err}"
    );
    assert!(hub.log.lock().unwrap().is_empty());
}

// Checks: SRC-5
#[test]
fn src_5_locked_refuses_a_branch_before_any_request() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = serve(fake_repos());
    std::fs::write(tmp.path().join("data.toml"), hf_config("fake/ds", "main")).unwrap();
    let out = prepare(tmp.path(), &hub, "out", &["--locked"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--locked needs `revision` to be a 40-hex commit")
    );
    assert!(hub.log.lock().unwrap().is_empty());
    assert!(!tmp.path().join("out").exists());
    // A pinned commit passes --locked.
    std::fs::write(tmp.path().join("data.toml"), hf_config("fake/ds", COMMIT)).unwrap();
    let out = prepare(tmp.path(), &hub, "out", &["--locked"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// Checks: SRC-7
#[test]
fn src_7_unsafe_remote_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = serve(fake_repos());
    std::fs::write(
        tmp.path().join("data.toml"),
        hf_config("fake/evil", "main").replace("data/*.jsonl", "data/**"),
    )
    .unwrap();
    let out = prepare(tmp.path(), &hub, "out", &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsafe file name"));
    assert!(
        !tmp.path().join("evil.jsonl").exists() && !tmp.path().join("hf-home/evil.jsonl").exists()
    );
    assert!(
        !hub.log
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.contains("resolve"))
    );
}

/// Request paths that fetched (or asked about) file `name`.
fn requests_for(hub: &FakeHub, name: &str) -> usize {
    hub.log
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.contains("/resolve/") && p.ends_with(name))
        .count()
}

fn with_target(config: String, tokens: u64) -> String {
    config.replace(
        "[pipeline]\n",
        &format!("[pipeline]\ntokens_per_domain = {tokens}\n"),
    )
}

// Checks: SRC-10, DATA-2
#[test]
fn src_10_files_after_the_target_are_never_downloaded() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = serve(fake_repos());
    let parts: Vec<String> = (0..4)
        .map(|i| format!("data/train-0000{i}.jsonl"))
        .collect();
    // 100 tokens: the first part meets the target; 450: the second does.
    for (target, fetched) in [(100, 1), (450, 2)] {
        let out = format!("out{target}");
        std::fs::write(
            tmp.path().join("data.toml"),
            with_target(hf_config("fake/many", "main"), target),
        )
        .unwrap();
        let run = prepare(tmp.path(), &hub, &out, &[]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        for (i, part) in parts.iter().enumerate() {
            let n = requests_for(&hub, part);
            if i < fetched {
                assert!(n > 0, "target {target}: {part} was not fetched");
            } else {
                assert_eq!(n, 0, "target {target}: {part} was fetched after the target");
            }
        }
        let manifest = moe_data::manifest::Manifest::load(&tmp.path().join(&out)).unwrap();
        let source = &manifest.sources[0];
        let names: Vec<&str> = source.files.iter().map(|f| f.name.as_str()).collect();
        let expected: Vec<&str> = parts[..fetched].iter().map(String::as_str).collect();
        assert_eq!(names, expected, "target {target}");
        assert!(source.tokens_kept + source.documents_kept >= target);
        assert!(
            !tmp.path()
                .join("hf-home/hub/datasets--fake--many/snapshots")
                .join(COMMIT)
                .join(&parts[fetched])
                .exists()
        );
    }
    // Offline from the partly filled cache: the same bytes, no request.
    let before = hub.log.lock().unwrap().len();
    let run = prepare(tmp.path(), &hub, "offline", &["--offline"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(hub.log.lock().unwrap().len(), before);
    for f in ["train/hub.bin", "val/hub.bin", "manifest.json"] {
        let a = std::fs::read(tmp.path().join("out450").join(f)).unwrap();
        let b = std::fs::read(tmp.path().join("offline").join(f)).unwrap();
        assert_eq!(a, b, "{f}");
    }
}

// Checks: SRC-10, DATA-6
#[test]
fn src_10_the_result_does_not_depend_on_the_listing_order() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = serve(fake_repos());
    let mut outputs = Vec::new();
    for repo in ["fake/many", "fake/many-reversed"] {
        std::fs::write(
            tmp.path().join("data.toml"),
            with_target(hf_config(repo, "main"), 450),
        )
        .unwrap();
        let out = repo.replace('/', "-");
        let run = prepare(tmp.path(), &hub, &out, &[]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let dir = tmp.path().join(&out);
        let manifest = moe_data::manifest::Manifest::load(&dir).unwrap();
        outputs.push((
            std::fs::read(dir.join("train/hub.bin")).unwrap(),
            std::fs::read(dir.join("val/hub.bin")).unwrap(),
            manifest.sources[0].files.clone(),
        ));
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0].2.len(), 2);
}

// Checks: SRC-9, DATA-1
#[test]
fn src_9_a_malicious_revision_is_an_error_before_any_request() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = serve(fake_repos());
    let config = hf_config("fake/ds", "../../x");
    let err = moe_data::config::DataConfig::parse(&config, Path::new("data.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data.toml") && err.contains("revision") && err.contains("../../x"),
        "{err}"
    );
    std::fs::write(tmp.path().join("data.toml"), &config).unwrap();
    for extra in [&[][..], &["--offline"][..]] {
        let run = prepare(tmp.path(), &hub, "out", extra);
        assert!(!run.status.success());
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("revision"), "{stderr}");
    }
    assert!(hub.log.lock().unwrap().is_empty());
    assert_eq!(common::entries(tmp.path()), ["data.toml"]);
}

// Checks: HUB-1, DATA-3
#[test]
fn hub_1_an_absolute_etag_overwrites_nothing() {
    // The reproduction of issue 23: `ETag: "/some/abs/path"` made prepare
    // overwrite that file with the body and exit 0.
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let etag = format!("\"{}\"", victim.display());
    let hub = hostile_files(fake_repos(), move |r| r.set("ETag", &etag));
    std::fs::write(tmp.path().join("data.toml"), hf_config("fake/ds", "main")).unwrap();
    let out = prepare(tmp.path(), &hub, "out", &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ETag") && stderr.contains("data/train-00000.jsonl"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(common::entries(tmp.path()), ["data.toml", "victim.txt"]);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

// Checks: DATA-12, HUB-5
#[test]
#[cfg(unix)]
fn data_12_a_signal_while_waiting_for_the_hub_leaves_no_temp_dir() {
    use std::os::unix::process::ExitStatusExt;
    for signal in ["TERM", "INT"] {
        let tmp = tempfile::tempdir().unwrap();
        let hub = serve_with(|_, _| Reply {
            hang: Some(Duration::from_secs(60)),
            ..Reply::new("200 OK", vec![], vec![])
        });
        std::fs::write(tmp.path().join("data.toml"), hf_config("fake/ds", "main")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_moe"))
            .args(["data", "prepare", "--config", "data.toml", "--out", "out"])
            .current_dir(tmp.path())
            .env("HF_ENDPOINT", &hub.url)
            .env("HF_HOME", tmp.path().join("hf-home"))
            .env_remove("HF_HUB_OFFLINE")
            .spawn()
            .unwrap();
        // Wait until prepare has its temporary directory and asks the Hub.
        let started = std::time::Instant::now();
        while hub.log.lock().unwrap().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(30), "no request");
            std::thread::sleep(Duration::from_millis(20));
        }
        let temp = |dir: &Path| {
            common::entries(dir)
                .into_iter()
                .filter(|e| e.starts_with(".out.tmp"))
                .count()
        };
        assert_eq!(temp(tmp.path()), 1);
        let killed = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        let expected = if signal == "TERM" { 15 } else { 2 };
        assert_eq!(status.signal(), Some(expected), "{status:?}");
        assert_eq!(temp(tmp.path()), 0, "{:?}", common::entries(tmp.path()));
        assert!(!tmp.path().join("out").exists());
    }
}
