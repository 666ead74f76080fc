//! Unit tests of the audit's measures and severity rules on constructed
//! documents (AUDIT-*): document rebuilding, prefixes, markers, whitespace,
//! invisible characters, duplicates, leakage and the shape rules. They live
//! in the root package so that `cargo test --release` runs them.

use moe_data::audit::dedup::{
    DedupConfig, Duplicates, GroupDuplicates, measure as dedup_measure, signatures, similarity,
};
use moe_data::audit::docs::{Doc, DocKind, Run, split_runs};
use moe_data::audit::rules::*;
use moe_data::audit::shape_stats::{DomainFacts, Lengths, Shape, SourceDrops, Tail, quantile};
use moe_data::audit::starts::{DomainStarts, measure as starts_measure};
use moe_data::audit::text::pct;
use moe_data::split::Split;
use moe_data::tokenizer::{EOS_ID, Gpt2Tokenizer};
use std::collections::{BTreeMap, HashSet};

/// `n` pseudo-random words from a fixed list, seeded by `seed`.
fn words(seed: u64, n: usize) -> String {
    const W: [&str; 24] = [
        "river", "stone", "lamp", "orange", "quiet", "north", "bread", "seven", "glass", "window",
        "market", "violet", "copper", "winter", "garden", "silver", "ladder", "candle", "harbor",
        "meadow", "thunder", "pepper", "velvet", "anchor",
    ];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            W[(x >> 33) as usize % W.len()]
        })
        .collect::<Vec<_>>()
        .join(" ")
}

mod docs {
    use super::*;

    const E: u16 = EOS_ID as u16;

    fn kinds(runs: &[Run]) -> Vec<String> {
        runs.iter().map(|(t, k)| format!("{k:?}{t:?}")).collect()
    }

    // Checks: AUDIT-2
    #[test]
    fn contiguous_blocks_rejoin_documents_across_block_boundaries() {
        let b0 = [1, 2, E, 3];
        let b1 = [4, 5, E, 6];
        let runs = split_runs([(0, &b0[..]), (1, &b1[..])]);
        assert_eq!(
            kinds(&runs),
            ["Complete[1, 2]", "Complete[3, 4, 5]", "Head[6]"]
        );
    }

    // Checks: AUDIT-2
    #[test]
    fn a_dropped_block_cuts_heads_and_hides_starts() {
        let b0 = [1, E, 2, 3];
        let b2 = [4, E, 5, E];
        let runs = split_runs([(0, &b0[..]), (2, &b2[..])]);
        assert_eq!(
            kinds(&runs),
            ["Complete[1]", "Head[2, 3]", "Fragment[4]", "Complete[5]"]
        );
    }

    // Checks: AUDIT-2
    #[test]
    fn a_stream_not_starting_at_block_zero_begins_with_a_fragment() {
        let b3 = [7, 8, E, 9];
        let runs = split_runs([(3, &b3[..])]);
        assert_eq!(kinds(&runs), ["Fragment[7, 8]", "Head[9]"]);
    }
}

mod starts {
    use super::*;

    fn docs(tok: &Gpt2Tokenizer, domain: usize, texts: &[&str]) -> Vec<Doc> {
        texts
            .iter()
            .map(|t| Doc::from_text(tok, Split::Train, domain, t, DocKind::Complete))
            .collect()
    }

    // Checks: AUDIT-7
    #[test]
    fn the_most_common_prefix_and_its_share_in_every_domain() {
        let tok = Gpt2Tokenizer::embedded().unwrap();
        let mut all = docs(
            &tok,
            0,
            &["Problem: a", "Problem: b", "Problem: c", "Solve x"],
        );
        all.extend(docs(&tok, 1, &["Problem: z", "Once upon", "The end"]));
        let m = starts_measure(&all, &["math".into(), "prose".into()], &tok);
        let two = &m[0].prefixes[1];
        assert_eq!(
            tok.decode(&two.tokens.iter().map(|&t| t as u32).collect::<Vec<_>>()),
            "Problem:"
        );
        assert_eq!((two.count, two.total), (3, 4));
        assert_eq!(two.share_by_domain, vec![0.75, 1.0 / 3.0]);
    }

