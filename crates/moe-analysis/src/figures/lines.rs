//! Line charts over training steps: expert shares of a layer (load over
//! training), eval loss per domain, and the report's cross-run comparison.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{FONT, Figure};
use crate::schema::{History, LayerHistory, Saturation};

/// One line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// (step, value) points in step order.
    pub points: Vec<(f64, f64)>,
    /// Palette index of its colour.
    pub color: usize,
    /// Drawn thinner and lighter (secondary curves).
    pub faint: bool,
    /// Draw a dot at every point (sparse series such as evals).
    pub markers: bool,
}

/// A chart of several lines against the training step.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title.
    pub title: String,
    /// X axis label (`step` for curves over training).
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Fixed y range (else fitted to the data).
    pub y_range: Option<(f64, f64)>,
    /// A dashed horizontal reference line and its label.
    pub reference: Option<(f64, String)>,
}

impl LineChart {
    /// Expert shares of one layer over training, with the collapse threshold.
    pub fn load_over_training(h: &LayerHistory, threshold: f64, run: &str) -> Self {
        let n = h.shares.first().map_or(0, Vec::len);
        let series = (0..n)
            .map(|e| Series {
                name: format!("expert {e}"),
                points: h
                    .steps
                    .iter()
                    .zip(&h.shares)
                    .map(|(&s, row)| (s as f64, row.get(e).copied().unwrap_or(0.0)))
                    .collect(),
                color: e,
                faint: false,
                markers: false,
            })
            .collect();
        Self {
            title: format!(
                "{run}: block {} — share of tokens per expert (train batches)",
                h.layer
            ),
            x_label: "step".into(),
            y_label: "share of tokens".into(),
            series,
            y_range: Some((0.0, 1.0)),
            reference: Some((threshold, format!("collapse threshold {threshold}"))),
        }
    }

    /// Router saturation (ANA-29): per MoE block, the share of probe tokens
    /// already routed as in the reference step, with the chance agreement
    /// of independent routers (faint) and the threshold.
    pub fn saturation(sat: &Saturation, run: &str) -> Self {
        let mut series = Vec::new();
        for (i, l) in sat.layers.iter().enumerate() {
            let points = |values: &[f64]| -> Vec<(f64, f64)> {
                l.steps
                    .iter()
                    .zip(values)
                    .map(|(&s, &v)| (s as f64, v))
                    .collect()
            };
            series.push(Series {
                name: format!("block {}", l.layer),
                points: points(&l.agreement),
                color: i,
                faint: false,
                markers: true,
            });
            series.push(Series {
                name: format!("block {}, chance", l.layer),
                points: points(&l.chance),
                color: i,
                faint: true,
                markers: false,
            });
        }
        Self {
            title: format!(
                "{run}: router saturation — top-1 agreement with step {} ({} probe tokens)",
                sat.reference_step, sat.probe_tokens
            ),
            x_label: "step".into(),
            y_label: "share of probe tokens".into(),
            series,
            y_range: Some((0.0, 1.0)),
            reference: Some((sat.threshold, format!("{:.0}%", 100.0 * sat.threshold))),
        }
    }

    /// Eval loss per domain (and the train LM loss, faint) over training.
    pub fn loss_curves(history: &History, run: &str) -> Self {
        let mut domains: Vec<&String> =
            history.eval.iter().flat_map(|e| e.domains.keys()).collect();
        domains.sort();
        domains.dedup();
        let mut series: Vec<Series> = domains
            .iter()
            .enumerate()
            .map(|(i, d)| Series {
                name: format!("eval {d}"),
                points: history
                    .eval
                    .iter()
                    .filter_map(|e| e.domains.get(*d).map(|&l| (e.step as f64, l)))
                    .collect(),
                color: i,
                faint: false,
                markers: true,
            })
            .collect();
        series.push(Series {
            name: "train LM".into(),
            points: history
                .train
                .iter()
                .map(|t| (t.step as f64, t.lm_loss))
                .collect(),
            color: domains.len(),
            faint: true,
            markers: false,
        });
        Self {
            title: format!("{run}: loss per domain"),
            x_label: "step".into(),
            y_label: "cross-entropy (nats)".into(),
            series,
            y_range: None,
            reference: None,
        }
    }

    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let pts = || self.series.iter().flat_map(|s| s.points.iter());
        let fold = |f: fn(&(f64, f64)) -> f64| {
            pts()
                .map(f)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                })
        };
        let widen = |(lo, hi): (f64, f64)| {
            if !lo.is_finite() {
                (0.0, 1.0)
            } else if hi - lo < 1e-9 {
                (lo - 0.5, hi + 0.5)
            } else {
                let pad = 0.05 * (hi - lo);
                (lo - pad, hi + pad)
            }
        };
        let x = widen(fold(|p| p.0));
        let y = self.y_range.unwrap_or_else(|| widen(fold(|p| p.1)));
        (x, y)
    }
}

/// Width of the legend column.
const LEGEND_W: u32 = 170;

impl Figure for LineChart {
    fn size(&self) -> (u32, u32) {
        (720 + LEGEND_W, 420)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        let ((x0, x1), (y0, y1)) = self.ranges();
        let (plot, legend) = root.split_horizontally(self.size().0 - LEGEND_W);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, (FONT, 15))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc(self.y_label.as_str())
            .label_style((FONT, 12))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        let mut keys = Vec::new();
        if let Some((y, label)) = &self.reference {
            let style = ShapeStyle::from(&RGBColor(120, 120, 120)).stroke_width(1);
            chart
                .draw_series(DashedLineSeries::new([(x0, *y), (x1, *y)], 6, 4, style))
                .map_err(err)?;
            keys.push((label.clone(), style));
        }
        for s in &self.series {
            let base = Palette99::pick(s.color).to_rgba();
            let color = if s.faint { base.mix(0.45) } else { base };
            let style = ShapeStyle::from(&color).stroke_width(if s.faint { 1 } else { 2 });
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))
                .map_err(err)?;
            if s.markers {
                chart
                    .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, style.filled())))
                    .map_err(err)?;
            }
            keys.push((s.name.clone(), style));
        }
        // The legend in its own column, so it never hides a curve.
        let text = TextStyle::from((FONT, 11).into_font()).color(&BLACK);
        for (i, (label, style)) in keys.into_iter().enumerate() {
            let y = 48 + 18 * i as i32;
            legend
                .draw(&PathElement::new([(4, y), (22, y)], style))
                .map_err(err)?;
            legend
                .draw(&Text::new(label, (28, y - 6), text.clone()))
                .map_err(err)?;
        }
        Ok(())
    }
}
