//! ANA-16: the report on fixed synthetic analyses (an insta snapshot in
//! `snapshots/analysis/`), and claim sentences that follow the numbers.

use std::collections::BTreeMap;

use moe_analysis::history::layer_collapse;
use moe_analysis::load_balance::load_stats;
use moe_analysis::report::{ReportRun, claims, render};
use moe_analysis::schema::*;
use moe_train::metrics::StopReason;

fn snapshot_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../snapshots/analysis"
    ));
    s.set_prepend_module_to_snapshot(false);
    s
}

const DOMAINS: [&str; 3] = ["code", "math", "prose"];

fn null(mean: f64) -> NullSummary {
    NullSummary {
        draws: 1000,
        mean,
        p95: 2.0 * mean,
        max: 3.0 * mean,
    }
}

/// A layer whose domain d sends `focus` of its tokens to expert d.
fn layer(index: usize, focus: f64, p: f64, baseline: f64, survival: f64) -> LayerAnalysis {
    let counts: Vec<Vec<u64>> = (0..4)
        .map(|e| {
            (0..3)
                .map(|d| {
                    if e == d {
                        (1000.0 * focus) as u64
                    } else {
                        (1000.0 * (1.0 - focus) / 3.0) as u64
                    }
                })
                .collect()
        })
        .collect();
    let per_expert: Vec<u64> = counts.iter().map(|r| r.iter().sum()).collect();
    let nmi = moe_analysis::nmi::mutual_information_of(&counts).nmi();
    LayerAnalysis {
        layer: index,
        n_experts: 4,
        expert_domain_shares: moe_analysis::nmi::row_shares(&counts),
        domain_expert_shares: moe_analysis::nmi::row_shares(&moe_analysis::nmi::transpose(&counts)),
        specialization: Specialization {
            mi_nats: nmi * 3f64.ln(),
            domain_entropy_nats: 3f64.ln(),
            nmi,
            permutation: PermutationTest {
                documents: 120,
                p_value: p,
                null: null(0.004),
            },
            random_router: null(0.0003),
            baseline_nmi: Some(baseline),
            rise: None,
            token_identity: TokenIdentity {
                draws: 10,
                nmi: nmi * survival,
                surviving_fraction: Some(survival),
            },
        },
        load: load_stats(&per_expert),
        confidence: Confidence {
            mean_top1_prob: 0.55,
            uniform_prob: 0.25,
            mean_entropy_nats: 1.2,
            max_entropy_nats: 4f64.ln(),
            entropy_fraction: 1.2 / 4f64.ln(),
            near_uniform: false,
        },
        domains: DOMAINS
            .iter()
            .map(|d| DomainRouting {
                domain: d.to_string(),
                tokens: 1000,
                mean_router_entropy: 1.2,
                usage_entropy: 0.9,
                mean_gate_prob: 0.55,
            })
            .collect(),
        top_tokens: (0..4)
            .map(|e| {
                vec![TopToken {
                    token_id: 100 + e as u32,
                    text: ["␣def", "|", "␣the", "\\n"][e].to_string(),
                    count: 50,
                    share_of_token: 0.8,
                }]
            })
            .collect(),
        code_token_types: Some(TokenTypes {
            domain: "code".into(),
            classes: vec!["keyword".into(), "identifier".into()],
            counts: vec![vec![30, 10, 0, 0], vec![5, 40, 5, 0]],
            class_expert_shares: vec![vec![0.75, 0.25, 0.0, 0.0], vec![0.1, 0.8, 0.1, 0.0]],
            nmi: 0.31,
        }),
        counts,
        consistency: Consistency {
            pairs: 2900,
            same_expert_rate: 0.6,
            chance_within_domain: 0.4,
            chance_global: 0.27,
        },
        removal: None,
        keep_k: None,
        token_specialization: None,
        coactivation: None,
        expert_weights: None,
    }
}

