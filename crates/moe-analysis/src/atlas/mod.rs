//! `moe atlas` (ATLAS-1 … ATLAS-7): the routing atlas, one self-contained
//! HTML page (CSS and JS inline, figures as HTML; nothing loaded from the
//! network) where a reader sees the experts at work.
//!
//! [`atlas()`] reads each run through [`RunDir`] (its `analysis.json` and
//! `metrics.jsonl`, by [`crate::report::load_runs`], as the report reads
//! them) and the val shards through [`PreparedData`], then renders:
//!
//! - the overview ([`headline`]): the report's own interval sentences and
//!   each MoE layer's expert × domain heatmap;
//! - token-coloured text ([`excerpts`]): a seeded choice of val blocks per
//!   domain, routed by [`crate::route_val::collect`] through each MoE run's
//!   trained model, every token's background the colour ([`palette`]) of
//!   its top-1 expert in the selected layer, two runs side by side;
//! - routing over training: each run's per-log expert shares from
//!   `metrics.jsonl`, under one step slider, every run in a row so a
//!   collapse shows as one colour taking over.
//!
//! The page is built as strings by `page` (header, overview, training) and
//! `tokens` (the coloured text) with one escape for text and attributes and
//! one for JSON in a `<script>` ([`escape`]); `atlas.css` and `atlas.js` are
//! inlined. The causal figures (removal, keep-k) are not in `analysis.json`
//! yet; once they are, they become one more section in `page::render`'s
//! list.

pub mod escape;
pub mod excerpts;
pub mod headline;
mod page;
pub mod palette;
mod tokens;

use std::path::{Path, PathBuf};

use moe_data::prepared::PreparedData;
use moe_data::split::Split;
use moe_data::tokenizer::Gpt2Tokenizer;
use moe_train::{Blocks, RunDir};

use crate::error::{AnalysisError, Result};
use crate::report::{ReportRun, load_runs};

/// The file the demo and `reproduce` write next to the report.
pub const ATLAS_FILE: &str = "atlas.html";

/// Settings of `moe atlas`.
#[derive(Debug, Clone, PartialEq)]
pub struct AtlasOptions {
    /// Val blocks shown per domain.
    pub excerpts_per_domain: usize,
    /// Tokens shown per excerpt (its first ones).
    pub max_tokens: usize,
    /// Seed of the choice of blocks.
    pub seed: u64,
}

impl Default for AtlasOptions {
    fn default() -> Self {
        Self {
            excerpts_per_domain: 3,
            max_tokens: 300,
            seed: 0,
        }
    }
}

/// One run on the page: what the report reads of it, and the routing of
/// the excerpts (MoE runs with an analysis).
#[derive(Debug, Clone)]
pub struct AtlasRun {
    /// Its analysis (or history only), labelled `name@s<seed>` among seeds.
    pub run: ReportRun,
    /// The excerpts' routing by its trained model.
    pub routed: Option<excerpts::Routed>,
}

/// What [`atlas()`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct AtlasSummary {
    /// The HTML file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Token spans on the page (every MoE run's excerpts).
    pub token_spans: usize,
}

/// Writes the atlas of `dirs` (run directories, analysed or not) on the
/// val shards of `data_dir` to the file `out`, through a temporary file
/// renamed into place, so a failure leaves no half-written page.
pub fn atlas(
    dirs: &[PathBuf],
    data_dir: &Path,
    out: &Path,
    options: &AtlasOptions,
) -> Result<AtlasSummary> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| AnalysisError::io(&parent, e))?;
    let reports = load_runs(dirs, &parent)?;
    let data = PreparedData::open(data_dir)?;
    let choices = excerpts::choose(
        &Blocks::load(&data, Split::Val, 0)?,
        options.excerpts_per_domain,
        options.seed,
    );
    let mut runs = Vec::new();
    for (dir, run) in dirs.iter().zip(reports) {
        let routed = if run.analyzed && !run.analysis.layers.is_empty() {
            Some(excerpts::route(
                &RunDir::new(dir),
                &run.analysis,
                &data,
                &choices,
                options.max_tokens,
            )?)
        } else {
            None
        };
        runs.push(AtlasRun { run, routed });
    }
    let tokenizer = Gpt2Tokenizer::embedded()
        .map_err(|e| AnalysisError::run(Path::new("gpt2 tokenizer"), e.to_string()))?;
    let html = page::render(&runs, &headline::sentences(&runs), &tokenizer)
        .map_err(|e| AnalysisError::run(out, e.to_string()))?;
    write_atomically(out, &html)?;
    Ok(AtlasSummary {
        path: out.to_path_buf(),
        bytes: html.len() as u64,
        token_spans: page::token_spans(&runs),
    })
}

/// Writes `text` to `<path>.tmp`, then renames it to `path`.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).map_err(|e| AnalysisError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| AnalysisError::io(path, e))
}
