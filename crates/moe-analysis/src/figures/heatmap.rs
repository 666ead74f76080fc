//! The expert × domain heatmap of one layer: each column is a domain, each
//! cell the share of that domain's tokens whose top-1 expert is the row's
//! expert, printed in the cell; or, signed, a loss change in nats (red up,
//! blue down, scaled by the largest magnitude).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{FONT, Figure};
use crate::schema::LayerAnalysis;

const CELL_W: u32 = 110;
const CELL_H: u32 = 34;
const LEFT: u32 = 90;
const TOP: u32 = 60;
const BOTTOM: u32 = 50;
const RIGHT: u32 = 20;

/// A matrix of shares with row and column labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    /// Title.
    pub title: String,
    /// Row labels (experts).
    pub rows: Vec<String>,
    /// Column labels (domains).
    pub cols: Vec<String>,
    /// `values[col][row]`: shares in [0, 1], or signed values when `signed`.
    pub values: Vec<Vec<f64>>,
    /// Signed values (printed `+0.012`) rather than shares (printed `12.0%`).
    pub signed: bool,
}

impl Heatmap {
    /// A layer's domain → expert shares.
    pub fn of_layer(layer: &LayerAnalysis, domains: &[String], run: &str) -> Self {
        Self {
            title: format!(
                "{run}: block {} — share of each domain's tokens per expert (NMI {:.3})",
                layer.layer, layer.specialization.nmi
            ),
            rows: (0..layer.n_experts)
                .map(|e| format!("expert {e}"))
                .collect(),
            cols: domains.to_vec(),
            values: layer.domain_expert_shares.clone(),
            signed: false,
        }
    }
}

/// White → red for positive `v` in [−1, 1], white → blue for negative.
fn diverging(v: f64) -> RGBColor {
    let a = v.abs().clamp(0.0, 1.0);
    let mix = |lo: f64| (255.0 + (lo - 255.0) * a).round() as u8;
    if v >= 0.0 {
        RGBColor(mix(180.0), mix(20.0), mix(30.0))
    } else {
        RGBColor(mix(8.0), mix(48.0), mix(107.0))
    }
}

/// White → dark blue.
fn color(v: f64) -> RGBColor {
    let v = v.clamp(0.0, 1.0);
    let mix = |hi: f64, lo: f64| (hi + (lo - hi) * v).round() as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

impl Figure for Heatmap {
    fn size(&self) -> (u32, u32) {
        let w = (LEFT + RIGHT + CELL_W * self.cols.len().max(1) as u32).max(480);
        let h = TOP + BOTTOM + CELL_H * self.rows.len().max(1) as u32;
        (w, h)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        let title = TextStyle::from((FONT, 14).into_font()).color(&BLACK);
        root.draw(&Text::new(self.title.clone(), (10, 12), title))
            .map_err(err)?;
        let label = TextStyle::from((FONT, 13).into_font()).color(&BLACK);
        let centered = label.pos(Pos::new(HPos::Center, VPos::Center));
        for (r, name) in self.rows.iter().enumerate() {
            let y = (TOP + CELL_H * r as u32 + CELL_H / 2) as i32;
            root.draw(&Text::new(
                name.clone(),
                (8, y),
                label.pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(err)?;
        }
        let scale = self
            .values
            .iter()
            .flatten()
            .fold(0.0f64, |m, v| m.max(v.abs()))
            .max(f64::MIN_POSITIVE);
        for (c, name) in self.cols.iter().enumerate() {
            let x0 = (LEFT + CELL_W * c as u32) as i32;
            let y_label = (TOP + CELL_H * self.rows.len() as u32 + 18) as i32;
            root.draw(&Text::new(
                name.clone(),
                (x0 + CELL_W as i32 / 2, y_label),
                centered.clone(),
            ))
            .map_err(err)?;
            for r in 0..self.rows.len() {
                let v = self
                    .values
                    .get(c)
                    .and_then(|col| col.get(r))
                    .copied()
                    .unwrap_or(0.0);
                let y0 = (TOP + CELL_H * r as u32) as i32;
                let cell = [(x0, y0), (x0 + CELL_W as i32, y0 + CELL_H as i32)];
                let (fill, dark, text) = if self.signed {
                    (
                        diverging(v / scale),
                        v.abs() / scale > 0.5,
                        format!("{v:+.3}"),
                    )
                } else {
                    (color(v), v > 0.5, format!("{:.1}%", 100.0 * v))
                };
                root.draw(&Rectangle::new(cell, fill.filled()))
                    .map_err(err)?;
                root.draw(&Rectangle::new(cell, RGBColor(200, 200, 200)))
                    .map_err(err)?;
                let ink = if dark { WHITE } else { BLACK };
                root.draw(&Text::new(
                    text,
                    (x0 + CELL_W as i32 / 2, y0 + CELL_H as i32 / 2),
                    centered.clone().color(&ink),
                ))
                .map_err(err)?;
            }
        }
        Ok(())
    }
}