    // Checks: AUDIT-10
    #[test]
    fn invisible_characters_are_counted_by_kind() {
        let tok = Gpt2Tokenizer::embedded().unwrap();
        let all = docs(
            &tok,
            0,
            &[
                "\u{FEFF}Header",
                "a\u{200B}b\u{200D}c",
                "ten\u{00A0}euros",
                "plain\ttext\n",
                "bell\u{7}",
                "mid\u{2009}space",
            ],
        );
        let m = starts_measure(&all, &["prose".into()], &tok);
        let expect: BTreeMap<String, u64> = [
            ("bom", 1),
            ("zero_width", 2),
            ("nbsp", 1),
            ("control", 1),
            ("other_space", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(m[0].invisible, expect);
        assert_eq!(m[0].invisible_pieces, 5);
    }

    // Checks: AUDIT-9, AUDIT-19
    #[test]
    fn leading_whitespace_first_characters_and_literal_eos() {
        let tok = Gpt2Tokenizer::embedded().unwrap();
        let mut all = docs(
            &tok,
            0,
            &["  indented", "\nnewline", "x = 1", "say <|endoftext|> here"],
        );
        all.extend(docs(&tok, 1, &["xylophone", "Apple"]));
        let m = starts_measure(&all, &["code".into(), "prose".into()], &tok);
        assert_eq!(m[0].leading_whitespace, 2);
        assert_eq!(m[0].literal_eos_pieces, 1);
        assert_eq!(m[1].first_chars, vec![('A', 1), ('x', 1)]);
        assert_eq!(m[1].first_char_share_by_domain, vec![0.0, 0.5]);
        assert_eq!(m[0].first_chars[..2], [('\n', 1), (' ', 1)]);
    }

    // Checks: AUDIT-8
    #[test]
    fn a_trigram_in_every_document_once_is_the_top_marker() {
        let tok = Gpt2Tokenizer::embedded().unwrap();
        let texts: Vec<String> = (0..5)
            .map(|i| format!("Problem: {i} apples and {i} pears\n\nSolution: {i}"))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let m = starts_measure(&docs(&tok, 0, &refs), &["math".into()], &tok);
        let top = &m[0].markers[0];
        assert_eq!(top.documents, 5);
        assert_eq!(top.per_document, 1.0);
        assert_eq!(top.share_by_domain, vec![1.0]);
    }
}

mod dedup {
    use super::*;

    fn doc(tok: &Gpt2Tokenizer, split: Split, domain: usize, text: &str) -> Doc {
        Doc::from_text(tok, split, domain, text, DocKind::Complete)
    }

    fn group(d: &Duplicates, split: Split, domain: usize) -> &GroupDuplicates {
        d.groups
            .iter()
            .find(|g| g.split == split && g.domain == domain)
            .unwrap()
    }

    // Checks: AUDIT-13
    #[test]
    fn a_val_document_copied_into_train_with_one_word_changed_is_leaked() {
        let tok = Gpt2Tokenizer::embedded().unwrap();
        let base = words(1, 150);
        let changed = base.replacen("river", "canal", 1);
        assert_ne!(base, changed);
        let mut docs: Vec<Doc> = (10..30)
            .map(|s| doc(&tok, Split::Train, 0, &words(s, 150)))
            .collect();
        docs.push(doc(&tok, Split::Train, 0, &base));
        docs.push(doc(&tok, Split::Val, 0, &changed));
        docs.push(doc(&tok, Split::Val, 0, &words(99, 150)));
        let d = dedup_measure(&docs, &DedupConfig::default());
        let val = group(&d, Split::Val, 0);
        assert_eq!((val.documents, val.exact_leaked), (2, 0));
        assert_eq!((val.near_leaked, val.contained, val.leaked), (1, 1, 1));
        assert_eq!(d.leaks.len(), 1);
        assert_eq!((d.leaks[0].a, d.leaks[0].b), (21, 20));
        assert!(d.leaks[0].similarity >= 0.8);
        assert_eq!(group(&d, Split::Train, 0).near, 0);
    }

    // Checks: AUDIT-13
    #[test]
    fn a_held_out_document_whose_ngrams_sit_in_a_train_fragment_is_contained() {
        let tok = Gpt2Tokenizer::embedded().unwrap();
        let text = words(5, 120);
        let mut piece = Doc::from_text(
            &tok,
            Split::Train,
            0,
            &format!("{} {text}", words(6, 200)),
            DocKind::Fragment,
        );
        piece.kind = DocKind::Fragment;
        let docs = vec![piece, doc(&tok, Split::Val, 0, &text)];
        let d = dedup_measure(&docs, &DedupConfig::default());
        let val = group(&d, Split::Val, 0);
        assert_eq!((val.near_leaked, val.contained, val.leaked), (0, 1, 1));
        assert!(val.mean_overlap > 0.95);
    }

    // Checks: AUDIT-11
    #[test]
    fn exact_duplicates_are_counted_within_a_shard_and_across_splits() {
        let tok = Gpt2Tokenizer::embedded().unwrap();
        let (x, y) = (words(1, 40), words(2, 40));
        let docs = vec![
            doc(&tok, Split::Train, 0, &x),
            doc(&tok, Split::Train, 0, &x),
            doc(&tok, Split::Train, 0, &y),
            doc(&tok, Split::Val, 0, &y),
            doc(&tok, Split::Train, 1, &words(3, 40)),
        ];
        let d = dedup_measure(&docs, &DedupConfig::default());
        let train = group(&d, Split::Train, 0);
        assert_eq!((train.exact, train.near), (1, 1));
        let val = group(&d, Split::Val, 0);
        assert_eq!((val.exact, val.exact_leaked, val.leaked), (0, 1, 1));
        assert_eq!(group(&d, Split::Train, 1).exact, 0);
    }

    // Checks: AUDIT-12
    #[test]
    fn near_duplicates_cluster_within_a_shard_and_across_domains() {
        let tok = Gpt2Tokenizer::embedded().unwrap();
        let base = words(7, 200);
        let variants = ["lamp", "bread", "glass", "market"];
        let mut docs: Vec<Doc> = variants
            .iter()
            .map(|w| doc(&tok, Split::Train, 0, &base.replacen(w, "zebra", 1)))
            .collect();
        docs.extend((20..25).map(|s| doc(&tok, Split::Train, 0, &words(s, 200))));
        docs.push(doc(&tok, Split::Train, 1, &base));
        let d = dedup_measure(&docs, &DedupConfig::default());
        let g = group(&d, Split::Train, 0);
        assert_eq!((g.documents, g.exact, g.near, g.cross_domain), (9, 0, 3, 4));
        assert_eq!(group(&d, Split::Train, 1).cross_domain, 1);
        assert_eq!(d.within.len(), 3);
    }

    // Checks: AUDIT-12, AUDIT-4
    #[test]
    fn minhash_estimates_jaccard_and_depends_only_on_its_seed() {
        let tok = Gpt2Tokenizer::embedded().unwrap();
        let a = doc(&tok, Split::Train, 0, &words(3, 300));
        let b = doc(
            &tok,
            Split::Train,
            0,
            &format!("{} {}", words(3, 300), words(4, 300)),
        );
        let set =
            |d: &Doc| -> HashSet<Vec<u16>> { d.tokens.windows(5).map(<[u16]>::to_vec).collect() };
        let (sa, sb) = (set(&a), set(&b));
        let truth = sa.intersection(&sb).count() as f64 / sa.union(&sb).count() as f64;
        let cfg = DedupConfig::default();
        let sig = signatures(&[&a, &b], &cfg);
        let estimate = similarity(&sig[..128], &sig[128..]);
        assert!((estimate - truth).abs() < 0.12, "{estimate} vs {truth}");
        assert_eq!(sig, signatures(&[&a, &b], &cfg));
        let other = DedupConfig { seed: 1, ..cfg };
        assert_ne!(sig, signatures(&[&a, &b], &other));
    }
}

mod shape {
    use super::*;

    // Checks: AUDIT-15
    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(quantile(&v, 0.1), 1);
        assert_eq!(quantile(&v, 0.5), 5);
        assert_eq!(quantile(&v, 0.9), 9);
        assert_eq!(quantile(&v, 1.0), 10);
        assert_eq!(quantile(&[7], 0.1), 7);
        assert_eq!(quantile(&[], 0.5), 0);
    }
}

mod rules_text {
    use super::*;

