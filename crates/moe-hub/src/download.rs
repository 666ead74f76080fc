//! One verified download into the cache (HUB-1, HUB-3):
//!
//! 1. GET the file at a revision, following redirects; every response's
//!    `ETag`, `X-Linked-Etag` and `X-Repo-Commit` is checked before the
//!    next request, and before anything touches the disk.
//! 2. The Hub's answer (the last response carrying `X-Repo-Commit`) names
//!    the commit and the blob's ETag; the sizes it and the body's response
//!    announce (`X-Linked-Size`, `Content-Length`, the total of
//!    `Content-Range`) must agree, a range must cover the whole file, and an
//!    HTML page is refused.
//! 3. The body goes to a temporary file in the blob folder; it is renamed to
//!    `blobs/<etag>` only when its size (and, for a 64-hex LFS ETag, its
//!    SHA-256) is what was announced. A file with neither is refused.

use std::io::{Read, Write};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::cache::{HubCache, Repo};
use crate::error::{HubError, Result};
use crate::http::{Client, Failure};
use crate::names::{commit_header, etag_token, is_commit, is_sha256};

/// What the Hub said about a file, read from the redirect chain.
#[derive(Debug, Default)]
struct Announced {
    commit: Option<String>,
    etag: Option<String>,
    linked_size: Option<u64>,
}

/// Downloads `name` of `repo` at `revision` into `cache`; returns the
/// snapshot path and the commit.
pub(crate) fn download(
    client: &Client,
    cache: &HubCache,
    repo: &Repo,
    revision: &str,
    name: &str,
    progress: bool,
) -> Result<(PathBuf, String)> {
    let url = client.url(&repo.resolve_path(revision, name));
    client.retrying(|| attempt(client, cache, repo, revision, name, &url, progress))
}

fn attempt(
    client: &Client,
    cache: &HubCache,
    repo: &Repo,
    revision: &str,
    name: &str,
    url: &str,
    progress: bool,
) -> Result<(PathBuf, String), Failure> {
    let mut announced = Announced::default();
    let response = client.get(url, &[("Accept-Encoding", "identity")], &mut |r| {
        read_headers(r, name, &mut announced)
    })?;
    let incomplete = |reason: String| HubError::Incomplete {
        name: name.to_string(),
        reason,
    };
    let commit = match announced.commit.take() {
        Some(c) if is_commit(revision) && !c.eq_ignore_ascii_case(revision) => {
            return Err(incomplete(format!(
                "the server answered commit {c} for a request at {revision}"
            ))
            .into());
        }
        Some(c) => c,
        None if is_commit(revision) => revision.to_ascii_lowercase(),
        None => return Err(incomplete("the server sent no X-Repo-Commit".into()).into()),
    };
    let etag = announced
        .etag
        .take()
        .ok_or_else(|| incomplete("the server sent no ETag".into()))?;
    let expected = expected_size(&response, announced.linked_size, name)?;
    if expected.is_none() && !is_sha256(&etag) {
        return Err(incomplete(
            "the server announced no size and no SHA-256, so a cut body could not be told from a whole one"
                .into(),
        )
        .into());
    }
    let temp = cache.temp_blob(repo)?;
    let (size, sha) = copy_body(response, temp.path(), name, expected, progress)?;
    if let Some(n) = expected
        && n != size
    {
        return Err(Failure::Transient(incomplete(format!(
            "the body ended after {size} of {n} announced bytes"
        ))));
    }
    if is_sha256(&etag) && !sha.eq_ignore_ascii_case(&etag) {
        return Err(Failure::Transient(incomplete(format!(
            "the body's SHA-256 is {sha}, the server announced {etag} ({size} bytes read)"
        ))));
    }
    let path = cache.store(repo, &commit, name, &etag, temp)?;
    Ok((path, commit))
}

/// Checks and records the path-forming headers of one response (HUB-1).
fn read_headers(r: &ureq::Response, name: &str, announced: &mut Announced) -> Result<()> {
    let unsafe_header =
        |header: &'static str, value: &str, reason: String| HubError::UnsafeHeader {
            name: name.to_string(),
            header,
            value: value.to_string(),
            reason,
        };
    let linked = r.header("X-Linked-Etag");
    let plain = r.header("ETag");
    let mut etags = Vec::new();
    for (header, value) in [("X-Linked-Etag", linked), ("ETag", plain)] {
        if let Some(v) = value {
            etags.push(etag_token(v).map_err(|why| unsafe_header(header, v, why))?);
        }
    }
    let Some(commit) = r.header("X-Repo-Commit") else {
        return Ok(());
    };
    announced.commit =
        Some(commit_header(commit).map_err(|why| unsafe_header("X-Repo-Commit", commit, why))?);
    announced.etag = etags.into_iter().next();
    announced.linked_size = match r.header("X-Linked-Size") {
        None => None,
        Some(v) => Some(v.trim().parse().map_err(|_| HubError::Incomplete {
            name: name.to_string(),
            reason: format!("X-Linked-Size {v:?} is not a number"),
        })?),
    };
    Ok(())
}

