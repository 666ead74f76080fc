//! Temporary paths that never outlive the process's work: a [`TempPath`] is
//! removed when dropped (an error return or a panic) and, once any exists,
//! SIGINT and SIGTERM remove every live one before the process dies of the
//! signal as it would have without a handler (HUB-5, DATA-12). Used for
//! partial downloads here and for `prepare`'s temporary output directory.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();

/// A file or directory removed when this guard drops, or on SIGINT/SIGTERM.
#[derive(Debug)]
pub struct TempPath(PathBuf);

impl TempPath {
    /// Guards `path` (which need not exist yet).
    pub fn new(path: PathBuf) -> Self {
        install_handler();
        lock().push(path.clone());
        Self(path)
    }

    /// The guarded path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Stops guarding: the path stays (it was renamed into place, say).
    pub fn keep(self) {
        forget(&self.0);
        std::mem::forget(self);
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        remove(&self.0);
        forget(&self.0);
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

fn forget(path: &Path) {
    let mut live = lock();
    if let Some(i) = live.iter().rposition(|p| p == path) {
        live.swap_remove(i);
    }
}

fn remove(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => drop(std::fs::remove_dir_all(path)),
        Ok(_) => drop(std::fs::remove_file(path)),
        Err(_) => {}
    }
}

/// A thread that waits for SIGINT/SIGTERM, removes the live paths, then
/// lets the signal's default action end the process (exit status as before).
fn install_handler() {
    HANDLER.call_once(|| {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("moe-temp-cleanup".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    for path in lock().iter() {
                        remove(path);
                    }
                    let _ = signal_hook::low_level::emulate_default_handler(signal);
                    std::process::exit(128 + signal);
                }
            });
        drop(spawned);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checks: HUB-5
    #[test]
    fn hub_5_a_temp_path_is_removed_on_drop_and_kept_on_keep() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let kept = dir.path().join("kept");
        {
            let guard = TempPath::new(gone.clone());
            std::fs::create_dir_all(guard.path().join("a/b")).unwrap();
            let guard2 = TempPath::new(kept.clone());
            std::fs::write(guard2.path(), b"x").unwrap();
            guard2.keep();
        }
        assert!(!gone.exists());
        assert!(kept.exists());
        assert!(!lock().contains(&gone) && !lock().contains(&kept));
    }
}
