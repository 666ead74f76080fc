//! The causal analyses on hand-made losses whose answer is known, and on a
//! model whose experts are identical (ANA-25, ANA-26).

use moe_analysis::keep_k::{keep_k, ranking};
use moe_analysis::masked::{MaskedLoss, ModelLoss};
use moe_analysis::removal::expert_removal;
use moe_analysis::report::causal::{keep_k_claim, removal_claim};
use moe_model::{CpuBackend, Gpt2, ModelConfig, MoeConfig};
use moe_train::{Blocks, DomainBlocks};

/// Three domains, four experts: domain d routes every token to expert d
/// (expert 3 gets none); a domain's loss rises by 1 nat (plus 0.1 per
/// block) exactly when its own expert is masked.
struct OwnExpert {
    base: [f64; 3],
    blocks: usize,
}

impl MaskedLoss for OwnExpert {
    fn n_domains(&self) -> usize {
        3
    }
    fn block_losses(&mut self, d: usize, _layer: usize, disabled: &[usize]) -> Vec<f64> {
        let hurt = disabled.contains(&d);
        (0..self.blocks)
            .map(|b| self.base[d] + if hurt { 1.0 + 0.1 * b as f64 } else { 0.0 })
            .collect()
    }
}

fn own_shares() -> Vec<Vec<f64>> {
    (0..3)
        .map(|d| (0..4).map(|e| if e == d { 1.0 } else { 0.0 }).collect())
        .collect()
}

fn names() -> Vec<String> {
    ["code", "math", "prose"].map(String::from).to_vec()
}

// Checks: ANA-25
#[test]
fn ana_25_removing_an_expert_hurts_only_its_own_domain() {
    let mut eval = OwnExpert {
        base: [2.0, 3.0, 4.0],
        blocks: 5,
    };
    let r = expert_removal(&mut eval, 2, 4, &own_shares());
    assert_eq!(r.blocks, vec![5; 3]);
    assert_eq!(r.full_loss, vec![2.0, 3.0, 4.0]);
    for e in 0..4 {
        for d in 0..3 {
            let want = if e == d { 1.2 } else { 0.0 };
            assert!((r.delta[e][d].mean - want).abs() < 1e-12, "e{e} d{d}");
            let i = r.delta[e][d].interval.as_ref().unwrap();
            assert!(i.low <= want + 1e-12 && want <= i.high + 1e-12);
        }
    }
    // Expert 3: no domain routes to it, removing it changes nothing.
    assert!(r.delta[3].iter().all(|x| x.mean == 0.0));
    assert_eq!(r.own_domain, vec![Some(0), Some(1), Some(2), None]);
    assert_eq!(&r.most_hurt[..3], &[Some(0), Some(1), Some(2)]);
    let claim = removal_claim("moe", 2, &r, &names());
    assert!(
        claim.contains("for 3 of 3 experts with tokens (3 of those"),
        "{claim}"
    );
    assert!(
        claim.contains("every expert's own domain loses most"),
        "{claim}"
    );
}

// Checks: ANA-26
#[test]
fn ana_26_keeping_a_domains_own_expert_costs_nothing() {
    let mut eval = OwnExpert {
        base: [2.0, 3.0, 4.0],
        blocks: 4,
    };
    let k = keep_k(&mut eval, 3, &own_shares(), &names(), 6, 7);
    assert_eq!(k.scope, "this block only");
    for (d, dom) in k.domains.iter().enumerate() {
        assert_eq!(dom.ranking[0], d);
        assert_eq!(dom.full_loss, eval.base[d]);
        // Own top-k keeps the own expert for every k: the full loss.
        assert!(dom.own.iter().all(|&v| v == eval.base[d]));
        for o in &dom.others {
            // Another domain's top-1 masks this domain's expert: +1.15 nats.
            assert!((o.loss[0] - eval.base[d] - 1.15).abs() < 1e-12);
            assert_eq!(o.loss[3], eval.base[d]);
        }
        // k = 4 keeps everything: every draw equals the full loss.
        let all = dom.random[3].as_ref().unwrap();
        assert_eq!((all.n, all.min, all.max), (6, eval.base[d], eval.base[d]));
        // k = 1 random: the full loss or the masked one.
        let one = dom.random[0].as_ref().unwrap();
        assert!(one.min >= eval.base[d] && one.max <= eval.base[d] + 1.15 + 1e-12);
    }
    let claim = keep_k_claim("moe", 3, &k.domains[0], 1);
    assert!(
        claim.contains("lower than 2 of 2 other domains' top-1"),
        "{claim}"
    );
    // Same seed, same draws.
    let again = keep_k(&mut eval, 3, &own_shares(), &names(), 6, 7);
    assert_eq!(k, again);
}

