//! The atlas page (ATLAS-1, ATLAS-3, ATLAS-6): the HTML of each section,
//! built as strings with every data string through [`html`], the page's
//! data for its script through [`json_in_script`], and the CSS and JS
//! (`atlas.css`, `atlas.js`) inlined, so the file opens offline.

use std::fmt::Write;

use moe_data::tokenizer::Gpt2Tokenizer;
use serde::Serialize;

use super::AtlasRun;
use super::escape::{html, json_in_script};
use super::palette::{DISTINCT, hex, sequential, swatch, text_on};
use super::tokens;
use crate::figures::heatmap::Heatmap;

const CSS: &str = include_str!("atlas.css");
const JS: &str = include_str!("atlas.js");

/// Records script errors into the page before anything else runs.
const ERROR_HOOK: &str = "window.atlasErrors=[];window.onerror=function(m,s,l,c){atlasErrors.push(String(m)+' at '+s+':'+l+':'+c);var p=document.getElementById('atlas-errors');if(p){p.textContent=atlasErrors.join('\\n');}};";

/// What the page's script reads: each run's per-log expert shares.
#[derive(Serialize)]
struct PageData<'a> {
    runs: Vec<RunData<'a>>,
    steps: Vec<u64>,
}

#[derive(Serialize)]
struct RunData<'a> {
    label: &'a str,
    stop: Option<u64>,
    layers: Vec<LayerData<'a>>,
}

#[derive(Serialize)]
struct LayerData<'a> {
    layer: usize,
    steps: &'a [u64],
    shares: &'a [Vec<f64>],
}

/// The whole page.
pub fn render(
    runs: &[AtlasRun],
    headline: &[String],
    tokenizer: &Gpt2Tokenizer,
) -> serde_json::Result<String> {
    let mut body = String::new();
    body += &header(runs);
    body += &overview(runs, headline);
    body += &tokens::section(runs, tokenizer);
    body += &training(runs);
    // The causal figures (removal, keep-k) join here when analysis.json has them.
    let data = json_in_script(&page_data(runs))?;
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Routing atlas</title>\n<script>{ERROR_HOOK}</script>\n<style>\n{CSS}{}</style>\n</head>\n<body>\n{body}<pre id=\"atlas-errors\"></pre>\n<pre id=\"selftest\" hidden></pre>\n<script type=\"application/json\" id=\"atlas-data\">{data}</script>\n<script>\n{JS}</script>\n</body>\n</html>\n",
        expert_css()
    ))
}

/// Token spans on the page.
pub fn token_spans(runs: &[AtlasRun]) -> usize {
    runs.iter()
        .filter_map(|r| r.routed.as_ref())
        .map(|r| r.choices.len() * r.shown)
        .sum()
}

/// One CSS class per expert colour, `.e0` … `.e15`.
fn expert_css() -> String {
    let mut css = String::new();
    for e in 0..DISTINCT {
        let s = swatch(e);
        let bar = if s.bar {
            format!(";box-shadow:inset 0 -3px 0 {}", hex(s.text))
        } else {
            String::new()
        };
        let _ = writeln!(
            css,
            ".e{e}{{background:{};color:{}{bar}}}",
            hex(s.background),
            hex(s.text)
        );
    }
    css
}

/// The class of `expert`'s colour.
pub(super) fn expert_class(expert: usize) -> String {
    format!("e{}", expert % DISTINCT)
}

fn header(runs: &[AtlasRun]) -> String {
    let names: Vec<String> = runs.iter().map(|r| html(r.run.name())).collect();
    format!(
        "<header><h1>Routing atlas</h1><p>Runs: {}. Built by <code>moe atlas</code> from each run's <code>analysis.json</code> and <code>metrics.jsonl</code> and the val shards; everything on this page is computed from them.</p></header>\n",
        names.join(", ")
    )
}

/// The headline sentences and each analysed MoE run's heatmaps (one run
/// shown at a time, chosen with the token section's first run).
fn overview(runs: &[AtlasRun], headline: &[String]) -> String {
    let mut s = String::from("<section id=\"overview\"><h2>Overview</h2>\n");
    if headline.is_empty() {
        s += "<p>No claim: no run has an analysis with an interval.</p>\n";
    } else {
        s += "<p>The report's claims, each generated from the numbers it cites:</p>\n<ul class=\"claims\">\n";
        for c in headline {
            let _ = writeln!(s, "<li>{}</li>", html(c));
        }
        s += "</ul>\n";
    }
    s += "<p>Expert × domain heatmaps of the two runs chosen in the token section below.</p>\n";
    for (i, r) in runs.iter().enumerate().filter(|(_, r)| r.routed.is_some()) {
        let a = &r.run.analysis;
        let _ = writeln!(s, "<div class=\"by-run heatmaps\" data-run=\"{i}\">");
        for l in &a.layers {
            s += &heatmap(&Heatmap::of_layer(l, &a.val.domains, r.run.name()));
        }
        s += "</div>\n";
    }
    s + "</section>\n"
}

