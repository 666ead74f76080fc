//! Checks of every name that comes from a config or a server before it is
//! joined into a URL or a cache path: revisions, commits, remote file names
//! and ETags (HUB-1, SRC-7, SRC-9).

/// True for a full 40-hex commit id.
pub fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// True for a 64-hex SHA-256, the ETag the Hub gives an LFS file.
pub fn is_sha256(etag: &str) -> bool {
    etag.len() == 64 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks a revision (SRC-9): what Git and the Hub allow in a ref,
/// restricted to `A-Za-z0-9._-/` — components separated by `/`, none empty
/// or starting with `.`, no `..`, not ending in `.lock`, at most 255 bytes.
/// `main`, `v1.0`, `refs/pr/1`, `refs/convert/parquet` and 40-hex commits
/// pass; `../../x` does not.
pub fn validate_revision(revision: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("revision {revision:?} {why}"));
    if revision.is_empty() || revision.len() > 255 {
        return bad("must be 1 to 255 bytes");
    }
    if let Some(c) = revision
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-/".contains(*c)))
    {
        return bad(&format!(
            "has {c:?}; a Hub ref uses only A-Z a-z 0-9 . _ - /"
        ));
    }
    if revision.contains("..") {
        return bad("contains `..`");
    }
    if revision
        .split('/')
        .any(|c| c.is_empty() || c.starts_with('.') || c.ends_with(".lock"))
    {
        return bad("has an empty component, one starting with `.`, or one ending in `.lock`");
    }
    Ok(())
}

/// Checks a file name (or a glob of names) inside a repo (SRC-7): relative,
/// `/`-separated, no empty, `.` or `..` component, no `\`.
pub fn validate_remote_name(name: &str) -> Result<(), String> {
    let fine = !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\\')
        && name
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if fine {
        Ok(())
    } else {
        Err(format!("{name:?} is not a relative path inside the repo"))
    }
}

/// The cache name of a server's `ETag` (or `X-Linked-Etag`) header (HUB-1):
/// the token between the quotes, without a weak `W/` prefix, which must be
/// 1 to 128 bytes of `A-Za-z0-9._-`, not starting with `.`, without `..`.
/// Anything else (a `/`, a `\`, `..`, an absolute path) is refused, since the
/// token becomes the blob's file name.
pub fn etag_token(header: &str) -> Result<String, String> {
    let raw = header.trim();
    let raw = raw.strip_prefix("W/").unwrap_or(raw);
    let token = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    let fine = !token.is_empty()
        && token.len() <= 128
        && !token.starts_with('.')
        && !token.contains("..")
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if fine {
        Ok(token.to_string())
    } else {
        Err("is not an opaque token (1 to 128 bytes of A-Z a-z 0-9 . _ -)".into())
    }
}

/// Checks a server's `X-Repo-Commit` header (HUB-1): 40 hex digits.
pub fn commit_header(header: &str) -> Result<String, String> {
    let commit = header.trim();
    if is_commit(commit) {
        Ok(commit.to_ascii_lowercase())
    } else {
        Err("is not a 40-hex commit".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checks: SRC-7
    #[test]
    fn src_7_remote_names_are_validated() {
        assert!(validate_remote_name("main/train-00000-of-00001.parquet").is_ok());
        assert!(validate_remote_name("data/*.jsonl").is_ok());
        for bad in [
            "../x",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "",
            "a\\b",
            "a/",
            ".",
        ] {
            assert!(validate_remote_name(bad).is_err(), "{bad}");
        }
    }

    // Checks: SRC-9
    #[test]
    fn src_9_revisions_are_validated() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        for good in [
            "main",
            "v1.0",
            "refs/pr/1",
            "refs/convert/parquet",
            "my_branch-2",
            commit,
        ] {
            assert_eq!(validate_revision(good), Ok(()), "{good}");
        }
        let long = "a".repeat(256);
        for bad in [
            "../../x", "..", "a/../b", "a..b", "/main", "main/", "a//b", ".hidden", "a/.b",
            "x.lock", "a b", "a\\b", "a:b", "a~1", "a^", "a?", "a*", "a[", "a@{1}", "", "ma\nin",
            "é", &long,
        ] {
            assert!(validate_revision(bad).is_err(), "{bad:?} passed");
        }
        assert!(is_commit(commit) && !is_commit("main"));
    }

    // Checks: HUB-1
    #[test]
    fn hub_1_path_like_etags_and_commits_are_refused() {
        let sha = "a".repeat(64);
        assert_eq!(etag_token(&format!("\"{sha}\"")).unwrap(), sha);
        assert_eq!(etag_token("W/\"abc-12\"").unwrap(), "abc-12");
        assert_eq!(
            etag_token("d41d8cd98f00b204e9800998ecf8427e-3")
                .unwrap()
                .len(),
            34
        );
        for bad in [
            "\"/etc/passwd\"",
            "\"../../x\"",
            "\"..\"",
            "\".hidden\"",
            "\"a/b\"",
            "\"a\\\\b\"",
            "\"\"",
            "\"a b\"",
            "\"C:x\"",
            &"a".repeat(129),
        ] {
            assert!(etag_token(bad).is_err(), "{bad} passed");
        }
        let commit = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(commit_header(commit).unwrap(), commit);
        for bad in [
            "../../x",
            "main",
            "",
            &format!("{commit}/.."),
            &format!("/{commit}"),
        ] {
            assert!(commit_header(bad).is_err(), "{bad} passed");
        }
    }

    proptest::proptest! {
        // Checks: HUB-1
        #[test]
        fn hub_1_an_accepted_etag_is_one_plain_file_name(header in ".{0,80}") {
            if let Ok(token) = etag_token(&header) {
                let path = std::path::Path::new(&token);
                let mut parts = path.components();
                proptest::prop_assert!(matches!(parts.next(), Some(std::path::Component::Normal(_))));
                proptest::prop_assert!(parts.next().is_none());
            }
        }
    }
}