// Checks: ANA-26
#[test]
fn ana_26_ranking_is_by_share_then_index() {
    assert_eq!(ranking(&[0.1, 0.5, 0.1, 0.3]), vec![1, 3, 0, 2]);
}

// Checks: ANA-25, ANA-26
#[test]
fn ana_25_identical_experts_make_every_mask_free() {
    let device = Default::default();
    let mut config = ModelConfig::preset("micro").unwrap();
    let moe = MoeConfig {
        layers: vec![1],
        n_experts: 3,
        top_k: 1,
        capacity_factor: None,
        group_alignment: None,
    };
    config.moe = None;
    let model = Gpt2::<CpuBackend>::init(&config, 4, &device).upcycle(&moe, 0.0, 9);
    let block = 12;
    let domain = |name: &str, salt: usize| DomainBlocks {
        name: name.into(),
        tokens: (0..3 * block)
            .map(|i| ((i * 7 + salt) % 96) as u16)
            .collect(),
    };
    let val = Blocks {
        block_size: block,
        domains: vec![domain("code", 1), domain("math", 5)],
    };
    let mut eval = ModelLoss::new(&model, &val, 2, &device);
    let shares = vec![vec![0.5, 0.3, 0.2], vec![0.2, 0.3, 0.5]];
    let r = expert_removal(&mut eval, 1, 3, &shares);
    assert_eq!(r.blocks, vec![3, 3]);
    for row in &r.delta {
        for x in row {
            assert!(x.mean.abs() < 1e-5, "{}", x.mean);
        }
    }
    let passes = eval.passes();
    assert_eq!(passes, 2 * 4, "one pass per domain and mask");
    let names = vec!["code".to_string(), "math".to_string()];
    let k = keep_k(&mut eval, 1, &shares, &names, 2, 0);
    for d in &k.domains {
        assert!((d.own[0] - d.full_loss).abs() < 1e-5);
    }
}

// Checks: ANA-27
#[test]
fn ana_27_token_specialization_one_expert_per_id_and_uniform_random() {
    use moe_analysis::token_specialization::token_specialization;
    use rand::Rng;
    // 6 ids × 2000 tokens, one document each; expert = id % 4.
    let token: Vec<u32> = (0..12_000).map(|i| (i / 2000) as u32).collect();
    let doc = token.clone();
    let fixed: Vec<u16> = token.iter().map(|&t| (t % 4) as u16).collect();
    let load = vec![0.25; 4];
    let mut rng = moe_data::seeded::rng_for(0, "test");
    let s = token_specialization(&token, &doc, &fixed, &load, &mut rng);
    assert_eq!(s.input.ids, 6);
    assert_eq!(s.input.value, Some(1.0));
    // The next token is the same id within a document here.
    assert_eq!(s.next.value, Some(1.0));
    assert_eq!(s.uniform, 0.25);
    let random = s.random_router_input.unwrap();
    assert!((random - 0.25).abs() < 0.03, "{random}");
    let uniform: Vec<u16> = token.iter().map(|_| rng.random_range(0..4u16)).collect();
    let u = token_specialization(&token, &doc, &uniform, &load, &mut rng);
    assert!((u.input.value.unwrap() - 0.25).abs() < 0.03);
    // Ids seen fewer than 10 times are left out.
    let few = token_specialization(&token[..5], &doc[..5], &fixed[..5], &load, &mut rng);
    assert_eq!((few.input.ids, few.input.value), (0, None));
}

// Checks: ANA-28
#[test]
fn ana_28_coactivation_of_a_copied_and_an_independent_layer() {
    use moe_analysis::coactivation::coactivation;
    // 2 domains × 400 tokens; layer A sends domain d to expert d.
    let domain: Vec<u16> = (0..800).map(|i| (i / 400) as u16).collect();
    let a: Vec<u16> = domain.clone();
    // Layer B copies A (plus 2): one path per domain.
    let b: Vec<u16> = a.iter().map(|&e| e + 2).collect();
    let c = coactivation(2, &a, 4, &b, 4, &domain, 2);
    assert_eq!(c.conditional[0], vec![0.0, 0.0, 1.0, 0.0]);
    assert_eq!(c.independence, vec![0.0, 0.0, 0.5, 0.5]);
    assert_eq!(
        (c.top_paths[1].from, c.top_paths[1].to, c.top_paths[1].share),
        (1, 3, 1.0)
    );
    assert!((c.path_nmi - 1.0).abs() < 1e-12);
    // Layer B alternating experts 0, 1 whatever A chose: rows equal P(j).
    let alt: Vec<u16> = (0..800).map(|i| (i % 2) as u16).collect();
    let c = coactivation(2, &a, 4, &alt, 4, &domain, 2);
    for i in 0..2 {
        assert_eq!(c.conditional[i], c.independence);
    }
    assert!(c.path_nmi > 0.99, "the path still carries A's domain");
}
