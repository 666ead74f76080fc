//! The audit as Markdown: Findings (most severe first, each with its
//! evidence and rule), Assumptions, Recommendations (citing findings), then
//! the measurement tables the findings were drawn from (AUDIT-3).

use std::fmt::Write;

use super::Audit;
use super::text::{code, pct};

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

/// Renders the whole report.
pub fn markdown(a: &Audit) -> String {
    let mut out = String::new();
    let s = &a.summary;
    let _ = writeln!(out, "# Data audit\n");
    let _ = writeln!(
        out,
        "{} shards, {} tokens, block_size {}, seed {}, domains {}; prepared by moe-emergence {}, GPT-2 BPE {}….",
        s.shards,
        s.tokens,
        s.block_size,
        s.seed,
        s.domains.join(", "),
        s.tool_version,
        &s.tokenizer_sha256[..s.tokenizer_sha256.len().min(12)]
    );
    findings(&mut out, a);
    let _ = writeln!(out, "\n## Assumptions\n");
    for x in &a.assumptions {
        let _ = writeln!(out, "- {x}");
    }
    let _ = writeln!(out, "\n## Recommendations\n");
    if a.recommendations.is_empty() {
        let _ = writeln!(out, "No finding calls for action.");
    }
    for (i, r) in a.recommendations.iter().enumerate() {
        let refs: Vec<String> = r.findings.iter().map(|n| format!("F{n}")).collect();
        let _ = writeln!(
            out,
            "{}. **{}** ({}) {}",
            i + 1,
            r.severity.name(),
            refs.join(", "),
            r.text
        );
    }
    let _ = writeln!(out, "\n## Measurements");
    domains(&mut out, a);
    documents(&mut out, a);
    starts(&mut out, a);
    duplicates(&mut out, a);
    sources(&mut out, a);
    out
}

fn findings(out: &mut String, a: &Audit) {
    let _ = writeln!(out, "\n## Findings\n");
    let _ = writeln!(
        out,
        "Ordered by severity (high, medium, low, info); the rule that set each severity is quoted under it.\n"
    );
    for (i, f) in a.findings.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}. **F{} {}** — {} *({}, {})*",
            i + 1,
            i + 1,
            f.severity.name(),
            f.title,
            f.check,
            f.spec
        );
        for e in &f.evidence {
            let _ = writeln!(out, "   - {e}");
        }
        let _ = writeln!(out, "   - rule: {}", f.rule);
    }
}

fn domains(out: &mut String, a: &Audit) {
    let sh = &a.measurements.shape;
    let _ = writeln!(out, "\n### Domains\n");
    let _ = writeln!(
        out,
        "Balance `{}`; train token ratio {:.2}× before balancing, {:.2}× after; held-out ratio {:.2}× (warn above {}×).\n",
        sh.balance, sh.ratio_before, sh.ratio_after, sh.held_out_ratio, sh.warn_ratio
    );
    let rows: Vec<Vec<String>> = sh
        .domains
        .iter()
        .map(|d| {
            vec![
                d.domain.clone(),
                d.train_tokens_before.to_string(),
                d.train_tokens_after.to_string(),
                pct(d.train_blocks_dropped),
                d.held_out_documents.to_string(),
                d.held_out_tokens.to_string(),
                format!("{:.2}", d.eos_per_1k_train),
                format!("{:.3}", d.tokens_per_byte),
            ]
        })
        .collect();
    table(
        out,
        &[
            "domain",
            "train tokens before",
            "after",
            "blocks dropped",
            "held-out docs",
            "held-out tokens",
            "EOS / 1k train tokens",
            "tokens / byte",
        ],
        &rows,
    );
}

fn documents(out: &mut String, a: &Audit) {
    let sh = &a.measurements.shape;
    let _ = writeln!(
        out,
        "\n### Documents and lengths (tokens, complete documents)\n"
    );
    let rows: Vec<Vec<String>> = sh
        .lengths
        .iter()
        .zip(&a.measurements.coverage)
        .zip(&sh.tails)
        .map(|((l, c), t)| {
            vec![
                format!("{}/{}", l.split, l.domain),
                l.documents.to_string(),
                format!("{} ({})", l.complete, pct(l.coverage)),
                c.heads.to_string(),
                c.fragments.to_string(),
                format!("{} / {} / {}", l.p10, l.p50, l.p90),
                l.max.to_string(),
                format!("{:.1}", l.mean),
                format!("{} ({})", t.tail, pct(t.share)),
            ]
        })
        .collect();
    table(
        out,
        &[
            "shard",
            "packed",
            "complete",
            "heads",
            "fragments",
            "p10 / p50 / p90",
            "max",
            "mean",
            "tail dropped",
        ],
        &rows,
    );
}

