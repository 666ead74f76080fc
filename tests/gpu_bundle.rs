//! `scripts/gpu-bundle.sh` (BACK-8): stages the binary and the block-512 data
//! the GPU check needs into one folder under the carry limit, and refuses a
//! folder over it. The CUDA build itself is CI's job; here a prebuilt binary
//! (`MOE_BIN`, this crate's CPU `moe`) stands in for it.

use std::path::Path;
use std::process::Command;

use moe_data::prepared::PreparedData;

fn bundle(dir: &Path, limit: Option<u64>) -> std::process::Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts/gpu-bundle.sh"))
        .arg(dir)
        .env("MOE_BIN", env!("CARGO_BIN_EXE_moe"));
    if let Some(limit) = limit {
        cmd.env("BUNDLE_LIMIT_BYTES", limit.to_string());
    }
    cmd.output().unwrap()
}

// Checks: BACK-8, BACK-11
#[test]
fn back_8_bundle_holds_binary_and_data_under_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let out = bundle(&dir, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = PreparedData::open(&dir.join("data512")).unwrap();
    assert_eq!(data.block_size(), 512);
    assert_eq!(data.manifest.domains(), ["code", "math", "prose"]);
    let moe = dir.join("moe");
    let version = Command::new(&moe).arg("--version").output().unwrap();
    assert!(version.status.success());
    // BACK-11: CubeCL settings with their caches inside the bundle.
    let cubecl = std::fs::read_to_string(dir.join("cubecl.toml")).unwrap();
    let cache = format!("file = \"{}/cubecl-cache\"", dir.display());
    assert_eq!(cubecl.matches(&cache).count(), 2, "{cubecl}");
    assert!(cubecl.contains("max_streams = 1") && !cubecl.contains("@CACHE@"));
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.txt")).unwrap();
    let total: u64 = manifest
        .lines()
        .find_map(|l| l.strip_prefix("total "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(total < 64 * 1024 * 1024, "{manifest}");
    assert!(total > std::fs::metadata(&moe).unwrap().len(), "{manifest}");
    assert!(!tmp.path().join("bundle.tmp").exists());

    // Over the limit: an error naming the sizes, and the earlier bundle is untouched.
    let out = bundle(&dir, Some(1000));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("over the limit of 1000"), "{err}");
    assert!(!tmp.path().join("bundle.tmp").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("MANIFEST.txt")).unwrap(),
        manifest
    );
}