    fn corpus(tok: &Gpt2Tokenizer, per_domain: &[&dyn Fn(u64) -> String]) -> Vec<Doc> {
        let mut docs = Vec::new();
        for (d, make) in per_domain.iter().enumerate() {
            for i in 0..20 {
                let text = make(100 * d as u64 + i);
                docs.push(Doc::from_text(
                    tok,
                    Split::Train,
                    d,
                    &text,
                    DocKind::Complete,
                ));
            }
        }
        docs
    }

    fn run(
        per_domain: &[&dyn Fn(u64) -> String],
        rule: fn(&Context, &[DomainStarts]) -> Vec<Finding>,
    ) -> Vec<Finding> {
        let tok = Gpt2Tokenizer::embedded().unwrap();
        let docs = corpus(&tok, per_domain);
        let domains: Vec<String> = ["math", "prose", "code"][..per_domain.len()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let starts = starts_measure(&docs, &domains, &tok);
        let ctx = Context {
            domains: &domains,
            docs: &docs,
            tokenizer: &tok,
        };
        rule(&ctx, &starts)
    }

    // Checks: AUDIT-7
    #[test]
    fn every_math_document_starting_with_problem_is_a_high_finding() {
        let math = |s| format!("Problem: {}", words(s, 30));
        let prose = |s| words(s, 30);
        let f = run(&[&math, &prose], prefixes);
        let math_f: Vec<_> = f
            .iter()
            .filter(|f| f.domain.as_deref() == Some("math"))
            .collect();
        assert_eq!(math_f.len(), 1);
        assert_eq!(math_f[0].severity, Severity::High);
        assert!(
            math_f[0]
                .title
                .contains("100.0% of documents start with `\"Problem:\"`"),
            "{}",
            math_f[0].title
        );
        assert!(
            f.iter()
                .all(|f| f.domain.as_deref() != Some("prose") || f.severity == Severity::Low)
        );
    }

    // Checks: AUDIT-7
    #[test]
    fn of_two_nearly_equal_prefixes_the_longer_is_reported() {
        let tok = Gpt2Tokenizer::embedded().unwrap();
        let mut docs: Vec<Doc> = (0..199)
            .map(|i| format!("Problem: {}", words(i, 12)))
            .chain(["Problem solved.".to_string()])
            .map(|t| Doc::from_text(&tok, Split::Train, 0, &t, DocKind::Complete))
            .collect();
        docs.extend((0..20).map(|i| {
            Doc::from_text(
                &tok,
                Split::Train,
                1,
                &words(500 + i, 12),
                DocKind::Complete,
            )
        }));
        let domains = vec!["math".to_string(), "prose".to_string()];
        let starts = starts_measure(&docs, &domains, &tok);
        assert_eq!(starts[0].prefixes[0].share_by_domain[0], 1.0);
        assert_eq!(starts[0].prefixes[1].share_by_domain[0], 0.995);
        let ctx = Context {
            domains: &domains,
            docs: &docs,
            tokenizer: &tok,
        };
        let f = prefixes(&ctx, &starts);
        assert!(
            f[0].title
                .ends_with("99.5% of documents start with `\"Problem:\"`"),
            "{}",
            f[0].title
        );
    }

    // Checks: AUDIT-7
    #[test]
    fn a_prefix_every_domain_shares_is_only_low() {
        let a = |s| format!("The {}", words(s, 30));
        let b = |s| format!("The {}", words(s + 7, 30));
        let f = run(&[&a, &b], prefixes);
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|f| f.severity == Severity::Low));
    }

