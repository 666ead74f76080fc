//! Figures of the causal analyses: the expert-removal heatmap (ANA-25) and
//! one keep-k line chart per domain (ANA-26).

use super::heatmap::Heatmap;
use super::lines::{LineChart, Series};
use crate::schema::{ExpertRemoval, KeepKDomain};

/// Expert × domain loss change when the expert is masked in `layer`.
pub fn removal_heatmap(r: &ExpertRemoval, layer: usize, domains: &[String], run: &str) -> Heatmap {
    Heatmap {
        title: format!("{run}: block {layer} — Δ val loss (nats), expert masked"),
        rows: (0..r.delta.len()).map(|e| format!("expert {e}")).collect(),
        cols: domains.to_vec(),
        values: (0..domains.len())
            .map(|d| r.delta.iter().map(|row| row[d].mean).collect())
            .collect(),
        signed: true,
    }
}

/// One domain's loss against k: its own top-k, each other domain's top-k,
/// random k (mean, with the draws' min and max faint).
pub fn keep_k_chart(k: &KeepKDomain, layer: usize, run: &str) -> LineChart {
    let curve = |values: &[f64]| -> Vec<(f64, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| ((i + 1) as f64, v))
            .collect()
    };
    let line = |name: String, points, color, faint| Series {
        name,
        points,
        color,
        faint,
        markers: true,
    };
    let mut series = vec![line(
        format!("own top-k ({})", k.domain),
        curve(&k.own),
        0,
        false,
    )];
    for (i, o) in k.others.iter().enumerate() {
        series.push(line(
            format!("{}'s top-k", o.domain),
            curve(&o.loss),
            i + 1,
            false,
        ));
    }
    let random = |f: fn(&crate::intervals::Spread) -> f64| -> Vec<f64> {
        k.random
            .iter()
            .map(|s| s.as_ref().map_or(f64::NAN, f))
            .collect()
    };
    let c = k.others.len() + 1;
    series.push(line(
        "random k (mean)".into(),
        curve(&random(|s| s.mean)),
        c,
        false,
    ));
    series.push(line(
        "random k (min)".into(),
        curve(&random(|s| s.min)),
        c,
        true,
    ));
    series.push(line(
        "random k (max)".into(),
        curve(&random(|s| s.max)),
        c,
        true,
    ));
    for s in &mut series {
        s.points.retain(|p| p.1.is_finite());
    }
    LineChart {
        title: format!(
            "{run}: block {layer} — {} val loss keeping k experts (others masked in this block)",
            k.domain
        ),
        x_label: "experts kept (k)".into(),
        y_label: "cross-entropy (nats)".into(),
        series,
        y_range: None,
        reference: Some((k.full_loss, format!("all experts {:.3}", k.full_loss))),
    }
}
