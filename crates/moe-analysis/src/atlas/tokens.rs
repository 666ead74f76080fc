//! The token-coloured text (ATLAS-2, ATLAS-6): every MoE run's excerpts as
//! one span per token, coloured by its top-1 expert in the selected layer,
//! with its id, experts, gate probabilities and entropies per layer in
//! data attributes for the hover card; two run selectors put two runs side
//! by side (the script moves their excerpts into the two columns), each
//! with a legend of its experts' domain shares.

use std::fmt::Write;

use moe_data::tokenizer::Gpt2Tokenizer;

use super::AtlasRun;
use super::escape::html;
use super::excerpts::Routed;
use super::page::expert_class;
use super::palette::DISTINCT;
use crate::report::claims::pct;
use crate::schema::Analysis;

/// The section: layer and run selectors, two columns, the excerpts.
pub fn section(runs: &[AtlasRun], tokenizer: &Gpt2Tokenizer) -> String {
    let routed: Vec<(usize, &AtlasRun, &Routed)> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, r, r.routed.as_ref()?)))
        .collect();
    let mut s = String::from("<section id=\"tokens\"><h2>Tokens coloured by expert</h2>\n");
    let Some(&(_, first, _)) = routed.first() else {
        return s + "<p>No analysed MoE run: no routing to show.</p></section>\n";
    };
    let _ = writeln!(
        s,
        "<p>Val blocks chosen with a seeded draw, routed through each run's trained model as <code>moe analyze</code> routes them; each token's background is its top-1 expert in the selected layer. Hover over or focus a token for its routing in every layer.</p>"
    );
    s += "<div class=\"controls\"><label>layer <select id=\"layer\">";
    for l in &first.run.analysis.layers {
        let _ = write!(s, "<option value=\"{0}\">block {0}</option>", l.layer);
    }
    s += "</select></label>";
    let b_default = contrast_run(&routed);
    for (id, default) in [("run-a", routed[0].0), ("run-b", b_default)] {
        let _ = write!(
            s,
            " <label>{} <select id=\"{id}\">",
            if id == "run-a" { "left" } else { "right" }
        );
        for (i, r, _) in &routed {
            let sel = if *i == default { " selected" } else { "" };
            let _ = write!(
                s,
                "<option value=\"{i}\"{sel}>{}</option>",
                html(r.run.name())
            );
        }
        s += "</select></label>";
    }
    s += "</div>\n<div class=\"columns\"><div id=\"col-a\"></div><div id=\"col-b\"></div></div>\n<div id=\"store\">\n";
    for (i, r, routed) in &routed {
        s += &run_block(*i, r, routed, tokenizer);
    }
    s + "</div>\n<div id=\"tip\" role=\"status\" hidden></div>\n</section>\n"
}

/// The default right-hand run: the first of another configuration without
/// load balancing, else the first of another configuration, else the second run.
fn contrast_run(routed: &[(usize, &AtlasRun, &Routed)]) -> usize {
    let group = |r: &AtlasRun| crate::report::across_seeds::group_of(&r.run).to_string();
    let main = group(routed[0].1);
    let other = |no_lb: bool| {
        routed
            .iter()
            .find(|(_, r, _)| group(r) != main && (!no_lb || !r.run.analysis.run.balanced()))
            .map(|(i, _, _)| *i)
    };
    other(true)
        .or_else(|| other(false))
        .or_else(|| routed.get(1).map(|x| x.0))
        .unwrap_or(routed[0].0)
}

/// One run's excerpts and legends.
fn run_block(i: usize, r: &AtlasRun, routed: &Routed, tokenizer: &Gpt2Tokenizer) -> String {
    let a = &r.run.analysis;
    let layers: Vec<String> = a.layers.iter().map(|l| l.layer.to_string()).collect();
    let mut s = format!(
        "<div class=\"run\" data-run=\"{i}\" data-layers=\"{}\"><h3>{}</h3>\n",
        layers.join(" "),
        html(r.run.name())
    );
    s += &legends(a);
    for (k, c) in routed.choices.iter().enumerate() {
        let domain = a.val.domains.get(c.domain).map_or("?", String::as_str);
        let _ = write!(
            s,
            "<figure><figcaption>{} · val block {} · first {} tokens</figcaption><p class=\"tokens\">",
            html(domain),
            c.block,
            routed.shown
        );
        for row in routed.rows(k) {
            s += &span(routed, row, tokenizer);
        }
        s += "</p></figure>\n";
    }
    s + "</div>\n"
}

/// One token: its text, id, and per layer its expert, gate probability and entropy.
fn span(routed: &Routed, row: usize, tokenizer: &Gpt2Tokenizer) -> String {
    let t = &routed.table;
    let id = t.token[row];
    let text = String::from_utf8_lossy(tokenizer.token_bytes(id).unwrap_or(b"?")).into_owned();
    let join = |f: &dyn Fn(&crate::token_routes::LayerRoutes) -> String| {
        t.layers.iter().map(f).collect::<Vec<_>>().join(" ")
    };
    let experts = join(&|l| l.expert[row].to_string());
    let gates = join(&|l| format!("{:.3}", l.gate[row]));
    let entropies = join(&|l| format!("{:.3}", l.entropy[row]));
    let first = t.layers.first().map_or(0, |l| l.expert[row] as usize);
    format!(
        "<span class=\"t {}\" tabindex=\"0\" data-i=\"{id}\" data-e=\"{experts}\" data-p=\"{gates}\" data-h=\"{entropies}\">{}</span>",
        expert_class(first),
        html(&text)
    )
}

/// Per layer, each expert's colour, its share of the val tokens and the
/// domains of its tokens (from `analysis.json`).
fn legends(a: &Analysis) -> String {
    let mut s = String::new();
    for l in &a.layers {
        let _ = write!(
            s,
            "<ul class=\"legend\" data-layer=\"{}\" aria-label=\"experts of block {}\">",
            l.layer, l.layer
        );
        for e in 0..l.n_experts {
            let shares: Vec<String> = a
                .val
                .domains
                .iter()
                .zip(l.expert_domain_shares.get(e).into_iter().flatten())
                .map(|(d, v)| format!("{} {}", html(d), pct(*v)))
                .collect();
            let load = l.load.shares.get(e).copied().unwrap_or(0.0);
            let _ = write!(
                s,
                "<li><span class=\"chip {}\"></span>expert {e}: {} of val tokens; of its tokens {}</li>",
                expert_class(e),
                pct(load),
                shares.join(", ")
            );
        }
        if l.n_experts > DISTINCT {
            let _ = write!(
                s,
                "<li>Colours repeat past {DISTINCT} experts: expert e has the colour of e mod {DISTINCT}; the hover card names each token's expert.</li>"
            );
        }
        s += "</ul>\n";
    }
    s
}
