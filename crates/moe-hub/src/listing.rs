//! Listing a repo's files at one commit through the Hub API
//! (`/api/<models|datasets>/<id>/revision/<rev>`), and the same from the
//! cache when offline (SRC-4, SRC-6, SRC-7).

use std::io::Read;

use serde::Deserialize;

use crate::cache::Repo;
use crate::error::{HubError, Result};
use crate::http::{Client, Failure};
use crate::names::{is_commit, validate_remote_name};

/// A repo at one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The 40-hex commit the revision resolved to.
    pub commit: String,
    /// The file names, `/`-separated, each checked as a relative path.
    pub files: Vec<String>,
}

/// The largest listing read (a repo with a million files fits).
const MAX_LISTING_BYTES: u64 = 256 << 20;

#[derive(Deserialize)]
struct Info {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
struct Sibling {
    rfilename: String,
}

/// Asks the Hub for `repo` at `revision`.
pub(crate) fn list_online(client: &Client, repo: &Repo, revision: &str) -> Result<Listing> {
    let url = client.url(&repo.info_path(revision));
    let info: Info = client.retrying(|| {
        let response = client.get(&url, &[], &mut |_| Ok(()))?;
        let mut body = Vec::new();
        response
            .into_reader()
            .take(MAX_LISTING_BYTES)
            .read_to_end(&mut body)
            .map_err(|e| {
                Failure::Transient(HubError::Http {
                    url: url.clone(),
                    reason: format!("reading the listing failed: {e}"),
                })
            })?;
        serde_json::from_slice(&body).map_err(|e| {
            Failure::Fatal(HubError::Http {
                url: url.clone(),
                reason: format!("the listing is not the Hub's JSON: {e}"),
            })
        })
    })?;
    checked(
        info.sha,
        info.siblings.into_iter().map(|s| s.rfilename).collect(),
    )
}

/// A listing whose commit and names passed their checks.
pub(crate) fn checked(commit: String, files: Vec<String>) -> Result<Listing> {
    if !is_commit(&commit) {
        return Err(HubError::Invalid(format!(
            "the Hub answered a non-commit sha {commit:?}"
        )));
    }
    if let Some((bad, why)) = files
        .iter()
        .find_map(|n| validate_remote_name(n).err().map(|why| (n, why)))
    {
        return Err(HubError::Invalid(format!(
            "the repo lists an unsafe file name {bad:?}: {why}"
        )));
    }
    Ok(Listing {
        commit: commit.to_ascii_lowercase(),
        files,
    })
}
