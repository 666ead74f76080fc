//! The experts' weights (ANA-30) on hand-made vectors whose cosines are
//! known, and on an upcycled model whose experts are identical copies.

use moe_analysis::expert_weights::{
    cosine_distance, cosine_similarity, drift, expert_vectors, layer_weights, mean_off_diagonal,
    relative_change, similarity_matrix,
};
use moe_analysis::report::weights::claim;
use moe_analysis::schema::DriftPoint;
use moe_model::{CpuBackend, Gpt2, ModelConfig, MoeConfig};

// Checks: ANA-30
#[test]
fn ana_30_cosine_distance_of_known_vectors() {
    let a = [1.0f32, 2.0, 2.0];
    assert_eq!(cosine_similarity(&a, &a), 1.0);
    assert!(cosine_distance(&a, &a).abs() < 1e-12);
    // Orthogonal: distance 1; opposite: distance 2.
    assert!((cosine_distance(&[1.0, 0.0], &[0.0, 3.0]) - 1.0).abs() < 1e-12);
    let opposite: Vec<f32> = a.iter().map(|x| -x).collect();
    assert!((cosine_distance(&a, &opposite) - 2.0).abs() < 1e-12);
    // 45°: cos = 1/√2.
    let c = cosine_similarity(&[1.0, 0.0], &[1.0, 1.0]);
    assert!((c - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
    // A scaled copy: no angle, but it moved: ‖3a − a‖ / ‖a‖ = 2.
    let scaled: Vec<f32> = a.iter().map(|x| 3.0 * x).collect();
    assert!(cosine_distance(&a, &scaled).abs() < 1e-12);
    assert!((relative_change(&a, &scaled).unwrap() - 2.0).abs() < 1e-12);
    assert_eq!(relative_change(&[0.0, 0.0], &a), None);
    // The zero-vector convention.
    assert_eq!(cosine_similarity(&[0.0, 0.0], &[0.0, 0.0]), 1.0);
    assert_eq!(cosine_similarity(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
}

// Checks: ANA-30
#[test]
fn ana_30_similarity_matrix_and_drift_points() {
    let experts = vec![vec![1.0f32, 0.0], vec![0.0, 1.0], vec![-1.0, 0.0]];
    let m = similarity_matrix(&experts);
    let want = [[1.0, 0.0, -1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 1.0]];
    for i in 0..3 {
        for j in 0..3 {
            assert!((m[i][j] - want[i][j]).abs() < 1e-12, "{i} {j}");
            assert_eq!(m[i][j], m[j][i]);
        }
    }
    // Off-diagonal: (0 − 1 + 0 + 0 − 1 + 0) / 6.
    assert!((mean_off_diagonal(&m).unwrap() + 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(mean_off_diagonal(&[vec![1.0]]), None);

    // Reference at step 0; checkpoints out of order, one at the analysed step.
    let reference = vec![vec![1.0f32, 0.0], vec![0.0, 1.0]];
    let at_20 = vec![vec![1.0f32, 1.0], vec![0.0, 2.0]];
    let analysed = vec![vec![0.0f32, 1.0], vec![0.0, -1.0]];
    let points = vec![
        DriftPoint {
            step: 40,
            distance: vec![9.0, 9.0],
        },
        DriftPoint {
            step: 20,
            distance: drift(&reference, &at_20),
        },
    ];
    let w = layer_weights(&reference, 0, points, &analysed, Some(40));
    let steps: Vec<u64> = w.drift.iter().map(|p| p.step).collect();
    assert_eq!(steps, vec![0, 20, 40]);
    assert_eq!(w.drift[0].distance, vec![0.0, 0.0]);
    assert!((w.drift[1].distance[0] - (1.0 - std::f64::consts::FRAC_1_SQRT_2)).abs() < 1e-12);
    assert!(w.drift[1].distance[1].abs() < 1e-12);
    // The analysed model replaces the checkpoint at its step.
    assert_eq!(w.drift[2].distance, w.distance);
    assert!((w.distance[0] - 1.0).abs() < 1e-12 && (w.distance[1] - 2.0).abs() < 1e-12);
    assert_eq!(w.parameters, 2);
    assert_eq!(w.relative_change[1], Some(2.0));
    // The experts were orthogonal (mean 0) and are opposite now (−1).
    assert_eq!(w.reference_mean_similarity, Some(0.0));
    assert_eq!(w.mean_similarity, Some(-1.0));
    let text = claim("moe", 2, &w);
    assert!(
        text.contains("at step 40 expert 1 moved most from its step-0 weights (cosine distance 2.0000, relative change 2.000), expert 0 least (1.0000)"),
        "{text}"
    );
    assert!(text.contains("-1.0000 against 0.0000 at step 0"), "{text}");
    assert!(text.contains(": the experts grew apart ("), "{text}");
}

// Checks: ANA-30
#[test]
fn ana_30_upcycled_experts_are_identical_at_zero_noise() {
    let device = Default::default();
    let mut config = ModelConfig::preset("micro").unwrap();
    config.moe = None;
    let moe = MoeConfig {
        layers: vec![1],
        n_experts: 3,
        top_k: 1,
        capacity_factor: None,
        group_alignment: None,
    };
    let dense = Gpt2::<CpuBackend>::init(&config, 4, &device);
    let step0 = expert_vectors(&dense.clone().upcycle(&moe, 0.0, 9)).unwrap();
    let noisy = expert_vectors(&dense.upcycle(&moe, 0.01, 9)).unwrap();
    assert_eq!(step0.len(), 1);
    let (layer, experts) = &step0[0];
    assert_eq!(*layer, 1);
    let g = &config.gpt2;
    let params = 2 * g.d_model * g.d_ff + g.d_ff + g.d_model;
    assert!(experts.iter().all(|e| e.len() == params));

    let w = layer_weights(experts, 0, Vec::new(), &noisy[0].1, Some(100));
    assert_eq!(w.drift[0].step, 0);
    assert!(w.drift[0].distance.iter().all(|d| d.abs() < 1e-12));
    let m0 = similarity_matrix(experts);
    assert!(m0.iter().flatten().all(|s| (s - 1.0).abs() < 1e-12));
    assert!((w.reference_mean_similarity.unwrap() - 1.0).abs() < 1e-12);
    // Noise moves every expert a little, each in its own direction.
    assert!(w.distance.iter().all(|&d| d > 0.0 && d < 0.5));
    let mean = w.mean_similarity.unwrap();
    assert!(mean < 1.0 - 1e-9 && mean > 0.5, "{mean}");
    assert!(w.relative_change.iter().all(|r| r.unwrap() > 0.0));
}