fn history(
    evals: &[(u64, f64)],
    shares: &[(u64, [f64; 4])],
    stop: Option<u64>,
    tok_s: f64,
) -> History {
    let h = LayerHistory {
        layer: 2,
        steps: shares.iter().map(|s| s.0).collect(),
        shares: shares.iter().map(|s| s.1.to_vec()).collect(),
        max_share: shares
            .iter()
            .map(|s| s.1.iter().copied().fold(0.0, f64::max))
            .collect(),
        entropy: shares.iter().map(|_| 1.0).collect(),
    };
    // A dense run logs train rows without routing: take the eval steps.
    let steps: Vec<u64> = if shares.is_empty() {
        evals.iter().map(|e| e.0).collect()
    } else {
        shares.iter().map(|s| s.0).collect()
    };
    let last = steps.last().copied().unwrap_or(0);
    History {
        train: steps
            .iter()
            .map(|&step| TrainPoint {
                step,
                loss: 5.0,
                lm_loss: 4.9,
                lb_loss: Some(1.01),
                tok_per_s: tok_s,
            })
            .collect(),
        eval: evals
            .iter()
            .map(|&(step, base)| EvalPoint {
                step,
                loss: base,
                domains: DOMAINS
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (d.to_string(), base + 0.1 * i as f64))
                    .collect::<BTreeMap<_, _>>(),
                blocks: BTreeMap::new(),
            })
            .collect(),
        collapse: Collapse {
            threshold: 0.6,
            checks: 3,
            layers: if shares.is_empty() {
                vec![]
            } else {
                vec![layer_collapse(&h, 0.6)]
            },
            stopped_by_collapse: stop.is_some(),
        },
        layers: if shares.is_empty() { vec![] } else { vec![h] },
        throughput: Throughput {
            device: "cpu".into(),
            params_total: 1_500_000,
            params_active: 1_100_000,
            tokens_per_step: 1024,
            steps_done: last,
            tokens_seen: last * 1024,
            median_tok_per_s: tok_s,
            estimated_train_seconds: (last * 1024) as f64 / tok_s,
        },
        stop: stop.map(|step| {
            let reason = StopReason::Collapse {
                layer: 2,
                expert: 0,
                share: 0.97,
                checks: 3,
            };
            StopInfo {
                step,
                message: reason.message(),
                reason,
            }
        }),
    }
}

fn run(name: &str, layers: Vec<LayerAnalysis>, history: History, analyzed: bool) -> ReportRun {
    let figures = if analyzed {
        let mut f = vec!["figures/loss.png".to_string()];
        for l in &layers {
            f.push(format!("figures/heatmap_layer{}.png", l.layer));
            f.push(format!("figures/load_layer{}.png", l.layer));
        }
        f
    } else {
        vec![]
    };
    ReportRun {
        analysis: Analysis {
            schema_version: SCHEMA_VERSION,
            run: RunInfo {
                name: name.into(),
                seed: 42,
                run_dir: format!("runs/{name}"),
                checkpoint: format!("runs/{name}/final"),
                checkpoint_step: Some(100),
                total_steps: 100,
                moe_layers: layers.iter().map(|l| l.layer).collect(),
                n_experts: if layers.is_empty() { 0 } else { 4 },
                top_k: 1,
                lb_coef: if name.contains("no-lb") { 0.0 } else { 0.01 },
                z_coef: 0.001,
                router_noise_std: if name.contains("no-lb") { 0.0 } else { 0.1 },
                lb_scope: moe_model::LbScope::Micro,
                bias_rate: 0.0,
            },
            options: OptionsRecord {
                seed: 0,
                permutations: 999,
                random_router_draws: 200,
                control_draws: 10,
                max_blocks: 0,
                code_domain: "code".into(),
            },
            val: ValInfo {
                block_size: 128,
                domains: DOMAINS.iter().map(|d| d.to_string()).collect(),
                tokens: vec![1000; 3],
                documents: vec![40; 3],
            },
            baseline: BaselineInfo {
                source: "rebuilt initial model".into(),
                step: Some(0),
                note: None,
            },
            layers,
            history,
            saturation: None,
            figures,
        },
        analyzed,
        figures_base: analyzed.then(|| format!("../{name}/analysis")),
        stale: None,
    }
}

