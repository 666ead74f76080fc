//! Rules on document starts and characters (AUDIT-7 … AUDIT-10, AUDIT-19).

use super::*;
use crate::audit::starts::{DomainStarts, MARKER_MAX_PER_DOCUMENT};

/// Fixed-prefix findings (AUDIT-7): per domain, among the prefixes of the
/// most severe kind, the longest whose share is within [`PREFIX_SHARE_TIE`]
/// of the highest (`"Problem:"` rather than `"Problem"`).
pub fn prefixes(ctx: &Context, starts: &[DomainStarts]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (d, s) in starts.iter().enumerate() {
        let graded: Vec<_> = s
            .prefixes
            .iter()
            .filter_map(|p| {
                let share = p.share_by_domain.get(d).copied().unwrap_or(0.0);
                prefix_severity(share, exclusive(d, &p.share_by_domain)).map(|sev| (sev, p, share))
            })
            .collect();
        let Some(&(sev, _, _)) = graded.iter().min_by_key(|g| g.0) else {
            continue;
        };
        let top = graded
            .iter()
            .filter(|g| g.0 == sev)
            .map(|g| g.2)
            .fold(0.0, f64::max);
        let Some(&(_, p, share)) = graded
            .iter()
            .filter(|g| g.0 == sev && g.2 >= top - PREFIX_SHARE_TIE)
            .max_by_key(|g| g.1.n)
        else {
            continue;
        };
        let all: Vec<String> = s
            .prefixes
            .iter()
            .map(|q| {
                format!(
                    "{} {}",
                    ctx.show(&q.tokens),
                    pct(q.share_by_domain.get(d).copied().unwrap_or(0.0))
                )
            })
            .collect();
        out.push(Finding {
            severity: sev,
            check: "prefix".into(),
            domain: Some(s.domain.clone()),
            spec: "AUDIT-7".into(),
            title: format!("{}: {} of documents start with {}", s.domain, pct(share), ctx.show(&p.tokens)),
            evidence: vec![
                format!("{} of {} documents with a visible start; the same start in {}", p.count, p.total, ctx.others(d, &p.share_by_domain)),
                format!("most common first 1, 2, 3 tokens: {}", all.join("; ")),
            ],
            rule: format!("high: ≥ {} of a domain and < {} in every other; medium: ≥ {} and exclusive; low: ≥ {}", pct(PREFIX_HIGH), pct(EXCLUSIVE_MAX), pct(PREFIX_MEDIUM), pct(PREFIX_LOW)),
            recommendation: match sev {
                Severity::Low => format!("Check that the common start of {} documents is content, not formatting.", s.domain),
                _ => format!("Vary or remove the fixed start {} of {} documents (several templates, or none), or exclude each document's first tokens when measuring routing: a router can key on it instead of the content.", ctx.show(&p.tokens), s.domain),
            },
        });
    }
    out
}

/// Template-marker findings (AUDIT-8).
pub fn markers(ctx: &Context, starts: &[DomainStarts]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (d, s) in starts.iter().enumerate() {
        let hits: Vec<String> = s
            .markers
            .iter()
            .filter(|m| {
                m.share_by_domain.get(d).copied().unwrap_or(0.0) >= MARKER_SHARE
                    && exclusive(d, &m.share_by_domain)
            })
            .map(|m| {
                format!(
                    "{} in {} ({:.2} per document; {})",
                    ctx.show(&m.tokens),
                    pct(m.share_by_domain[d]),
                    m.per_document,
                    ctx.others(d, &m.share_by_domain)
                )
            })
            .collect();
        if hits.is_empty() {
            continue;
        }
        out.push(Finding {
            severity: Severity::Medium,
            check: "template_marker".into(),
            domain: Some(s.domain.clone()),
            spec: "AUDIT-8".into(),
            title: format!("{}: a constant string appears once in nearly every document", s.domain),
            evidence: hits,
            rule: format!("medium: a token trigram in ≥ {} of a domain's documents, ≤ {} times per document, < {} elsewhere", pct(MARKER_SHARE), MARKER_MAX_PER_DOCUMENT, pct(EXCLUSIVE_MAX)),
            recommendation: format!("If the string comes from a template (labels such as `Solution:`), vary or drop it; otherwise note that {} documents share a fixed landmark a router can key on.", s.domain),
        });
    }
    out
}

fn domain_share(count: u64, s: &DomainStarts) -> f64 {
    count as f64 / s.documents.max(1) as f64
}

