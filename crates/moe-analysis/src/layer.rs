//! Everything computed for one MoE layer from the routing table (ANA-2 …
//! ANA-12): the expert × domain matrix, NMI with its nulls and controls,
//! load, per-domain entropy, top tokens, code token types, consistency.

use std::ops::Range;

use moe_data::seeded::rng_for;
use moe_data::tokenizer::Gpt2Tokenizer;

use crate::baseline_rise::bootstrap_rise;
use crate::code_types::TokenClass;
use crate::control::{Tokens, token_identity_control};
use crate::domain_stats::{consistency, domain_routing};
use crate::load_balance::load_stats;
use crate::nmi::{mutual_information_of, row_shares, transpose};
use crate::nulls::{DocRouting, permutation_test, random_router};
use crate::schema::{LayerAnalysis, Specialization, TokenTypes};
use crate::token_routes::TokenRoutes;

/// How many draws each null and control takes, and the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draws {
    /// Seed of every draw.
    pub seed: u64,
    /// Permutations of the document-level test.
    pub permutations: usize,
    /// Random-router draws.
    pub random_router: usize,
    /// Token-identity control draws.
    pub control: usize,
    /// Top tokens kept per expert.
    pub top_tokens: usize,
}

/// What every layer shares: documents, code token classes, the tokenizer.
pub struct Context<'a> {
    /// Document ranges of the table.
    pub docs: &'a [Range<usize>],
    /// Token classes aligned with the table (None outside the code domain and for EOS).
    pub code_classes: Option<(&'a str, &'a [Option<TokenClass>])>,
    /// For decoding top tokens.
    pub tokenizer: &'a Gpt2Tokenizer,
}

/// The expert × domain NMI of layer slot `slot` of `table`.
pub fn layer_nmi(table: &TokenRoutes, slot: usize) -> f64 {
    mutual_information_of(&table.counts(slot)).nmi()
}

/// Analyses layer slot `slot`; `baseline` holds the step-0 router's routing
/// of the same tokens.
pub fn analyze_layer(
    table: &TokenRoutes,
    slot: usize,
    ctx: &Context<'_>,
    draws: &Draws,
    baseline: Option<&TokenRoutes>,
) -> LayerAnalysis {
    let routes = &table.layers[slot];
    let (n_e, n_d) = (routes.n_experts, table.domains.len());
    let counts = table.counts(slot);
    let info = mutual_information_of(&counts);
    let nmi = info.nmi();
    let per_expert: Vec<u64> = counts.iter().map(|r| r.iter().sum()).collect();
    let load = load_stats(&per_expert);
    let purpose = |what: &str| rng_for(draws.seed, &format!("{what}/layer{}", routes.layer));
    let docs = DocRouting::new(ctx.docs, &routes.expert, &table.domain, n_e, n_d);
    let baseline_nmi = baseline.map(|b| layer_nmi(b, slot));
    let rise = baseline.map(|b| {
        let step0 = DocRouting::new(ctx.docs, &b.layers[slot].expert, &b.domain, n_e, n_d);
        bootstrap_rise(&docs, &step0, draws.permutations, &mut purpose("rise"))
    });
    let specialization = Specialization {
        mi_nats: info.mi,
        domain_entropy_nats: info.h_cols,
        nmi,
        permutation: permutation_test(&docs, nmi, draws.permutations, &mut purpose("permutation")),
        random_router: random_router(
            &table.domain,
            n_d,
            &load.shares,
            draws.random_router,
            &mut purpose("random-router"),
        ),
        baseline_nmi,
        rise,
        token_identity: token_identity_control(
            Tokens {
                id: &table.token,
                expert: &routes.expert,
                domain: &table.domain,
                n_experts: n_e,
                n_domains: n_d,
            },
            nmi,
            draws.control,
            &mut purpose("token-identity"),
        ),
    };
    let token_spec = crate::token_specialization::token_specialization(
        &table.token,
        &table.doc,
        &routes.expert,
        &load.shares,
        &mut purpose("token-specialization"),
    );
    LayerAnalysis {
        layer: routes.layer,
        n_experts: n_e,
        expert_domain_shares: row_shares(&counts),
        domain_expert_shares: row_shares(&transpose(&counts)),
        counts,
        specialization,
        load,
        confidence: crate::confidence::confidence(routes),
        domains: domain_routing(table, routes),
        top_tokens: crate::top_tokens::top_tokens(
            &table.token,
            &routes.expert,
            n_e,
            draws.top_tokens,
            ctx.tokenizer,
        ),
        code_token_types: ctx
            .code_classes
            .map(|(domain, classes)| token_types(domain, classes, &routes.expert, n_e)),
        consistency: consistency(ctx.docs, &table.domain, &routes.expert, n_e, n_d),
        removal: None,
        keep_k: None,
        token_specialization: Some(token_spec),
        coactivation: slot.checked_sub(1).map(|prev| {
            let p = &table.layers[prev];
            crate::coactivation::coactivation(
                p.layer,
                &p.expert,
                p.n_experts,
                &routes.expert,
                n_e,
                &table.domain,
                n_d,
            )
        }),
        expert_weights: None,
    }
}

/// Class × expert counts of the classified tokens.
pub fn token_types(
    domain: &str,
    classes: &[Option<TokenClass>],
    expert: &[u16],
    n_experts: usize,
) -> TokenTypes {
    let mut counts = vec![vec![0u64; n_experts]; TokenClass::ALL.len()];
    for (c, &e) in classes.iter().zip(expert) {
        if let Some(c) = c {
            counts[c.index()][e as usize] += 1;
        }
    }
    // NMI(E; class) = I / H(class): columns are classes.
    let nmi = mutual_information_of(&transpose(&counts)).nmi();
    TokenTypes {
        domain: domain.to_string(),
        classes: TokenClass::ALL
            .iter()
            .map(|c| c.name().to_string())
            .collect(),
        class_expert_shares: row_shares(&counts),
        counts,
        nmi,
    }
}