/// A heatmap as a table: experts in rows, domains in columns.
fn heatmap(map: &Heatmap) -> String {
    let mut s = format!(
        "<table class=\"heat\"><caption>{}</caption><tr><th></th>",
        html(&map.title)
    );
    for c in &map.cols {
        let _ = write!(s, "<th>{}</th>", html(c));
    }
    s += "</tr>\n";
    for (row, label) in map.rows.iter().enumerate() {
        let _ = write!(
            s,
            "<tr><th><span class=\"chip {}\"></span>{}</th>",
            expert_class(row),
            html(label)
        );
        for col in &map.values {
            let v = col.get(row).copied().unwrap_or(0.0);
            let bg = sequential(v);
            let _ = write!(
                s,
                "<td style=\"background:{};color:{}\">{:.1}%</td>",
                hex(bg),
                hex(text_on(bg)),
                100.0 * v
            );
        }
        s += "</tr>\n";
    }
    s + "</table>\n"
}

/// Routing over training: one row of stacked bars per run and MoE layer,
/// drawn at the last log, then moved by the step slider.
fn training(runs: &[AtlasRun]) -> String {
    let steps = all_steps(runs);
    let mut s = String::from(
        "<section id=\"training\"><h2>Routing over training</h2>\n<p>Each bar splits one MoE layer's top-1 choices over the logged step's training tokens by expert, as <code>metrics.jsonl</code> records them, at each run's last log at or before the chosen step; every run has its row, so a collapse shows as one colour taking over.</p>\n",
    );
    let Some(&last) = steps.last() else {
        return s + "<p>No run logged routing.</p></section>\n";
    };
    let _ = writeln!(
        s,
        "<label>step <input type=\"range\" id=\"step\" min=\"0\" max=\"{}\" value=\"{}\"> <output id=\"step-value\">{last}</output></label>",
        steps.len() - 1,
        steps.len() - 1
    );
    s += "<table class=\"bars\">\n";
    for (i, r) in runs.iter().enumerate() {
        let h = &r.run.analysis.history;
        for (slot, l) in h.layers.iter().enumerate() {
            let label = if slot == 0 {
                html(r.run.name())
            } else {
                String::new()
            };
            let _ = write!(
                s,
                "<tr><th>{label}</th><td>block {}</td><td><div class=\"bar\" data-run=\"{i}\" data-slot=\"{slot}\">",
                l.layer
            );
            for (e, share) in l.shares.last().into_iter().flatten().enumerate() {
                let _ = write!(
                    s,
                    "<span class=\"{}\" style=\"width:{:.2}%\" title=\"expert {e}\"></span>",
                    expert_class(e),
                    100.0 * share
                );
            }
            let caption = bar_caption(
                l.steps.last().copied(),
                l.max_share.last().copied(),
                h.stop.as_ref().map(|s| s.step),
            );
            let _ = writeln!(
                s,
                "</div></td><td class=\"cap\" data-run=\"{i}\" data-slot=\"{slot}\">{}</td></tr>",
                html(&caption)
            );
        }
    }
    s + "</table></section>\n"
}

/// The caption of a bar at its last log.
fn bar_caption(step: Option<u64>, max_share: Option<f64>, stop: Option<u64>) -> String {
    match (step, max_share) {
        (Some(step), Some(m)) => {
            let stopped = stop.map_or(String::new(), |s| format!("; stopped at step {s}"));
            format!("step {step}: largest share {:.1}%{stopped}", 100.0 * m)
        }
        _ => "no log".into(),
    }
}

/// Every logged step of every run, sorted.
fn all_steps(runs: &[AtlasRun]) -> Vec<u64> {
    let mut steps: Vec<u64> = runs
        .iter()
        .flat_map(|r| {
            r.run
                .analysis
                .history
                .layers
                .iter()
                .flat_map(|l| l.steps.iter().copied())
        })
        .collect();
    steps.sort_unstable();
    steps.dedup();
    steps
}

fn page_data(runs: &[AtlasRun]) -> PageData<'_> {
    PageData {
        steps: all_steps(runs),
        runs: runs
            .iter()
            .map(|r| {
                let h = &r.run.analysis.history;
                RunData {
                    label: r.run.name(),
                    stop: h.stop.as_ref().map(|s| s.step),
                    layers: h
                        .layers
                        .iter()
                        .map(|l| LayerData {
                            layer: l.layer,
                            steps: &l.steps,
                            shares: &l.shares,
                        })
                        .collect(),
                }
            })
            .collect(),
    }
}