    // Checks: AUDIT-8
    #[test]
    fn a_label_in_every_document_of_one_domain_is_a_template_marker() {
        let math = |s| format!("{}\n\nSolution: {}", words(s, 20), words(s + 1, 20));
        let prose = |s| words(s, 40);
        let f = run(&[&math, &prose], markers);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].severity, f[0].domain.as_deref()),
            (Severity::Medium, Some("math"))
        );
        assert!(
            f[0].evidence.iter().any(|e| e.contains("Solution")),
            "{:?}",
            f[0].evidence
        );
    }

    // Checks: AUDIT-9
    #[test]
    fn leading_whitespace_in_one_domain_only_is_medium() {
        let code = |s| format!("    {}", words(s, 20));
        let prose = |s| words(s, 20);
        let f = run(&[&code, &prose], leading_whitespace);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].severity, f[0].domain.as_deref()),
            (Severity::Medium, Some("math"))
        );
    }

    // Checks: AUDIT-9
    #[test]
    fn a_first_character_is_reported_unless_a_prefix_explains_it() {
        let tok = Gpt2Tokenizer::embedded().unwrap();
        let varied = |s| format!("#{}", words(s, 20));
        let prose = |s| words(s, 20);
        let docs = corpus(&tok, &[&varied, &prose]);
        let domains = vec!["code".to_string(), "prose".to_string()];
        let starts = starts_measure(&docs, &domains, &tok);
        let ctx = Context {
            domains: &domains,
            docs: &docs,
            tokenizer: &tok,
        };
        let prefix = prefixes(&ctx, &starts);
        let first = first_chars(&ctx, &starts, &prefix);
        let explained = prefix
            .iter()
            .any(|f| f.domain.as_deref() == Some("code") && f.severity <= Severity::Medium);
        assert_eq!(first.is_empty(), explained);
        let first = first_chars(&ctx, &starts, &[]);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].severity, Severity::Medium);
        assert!(first[0].title.contains("'#'"), "{}", first[0].title);
    }

    // Checks: AUDIT-10
    #[test]
    fn invisible_characters_in_a_tenth_of_a_domain_are_medium_and_any_is_low() {
        let many = |s: u64| {
            if s.is_multiple_of(5) {
                format!("a\u{200B}{}", words(s, 9))
            } else {
                words(s, 10)
            }
        };
        let few = |s: u64| {
            if s == 100 {
                format!("\u{FEFF}{}", words(s, 9))
            } else {
                words(s, 10)
            }
        };
        let f = run(&[&many, &few], |_, starts| invisible(starts));
        let sev: Vec<_> = f
            .iter()
            .map(|f| (f.domain.clone().unwrap(), f.severity))
            .collect();
        assert_eq!(
            sev,
            [
                ("math".into(), Severity::Medium),
                ("prose".into(), Severity::Low)
            ]
        );
        assert!(
            f[0].evidence[0].contains("zero_width 4"),
            "{:?}",
            f[0].evidence
        );
    }

    // Checks: AUDIT-19
    #[test]
    fn literal_eos_text_is_a_low_finding() {
        let a = |s: u64| {
            if s == 3 {
                format!("see <|endoftext|> {}", words(s, 5))
            } else {
                words(s, 5)
            }
        };
        let f = run(&[&a], |_, starts| literal_eos(starts));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Low);
        assert!(f[0].title.ends_with("in 1 document(s)"), "{}", f[0].title);
    }
}

