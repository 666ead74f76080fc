//! HUB-1 … HUB-4 against the fake Hub on 127.0.0.1: honest downloads land
//! in the HF cache layout; hostile answers (path-like headers on any
//! response of a redirect chain, cut bodies, lying sizes and ranges, HTML
//! pages, silence) are refused with the file named and nothing cached.

#[path = "common/fake_hub.rs"]
mod fake_hub;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use fake_hub::{COMMIT, FakeHub, Reply, Repos, honest, hostile_files, serve, serve_with, sha256};
use moe_hub::{Hub, HubError, HubOptions, NetOptions, Repo};

const NAME: &str = "data/train.jsonl";

fn body() -> Vec<u8> {
    (0..20)
        .map(|i| format!("{{\"text\": \"row {i} of the fake dataset\"}}\n"))
        .collect::<String>()
        .into_bytes()
}

fn repos() -> Repos {
    let files = BTreeMap::from([
        (NAME.to_string(), body()),
        ("README.md".into(), b"# r".to_vec()),
    ]);
    BTreeMap::from([("fake/ds".to_string(), files)])
}

/// Short timeouts and one quick retry, so hostile servers cost milliseconds.
fn net() -> NetOptions {
    NetOptions {
        connect_timeout: Some(Duration::from_secs(2)),
        read_timeout: Some(Duration::from_millis(300)),
        retries: Some(1),
        backoff: Some(Duration::from_millis(10)),
    }
}

fn hub(server: &FakeHub, cache: &Path) -> Hub {
    Hub::new(&HubOptions {
        cache_dir: Some(cache.to_path_buf()),
        endpoint: Some(server.url.clone()),
        net: net(),
        ..Default::default()
    })
    .unwrap()
}

fn fetch(server: &FakeHub, cache: &Path, revision: &str) -> Result<std::path::PathBuf, HubError> {
    hub(server, cache).file(&Repo::dataset("fake/ds"), revision, NAME)
}

/// Every file under `dir`, relative, sorted (links listed, not followed).
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A server that answers file requests with `hostile(honest reply)`.
fn hostile(f: impl Fn(Reply) -> Reply + Send + Sync + 'static) -> FakeHub {
    hostile_files(repos(), f)
}

/// Runs a download from `server` into a fresh cache and checks it failed
/// with `needle` in the message, naming the file, leaving no file at all.
fn refused(server: FakeHub, needle: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let err = fetch(&server, &cache, "main").unwrap_err().to_string();
    assert!(err.contains(needle), "{err}");
    assert!(err.contains(NAME) || err.contains("resolve"), "{err}");
    assert_eq!(tree(tmp.path()), Vec::<String>::new(), "{err}");
    err
}

