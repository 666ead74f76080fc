//! Router saturation (ANA-29) on hand-made probe rows whose answer is known.

use moe_analysis::report::claims;
use moe_analysis::saturation::{SATURATION_THRESHOLD, agreement, saturation};
use moe_train::probe::{ProbeLayer, ProbeRow};

fn row(step: u64, layers: &[(usize, &str)]) -> ProbeRow {
    ProbeRow {
        step,
        blocks: vec![1, 1],
        layers: layers
            .iter()
            .map(|&(layer, top1)| ProbeLayer {
                layer,
                top1: top1.into(),
            })
            .collect(),
    }
}

// Checks: ANA-29
#[test]
fn ana_29_agreement_with_the_final_routing_and_its_chance_level() {
    // Ten tokens; block 2 settles at step 20, block 3 never reaches 90%.
    let rows = [
        row(0, &[(2, "0000011111"), (3, "0123012301")]),
        row(10, &[(2, "0101010101"), (3, "0123000000")]),
        row(20, &[(2, "0123012331"), (3, "0000000000")]),
        row(30, &[(2, "0123012301"), (3, "1111111111")]),
        // After the analysed step: left out.
        row(40, &[(2, "3333333333"), (3, "3333333333")]),
    ];
    let sat = saturation(&rows, Some(30), 4).unwrap();
    assert_eq!(sat.reference_step, 30);
    assert_eq!(sat.probe_tokens, 10);
    assert_eq!(sat.threshold, SATURATION_THRESHOLD);
    let b2 = &sat.layers[0];
    assert_eq!(b2.steps, [0, 10, 20, 30]);
    // Final block 2 routing 0123012301: step 0 agrees at positions 0, 4, 5, 9.
    assert_eq!(b2.agreement, [0.4, 0.6, 0.9, 1.0]);
    // 0.9 is not above 0.9, and the analysed step itself does not count.
    assert_eq!(b2.first_step_above, None);
    let b3 = &sat.layers[1];
    assert_eq!(b3.agreement, [0.3, 0.1, 0.0, 1.0]);
    // Chance: Σ_e p_t(e) · p_final(e); block 3's final routing is all expert 1.
    assert_eq!(b3.chance[2], 0.0);
    assert_eq!(b3.chance[3], 1.0);
    // Step 0 of block 2: loads (5, 5, 0, 0)/10 against the final (3, 3, 2, 2)/10.
    assert!((b2.chance[0] - (0.5 * 0.3 + 0.5 * 0.3)).abs() < 1e-12);
    // Without a reference step the last row is the reference.
    let last = saturation(&rows, None, 4).unwrap();
    assert_eq!(last.reference_step, 40);
    assert_eq!(last.layers[0].agreement.last(), Some(&1.0));
    // A step with no row, a row of another shape or an expert out of range: none.
    assert!(saturation(&rows, Some(35), 4).is_none());
    assert!(saturation(&rows, Some(30), 3).is_none());
    let mut short = rows.to_vec();
    short[1].layers[0].top1.pop();
    assert!(saturation(&short, Some(30), 4).is_none());
    assert!(saturation(&[], None, 4).is_none());
}

// Checks: ANA-29
#[test]
fn ana_29_independent_routers_agree_at_chance() {
    // Two uniform routers over 4 experts whose pairs cover all 16
    // combinations equally (independent): agreement = chance = 1/4.
    let a: Vec<usize> = (0..4000).map(|i| i % 4).collect();
    let b: Vec<usize> = (0..4000).map(|i| (i / 4) % 4).collect();
    assert_eq!(agreement(&a, &b, 4), (0.25, 0.25));
    // Loads (3/4, 1/4) against (1/2, 1/2): chance 3/8 + 1/8 whatever the pairing.
    let (_, chance) = agreement(&[0, 0, 0, 1], &[0, 1, 0, 1], 2);
    assert_eq!(chance, 0.5);
    assert_eq!(agreement(&a, &a, 4).0, 1.0);
}

// Checks: ANA-29
#[test]
fn ana_29_claim_names_the_step_or_says_never() {
    let rows = [
        row(0, &[(2, "0000000000")]),
        row(5, &[(2, "0123012301")]),
        row(10, &[(2, "0123012301")]),
    ];
    let sat = saturation(&rows, Some(10), 4).unwrap();
    let text = claims::saturation("moe", &sat, &sat.layers[0]);
    assert!(text.contains("at step 5: 100.0%"), "{text}");
    assert!(text.contains("at step 0: 30.0%"), "{text}");
    // Only the analysed step itself agrees beyond the threshold.
    let late = [
        row(0, &[(2, "1111100000")]),
        row(10, &[(2, "0000000000")]),
        row(20, &[(2, "0000011111")]),
    ];
    let sat = saturation(&late, Some(20), 4).unwrap();
    assert_eq!(sat.layers[0].first_step_above, None);
    let text = claims::saturation("moe", &sat, &sat.layers[0]);
    assert!(text.contains("at no earlier probe step"), "{text}");
    assert!(text.contains("at step 0: 0.0%"), "{text}");
    assert!(text.contains("at step 10: 50.0%"), "{text}");
    // With one probe step before the end, it is shown once.
    let sat = saturation(&late[1..], Some(20), 4).unwrap();
    let text = claims::saturation("moe", &sat, &sat.layers[0]);
    assert_eq!(text.matches("at step 10").count(), 1, "{text}");
}
