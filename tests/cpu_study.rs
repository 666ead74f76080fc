//! The committed CPU study (`docs/examples/cpu-study/`, made by
//! `scripts/cpu-study.sh`): complete, three seeds of every configuration,
//! and the figures README quotes are the report's (ANA-21, TRAIN-16).

mod common;

fn committed(path: &str) -> String {
    let file = common::repo_root()
        .join("docs/examples/cpu-study")
        .join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

const CONFIGS: [&str; 7] = [
    "dense",
    "moe",
    "moe-lb-off",
    "moe-noise-off",
    "moe-no-z",
    "moe-lb-step",
    "moe-no-lb",
];

// Checks: ANA-21, TRAIN-16
#[test]
fn ana_21_committed_cpu_study_is_complete_and_backs_the_readme() {
    let report = committed("report/report.md");
    let summary = committed("summary.txt");
    for config in CONFIGS {
        for seed in [42, 43, 44] {
            let run = format!("{config}@s{seed}");
            assert!(report.contains(&run), "report lacks {run}");
            assert!(summary.contains(&run), "summary lacks {run}");
        }
    }
    assert!(report.contains("## Across seeds"));
    // Every MoE run of the study was analysed (its analysis.json is committed).
    for config in CONFIGS.iter().filter(|c| c.starts_with("moe")) {
        for seed in [42, 43, 44] {
            let a = committed(&format!("{config}/seed-{seed}/analysis/analysis.json"));
            assert!(a.contains("\"specialization\""), "{config} seed {seed}");
        }
    }
    // The README's answers quote these lines of the report.
    let readme = std::fs::read_to_string(common::repo_root().join("README.md")).unwrap();
    for (quote, line) in [
        (
            "+0.062 [+0.030, +0.093]",
            "- moe − dense, total eval loss at step 400: +0.062 [+0.030, +0.093] over 3 seeds, resolved",
        ),
        (
            "−0.041 [−0.048, −0.035]",
            "- moe, block 2: NMI 0.023 ± 0.002 [0.021, 0.026] over 3 seeds; rise over step 0 -0.041 [-0.048, -0.035] over 3 seeds, resolved",
        ),
        (
            "+0.108 [+0.075, +0.142]",
            "- moe-lb-step − moe, block 2 NMI: +0.108 [+0.075, +0.142] over 3 seeds, resolved",
        ),
        (
            "collapsed in 3 of 3 seeds",
            "- moe-lb-off: routing collapsed in 3 of 3 seeds (seed 42 at step 30, seed 43 at step 30, seed 44 at step 40).",
        ),
    ] {
        assert!(readme.contains(quote), "README lacks {quote}");
        assert!(report.contains(line), "report lacks: {line}");
    }
}