/// Leading-whitespace findings (AUDIT-9).
pub fn leading_whitespace(ctx: &Context, starts: &[DomainStarts]) -> Vec<Finding> {
    let shares: Vec<f64> = starts
        .iter()
        .map(|s| domain_share(s.leading_whitespace, s))
        .collect();
    let mut out = Vec::new();
    for (d, s) in starts.iter().enumerate() {
        let share = shares[d];
        let severity = match share {
            x if x >= LEADING_WS_MEDIUM && exclusive(d, &shares) => Severity::Medium,
            x if x >= LEADING_WS_LOW => Severity::Low,
            _ => continue,
        };
        out.push(Finding {
            severity,
            check: "leading_whitespace".into(),
            domain: Some(s.domain.clone()),
            spec: "AUDIT-9".into(),
            title: format!(
                "{}: {} of documents start with whitespace",
                s.domain,
                pct(share)
            ),
            evidence: vec![format!(
                "{} of {} documents with a visible start; {}",
                s.leading_whitespace,
                s.documents,
                ctx.others(d, &shares)
            )],
            rule: format!(
                "medium: ≥ {} and < {} in every other domain; low: ≥ {}",
                pct(LEADING_WS_MEDIUM),
                pct(EXCLUSIVE_MAX),
                pct(LEADING_WS_LOW)
            ),
            recommendation: format!(
                "Strip leading whitespace from {} documents (or from all domains alike).",
                s.domain
            ),
        });
    }
    out
}

/// First-character findings (AUDIT-9), skipped for a domain whose prefix
/// finding is already medium or high (the prefix explains the character).
pub fn first_chars(ctx: &Context, starts: &[DomainStarts], prefix: &[Finding]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (d, s) in starts.iter().enumerate() {
        let Some(&(c, n)) = s.first_chars.first() else {
            continue;
        };
        let share = domain_share(n, s);
        let explained = prefix
            .iter()
            .any(|f| f.severity <= Severity::Medium && f.domain.as_deref() == Some(&s.domain));
        if share < FIRST_CHAR_SHARE || !exclusive(d, &s.first_char_share_by_domain) || explained {
            continue;
        }
        out.push(Finding {
            severity: Severity::Medium,
            check: "first_char".into(),
            domain: Some(s.domain.clone()),
            spec: "AUDIT-9".into(),
            title: format!("{}: {} of documents start with {c:?}", s.domain, pct(share)),
            evidence: vec![format!(
                "{n} of {} documents; the same first character in {}",
                s.documents,
                ctx.others(d, &s.first_char_share_by_domain)
            )],
            rule: format!(
                "medium: one first character in ≥ {} of a domain and < {} in every other",
                pct(FIRST_CHAR_SHARE),
                pct(EXCLUSIVE_MAX)
            ),
            recommendation: format!(
                "Find what puts {c:?} first in {} documents; if it is formatting, remove it.",
                s.domain
            ),
        });
    }
    out
}

/// Invisible-Unicode findings (AUDIT-10).
pub fn invisible(starts: &[DomainStarts]) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in starts.iter().filter(|s| s.invisible_pieces > 0) {
        let share = s.invisible_pieces as f64 / s.pieces.max(1) as f64;
        let kinds: Vec<String> = s
            .invisible
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        out.push(Finding {
            severity: if share >= INVISIBLE_MEDIUM {
                Severity::Medium
            } else {
                Severity::Low
            },
            check: "invisible_unicode".into(),
            domain: Some(s.domain.clone()),
            spec: "AUDIT-10".into(),
            title: format!(
                "{}: {} of documents contain invisible characters",
                s.domain,
                pct(share)
            ),
            evidence: vec![format!(
                "{} of {} rebuilt pieces (documents, heads, fragments); occurrences by kind: {}",
                s.invisible_pieces,
                s.pieces,
                kinds.join(", ")
            )],
            rule: format!(
                "medium: in ≥ {} of a domain's pieces; low: any",
                pct(INVISIBLE_MEDIUM)
            ),
            recommendation: format!(
                "Normalize {} text (drop BOM and zero-width characters, map NBSP and odd spaces to ' '): they tokenize into rare byte tokens a router can key on.",
                s.domain
            ),
        });
    }
    out
}

/// Literal `<|endoftext|>` findings (AUDIT-19).
pub fn literal_eos(starts: &[DomainStarts]) -> Vec<Finding> {
    starts
        .iter()
        .filter(|s| s.literal_eos_pieces > 0)
        .map(|s| Finding {
            severity: Severity::Low,
            check: "literal_eos".into(),
            domain: Some(s.domain.clone()),
            spec: "AUDIT-19".into(),
            title: format!(
                "{}: the text `<|endoftext|>` appears in {} document(s)",
                s.domain, s.literal_eos_pieces
            ),
            evidence: vec![format!(
                "{} of {} rebuilt pieces; it is encoded as ordinary tokens (TOK-3), never as EOS",
                s.literal_eos_pieces, s.pieces
            )],
            rule: "low: any".into(),
            recommendation: "Keep it as text, but do not re-encode these shards with a tokenizer that allows special tokens in text.".into(),
        })
        .collect()
}
