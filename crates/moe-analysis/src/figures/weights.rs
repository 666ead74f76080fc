//! Figures of the experts' weights (ANA-30): each expert's cosine distance
//! from its step-0 weights against the step, and the analysed experts'
//! pairwise cosine similarity as a signed heatmap.

use super::heatmap::Heatmap;
use super::lines::{LineChart, Series};
use crate::schema::ExpertWeights;

/// Distance from step 0 against the step, one line per expert.
pub fn drift_chart(w: &ExpertWeights, layer: usize, run: &str) -> LineChart {
    let n = w.distance.len();
    let series = (0..n)
        .map(|e| Series {
            name: format!("expert {e}"),
            points: w
                .drift
                .iter()
                .filter_map(|p| p.distance.get(e).map(|&d| (p.step as f64, d)))
                .collect(),
            color: e,
            faint: false,
            markers: true,
        })
        .collect();
    LineChart {
        title: format!(
            "{run}: block {layer} — each expert's cosine distance from its step-{} weights",
            w.reference_step
        ),
        x_label: "step".into(),
        y_label: format!("cosine distance from step {}", w.reference_step),
        series,
        y_range: None,
        reference: None,
    }
}

/// The E × E cosine similarities of the analysed experts.
pub fn similarity_heatmap(w: &ExpertWeights, layer: usize, run: &str) -> Heatmap {
    let n = w.similarity.len();
    let mean = w
        .mean_similarity
        .map_or(String::new(), |m| format!(" (mean off-diagonal {m:.3})"));
    Heatmap {
        title: format!("{run}: block {layer} — cosine similarity of the experts' weights{mean}"),
        rows: (0..n).map(|e| format!("expert {e}")).collect(),
        cols: (0..n).map(|e| format!("expert {e}")).collect(),
        // Symmetric: `values[col][row]` is `similarity[row][col]`.
        values: w.similarity.clone(),
        signed: true,
    }
}