fn fixture() -> Vec<ReportRun> {
    let balanced = [0.25, 0.25, 0.3, 0.2];
    let collapsing = [0.97, 0.01, 0.01, 0.01];
    vec![
        run(
            "dense",
            vec![],
            history(&[(50, 4.1), (100, 3.8)], &[], None, 4000.0),
            false,
        ),
        run(
            "moe",
            vec![
                layer(2, 0.7, 0.001, 0.05, 0.3),
                layer(3, 0.4, 0.2, 0.12, 0.8),
            ],
            history(
                &[(50, 4.0), (100, 3.7)],
                &[(50, balanced), (100, balanced)],
                None,
                3500.0,
            ),
            true,
        ),
        run(
            "moe-no-lb",
            vec![layer(2, 0.34, 0.5, 0.05, 0.9)],
            history(
                &[(50, 4.3), (60, 4.4)],
                &[(20, balanced), (40, collapsing), (60, collapsing)],
                Some(60),
                3600.0,
            ),
            true,
        ),
    ]
}

/// Four experts upcycled from one MLP (reference similarity 0.999) that
/// moved apart by step 100; expert 2 moved most.
fn weights() -> ExpertWeights {
    let distance = vec![0.12, 0.08, 0.31, 0.05];
    let similarity: Vec<Vec<f64>> = (0..4)
        .map(|i| {
            (0..4)
                .map(|j| {
                    if i == j {
                        1.0
                    } else {
                        0.6 + 0.05 * (i + j) as f64
                    }
                })
                .collect()
        })
        .collect();
    ExpertWeights {
        parameters: 8320,
        reference_step: 0,
        drift: vec![
            DriftPoint {
                step: 0,
                distance: vec![0.0; 4],
            },
            DriftPoint {
                step: 100,
                distance: distance.clone(),
            },
        ],
        analysed_step: Some(100),
        relative_change: distance.iter().map(|d| Some(2.0 * d)).collect(),
        distance,
        mean_similarity: moe_analysis::expert_weights::mean_off_diagonal(&similarity),
        similarity,
        reference_mean_similarity: Some(0.999),
    }
}

// Checks: ANA-16, ANA-30
#[test]
fn ana_16_report_snapshot_on_synthetic_runs() {
    let comparison = vec![("code".to_string(), "figures/loss_code.png".to_string())];
    let mut runs = fixture();
    runs[1].analysis.layers[0].expert_weights = Some(weights());
    let md = render(&runs, &comparison);
    snapshot_settings().bind(|| insta::assert_snapshot!("report", md));
}

// Checks: ANA-16
#[test]
fn ana_16_claims_follow_the_numbers() {
    let runs = fixture();
    let md = render(&runs, &[]);
    // Finals at 100, 100, 60: flagged; the common step is 50.
    assert!(md.contains("**Not step-matched:**"));
    assert!(md.contains("At step 50, code loss is lowest for moe (4.000)"));
    // The same layer worded by its p-value and survival, whichever way they fall.
    let strong = layer(2, 0.7, 0.001, 0.05, 0.3);
    let weak = layer(2, 0.7, 0.2, 0.9, 0.8);
    let s = claims::specialization("r", &strong, 999, Some(0));
    assert!(s.contains("is above the document-permutation null") && s.contains("above its step-0"));
    let w = claims::specialization("r", &weak, 999, Some(0));
    assert!(w.contains("not distinguishable") && w.contains("below its step-0"));
    assert!(claims::token_identity("r", &strong).contains("less than half"));
    assert!(claims::token_identity("r", &weak).contains("most of the domain signal"));
    assert!(
        claims::token_identity("r", &layer(2, 0.7, 0.001, 0.05, 1.5))
            .contains("more domain signal than the router")
    );
    // No step common to all three: dense and moe share 100, moe-no-lb is flagged.
    let mut partial = fixture();
    for e in &mut partial[2].analysis.history.eval {
        e.step += 5;
    }
    let md = render(&partial, &[]);
    assert!(
        md.contains("At step 100, the last step dense, moe all evaluated"),
        "{md}"
    );
    assert!(md.contains("**Not step-matched:** moe-no-lb has no eval at step 100; nearest evals:"));
    assert!(md.contains("| moe-no-lb | 65 |"));
    // A single run is step-matched with itself.
    let one = render(&runs[1..2], &[]);
    assert!(one.contains("The final evals are step-matched.") && !one.contains("Not step-matched"));
}

