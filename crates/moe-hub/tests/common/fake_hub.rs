//! A fake Hugging Face Hub on 127.0.0.1 for tests (no network): the honest
//! answers of the Hub's listing and `resolve` endpoints for in-memory repos,
//! and a hook to turn any answer hostile (path-like ETags and commits, cut
//! bodies, lying sizes and ranges, HTML pages, a server that never answers).
//! Shared by the moe-hub tests and the workspace's `tests/hub.rs`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// The commit every fake repo is at.
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Repo id → (file name → bytes).
pub type Repos = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request path (with the query).
    pub path: String,
    /// The `Range` header's `bytes=` value.
    pub range: Option<String>,
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status line after `HTTP/1.1 `, e.g. `200 OK`.
    pub status: String,
    /// Headers other than `Content-Length`.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// `Content-Length` sent: the body's length unless replaced.
    pub content_length: Option<String>,
    /// Send only this many body bytes, then close.
    pub cut_after: Option<usize>,
    /// Accept and never answer (hold the connection this long).
    pub hang: Option<Duration>,
    /// After the (cut) body, hold the connection this long before closing.
    pub stall: Option<Duration>,
}

impl Reply {
    /// A reply with `Content-Length` set to the body's length.
    pub fn new(status: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        Self {
            status: status.into(),
            content_length: Some(body.len().to_string()),
            headers,
            body,
            cut_after: None,
            hang: None,
            stall: None,
        }
    }

    /// Replaces (or adds) header `name`.
    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Removes header `name`.
    pub fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }
}

/// A running fake Hub.
pub struct FakeHub {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Every request path, in order.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl FakeHub {
    /// The request paths so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// The honest Hub over `repos`.
pub fn serve(repos: Repos) -> FakeHub {
    serve_with(move |req, _| honest(req, &repos))
}

/// A Hub answering with `answer(request, n)`, `n` counting requests from 0.
pub fn serve_with(answer: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> FakeHub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        // Bounded: a test needs a few dozen requests at most.
        for stream in listener.incoming().take(500) {
            let Ok(stream) = stream else { continue };
            let (log, answer) = (log2.clone(), answer.clone());
            std::thread::spawn(move || {
                let _ = handle(stream, &log, &*answer);
            });
        }
    });
    FakeHub { url, log }
}

fn handle(
    mut stream: TcpStream,
    log: &Mutex<Vec<String>>,
    answer: &(dyn Fn(&Request, usize) -> Reply + Send + Sync),
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = v.trim().strip_prefix("bytes=").map(str::to_string);
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
    let n = {
        let mut log = log.lock().unwrap();
        log.push(path.clone());
        log.len() - 1
    };
    let reply = answer(&Request { path, range }, n);
    if let Some(wait) = reply.hang {
        std::thread::sleep(wait);
        return Ok(());
    }
    let mut head = format!("HTTP/1.1 {}\r\nConnection: close\r\n", reply.status);
    if let Some(len) = &reply.content_length {
        head += &format!("Content-Length: {len}\r\n");
    }
    for (k, v) in &reply.headers {
        head += &format!("{k}: {v}\r\n");
    }
    stream.write_all(head.as_bytes())?;
    stream.write_all(b"\r\n")?;
    let body = match reply.cut_after {
        Some(n) => &reply.body[..n.min(reply.body.len())],
        None => &reply.body[..],
    };
    stream.write_all(body)?;
    stream.flush()?;
    if let Some(wait) = reply.stall {
        std::thread::sleep(wait);
    }
    Ok(())
}

/// The Hub over `repos`, its file answers (not its listings) passed
/// through `f` to make them hostile.
pub fn hostile_files(repos: Repos, f: impl Fn(Reply) -> Reply + Send + Sync + 'static) -> FakeHub {
    serve_with(move |req, _| {
        let reply = honest(req, &repos);
        if req.path.contains("/resolve/") {
            f(reply)
        } else {
            reply
        }
    })
}

/// The hex SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The Hub's answer: listings under `/api/{models,datasets}/…/revision/…`
/// (repos ending in `-reversed` list in reverse), files under
/// `[/datasets]/<repo>/resolve/<rev>/<name>` with an ETag (the sha256),
/// `X-Repo-Commit` and, for a range request, `Content-Range`.
pub fn honest(req: &Request, repos: &Repos) -> Reply {
    let not_found = Reply::new("404 Not Found", vec![], b"not found".to_vec());
    let path = req.path.split('?').next().unwrap_or("");
    if let Some(rest) = path
        .strip_prefix("/api/datasets/")
        .or_else(|| path.strip_prefix("/api/models/"))
    {
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
        let body = serde_json::json!({ "sha": COMMIT, "siblings": siblings }).to_string();
        return Reply::new(
            "200 OK",
            vec![("Content-Type".into(), "application/json".into())],
            body.into_bytes(),
        );
    }
    let rest = path
        .strip_prefix("/datasets/")
        .unwrap_or(&path[1.min(path.len())..]);
    let parts: Vec<&str> = rest.splitn(5, '/').collect();
    if parts.len() < 5 || parts[2] != "resolve" || (parts[3] != "main" && parts[3] != COMMIT) {
        return not_found;
    }
    let repo = format!("{}/{}", parts[0], parts[1]);
    let Some(bytes) = repos.get(&repo).and_then(|f| f.get(parts[4])) else {
        return not_found;
    };
    let headers = vec![
        ("ETag".into(), format!("\"{}\"", sha256(bytes))),
        ("X-Repo-Commit".into(), COMMIT.into()),
    ];
    let Some((a, b)) = req.range.as_deref().and_then(|r| r.split_once('-')) else {
        return Reply::new("200 OK", headers, bytes.clone());
    };
    let last = bytes.len().saturating_sub(1);
    let (start, end) = (a.parse().unwrap_or(0), b.parse().unwrap_or(last).min(last));
    Reply::new("206 Partial Content", headers, bytes[start..=end].to_vec()).set(
        "Content-Range",
        &format!("bytes {start}-{end}/{}", bytes.len()),
    )
}