fn starts(out: &mut String, a: &Audit) {
    let _ = writeln!(out, "\n### Document starts and characters\n");
    let rows: Vec<Vec<String>> = a
        .measurements
        .starts
        .iter()
        .map(|s| {
            let prefixes: Vec<String> = s
                .prefixes
                .iter()
                .map(|p| {
                    format!(
                        "{} {}",
                        code(&p.text),
                        pct(p.count as f64 / p.total.max(1) as f64)
                    )
                })
                .collect();
            let chars: Vec<String> = s
                .first_chars
                .iter()
                .map(|(c, n)| format!("{} {n}", code(&c.to_string())))
                .collect();
            let inv: Vec<String> = s
                .invisible
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            vec![
                s.domain.clone(),
                s.documents.to_string(),
                prefixes.join("; "),
                chars.join(" "),
                s.leading_whitespace.to_string(),
                format!("{} of {}", s.trailing_whitespace, s.complete),
                format!(
                    "{} of {} ({})",
                    s.invisible_pieces,
                    s.pieces,
                    if inv.is_empty() {
                        "-".into()
                    } else {
                        inv.join(", ")
                    }
                ),
                s.literal_eos_pieces.to_string(),
            ]
        })
        .collect();
    table(
        out,
        &[
            "domain",
            "docs with start",
            "top first 1 / 2 / 3 tokens",
            "first characters",
            "leading ws",
            "trailing ws",
            "invisible (pieces; by kind)",
            "literal EOS (pieces)",
        ],
        &rows,
    );
    trigrams(out, a);
}

/// The once-per-document trigrams with the highest document frequency.
fn trigrams(out: &mut String, a: &Audit) {
    let _ = writeln!(
        out,
        "\nOnce-per-document trigrams with the highest document frequency:\n"
    );
    let domains = &a.summary.domains;
    let rows: Vec<Vec<String>> = a
        .measurements
        .starts
        .iter()
        .flat_map(|s| {
            s.markers.iter().map(move |m| {
                let shares: Vec<String> = m
                    .share_by_domain
                    .iter()
                    .zip(domains)
                    .map(|(x, n)| format!("{n} {}", pct(*x)))
                    .collect();
                vec![
                    s.domain.clone(),
                    code(&m.text),
                    format!("{:.2}", m.per_document),
                    shares.join(", "),
                ]
            })
        })
        .collect();
    table(
        out,
        &[
            "domain",
            "trigram",
            "per containing doc",
            "document frequency by domain",
        ],
        &rows,
    );
}

fn duplicates(out: &mut String, a: &Audit) {
    let _ = writeln!(out, "\n### Duplicates and leakage (complete documents)\n");
    let o = &a.options.dedup;
    let _ = writeln!(
        out,
        "Near: MinHash J ≥ {}; overlap: share of a held-out document's {}-grams found in train; contained: overlap ≥ {}.\n",
        o.threshold,
        o.overlap_ngram,
        pct(o.overlap_threshold)
    );
    let domains = &a.summary.domains;
    let rows: Vec<Vec<String>> = a
        .measurements
        .duplicates
        .groups
        .iter()
        .map(|g| {
            let held = g.split != crate::split::Split::Train;
            let dash = |v: String| if held { v } else { "-".into() };
            vec![
                format!(
                    "{}/{}",
                    g.split,
                    domains.get(g.domain).map_or("?", String::as_str)
                ),
                g.documents.to_string(),
                g.exact.to_string(),
                g.near.to_string(),
                g.cross_domain.to_string(),
                dash(g.exact_leaked.to_string()),
                dash(g.near_leaked.to_string()),
                dash(pct(g.mean_overlap)),
                dash(g.contained.to_string()),
                dash(g.leaked.to_string()),
            ]
        })
        .collect();
    table(
        out,
        &[
            "shard",
            "documents",
            "exact dup",
            "near dup",
            "in other domain",
            "exact in train",
            "near in train",
            "mean overlap",
            "contained",
            "leaked",
        ],
        &rows,
    );
}

fn sources(out: &mut String, a: &Audit) {
    let _ = writeln!(out, "\n### Sources\n");
    let rows: Vec<Vec<String>> = a
        .measurements
        .shape
        .sources
        .iter()
        .map(|s| {
            let by: Vec<String> = s.drops.iter().map(|(r, n)| format!("{r} {n}")).collect();
            vec![
                s.domain.clone(),
                s.source.clone(),
                s.records.to_string(),
                s.kept.to_string(),
                pct(s.dropped_share),
                if by.is_empty() {
                    "-".into()
                } else {
                    by.join(", ")
                },
            ]
        })
        .collect();
    table(
        out,
        &[
            "domain",
            "source",
            "records",
            "kept",
            "dropped",
            "by reason",
        ],
        &rows,
    );
}
