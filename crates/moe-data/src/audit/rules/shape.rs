//! Rules on balance, held-out size, tails, lengths and sources (AUDIT-6,
//! AUDIT-14, AUDIT-15, AUDIT-17, AUDIT-18).

use super::*;
use crate::audit::shape_stats::Shape;
use crate::split::Split;

pub(super) fn finding(
    severity: Severity,
    check: &str,
    spec: &str,
    domain: Option<&str>,
    title: String,
) -> Finding {
    Finding {
        severity,
        check: check.into(),
        spec: spec.into(),
        domain: domain.map(String::from),
        title,
        evidence: Vec::new(),
        rule: String::new(),
        recommendation: String::new(),
    }
}

/// Domain token ratio before and after balancing, blocks dropped (AUDIT-6).
pub fn balance(shape: &Shape) -> Vec<Finding> {
    let dropped: Vec<String> = shape
        .domains
        .iter()
        .filter(|d| d.train_blocks_dropped > 0.0)
        .map(|d| format!("{} {}", d.domain, pct(d.train_blocks_dropped)))
        .collect();
    let heavy = shape
        .domains
        .iter()
        .any(|d| d.train_blocks_dropped >= BALANCE_DROP_MEDIUM);
    let unbalanced = shape.ratio_before > shape.warn_ratio || shape.ratio_after > shape.warn_ratio;
    if !heavy && !unbalanced {
        return Vec::new();
    }
    let tokens: Vec<String> = shape
        .domains
        .iter()
        .map(|d| {
            format!(
                "{} {} → {}",
                d.domain, d.train_tokens_before, d.train_tokens_after
            )
        })
        .collect();
    let mut f = finding(
        Severity::Medium,
        "balance",
        "AUDIT-6",
        None,
        format!(
            "train tokens differ {:.2}× across domains before balancing, {:.2}× after",
            shape.ratio_before, shape.ratio_after
        ),
    );
    f.evidence = vec![
        format!(
            "train tokens before → after (balance = {}): {}",
            shape.balance,
            tokens.join(", ")
        ),
        format!(
            "train blocks dropped by balancing: {}",
            if dropped.is_empty() {
                "none".into()
            } else {
                dropped.join(", ")
            }
        ),
    ];
    f.rule = format!(
        "medium: a ratio above imbalance_warn_ratio ({}×) or a domain losing ≥ {} of its train blocks",
        shape.warn_ratio,
        pct(BALANCE_DROP_MEDIUM)
    );
    f.recommendation = "Collect more of the smaller domains (raise its sources or tokens_per_domain) rather than discarding the larger ones; report which blocks were kept.".into();
    vec![f]
}

/// Held-out size per domain (AUDIT-18).
pub fn held_out(shape: &Shape) -> Vec<Finding> {
    let mut out = Vec::new();
    for d in shape
        .domains
        .iter()
        .filter(|d| d.held_out_documents < MIN_HELD_OUT_DOCUMENTS)
    {
        let mut f = finding(
            Severity::Medium,
            "held_out_size",
            "AUDIT-18",
            Some(&d.domain),
            format!(
                "{}: the held-out split has only {} documents",
                d.domain, d.held_out_documents
            ),
        );
        f.evidence = vec![format!(
            "{} documents, {} tokens",
            d.held_out_documents, d.held_out_tokens
        )];
        f.rule =
            format!("medium: fewer than {MIN_HELD_OUT_DOCUMENTS} held-out documents in a domain");
        f.recommendation = format!(
            "Raise val_fraction or add {} data: per-domain eval loss and routing statistics on a handful of documents measure those documents, not the domain.",
            d.domain
        );
        out.push(f);
    }
    if shape.held_out_ratio > shape.warn_ratio {
        let sizes: Vec<String> = shape
            .domains
            .iter()
            .map(|d| format!("{} {}", d.domain, d.held_out_tokens))
            .collect();
        let mut f = finding(
            Severity::Low,
            "held_out_size",
            "AUDIT-18",
            None,
            format!(
                "held-out tokens differ {:.2}× across domains",
                shape.held_out_ratio
            ),
        );
        f.evidence = vec![format!("held-out tokens: {}", sizes.join(", "))];
        f.rule = format!(
            "low: a ratio above imbalance_warn_ratio ({}×)",
            shape.warn_ratio
        );
        f.recommendation =
            "Weight per-domain eval results by domain, not by token, when comparing domains."
                .into();
        out.push(f);
    }
    out
}