// Checks: ANA-19
#[test]
fn ana_19_a_near_uniform_router_is_called_so() {
    let mut l = layer(2, 0.7, 0.001, 0.05, 0.3);
    assert!(claims::confidence("r", &l).contains("clearly more confident"));
    l.confidence.mean_top1_prob = 0.27;
    l.confidence.mean_entropy_nats = 0.98 * 4f64.ln();
    l.confidence.entropy_fraction = 0.98;
    l.confidence.near_uniform = true;
    let c = claims::confidence("r", &l);
    assert!(
        c.contains("near-uniform") && c.contains("0.270") && c.contains("0.250"),
        "{c}"
    );
    let md = render(&fixture(), &[]);
    assert!(
        md.contains("mean top-1 probability 0.550 against 1/E = 0.250"),
        "{md}"
    );
}

// Checks: ANA-20
#[test]
fn ana_20_the_no_lb_contrast_names_its_confound() {
    let runs = fixture();
    let (main, no_lb) = (&runs[1].analysis.run, &runs[2].analysis.run);
    let warning = claims::lb_contrast(no_lb, main).expect("noise differs too");
    assert!(warning.contains("router noise (0 vs 0.1)"), "{warning}");
    assert!(render(&runs, &[]).contains("is not load balancing alone"));
    // An ablation that changes only lb_coef is a clean contrast.
    let mut clean = no_lb.clone();
    clean.router_noise_std = main.router_noise_std;
    assert_eq!(claims::lb_contrast(&clean, main), None);
}

// Checks: ANA-20, TRAIN-26
#[test]
fn ana_20_a_run_balanced_by_the_bias_is_not_an_lb_off_contrast() {
    let mut runs = fixture();
    // The no-LB run, now balanced by the bias instead of the LB loss.
    runs[2].analysis.run.bias_rate = 1e-3;
    assert!(runs[2].analysis.run.balanced());
    let md = render(&runs, &[]);
    assert!(!md.contains("is not load balancing alone"), "{md}");
    assert!(
        md.contains("moe-no-lb balance with the auxiliary-loss-free bias"),
        "{md}"
    );
    // Without the bias it is the LB-off contrast again, and no note.
    runs[2].analysis.run.bias_rate = 0.0;
    let md = render(&runs, &[]);
    assert!(md.contains("is not load balancing alone"));
    assert!(!md.contains("auxiliary-loss-free bias"));
}

// Checks: ANA-6
#[test]
fn ana_6_a_baseline_from_a_later_step_is_labelled_with_it() {
    let l = layer(2, 0.7, 0.001, 0.05, 0.3);
    let s = claims::specialization("r", &l, 999, Some(9500));
    assert!(
        s.contains("its step-9500 router's") && !s.contains("step-0"),
        "{s}"
    );
    let mut runs = fixture();
    runs[1].analysis.baseline.step = Some(9500);
    let md = render(&runs, &[]);
    assert!(md.contains("(step 9500)"), "{md}");
}