mod rules_shape {
    use super::*;

    fn facts(
        domain: &str,
        before: u64,
        after: u64,
        held_docs: u64,
        held_tokens: u64,
    ) -> DomainFacts {
        DomainFacts {
            domain: domain.into(),
            train_tokens_before: before,
            train_tokens_after: after,
            train_blocks_dropped: (before - after) as f64 / before as f64,
            held_out_documents: held_docs,
            held_out_tokens: held_tokens,
            eos_per_1k_train: 1.0,
            tokens_per_byte: 0.3,
        }
    }

    fn lens(split: Split, domain: &str, p50: u64, complete: u64, documents: u64) -> Lengths {
        Lengths {
            split,
            domain: domain.into(),
            documents,
            complete,
            coverage: complete as f64 / documents as f64,
            p10: p50,
            p50,
            p90: p50,
            max: p50,
            mean: p50 as f64,
        }
    }

    fn shape(domains: Vec<DomainFacts>) -> Shape {
        Shape {
            balance: "tokens".into(),
            ratio_before: 1.0,
            ratio_after: 1.0,
            held_out_ratio: 1.0,
            warn_ratio: 1.5,
            domains,
            tails: Vec::new(),
            lengths: Vec::new(),
            sources: Vec::new(),
        }
    }

    // Checks: AUDIT-6
    #[test]
    fn imbalance_or_heavy_balancing_is_medium() {
        let even = shape(vec![
            facts("a", 100, 100, 50, 10),
            facts("b", 120, 100, 50, 10),
        ]);
        assert!(balance(&even).is_empty());
        let heavy = shape(vec![
            facts("a", 100, 100, 50, 10),
            facts("b", 140, 100, 50, 10),
        ]);
        let f = balance(&heavy);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Medium);
        assert!(f[0].evidence[1].contains("b 28.6%"), "{:?}", f[0].evidence);
        let skewed = Shape {
            ratio_before: 1.6,
            ..even
        };
        assert_eq!(balance(&skewed).len(), 1);
    }

    // Checks: AUDIT-18
    #[test]
    fn few_held_out_documents_are_medium_and_uneven_held_out_tokens_low() {
        let s = Shape {
            held_out_ratio: 2.0,
            ..shape(vec![facts("a", 1, 1, 29, 10), facts("b", 1, 1, 30, 20)])
        };
        let f = held_out(&s);
        let got: Vec<_> = f.iter().map(|f| (f.severity, f.domain.clone())).collect();
        assert_eq!(
            got,
            [(Severity::Medium, Some("a".into())), (Severity::Low, None)]
        );
    }

    // Checks: AUDIT-3
    #[test]
    fn shares_print_with_one_decimal_and_never_round_to_all_or_nothing() {
        assert_eq!(pct(0.0), "0.0%");
        assert_eq!(pct(0.0004), "<0.1%");
        assert_eq!(pct(0.25), "25.0%");
        assert_eq!(pct(4331.0 / 4333.0), ">99.9%");
        assert_eq!(pct(1.0), "100.0%");
    }

    // Checks: AUDIT-14
    #[test]
    fn tails_above_one_percent_are_low() {
        let tail = |domain: &str, share| Tail {
            split: Split::Val,
            domain: domain.into(),
            tail: 5,
            share,
        };
        let s = Shape {
            tails: vec![tail("a", 0.01), tail("b", 0.011)],
            ..shape(Vec::new())
        };
        let f = tails(&s);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].evidence, ["val/b 5 tokens (1.1%)"]);
    }

    // Checks: AUDIT-15
    #[test]
    fn a_tenfold_median_spread_and_thin_coverage_are_low() {
        let s = Shape {
            lengths: vec![
                lens(Split::Train, "a", 30, 10, 10),
                lens(Split::Train, "b", 300, 4, 10),
                lens(Split::Val, "b", 3000, 1, 1),
            ],
            ..shape(vec![facts("a", 1, 1, 30, 1), facts("b", 1, 1, 30, 1)])
        };
        let f = lengths(&s);
        let checks: Vec<_> = f.iter().map(|f| (f.check.as_str(), f.severity)).collect();
        assert_eq!(
            checks,
            [("length", Severity::Low), ("coverage", Severity::Low)]
        );
        assert!(f[0].title.contains("10.0×"), "{}", f[0].title);
        assert!(f[1].evidence[0].contains("train/b 4 of 10 (40.0%)"));
    }

    // Checks: AUDIT-17
    #[test]
    fn a_source_dropping_a_fifth_of_its_records_is_low() {
        let src = |kept, drops: u64| SourceDrops {
            domain: "prose".into(),
            source: "s".into(),
            records: 100,
            kept,
            drops: [("too_short".to_string(), drops)].into_iter().collect(),
            dropped_share: drops as f64 / 100.0,
        };
        let s = Shape {
            sources: vec![src(81, 19), src(80, 20)],
            ..shape(Vec::new())
        };
        let f = sources(&s);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].evidence,
            ["100 records read, 80 kept; drops: too_short 20"]
        );
    }
}
