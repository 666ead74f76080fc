//! The committed CPU study (`docs/examples/cpu-study/`, made by
//! `scripts/cpu-study.sh`): complete — five seeds of the three balancing
//! configurations, three of the others — and the figures README quotes are
//! the report's (ANA-21, ANA-31, TRAIN-16, TRAIN-26).

mod common;

fn committed(path: &str) -> String {
    let file = common::repo_root()
        .join("docs/examples/cpu-study")
        .join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Each configuration and its seeds.
const CONFIGS: [(&str, &[u64]); 8] = [
    ("dense", &[42, 43, 44]),
    ("moe", &[42, 43, 44, 45, 46]),
    ("moe-lb-off", &[42, 43, 44]),
    ("moe-noise-off", &[42, 43, 44]),
    ("moe-no-z", &[42, 43, 44]),
    ("moe-lb-step", &[42, 43, 44, 45, 46]),
    ("moe-bias", &[42, 43, 44, 45, 46]),
    ("moe-no-lb", &[42, 43, 44]),
];

// Checks: ANA-21, TRAIN-16
#[test]
fn ana_21_committed_cpu_study_is_complete_and_backs_the_readme() {
    let report = committed("report/report.md");
    let summary = committed("summary.txt");
    for (config, seeds) in CONFIGS {
        for seed in seeds {
            let run = format!("{config}@s{seed}");
            assert!(report.contains(&run), "report lacks {run}");
            assert!(summary.contains(&run), "summary lacks {run}");
        }
    }
    assert!(report.contains("## Across seeds"));
    // Every MoE run of the study was analysed (its analysis.json is committed).
    for (config, seeds) in CONFIGS.iter().filter(|(c, _)| c.starts_with("moe")) {
        for seed in *seeds {
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
            "−0.045 [−0.056, −0.035]",
            "- moe, block 2: NMI 0.022 ± 0.009 [0.007, 0.032] over 5 seeds; rise over step 0 -0.045 [-0.056, -0.035] over 5 seeds, resolved",
        ),
        (
            "+0.122 [+0.046, +0.198]",
            "- moe-lb-step − moe, block 2 NMI: +0.122 [+0.046, +0.198] over 5 seeds, resolved",
        ),
        (
            "+0.296 [+0.179, +0.414]",
            "- moe-bias − moe, block 2 NMI: +0.296 [+0.179, +0.414] over 5 seeds, resolved",
        ),
        (
            "−0.010 [−0.045, +0.026]",
            "- moe-bias − moe, total eval loss at step 400: -0.010 [-0.045, +0.026] over 5 seeds, unresolved",
        ),
        (
            "+0.026 [+0.006, +0.045]",
            "costs code +0.026 [+0.006, +0.045] over 5 seeds, resolved",
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