// Checks: ANA-21
#[test]
fn ana_21_seed_statistics_match_hand_computed_values() {
    use moe_analysis::intervals::{paired_differences, spread, t_975, t_interval};
    let s = spread(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert!((s.mean - 2.5).abs() < 1e-12 && (s.sd - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    assert_eq!((s.min, s.max), (1.0, 4.0));
    let i = t_interval(&[1.0, 2.0, 3.0]).unwrap();
    let half = 4.303 / 3f64.sqrt();
    assert!((i.low - (2.0 - half)).abs() < 1e-9 && (i.high - (2.0 + half)).abs() < 1e-9);
    assert!(!i.resolved());
    assert!(t_interval(&[1.0]).is_none());
    assert_eq!(t_975(1), 12.706);
    // Above the table: exact quantiles (R's qt(0.975, df)).
    for (df, exact) in [
        (31, 2.039513),
        (47, 2.011741),
        (200, 1.971896),
        (10_000, 1.960201),
    ] {
        assert!((t_975(df) - exact).abs() < 1e-4, "df {df}: {}", t_975(df));
    }
    // Pairing is by seed, whatever the order; unmatched seeds drop out.
    let a = [(3, 1.0), (1, 2.0), (2, 4.0), (9, 0.0)];
    let b = [(1, 2.5), (2, 4.0), (3, 3.0)];
    assert_eq!(paired_differences(&a, &b), [0.5, 0.0, 2.0]);
}

fn seeded(name: &str, seed: u64, loss: f64, nmi: f64, collapse: Option<u64>) -> ReportRun {
    let layers = if name.starts_with("moe") {
        vec![layer(2, nmi, 0.001, 0.05, 0.3)]
    } else {
        vec![]
    };
    let balanced = [0.25, 0.25, 0.25, 0.25];
    let mut r = run(
        name,
        layers,
        history(
            &[(50, loss + 0.5), (100, loss)],
            &[(50, balanced), (100, balanced)],
            collapse,
            3600.0,
        ),
        true,
    );
    r.analysis.run.seed = seed;
    r
}

// Checks: ANA-21
#[test]
fn ana_21_report_pairs_runs_by_seed_and_says_when_unresolved() {
    use moe_analysis::report::across_seeds::{group_of, label_seeds};
    let mut runs = vec![
        seeded("moe", 1, 3.0, 0.30, None),
        seeded("moe", 2, 3.1, 0.32, None),
        seeded("moe", 3, 3.2, 0.34, None),
        seeded("dense", 3, 3.5, 0.0, None),
        seeded("dense", 1, 3.2, 0.0, None),
        seeded("dense", 2, 3.25, 0.0, None),
        seeded("moe-no-lb", 1, 3.3, 0.1, Some(60)),
        seeded("moe-no-lb", 2, 3.0, 0.1, None),
        seeded("moe-no-lb", 3, 3.2, 0.1, Some(80)),
    ];
    label_seeds(&mut runs);
    assert_eq!(runs[0].name(), "moe@s1");
    assert_eq!(group_of(&runs[3]), "dense");
    let md = render(&runs, &[]);
    assert!(md.contains("## Across seeds"), "{md}");
    // dense − moe, paired by seed: 0.2, 0.15, 0.3 → mean 0.2167, sd 0.0764,
    // half-width 4.303·0.0764/√3 = 0.1897.
    assert!(
        md.contains("- dense − moe, total eval loss at step 100: +0.217 [+0.027, +0.406] over 3 seeds, resolved."),
        "{md}"
    );
    // moe-no-lb − moe: 0.3, −0.1, 0.0 → mean 0.067, interval covers 0.
    assert!(
        md.contains("- moe-no-lb − moe, total eval loss at step 100: +0.067 [-0.450, +0.584] over 3 seeds, unresolved: the interval covers 0."),
        "{md}"
    );
    // NMI spread by hand over the three moe seeds.
    let nmi: Vec<f64> = runs[..3]
        .iter()
        .map(|r| r.analysis.layers[0].specialization.nmi)
        .collect();
    let mean = nmi.iter().sum::<f64>() / 3.0;
    let sd = (nmi.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    let (lo, hi) = (
        nmi.iter().copied().fold(1.0, f64::min),
        nmi.iter().copied().fold(0.0, f64::max),
    );
    let want = format!("- moe, block 2: NMI {mean:.3} ± {sd:.3} [{lo:.3}, {hi:.3}] over 3 seeds");
    assert!(sd > 0.0 && md.contains(&want), "{want}\n{md}");
    assert!(
        md.contains(
            "- moe-no-lb: routing collapsed in 2 of 3 seeds (seed 1 at step 60, seed 3 at step 80)."
        ),
        "{md}"
    );
    // With seeds, single runs are not ranked: the claims are the intervals.
    assert!(!md.contains("loss is lowest for"), "{md}");
    assert!(md.contains("single runs are not ranked here"), "{md}");
    // ANA-20's confound is named once per configuration, not per pair of runs.
    assert_eq!(md.matches("The contrast of ").count(), 1, "{md}");
    assert!(md.contains("The contrast of moe-no-lb with moe is not load balancing alone"));
    // One seed per configuration: no such section.
    assert!(!render(&fixture(), &[]).contains("## Across seeds"));
}

/// Sets block 2's NMI and its token-identity control NMI.
fn with_nmi(mut run: ReportRun, nmi: f64, control: f64) -> ReportRun {
    let s = &mut run.analysis.layers[0].specialization;
    s.nmi = nmi;
    s.token_identity.nmi = control;
    run
}

// Checks: ANA-21
#[test]
fn ana_21_nmi_is_compared_with_the_main_moe_run_and_its_control() {
    use moe_analysis::report::across_seeds::label_seeds;
    let moe = |seed, nmi, control| with_nmi(seeded("moe", seed, 3.0, 0.3, None), nmi, control);
    let no_lb = |seed, nmi| with_nmi(seeded("moe-no-lb", seed, 3.1, 0.1, None), nmi, 0.05);
    let mut runs = vec![
        seeded("dense", 1, 3.2, 0.0, None),
        seeded("dense", 2, 3.2, 0.0, None),
        seeded("dense", 3, 3.2, 0.0, None),
        moe(1, 0.30, 0.10),
        moe(2, 0.32, 0.10),
        moe(3, 0.34, 0.16),
        no_lb(3, 0.31),
        no_lb(1, 0.20),
        no_lb(2, 0.35),
    ];
    label_seeds(&mut runs);
    let md = render(&runs, &[]);
    // NMI − control per seed: 0.20, 0.22, 0.18 → mean 0.2, sd 0.02,
    // half-width 4.303·0.02/√3 = 0.0497.
    assert!(
        md.contains(
            "NMI above the token-identity control +0.200 [+0.150, +0.250] over 3 seeds, resolved."
        ),
        "{md}"
    );
    // moe-no-lb − moe by seed: −0.10, +0.03, −0.03 → mean −0.0333,
    // sd 0.0651, half-width 0.1616.
    assert!(
        md.contains("- moe-no-lb − moe, block 2 NMI: -0.033 [-0.195, +0.128] over 3 seeds, unresolved: the interval covers 0."),
        "{md}"
    );
    // A configuration analysed at other steps (a collapse stop) says so.
    let mut runs2 = runs.clone();
    for r in runs2
        .iter_mut()
        .filter(|r| r.name().starts_with("moe-no-lb"))
    {
        r.analysis.run.checkpoint_step = Some(40);
    }
    let md2 = render(&runs2, &[]);
    assert!(
        md2.contains("over 3 seeds, unresolved: the interval covers 0; not step-matched: moe-no-lb analysed at step 40, moe at 100."),
        "{md2}"
    );
    assert!(!md.contains("not step-matched: moe-no-lb"), "{md}");
    // Loss comparisons are with the main MoE run only: no dense ↔ no-LB pair.
    assert!(md.contains("- moe − dense, total eval loss"), "{md}");
    assert!(md.contains("- moe-no-lb − moe, total eval loss"), "{md}");
    assert!(!md.contains("- moe-no-lb − dense"), "{md}");
}

/// Sets the per-block eval losses of `run` at `step`: `blocks[d]` for domain `d`.
fn with_blocks(mut run: ReportRun, step: u64, blocks: [&[f64]; 3]) -> ReportRun {
    let e = run
        .analysis
        .history
        .eval
        .iter_mut()
        .find(|e| e.step == step)
        .unwrap();
    for (d, b) in DOMAINS.iter().zip(blocks) {
        e.blocks.insert(d.to_string(), b.to_vec());
    }
    run
}

// Checks: ANA-21
#[test]
fn ana_21_within_seed_intervals_pair_val_blocks() {
    use moe_analysis::report::across_seeds::{block_differences, label_seeds};
    let dense = |seed| {
        let r = seeded("dense", seed, 3.2, 0.0, None);
        with_blocks(r, 100, [&[5.0, 5.2, 5.4], &[4.0, 4.1], &[3.0, 3.0]])
    };
    let moe = |seed, shift: f64| {
        let r = seeded("moe", seed, 3.0, 0.3, None);
        let code = [4.9 + shift, 5.0 + shift, 5.1 + shift];
        with_blocks(r, 100, [&code, &[4.0, 4.2], &[3.1, 2.9]])
    };
    // Differences moe − dense per code block: −0.1, −0.2, −0.3 → mean −0.2,
    // sd 0.1, half-width 4.303·0.1/√3 = 0.2484.
    let (d1, m1) = (dense(1), moe(1, 0.0));
    let diffs = block_differences(&d1, &m1, 100, Some("code"));
    assert_eq!(diffs.len(), 3);
    assert!((diffs[2] + 0.3).abs() < 1e-12, "{diffs:?}");
    // The total pairs every domain's blocks: 3 + 2 + 2.
    assert_eq!(block_differences(&d1, &m1, 100, None).len(), 7);
    // Blocks that do not pair (another data set) give nothing.
    let short = with_blocks(dense(1), 100, [&[5.0], &[4.0, 4.1], &[3.0, 3.0]]);
    assert!(block_differences(&short, &m1, 100, Some("code")).is_empty());

    // One seed each: its own section, over val blocks.
    let md = render(&[d1.clone(), m1.clone()], &[]);
    assert!(md.contains("## Eval-loss differences"), "{md}");
    assert!(
        md.contains("- moe − dense, code eval loss at step 100: -0.200 [-0.448, +0.048] over 3 val blocks, unresolved: the interval covers 0."),
        "{md}"
    );
    assert!(!md.contains("## Across seeds"));

    // Several seeds: each seed's interval over blocks follows the seeds' one.
    let mut runs = vec![d1, dense(2), m1, moe(2, -0.2)];
    label_seeds(&mut runs);
    let md = render(&runs, &[]);
    // Seed 2: −0.3, −0.4, −0.5 → mean −0.4, same half-width.
    assert!(
        md.contains("within each seed: seed 1 -0.200 [-0.448, +0.048] over 3 val blocks, unresolved: the interval covers 0; seed 2 -0.400 [-0.648, -0.152] over 3 val blocks, resolved."),
        "{md}"
    );
    assert!(!md.contains("## Eval-loss differences"));
}

/// A seed of `moe` whose block 2 has the causal figures: code's top expert
/// is `code_top`, removing it costs code `code` and math `math` (prose
/// nothing); code's own top-1 loss is `keep1` above the random draws' mean;
/// token specialization is `token` above its random router's; path NMI `path`.
#[allow(clippy::too_many_arguments)]
fn causal_seed(
    seed: u64,
    code_top: usize,
    code: f64,
    math: f64,
    keep1: f64,
    token: f64,
    path: f64,
) -> ReportRun {
    let mut r = seeded("moe", seed, 3.0, 0.7, None);
    let l = &mut r.analysis.layers[0];
    if code_top != 0 {
        l.domain_expert_shares[0] = (0..4)
            .map(|e| if e == code_top { 0.7 } else { 0.1 })
            .collect();
    }
    let delta = |mean| LossDelta {
        mean,
        interval: None,
    };
    l.removal = Some(ExpertRemoval {
        blocks: vec![4; 3],
        full_loss: vec![3.0; 3],
        delta: (0..4)
            .map(|e| {
                if e == code_top {
                    vec![delta(code), delta(math), delta(0.0)]
                } else {
                    // Any other expert: a cost the lines must not pick up.
                    vec![delta(9.0); 3]
                }
            })
            .collect(),
        own_domain: vec![Some(0), Some(1), Some(2), None],
        most_hurt: vec![Some(0), Some(1), Some(2), None],
    });
    let spread = |mean: f64| moe_analysis::intervals::spread(&[mean, mean]);
    l.keep_k = Some(KeepK {
        scope: "this block only".into(),
        draws: 2,
        domains: vec![KeepKDomain {
            domain: "code".into(),
            ranking: vec![code_top, 1, 2, 3],
            full_loss: 3.0,
            own: vec![3.5 + keep1, 3.2, 3.1, 3.0],
            others: vec![],
            random: vec![spread(3.5), spread(3.3), spread(3.1), spread(3.0)],
        }],
    });
    l.token_specialization = Some(TokenSpecialization {
        min_occurrences: 10,
        input: SpecializationValue {
            ids: 50,
            value: Some(0.4 + token),
        },
        next: SpecializationValue {
            ids: 50,
            value: Some(0.3),
        },
        uniform: 0.25,
        random_router_input: Some(0.4),
    });
    l.coactivation = Some(CoActivation {
        from_layer: 1,
        conditional: vec![vec![0.25; 4]; 4],
        independence: vec![0.25; 4],
        top_paths: vec![],
        path_nmi: path,
    });
    r
}

// Checks: ANA-31, ANA-30
#[test]
fn ana_31_causal_figures_get_intervals_over_seeds() {
    use moe_analysis::report::across_seeds::label_seeds;
    let mut old = seeded("moe", 4, 3.0, 0.7, None);
    old.analysis.layers[0].domain_expert_shares[0] = vec![0.1, 0.1, 0.1, 0.7];
    let mut runs = vec![
        causal_seed(1, 0, 1.0, -0.1, -0.5, 0.2, 0.2),
        causal_seed(2, 2, 1.1, 0.0, -0.6, 0.1, 0.3),
        causal_seed(3, 0, 1.2, 0.2, -0.4, -0.1, 0.4),
        // An analysis made before the causal figures: left out of every line.
        old,
        seeded("dense", 1, 3.2, 0.0, None),
        seeded("dense", 2, 3.2, 0.0, None),
    ];
    // ANA-30 over seeds: mean similarity 0.6, 0.7, 0.8 from 1.0 at step 0.
    for (r, m) in runs.iter_mut().zip([0.6, 0.7, 0.8]) {
        r.analysis.layers[0].expert_weights = Some(ExpertWeights {
            parameters: 10,
            reference_step: 0,
            drift: vec![],
            analysed_step: Some(100),
            distance: vec![0.1; 4],
            relative_change: vec![Some(0.2); 4],
            similarity: vec![vec![m; 4]; 4],
            mean_similarity: Some(m),
            reference_mean_similarity: Some(1.0),
        });
    }
    label_seeds(&mut runs);
    let md = render(&runs, &[]);
    // Mean 0.7, sd 0.1; change −0.3 ± 4.303·0.1/√3 = ±0.248.
    assert!(
        md.contains("- moe, block 2: the experts' mean pairwise cosine similarity 0.700 ± 0.100 [0.600, 0.800] over 3 seeds; its change since step 0: -0.300 [-0.548, -0.052] over 3 seeds, resolved."),
        "{md}"
    );
    // Code's top expert is expert 0, 2, 0: its deltas 1.0, 1.1, 1.2 → mean
    // 1.1, sd 0.1, t(2) = 4.303 → ±0.248; math −0.1, 0, 0.2 covers 0.
    let want = "- moe, block 2: removing code's top expert (seed 1 expert 0, seed 2 expert 2, seed 3 expert 0) costs code +1.100 [+0.852, +1.348] over 3 seeds, resolved; math +0.033 [-0.346, +0.413] over 3 seeds, unresolved: the interval covers 0; prose +0.000 [+0.000, +0.000] over 3 seeds, unresolved: the interval covers 0.";
    assert!(md.contains(want), "{md}");
    // Keep-1: own − random = −0.5, −0.6, −0.4.
    assert!(
        md.contains("- moe, block 2, keep-1: code's val loss with only its own top-1 expert minus with one random expert (mean of the draws): -0.500 [-0.748, -0.252] over 3 seeds, resolved."),
        "{md}"
    );
    assert!(
        md.contains("- moe, block 2: token specialization by input token minus a random router's: +0.067 [-0.313, +0.446] over 3 seeds, unresolved: the interval covers 0."),
        "{md}"
    );
    assert!(
        md.contains(
            "- moe, block 2 after block 1: path NMI 0.300 ± 0.100 [0.200, 0.400] over 3 seeds."
        ),
        "{md}"
    );
    // The dense configuration has no block: no causal line names it.
    assert!(!md.contains("- dense, block"), "{md}");
    // Without any causal figure there is no causal paragraph.
    let mut plain = vec![
        seeded("moe", 1, 3.0, 0.3, None),
        seeded("moe", 2, 3.1, 0.3, None),
    ];
    label_seeds(&mut plain);
    let md = render(&plain, &[]);
    assert!(
        md.contains("## Across seeds") && !md.contains("top expert"),
        "{md}"
    );
}

// Checks: ANA-31
#[test]
fn ana_31_top_expert_is_the_largest_share_then_the_lower_index() {
    use moe_analysis::report::causal_seeds::top_expert;
    assert_eq!(top_expert(&[0.1, 0.4, 0.4, 0.1]), Some(1));
    assert_eq!(top_expert(&[0.7, 0.1, 0.1, 0.1]), Some(0));
    assert_eq!(top_expert(&[0.0, 0.0]), None);
}