/// Tail losses (AUDIT-14).
pub fn tails(shape: &Shape) -> Vec<Finding> {
    let big: Vec<String> = shape
        .tails
        .iter()
        .filter(|t| t.share > TAIL_LOW)
        .map(|t| {
            format!(
                "{}/{} {} tokens ({})",
                t.split,
                t.domain,
                t.tail,
                pct(t.share)
            )
        })
        .collect();
    if big.is_empty() {
        return Vec::new();
    }
    let mut f = finding(
        Severity::Low,
        "tail",
        "AUDIT-14",
        None,
        format!(
            "packing tails drop more than {} of {} shard(s)",
            pct(TAIL_LOW),
            big.len()
        ),
    );
    f.evidence = vec![big.join(", ")];
    f.rule = format!(
        "low: a tail above {} of a shard's packed tokens",
        pct(TAIL_LOW)
    );
    f.recommendation = "Use a smaller block_size or more documents for these shards; the tail is always the end of the last document packed.".into();
    vec![f]
}

/// Length spread across domains and complete-document coverage (AUDIT-15).
pub fn lengths(shape: &Shape) -> Vec<Finding> {
    let mut out = Vec::new();
    let train: Vec<_> = shape
        .lengths
        .iter()
        .filter(|l| l.split == Split::Train && l.complete > 0)
        .collect();
    let (lo, hi) = (
        train.iter().min_by_key(|l| l.p50),
        train.iter().max_by_key(|l| l.p50),
    );
    if let (Some(lo), Some(hi)) = (lo, hi) {
        let spread = hi.p50 as f64 / lo.p50.max(1) as f64;
        if spread >= LENGTH_RATIO_LOW {
            let med: Vec<String> = train
                .iter()
                .map(|l| format!("{} {}", l.domain, l.p50))
                .collect();
            let eos: Vec<String> = shape
                .domains
                .iter()
                .map(|d| format!("{} {:.1}", d.domain, d.eos_per_1k_train))
                .collect();
            let mut f = finding(
                Severity::Low,
                "length",
                "AUDIT-15",
                None,
                format!("median document length differs {spread:.1}× across domains"),
            );
            f.evidence = vec![
                format!("median train document tokens: {}", med.join(", ")),
                format!("EOS per 1000 train tokens: {}", eos.join(", ")),
            ];
            f.rule = format!("low: largest over smallest median ≥ {LENGTH_RATIO_LOW}×");
            f.recommendation = "Expect EOS frequency and distance-from-document-start to separate domains; check routing on tokens far from document starts as well.".into();
            out.push(f);
        }
    }
    let thin: Vec<String> = shape
        .lengths
        .iter()
        .filter(|l| l.coverage < COVERAGE_LOW)
        .map(|l| {
            format!(
                "{}/{} {} of {} ({})",
                l.split,
                l.domain,
                l.complete,
                l.documents,
                pct(l.coverage)
            )
        })
        .collect();
    if !thin.is_empty() {
        let mut f = finding(
            Severity::Low,
            "coverage",
            "AUDIT-15",
            None,
            format!(
                "under {} of the documents of {} shard(s) could be rebuilt whole",
                pct(COVERAGE_LOW),
                thin.len()
            ),
        );
        f.evidence = vec![format!("complete documents rebuilt: {}", thin.join(", "))];
        f.rule = format!("low: coverage under {}", pct(COVERAGE_LOW));
        f.recommendation = "Read duplicate and length figures for these shards as a sample biased to short documents (balancing dropped blocks inside long ones).".into();
        out.push(f);
    }
    out
}

/// Sources that dropped much of what they read (AUDIT-17).
pub fn sources(shape: &Shape) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in shape
        .sources
        .iter()
        .filter(|s| s.dropped_share >= SOURCE_DROP_LOW)
    {
        let reasons: Vec<String> = s.drops.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let mut f = finding(
            Severity::Low,
            "source_drops",
            "AUDIT-17",
            Some(&s.domain),
            format!(
                "{}/{}: {} of records dropped",
                s.domain,
                s.source,
                pct(s.dropped_share)
            ),
        );
        f.evidence = vec![format!(
            "{} records read, {} kept; drops: {}",
            s.records,
            s.kept,
            reasons.join(", ")
        )];
        f.rule = format!(
            "low: ≥ {} of a source's records dropped",
            pct(SOURCE_DROP_LOW)
        );
        f.recommendation = format!(
            "Check that the filters of {} remove noise and not a sub-population (e.g. all short documents).",
            s.source
        );
        out.push(f);
    }
    out
}
