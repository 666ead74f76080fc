//! HF parity: our logits equal `transformers`' GPT2LMHeadModel on random tiny
//! GPT-2s (MODEL-3, MODEL-4). Fixtures come from `fixtures/make_fixtures.py`.

use crate::common;

use common::{expected, fixture_dir, max_rel_err, tokens, values};
use moe_model::{CpuAutodiff, CpuBackend, ForwardOptions, load_model_dir};

const FIXTURES: [&str; 3] = ["full_context", "odd_heads", "noprefix"];

fn check<B: burn::tensor::backend::Backend>(name: &str) -> f64 {
    let device = Default::default();
    let (config, model) = load_model_dir::<B>(&fixture_dir(name), &device).unwrap();
    assert!(config.moe.is_none());
    let (ids, shape, want, want_shape) = expected(name);
    let out = model.forward(
        tokens::<B>(&ids, shape, &device),
        &ForwardOptions::default(),
    );
    assert_eq!(out.logits.dims().to_vec(), want_shape, "{name}");
    assert!(out.routing.is_empty() && out.aux.is_none());
    max_rel_err(&values(&out.logits), &want)
}

// MODEL-3
#[test]
fn model_3_logits_match_hf_within_1e4_relative() {
    for name in FIXTURES {
        let err = check::<CpuBackend>(name);
        assert!(err <= 1e-4, "{name}: max relative error {err}");
    }
}

// MODEL-3
#[test]
fn model_3_autodiff_backend_gives_the_same_logits() {
    for name in FIXTURES {
        let err = check::<CpuAutodiff>(name);
        assert!(err <= 1e-4, "{name}: max relative error {err}");
    }
}

// MODEL-4
#[test]
fn model_4_prefixed_and_published_layouts_both_load() {
    // full_context is written by save_pretrained (`transformer.` prefix);
    // noprefix has bare names plus the attn.bias / masked_bias buffers.
    for name in ["full_context", "noprefix"] {
        let bytes = std::fs::read(fixture_dir(name).join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let prefixed = st.names().iter().any(|n| n.starts_with("transformer."));
        let buffers = st.names().iter().any(|n| n.ends_with(".attn.bias"));
        assert_eq!(
            (prefixed, buffers),
            (name == "full_context", name == "noprefix")
        );
        load_model_dir::<CpuBackend>(&fixture_dir(name), &Default::default()).unwrap();
    }
}