// Checks: HUB-2, SRC-4, SRC-6
#[test]
fn hub_2_a_download_fills_the_standard_cache_then_offline_reads_it() {
    let server = serve(repos());
    let tmp = tempfile::tempdir().unwrap();
    let path = fetch(&server, tmp.path(), "main").unwrap();
    let repo = tmp.path().join("datasets--fake--ds");
    assert_eq!(path, repo.join("snapshots").join(COMMIT).join(NAME));
    assert_eq!(std::fs::read(&path).unwrap(), body());
    let link = std::fs::read_link(&path).unwrap();
    assert_eq!(link, Path::new("../../../blobs").join(sha256(&body())));
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        COMMIT
    );
    assert_eq!(
        tree(tmp.path()),
        [
            format!("datasets--fake--ds/blobs/{}", sha256(&body())),
            "datasets--fake--ds/refs/main".into(),
            format!("datasets--fake--ds/snapshots/{COMMIT}/{NAME}"),
        ]
    );
    // Cached: no further request, online or offline.
    let before = server.requests().len();
    assert_eq!(fetch(&server, tmp.path(), "main").unwrap(), path);
    let offline = Hub::new(&HubOptions {
        offline: true,
        cache_dir: Some(tmp.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    let repo_ref = Repo::dataset("fake/ds");
    assert_eq!(offline.file(&repo_ref, "main", NAME).unwrap(), path);
    assert_eq!(offline.file(&repo_ref, COMMIT, NAME).unwrap(), path);
    let listing = offline.list(&repo_ref, "main").unwrap();
    assert_eq!(
        (listing.commit.as_str(), listing.files),
        (COMMIT, vec![NAME.to_string()])
    );
    assert_eq!(server.requests().len(), before);
    let err = offline.file(&repo_ref, "main", "README.md").unwrap_err();
    assert!(matches!(err, HubError::NotCached { .. }), "{err}");
    let err = offline
        .list(&Repo::dataset("fake/other"), "main")
        .unwrap_err();
    assert!(err.to_string().contains("not in the cache"), "{err}");
}

// Checks: HUB-2, SRC-4
#[test]
fn hub_2_the_listing_names_the_commit_and_files() {
    let server = serve(repos());
    let tmp = tempfile::tempdir().unwrap();
    let listing = hub(&server, tmp.path())
        .list(&Repo::dataset("fake/ds"), "main")
        .unwrap();
    assert_eq!(listing.commit, COMMIT);
    assert_eq!(listing.files, ["README.md", NAME]);
    assert_eq!(server.requests(), ["/api/datasets/fake/ds/revision/main"]);
    assert!(tree(tmp.path()).is_empty(), "listing wrote to the cache");
}

// Checks: HUB-1, SRC-7
#[test]
fn hub_1_a_listing_with_an_unsafe_name_or_a_non_commit_is_refused() {
    for (sha, name, needle) in [
        (COMMIT, "../../evil", "unsafe file name"),
        (COMMIT, "/etc/passwd", "unsafe file name"),
        ("../../x", "a.jsonl", "non-commit sha"),
    ] {
        let server = serve_with(move |_, _| {
            let body = serde_json::json!({"sha": sha, "siblings": [{"rfilename": name}]});
            Reply::new("200 OK", vec![], body.to_string().into_bytes())
        });
        let tmp = tempfile::tempdir().unwrap();
        let err = hub(&server, tmp.path())
            .list(&Repo::dataset("fake/ds"), "main")
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
    }
}

// Checks: HUB-1
#[test]
fn hub_1_path_like_etags_and_commits_are_refused_before_the_disk() {
    for etag in [
        "\"/tmp/owned\"",
        "\"../../../../owned\"",
        "\"a/b\"",
        "\"..\"",
        "W/\"x\\\\y\"",
    ] {
        refused(hostile(move |r| r.set("ETag", etag)), "ETag");
    }
    for commit in ["../../x", "/abs", "main"] {
        refused(
            hostile(move |r| r.set("X-Repo-Commit", commit)),
            "X-Repo-Commit",
        );
    }
    refused(
        hostile(|r| r.set("X-Linked-Etag", "\"../x\"")),
        "X-Linked-Etag",
    );
}

/// A Hub that redirects the file to a "CDN" path on the same server, as the
/// real one sends LFS files to a CDN: the first answer carries the commit,
/// the linked ETag (sha256) and size; `cdn` shapes the CDN's answer.
fn redirecting(cdn: impl Fn(Reply) -> Reply + Send + Sync + 'static) -> FakeHub {
    let repos = repos();
    serve_with(move |req, _| {
        if let Some(rest) = req.path.strip_prefix("/cdn/") {
            let _ = rest;
            let bytes = body();
            return cdn(Reply::new(
                "200 OK",
                vec![("ETag".into(), "\"d41d8cd98f00b204-2\"".into())],
                bytes,
            ));
        }
        if req.path.contains("/resolve/") {
            let bytes = body();
            return Reply::new(
                "302 Found",
                vec![
                    ("Location".into(), "/cdn/blob?sig=1".into()),
                    ("X-Repo-Commit".into(), COMMIT.into()),
                    ("X-Linked-Etag".into(), format!("\"{}\"", sha256(&bytes))),
                    ("X-Linked-Size".into(), bytes.len().to_string()),
                    ("ETag".into(), "\"0123abcd\"".into()),
                ],
                Vec::new(),
            );
        }
        honest(req, &repos)
    })
}

// Checks: HUB-1, HUB-2
#[test]
fn hub_1_every_response_of_a_redirect_chain_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let server = redirecting(|r| r);
    let path = fetch(&server, tmp.path(), "main").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body());
    let blob = tmp
        .path()
        .join("datasets--fake--ds/blobs")
        .join(sha256(&body()));
    assert!(blob.is_file(), "the blob is named by the linked ETag");
    assert!(server.requests().iter().any(|p| p.starts_with("/cdn/")));
    // The CDN's own headers are checked too, though they name no path.
    refused(redirecting(|r| r.set("ETag", "\"../../x\"")), "ETag");
    refused(
        redirecting(|r| r.set("X-Repo-Commit", "../x")),
        "X-Repo-Commit",
    );
    // And the CDN's size must agree with the Hub's X-Linked-Size.
    refused(
        redirecting(|mut r| {
            r.body.truncate(10);
            r.content_length = Some("10".into());
            r
        }),
        "X-Linked-Size says",
    );
}

// Checks: HUB-3
#[test]
fn hub_3_a_cut_body_with_content_length_is_not_cached() {
    let err = refused(
        hostile(|mut r| {
            r.cut_after = Some(r.body.len() / 2);
            r
        }),
        "nothing was cached",
    );
    assert!(
        err.contains("after 2 tries"),
        "a cut body is retried: {err}"
    );
}

// Checks: HUB-3
#[test]
fn hub_3_a_cut_body_without_content_length_fails_its_sha256() {
    let err = refused(
        hostile(|mut r| {
            r.content_length = None;
            r.cut_after = Some(r.body.len() / 2);
            r
        }),
        "SHA-256",
    );
    assert!(err.contains("nothing was cached"), "{err}");
}

// Checks: HUB-3
#[test]
fn hub_3_a_body_with_no_size_and_no_sha256_is_refused() {
    refused(
        hostile(|mut r| {
            r.content_length = None;
            r.set("ETag", "\"abc123\"")
        }),
        "announced no size and no SHA-256",
    );
}

