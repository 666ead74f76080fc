//! SRC-4 … SRC-7, SRC-9, SRC-10: the real `hf-hub` download path against a
//! fake dataset repo served on 127.0.0.1 (no network): resolve to a commit,
//! download at that commit into `HF_HOME`, record commit and sha256, work
//! offline from the cache, refuse unpinned revisions with `--locked`, refuse
//! unsafe names and revisions, download file by file and stop at the target.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A fake Hub: repo id → (file name → bytes). Records every request path.
struct FakeHub {
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

fn serve(repos: BTreeMap<String, BTreeMap<String, Vec<u8>>>) -> FakeHub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        // Bounded: a test needs a few dozen requests at most.
        for stream in listener.incoming().take(500) {
            let Ok(stream) = stream else { continue };
            let _ = handle(stream, &repos, &log2);
        }
    });
    FakeHub { url, log }
}

fn handle(
    mut stream: TcpStream,
    repos: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line
            .strip_prefix("Range: ")
            .or_else(|| line.strip_prefix("range: "))
        {
            range = v.trim().strip_prefix("bytes=").map(str::to_string);
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
    log.lock().unwrap().push(path.clone());
    let (status, headers, body) = route(&path, range.as_deref(), repos);
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    stream.write_all(head.as_bytes())?;
    stream.write_all(b"\r\n")?;
    stream.write_all(&body)
}

type Response = (String, Vec<(String, String)>, Vec<u8>);

fn route(
    path: &str,
    range: Option<&str>,
    repos: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
) -> Response {
    let not_found = ("404 Not Found".to_string(), vec![], b"not found".to_vec());
    if let Some(rest) = path.strip_prefix("/api/datasets/") {
        let parts: Vec<&str> = rest.splitn(4, '/').collect();
        let (repo, rev) = (
            format!("{}/{}", parts[0], parts.get(1).unwrap_or(&"")),
            parts.get(3).copied().unwrap_or(""),
        );
        let Some(files) = repos.get(&repo).filter(|_| rev == "main" || rev == COMMIT) else {
            return not_found;
        };
        let mut siblings: Vec<_> = files
            .keys()
            .map(|f| serde_json::json!({ "rfilename": f }))
            .collect();
        if repo.ends_with("-reversed") {
            siblings.reverse();
        }
        let body = serde_json::json!({ "sha": COMMIT, "siblings": siblings })
            .to_string()
            .into_bytes();
        return (
            "200 OK".into(),
            vec![("Content-Type".into(), "application/json".into())],
            body,
        );
    }
    if let Some(rest) = path.strip_prefix("/datasets/") {
        let parts: Vec<&str> = rest.splitn(5, '/').collect();
        if parts.len() < 5 || parts[2] != "resolve" {
            return not_found;
        }
        let repo = format!("{}/{}", parts[0], parts[1]);
        let Some(bytes) = repos.get(&repo).and_then(|f| f.get(parts[4])) else {
            return not_found;
        };
        let (start, end) = match range.and_then(|r| r.split_once('-')) {
            Some((a, b)) => (
                a.parse().unwrap_or(0),
                b.parse().unwrap_or(bytes.len() - 1).min(bytes.len() - 1),
            ),
            None => (0, bytes.len() - 1),
        };
        let headers = vec![
            (
                "ETag".into(),
                format!("\"{}\"", hex::encode(Sha256::digest(bytes))),
            ),
            ("X-Repo-Commit".into(), COMMIT.into()),
            (
                "Content-Range".into(),
                format!("bytes {start}-{end}/{}", bytes.len()),
            ),
        ];
        return (
            "206 Partial Content".into(),
            headers,
            bytes[start..=end].to_vec(),
        );
    }
    not_found
}

fn jsonl(prefix: &str, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| format!("{{\"text\": \"{prefix} document {i} from the hub with words\"}}\n"))
        .collect::<String>()
        .into_bytes()
}

fn fake_repos() -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
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
