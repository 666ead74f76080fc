//! Times the step bench's training step a fixed number of times and prints
//! wall and process CPU time per step: CPU time (all threads, from
//! `/proc/self/stat`, Linux) moves much less than wall time when other jobs
//! share the machine, so A/B comparisons of two builds hold up under load.
//!
//! `cargo run --release -p moe-model --example step_time -- tiny_fwd_bwd dense 20`
//! (groups `tiny_fwd_bwd`, `d512_fwd_bwd`; models `dense`, `moe_4x8_top1`;
//! steps after 2 untimed ones; `RAYON_NUM_THREADS` sets the threads).

#[path = "../benches/common/step_models.rs"]
mod step_models;

use std::time::Instant;

// mimalloc that keeps freed memory: large tensors are not page-faulted in
// again on every step (crates/moe-alloc).
#[global_allocator]
static GLOBAL: moe_alloc::Allocator = moe_alloc::Allocator;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let group = args.get(1).map_or("tiny_fwd_bwd", String::as_str);
    let which = args.get(2).map_or("dense", String::as_str);
    let steps: usize = args
        .get(3)
        .map_or(20, |s| s.parse().expect("steps: a number"));
    let config = step_models::config(group);
    let (dense, moe) = step_models::models(&config);
    let model = match which {
        "dense" => dense,
        "moe_4x8_top1" => moe,
        other => panic!("unknown model {other}: dense or moe_4x8_top1"),
    };
    let (input, target) = step_models::tokens(config.gpt2.vocab_size);
    for _ in 0..2 {
        step_models::step(&model, &input, &target);
    }
    let cpu0 = moe_testkit::process_cpu_seconds();
    let mut wall: Vec<f64> = (0..steps)
        .map(|_| {
            let t = Instant::now();
            step_models::step(&model, &input, &target);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let cpu = cpu0
        .zip(moe_testkit::process_cpu_seconds())
        .map(|(a, b)| (b - a) * 1e3 / steps as f64);
    wall.sort_by(f64::total_cmp);
    println!(
        "{group}/{which}: wall median {:.1} ms (min {:.1}, max {:.1}), CPU {} ms per step, {steps} steps",
        wall[wall.len() / 2],
        wall[0],
        wall[wall.len() - 1],
        cpu.map_or("n/a".to_string(), |c| format!("{c:.1}")),
    );
}