// Checks: HUB-3
#[test]
fn hub_3_a_lying_content_range_is_refused() {
    refused(
        hostile(|r| {
            let n = r.body.len();
            r.set("Content-Range", &format!("bytes 0-{}/{}", 2 * n - 1, n * 2))
        }),
        "says",
    );
    refused(
        hostile(|r| {
            let n = r.body.len();
            r.set("Content-Range", &format!("bytes 0-{}/{}", n / 2, n))
        }),
        "is not the whole file",
    );
    refused(
        hostile(|mut r| {
            r.status = "206 Partial Content".into();
            r.without("Content-Range")
        }),
        "without Content-Range",
    );
}

// Checks: HUB-3
#[test]
fn hub_3_an_html_error_page_is_refused() {
    refused(
        hostile(|r| {
            let page = b"<html><body>Service unavailable, try later</body></html>".to_vec();
            Reply::new("200 OK", r.headers.clone(), page)
                .set("Content-Type", "text/html; charset=utf-8")
        }),
        "HTML page",
    );
}

// Checks: HUB-3
#[test]
fn hub_3_a_wrong_sha256_with_the_right_size_is_refused() {
    refused(
        hostile(|mut r| {
            r.body[0] ^= 1;
            r
        }),
        "SHA-256",
    );
}

// Checks: HUB-4
#[test]
fn hub_4_a_server_that_never_answers_times_out_and_is_retried() {
    for listing in [false, true] {
        let server = serve_with(|_, _| Reply {
            hang: Some(Duration::from_secs(5)),
            ..Reply::new("200 OK", vec![], vec![])
        });
        let tmp = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let hub = hub(&server, tmp.path());
        let repo = Repo::dataset("fake/ds");
        let err = if listing {
            hub.list(&repo, "main").map(|_| ()).unwrap_err()
        } else {
            hub.file(&repo, "main", NAME).map(|_| ()).unwrap_err()
        };
        let took = start.elapsed();
        let err = err.to_string();
        assert!(err.contains("after 2 tries"), "{err}");
        assert!(took < Duration::from_secs(4), "took {took:?}: {err}");
        assert_eq!(server.requests().len(), 2, "{err}");
        assert!(tree(tmp.path()).is_empty(), "{err}");
    }
}

// Checks: HUB-4, HUB-3
#[test]
fn hub_4_a_body_that_stalls_halfway_times_out_and_is_not_cached() {
    let start = Instant::now();
    let err = refused(
        hostile(|mut r| {
            r.cut_after = Some(r.body.len() / 2);
            r.stall = Some(Duration::from_secs(5));
            r
        }),
        "reading the body failed",
    );
    assert!(err.contains("after 2 tries"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(4), "{err}");
}

// Checks: HUB-4
#[test]
fn hub_4_a_5xx_is_retried_with_backoff_and_a_4xx_is_not() {
    let files = repos();
    let server = serve_with(move |req, n| {
        if n == 0 {
            Reply::new("503 Service Unavailable", vec![], b"busy".to_vec())
        } else {
            honest(req, &files)
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(
        std::fs::read(fetch(&server, tmp.path(), "main").unwrap()).unwrap(),
        body()
    );
    assert_eq!(server.requests().len(), 2);
    let server = serve(repos());
    let err = hub(&server, tmp.path())
        .file(&Repo::dataset("fake/ds"), "main", "missing.jsonl")
        .unwrap_err()
        .to_string();
    assert!(err.contains("404"), "{err}");
    assert_eq!(server.requests().len(), 1, "a 404 was retried");
}

// Checks: HUB-4
#[test]
fn hub_4_timeouts_and_retries_come_from_options_or_the_environment() {
    let bad = HubOptions {
        endpoint: Some("http://127.0.0.1:9".into()),
        net: NetOptions {
            read_timeout: Some(Duration::ZERO),
            ..net()
        },
        cache_dir: Some("unused".into()),
        ..Default::default()
    };
    assert!(
        Hub::new(&bad)
            .err()
            .unwrap()
            .to_string()
            .contains("timeout")
    );
    let not_http = HubOptions {
        endpoint: Some("file:///etc".into()),
        cache_dir: Some("unused".into()),
        ..Default::default()
    };
    assert!(
        Hub::new(&not_http)
            .err()
            .unwrap()
            .to_string()
            .contains("http")
    );
}

// Checks: HUB-1
#[test]
fn hub_1_a_commit_other_than_the_one_asked_for_is_refused() {
    let other = "fedcba9876543210fedcba9876543210fedcba98";
    let server = hostile(move |r| r.set("X-Repo-Commit", other));
    let tmp = tempfile::tempdir().unwrap();
    let err = fetch(&server, tmp.path(), COMMIT).unwrap_err().to_string();
    assert!(err.contains(other) && err.contains(COMMIT), "{err}");
    assert!(tree(tmp.path()).is_empty());
}
