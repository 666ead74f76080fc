//! Figures (ANA-14): every figure is drawn once per backend, to SVG and to
//! PNG, with DejaVu Sans embedded through `ab_glyph` so that nothing depends
//! on the system's fonts.
//!
//! - [`heatmap::Heatmap`]: a layer's expert × domain shares.
//! - [`lines::LineChart`]: load over training, loss curves.
//! - [`causal`]: the expert-removal heatmap and the keep-k curves.
//! - [`weights`]: the experts' drift from step 0 and their similarity.

pub mod causal;
pub mod heatmap;
pub mod lines;
pub mod weights;

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{AnalysisError, Result};
use crate::schema::Analysis;

/// The font family every figure uses.
pub const FONT: &str = "sans-serif";

/// Something that can be drawn on any plotters backend.
pub trait Figure {
    /// Width and height in pixels (the SVG's user units too).
    fn size(&self) -> (u32, u32);
    /// Draws onto `root`, already filled white.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // DejaVu Sans is a valid TrueType font; a failure would only leave text undrawn.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Writes `<dir>/<stem>.svg` and `<dir>/<stem>.png`; returns both file names.
pub fn save<F: Figure>(figure: &F, dir: &Path, stem: &str) -> Result<Vec<String>> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|e| AnalysisError::io(dir, e))?;
    let size = figure.size();
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |reason: String| AnalysisError::Figure { path, reason }
    };
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        draw_on(figure, &root).map_err(fail(&svg))?;
    }
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        draw_on(figure, &root).map_err(fail(&png))?;
    }
    write_png(&png, size, &rgb).map_err(fail(&png))?;
    Ok(vec![format!("{stem}.svg"), format!("{stem}.png")])
}

/// Encodes an 8-bit RGB buffer as a PNG file.
fn write_png(path: &Path, (w, h): (u32, u32), rgb: &[u8]) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())
}

fn draw_on<F: Figure, DB: DrawingBackend>(
    figure: &F,
    root: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    figure.draw(root)?;
    root.present().map_err(|e| e.to_string())
}

/// A file-name-safe form of a domain name.
pub(crate) fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A run's figures under `<out>/figures/`: a heatmap and a load curve per
/// MoE layer and the loss curves; returns their paths relative to `out`.
pub fn write_run_figures(analysis: &Analysis, out: &Path) -> Result<Vec<String>> {
    let dir = out.join("figures");
    let mut written = Vec::new();
    let mut keep =
        |names: Vec<String>| written.extend(names.into_iter().map(|n| format!("figures/{n}")));
    let name = &analysis.run.name;
    for layer in &analysis.layers {
        let map = heatmap::Heatmap::of_layer(layer, &analysis.val.domains, name);
        keep(save(&map, &dir, &format!("heatmap_layer{}", layer.layer))?);
        if let Some(r) = &layer.removal {
            let map = causal::removal_heatmap(r, layer.layer, &analysis.val.domains, name);
            keep(save(&map, &dir, &format!("removal_layer{}", layer.layer))?);
        }
        for k in layer.keep_k.iter().flat_map(|k| &k.domains) {
            let chart = causal::keep_k_chart(k, layer.layer, name);
            let stem = format!("keep_k_layer{}_{}", layer.layer, slug(&k.domain));
            keep(save(&chart, &dir, &stem)?);
        }
        if let Some(w) = &layer.expert_weights {
            let chart = weights::drift_chart(w, layer.layer, name);
            keep(save(
                &chart,
                &dir,
                &format!("expert_drift_layer{}", layer.layer),
            )?);
            let map = weights::similarity_heatmap(w, layer.layer, name);
            keep(save(
                &map,
                &dir,
                &format!("expert_similarity_layer{}", layer.layer),
            )?);
        }
    }
    for h in &analysis.history.layers {
        let chart =
            lines::LineChart::load_over_training(h, analysis.history.collapse.threshold, name);
        keep(save(&chart, &dir, &format!("load_layer{}", h.layer))?);
    }
    if let Some(sat) = &analysis.saturation {
        keep(save(
            &lines::LineChart::saturation(sat, name),
            &dir,
            "saturation",
        )?);
    }
    keep(save(
        &lines::LineChart::loss_curves(&analysis.history, name),
        &dir,
        "loss",
    )?);
    Ok(written)
}
