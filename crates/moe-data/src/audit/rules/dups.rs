//! Rules on duplicates, near-duplicates and split leakage (AUDIT-11 …
//! AUDIT-13).

use super::shape::finding;
use super::*;
use crate::audit::dedup::{DedupConfig, Duplicates, GroupDuplicates, Pair};
use crate::split::Split;

fn group_name(ctx: &Context, g: &GroupDuplicates) -> String {
    format!(
        "{}/{}",
        g.split,
        ctx.domains.get(g.domain).map_or("?", String::as_str)
    )
}

fn examples(ctx: &Context, pairs: &[Pair], keep: impl Fn(&Pair) -> bool) -> Vec<String> {
    pairs
        .iter()
        .filter(|p| keep(p))
        .take(2)
        .map(|p| {
            format!(
                "J≈{:.2}: {} ≈ {}",
                p.similarity,
                ctx.preview(p.a),
                ctx.preview(p.b)
            )
        })
        .collect()
}

/// Exact duplicates, near-duplicates within a group, cross-domain copies
/// (AUDIT-11, AUDIT-12).
pub fn duplicates(ctx: &Context, dups: &Duplicates, dedup_on: bool) -> Vec<Finding> {
    let mut out = vec![exact_duplicates(ctx, dups, dedup_on)];
    out.extend(near_duplicates(ctx, dups));
    out.extend(cross_domain(ctx, dups));
    out
}

/// AUDIT-11: exact duplicate documents (the pipeline drops them with dedup on).
fn exact_duplicates(ctx: &Context, dups: &Duplicates, dedup_on: bool) -> Finding {
    let total: u64 = dups.groups.iter().map(|g| g.documents).sum();
    let exact: Vec<String> = dups
        .groups
        .iter()
        .filter(|g| g.exact > 0)
        .map(|g| format!("{} {}", group_name(ctx, g), g.exact))
        .collect();
    let mut f = finding(
        Severity::Info,
        "exact_duplicates",
        "AUDIT-11",
        None,
        format!("no exact duplicates among {total} complete documents"),
    );
    if !exact.is_empty() {
        f.severity = if dedup_on {
            Severity::High
        } else {
            Severity::Medium
        };
        f.title = format!("exact duplicate documents in {} shard(s)", exact.len());
        f.evidence = vec![exact.join(", ")];
        f.recommendation = "Turn on (or fix) dedup: repeated documents are memorized and overweight their content.".into();
    }
    f.rule = "high: any, with dedup on (the pipeline should have dropped them); medium: any, with dedup off".into();
    f
}

/// AUDIT-12: near-duplicates within a (split, domain) group.
fn near_duplicates(ctx: &Context, dups: &Duplicates) -> Vec<Finding> {
    let mut out = Vec::new();
    for g in dups.groups.iter().filter(|g| g.documents > 0) {
        let share = g.near as f64 / g.documents as f64;
        let severity = match share {
            s if s >= NEAR_DUP_MEDIUM => Severity::Medium,
            s if s >= NEAR_DUP_LOW => Severity::Low,
            _ => continue,
        };
        let name = group_name(ctx, g);
        let mut f = finding(
            severity,
            "near_duplicates",
            "AUDIT-12",
            ctx.domains.get(g.domain).map(String::as_str),
            format!(
                "{name}: {} of documents are near-duplicates of another",
                pct(share)
            ),
        );
        f.evidence = vec![format!(
            "{} of {} complete documents beyond one per cluster",
            g.near, g.documents
        )];
        f.evidence.extend(examples(ctx, &dups.within, |p| {
            let d = &ctx.docs[p.a];
            d.split == g.split && d.domain == g.domain
        }));
        f.rule = format!(
            "medium: ≥ {}; low: ≥ {}",
            pct(NEAR_DUP_MEDIUM),
            pct(NEAR_DUP_LOW)
        );
        f.recommendation = format!(
            "Near-deduplicate {name} (MinHash, as measured here) or confirm the repetition is intended (e.g. templated problems)."
        );
        out.push(f);
    }
    out
}

/// AUDIT-12: the same or nearly the same text under two domains.
fn cross_domain(ctx: &Context, dups: &Duplicates) -> Option<Finding> {
    let cross: Vec<String> = dups
        .groups
        .iter()
        .filter(|g| g.cross_domain > 0)
        .map(|g| format!("{} {}", group_name(ctx, g), g.cross_domain))
        .collect();
    if cross.is_empty() {
        return None;
    }
    let mut f = finding(
        Severity::Low,
        "cross_domain_duplicates",
        "AUDIT-12",
        None,
        "the same or nearly the same text appears under two domains".into(),
    );
    f.evidence = vec![format!(
        "documents with a copy in another domain: {}",
        cross.join(", ")
    )];
    f.rule = "low: any".into();
    f.recommendation =
        "Keep each text in one domain: a document labelled twice blurs the expert-domain signal."
            .into();
    Some(f)
}

/// Held-out documents with a train copy, near-copy or n-gram containment (AUDIT-13).
pub fn leakage(ctx: &Context, dups: &Duplicates, cfg: &DedupConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let held: Vec<&GroupDuplicates> = dups
        .groups
        .iter()
        .filter(|g| g.split != Split::Train && g.documents > 0)
        .collect();
    let rule = format!(
        "high: any exact copy, or ≥ {} of a held-out shard leaked; medium: any leaked document",
        pct(LEAK_HIGH)
    );
    for g in held.iter().filter(|g| g.leaked > 0) {
        let share = g.leaked as f64 / g.documents as f64;
        let severity = if g.exact_leaked > 0 || share >= LEAK_HIGH {
            Severity::High
        } else {
            Severity::Medium
        };
        let name = group_name(ctx, g);
        let in_group = |i: usize| ctx.docs[i].split == g.split && ctx.docs[i].domain == g.domain;
        let mut f = finding(
            severity,
            "leakage",
            "AUDIT-13",
            ctx.domains.get(g.domain).map(String::as_str),
            format!("{name}: {} of held-out documents are in train", pct(share)),
        );
        f.evidence = vec![format!(
            "{} of {} complete documents: {} exact copies, {} near-copies (MinHash J ≥ {}), {} with ≥ {} of their {}-grams in train (mean overlap {})",
            g.leaked,
            g.documents,
            g.exact_leaked,
            g.near_leaked,
            cfg.threshold,
            g.contained,
            pct(cfg.overlap_threshold),
            cfg.overlap_ngram,
            pct(g.mean_overlap)
        )];
        f.evidence
            .extend(examples(ctx, &dups.leaks, |p| in_group(p.a)));
        f.evidence.extend(
            dups.contained
                .iter()
                .filter(|(i, _)| in_group(*i))
                .take(2)
                .map(|(i, x)| {
                    format!(
                        "{} of the n-grams of {} occur in train",
                        pct(*x),
                        ctx.preview(*i)
                    )
                }),
        );
        f.rule = rule.clone();
        f.recommendation = format!(
            "Near-deduplicate before splitting, or drop the leaked documents from {name}: eval loss on them measures memorization."
        );
        out.push(f);
    }
    if held.iter().all(|g| g.leaked == 0) {
        let n: u64 = held.iter().map(|g| g.documents).sum();
        let mut f = finding(
            Severity::Info,
            "leakage",
            "AUDIT-13",
            None,
            format!(
                "none of {n} complete held-out documents has a copy, near-copy or {}-gram containment in train",
                cfg.overlap_ngram
            ),
        );
        f.rule = rule;
        out.push(f);
    }
    out
}
