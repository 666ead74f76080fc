//! What `prepare` checks before it does any work: a thread count it can
//! run (DATA-11), and that `--force` would replace only a prepared-data
//! directory, never the config, a source or anything else (DATA-10).

use std::path::Path;

use crate::config::{DataConfig, SourceKind};
use crate::error::{DataError, Result};
use crate::manifest::{MANIFEST_FILE, MANIFEST_FORMAT};

/// The most worker threads `prepare` starts: beyond this, threads only cost
/// memory (each has its own tokenizer scratch) on any machine we know.
pub const MAX_THREADS: usize = 1024;

/// The thread count for rayon (0 = all cores) from the option (DATA-11).
pub(super) fn check_threads(threads: Option<usize>) -> Result<usize> {
    let bad = |reason: String| DataError::Option {
        option: "threads",
        reason,
    };
    match threads {
        None => Ok(0),
        Some(0) => Err(bad(
            "0 threads cannot run; give 1 or more (or leave it out for all cores)".into(),
        )),
        Some(n) if n > MAX_THREADS => Err(bad(format!(
            "{n} is above the limit of {MAX_THREADS} (this machine has {} cores)",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ))),
        Some(n) => Ok(n),
    }
}

/// Refuses to replace `out` unless it is a directory holding our
/// `manifest.json`, and neither the config file nor a local source lies
/// inside it (DATA-10).
pub(super) fn check_replaceable(
    out: &Path,
    config_path: &Path,
    config: &DataConfig,
    base: &Path,
) -> Result<()> {
    let refuse = |reason: String| DataError::NotReplaceable {
        path: out.to_path_buf(),
        reason,
    };
    let meta = std::fs::symlink_metadata(out).map_err(|e| DataError::io(out, e))?;
    if !meta.is_dir() {
        return Err(refuse("it is not a directory".into()));
    }
    let manifest = out.join(MANIFEST_FILE);
    let ours = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v["format"] == MANIFEST_FORMAT);
    if !ours {
        return Err(refuse(format!(
            "it has no {MANIFEST_FILE} of prepared data, so it is not ours to delete"
        )));
    }
    let root = out.canonicalize().map_err(|e| DataError::io(out, e))?;
    if inside(&root, config_path) {
        return Err(refuse(format!(
            "it contains the config {}",
            config_path.display()
        )));
    }
    for source in config.domains.iter().flat_map(|d| &d.sources) {
        if source.kind != SourceKind::Local {
            continue;
        }
        let Some(pattern) = source.local_pattern(base) else {
            continue;
        };
        let text = pattern.to_string_lossy();
        let matched = glob::glob(&text)
            .into_iter()
            .flatten()
            .flatten()
            .chain(std::iter::once(pattern.clone()));
        if let Some(file) = matched.filter(|f| f.exists()).find(|f| inside(&root, f)) {
            return Err(refuse(format!(
                "it contains the source file {}",
                file.display()
            )));
        }
    }
    Ok(())
}

/// True when `path` exists and lies in `root` (links resolved).
fn inside(root: &Path, path: &Path) -> bool {
    path.canonicalize().is_ok_and(|real| real.starts_with(root))
}