/// The size every announcement agrees on, if any; an HTML page, a range
/// that is not the whole file, or two different sizes are refused.
fn expected_size(r: &ureq::Response, linked: Option<u64>, name: &str) -> Result<Option<u64>> {
    let refuse = |reason: String| HubError::Incomplete {
        name: name.to_string(),
        reason,
    };
    let html = r
        .header("Content-Type")
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
    let lower = name.to_ascii_lowercase();
    if html && !(lower.ends_with(".html") || lower.ends_with(".htm")) {
        return Err(refuse(
            "the server answered an HTML page, not the file".into(),
        ));
    }
    let number = |header: &str, v: &str| {
        v.trim()
            .parse::<u64>()
            .map_err(|_| refuse(format!("{header} {v:?} is not a number")))
    };
    let mut sizes = Vec::new();
    if let Some(n) = linked {
        sizes.push(("X-Linked-Size", n));
    }
    if let Some(v) = r.header("Content-Length") {
        sizes.push(("Content-Length", number("Content-Length", v)?));
    }
    match (r.status(), r.header("Content-Range")) {
        (206, None) => {
            return Err(refuse(
                "a partial answer (206) without Content-Range".into(),
            ));
        }
        (_, Some(v)) => {
            let total = whole_range(v).ok_or_else(|| {
                refuse(format!(
                    "Content-Range {v:?} is not the whole file (bytes 0-(n-1)/n)"
                ))
            })?;
            sizes.push(("the total of Content-Range", total));
        }
        _ => {}
    }
    if let Some((first, n)) = sizes.first()
        && let Some((other, m)) = sizes.iter().find(|(_, m)| m != n)
    {
        return Err(refuse(format!("{first} says {n} bytes, {other} says {m}")));
    }
    Ok(sizes.first().map(|(_, n)| *n))
}

/// The total of `bytes 0-(n-1)/n`, or of `bytes */0` for an empty file.
fn whole_range(value: &str) -> Option<u64> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let total: u64 = total.trim().parse().ok()?;
    if range.trim() == "*" {
        return (total == 0).then_some(0);
    }
    let (start, end) = range.split_once('-')?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    (start == 0 && end.checked_add(1) == Some(total)).then_some(total)
}

/// Streams the body into `path`; returns the bytes read and their SHA-256.
/// Reading stops one byte past `expected`, so an endless body costs nothing.
fn copy_body(
    response: ureq::Response,
    path: &std::path::Path,
    name: &str,
    expected: Option<u64>,
    progress: bool,
) -> Result<(u64, String), Failure> {
    let mut file = std::fs::File::create(path).map_err(|e| HubError::io(path, e))?;
    let bar = progress_bar(progress, name, expected);
    let limit = expected.map_or(u64::MAX, |n| n + 1);
    let mut reader = response.into_reader().take(limit);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Failure::Transient(HubError::Incomplete {
                    name: name.to_string(),
                    reason: format!("reading the body failed after {size} bytes: {e}"),
                }));
            }
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| HubError::io(path, e))?;
        size += n as u64;
        bar.set_position(size);
    }
    file.sync_all().map_err(|e| HubError::io(path, e))?;
    bar.finish_and_clear();
    Ok((size, hex::encode(hasher.finalize())))
}

fn progress_bar(enabled: bool, name: &str, total: Option<u64>) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total.unwrap_or(0));
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec})",
    ) {
        bar.set_style(style);
    }
    bar.set_message(name.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checks: HUB-3
    #[test]
    fn hub_3_only_a_range_over_the_whole_file_is_accepted() {
        assert_eq!(whole_range("bytes 0-199/200"), Some(200));
        assert_eq!(whole_range("bytes */0"), Some(0));
        for lie in [
            "bytes 0-99/200",
            "bytes 100-199/200",
            "bytes 0-199/*",
            "bytes */200",
            "0-199/200",
            "bytes 0-200/200",
            "bytes a-b/c",
        ] {
            assert_eq!(whole_range(lie), None, "{lie}");
        }
    }

    proptest::proptest! {
        // Checks: HUB-3
        #[test]
        fn hub_3_any_accepted_range_is_the_whole_file(value in "(bytes )?[0-9*]{0,4}-?[0-9]{0,4}/?[0-9*]{0,4}|.{0,20}") {
            if let Some(total) = whole_range(&value) {
                let expected = if total == 0 { "bytes */0".to_string() } else { format!("bytes 0-{}/{total}", total - 1) };
                let normal: String = value.split_whitespace().collect::<Vec<_>>().join(" ");
                proptest::prop_assert_eq!(normal, expected);
            }
        }
    }
}
