//! Measurements of the CubeCL proxy (BACK-6, MOE-16), run by hand: burn-fusion
//! against CubeCL without it, padded and unpadded expert groups, and the
//! kernels a run compiles. They build a backend (CubeCL without fusion) the
//! CI suite (`tests/cubecl_proxy.rs`) does not, so they are a test target of
//! their own that CI does not build; `--features wgpu` and a Vulkan driver:
//!
//! ```sh
//! cargo test --release --features wgpu --test cubecl_measure -- --ignored --nocapture
//! ```
#![cfg(feature = "wgpu")]

mod proxy_support;

use std::path::Path;

use proxy_support::*;

// BACK-6: why the GPU backends can run with burn-fusion. The same MoE steps
// on the fused wgpu backend (the one the binary and the tests above use)
// and on CubeCL without fusion, with the expert groups padded (MOE-16, the
// default off the CPU) and unpadded: host RSS and device memory growth per
// step and the step time. Padded, the fused backend must stay flat; the
// unpadded figures are printed only. Run by hand:
// `cargo test --release --features wgpu --test cubecl_proxy back_6_fused -- --ignored --nocapture`.
#[test]
#[ignore = "20-30 minutes on lavapipe; a measurement, see BENCHMARKS.md"]
fn back_6_fused_backend_memory_and_step_time() {
    let _serial = serial();
    for alignment in [128, 1] {
        let mut config = micro(Some(1), None);
        config.moe.as_mut().unwrap().group_alignment = Some(alignment);
        let (host, dev, secs) = memory_growth_on::<W>(&config, 50, 300);
        let (u_host, u_dev, u_secs) =
            memory_growth_on::<moe_model::WgpuUnfusedAutodiff>(&config, 50, 300);
        eprintln!(
            "moe top-1, group_alignment {alignment}: fused host RSS {host:.0} B/step, \
             device {dev:.0} B/step, {:.1} ms/step; without fusion {u_host:.0} B/step, \
             {u_dev:.0} B/step, {:.1} ms/step",
            secs * 1e3,
            u_secs * 1e3
        );
        if alignment == 1 {
            continue;
        }
        assert!(
            host <= HOST_BYTES_PER_STEP && dev <= DEVICE_BYTES_PER_STEP,
            "fused, padded: {host:.0} B/step host, {dev:.0} B/step device"
        );
    }
}

// MOE-16: with the expert groups padded to 128 rows, a run meets a bounded
// set of kernels: after a warm-up, no training step compiles a kernel or
// autotunes a key. Each alignment (1, then 128) runs in a child process of
// its own — this test again, told by MOE_KERNEL_COUNT_ALIGNMENT which run
// it is — with CubeCL's compilation and autotune loggers on and a fresh
// autotune cache, so neither run reuses the other's kernels (CubeCL's
// configuration is global to a process and set once). Run by hand:
// `cargo test --release --features wgpu --test cubecl_proxy moe_16 -- --ignored --nocapture`.
#[test]
#[ignore = "10-20 minutes on lavapipe; a measurement, see BENCHMARKS.md"]
fn moe_16_padded_groups_stop_compiling_after_warm_up() {
    if let Ok(alignment) = std::env::var("MOE_KERNEL_COUNT_ALIGNMENT") {
        let alignment = alignment
            .parse()
            .expect("MOE_KERNEL_COUNT_ALIGNMENT: a row count");
        let dir = std::env::var_os("MOE_KERNEL_COUNT_DIR").expect("MOE_KERNEL_COUNT_DIR");
        eprintln!("{}", kernel_count_of_one_run(alignment, Path::new(&dir)));
        return;
    }
    let mut padded = None;
    for alignment in [1usize, 128] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "--nocapture",
                "moe_16_padded_groups_stop_compiling_after_warm_up",
            ])
            .env("MOE_KERNEL_COUNT_ALIGNMENT", alignment.to_string())
            .env("MOE_KERNEL_COUNT_DIR", dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "alignment {alignment}: {stderr}");
        let line = stderr
            .lines()
            .find(|l| l.starts_with("kernel count:"))
            .unwrap_or_else(|| panic!("alignment {alignment}: no count line in {stderr}"));
        eprintln!("{line}");
        if alignment == 128 {
            padded = Some(line.to_string());
        }
    }
    let padded = padded.unwrap();
    assert!(
        padded.contains("after warm-up: 0 kernels compiled, 0 keys tuned"),
        "{padded}"
    );
}

/// Kernels compiled and autotune keys tuned by the end of each of these steps.
const KERNEL_COUNT_STEPS: [usize; 6] = [10, 25, 50, 100, 150, 200];
/// The step after which a run counts as warmed up.
const KERNEL_COUNT_WARMUP: usize = 25;

/// One run of MOE-16's count, in a process of its own: 200 training steps of
/// the micro MoE (top-1 of 8 experts in both blocks, 2 × 128 tokens a step)
/// with the expert groups padded to `alignment` rows, CubeCL's loggers and
/// autotune cache in `dir`. Returns the `kernel count:` line.
fn kernel_count_of_one_run(alignment: usize, dir: &Path) -> String {
    use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
    let (compiled_log, tuned_log) = (dir.join("compiled.log"), dir.join("tuned.log"));
    let text = format!(
        "[compilation.logger]\nlevel = \"basic\"\nfile = {:?}\n\
         [autotune]\ncache = {{ file = {:?} }}\n[autotune.logger]\nlevel = \"minimal\"\nfile = {:?}\n",
        compiled_log,
        dir.join("autotune-cache"),
        tuned_log
    );
    let config: CubeClRuntimeConfig = toml::from_str(&text).unwrap();
    CubeClRuntimeConfig::set(config);

    let count = |path: &Path, marker: &str| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(marker))
            .count()
    };
    let mut model = micro(Some(1), None);
    model.moe.as_mut().unwrap().group_alignment = Some(alignment);
    let mut counts = Vec::new();
    train_micro_steps::<W>(&model, *KERNEL_COUNT_STEPS.last().unwrap(), |step| {
        if KERNEL_COUNT_STEPS.contains(&(step + 1)) {
            // The loggers write from a task of their own: let it catch up.
            std::thread::sleep(std::time::Duration::from_millis(500));
            counts.push((
                step + 1,
                count(&compiled_log, "[Compiling kernel]"),
                count(&tuned_log, "Fastest result"),
            ));
        }
    });
    let at_warmup = counts
        .iter()
        .find(|(s, ..)| *s == KERNEL_COUNT_WARMUP)
        .copied()
        .unwrap();
    let last = *counts.last().unwrap();
    let table: Vec<String> = counts
        .iter()
        .map(|(s, k, t)| format!("step {s}: {k} kernels, {t} keys"))
        .collect();
    format!(
        "kernel count: group_alignment {alignment}: {}; after warm-up: {} kernels compiled, {} keys tuned",
        table.join("; "),
        last.1 - at_warmup.1,
        last.2 - at_warmup.2
    )
}
