//! Checkpoints: seeded init, save/load round trips with HF names, and the
//! errors a bad weights file gets (MODEL-4, MODEL-5, MODEL-6, MODEL-7, MOE-13).

use crate::common;

use burn::module::Module;
use moe_model::weights::{WEIGHTS_FILE, named_tensors, save_safetensors};
use moe_model::{
    CpuBackend as B, ForwardOptions, Gpt2, ModelConfig, ModelError, MoeConfig, ParamCounts,
    load_model_dir, save_model_dir,
};

fn moe_config() -> ModelConfig {
    let mut c = ModelConfig::preset("micro").unwrap();
    c.moe = Some(MoeConfig {
        layers: vec![1],
        n_experts: 3,
        top_k: 2,
        capacity_factor: Some(1.5),
        group_alignment: None,
    });
    c
}

fn logits(model: &Gpt2<B>) -> Vec<f32> {
    let tokens = common::tokens::<B>(&[5, 17, 3, 90, 41, 0, 2, 8], [2, 4], &Default::default());
    common::values(&model.forward(tokens, &ForwardOptions::default()).logits)
}

// MODEL-5
#[test]
fn model_5_init_is_seeded() {
    let c = moe_config();
    let a = logits(&Gpt2::<B>::init(&c, 1, &Default::default()));
    let b = logits(&Gpt2::<B>::init(&c, 1, &Default::default()));
    let other = logits(&Gpt2::<B>::init(&c, 2, &Default::default()));
    assert_eq!(a, b);
    assert_ne!(a, other);
}

// MODEL-6, MOE-13
#[test]
fn model_6_moe_13_checkpoints_round_trip_bit_for_bit() {
    for config in [ModelConfig::preset("micro").unwrap(), moe_config()] {
        let dir = tempfile::tempdir().unwrap();
        let model = Gpt2::<B>::init(&config, 4, &Default::default());
        save_model_dir(&model, &config, dir.path()).unwrap();
        let (back_config, back) = load_model_dir::<B>(dir.path(), &Default::default()).unwrap();
        assert_eq!(back_config, config);
        assert_eq!(logits(&back), logits(&model));
        let names: Vec<String> = named_tensors(&back).into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"h.0.attn.c_attn.weight".to_string()));
        if config.moe.is_some() {
            for n in [
                "h.1.mlp.router.weight",
                "h.1.mlp.experts.2.c_fc.weight",
                "h.1.mlp.experts.0.c_proj.bias",
            ] {
                assert!(names.contains(&n.to_string()), "{n} missing");
            }
            assert!(!names.iter().any(|n| n.starts_with("h.1.mlp.c_fc")));
        }
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }
}

// MODEL-7
#[test]
fn model_7_param_counts_match_the_built_model() {
    for config in [ModelConfig::preset("micro").unwrap(), moe_config()] {
        let model = Gpt2::<B>::init(&config, 0, &Default::default());
        assert_eq!(ParamCounts::of(&config).total(), model.num_params());
    }
}

// MODEL-6
#[test]
fn model_6_hf_fixture_survives_a_save_load_cycle() {
    let src = common::fixture_dir("odd_heads");
    let (config, model) = load_model_dir::<B>(&src, &Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    save_model_dir(&model, &config, dir.path()).unwrap();
    let (_, back) = load_model_dir::<B>(dir.path(), &Default::default()).unwrap();
    let tokens = common::tokens::<B>(&[1, 2, 3], [1, 3], &Default::default());
    let a = model
        .forward(tokens.clone(), &ForwardOptions::default())
        .logits;
    let b = back.forward(tokens, &ForwardOptions::default()).logits;
    assert_eq!(a.to_data(), b.to_data());
}

fn write_config(dir: &std::path::Path, config: &ModelConfig) {
    let hf = moe_model::HfGpt2Config::from_model_config(config);
    std::fs::write(dir.join("config.json"), serde_json::to_string(&hf).unwrap()).unwrap();
}

// MODEL-4
#[test]
fn model_4_bad_weights_are_named_errors() {
    let dense = ModelConfig::preset("micro").unwrap();
    let dir = tempfile::tempdir().unwrap();
    save_model_dir(
        &Gpt2::<B>::init(&dense, 0, &Default::default()),
        &dense,
        dir.path(),
    )
    .unwrap();

    let mut wider = dense.clone();
    wider.gpt2.vocab_size += 1;
    write_config(dir.path(), &wider);
    let err = load_model_dir::<B>(dir.path(), &Default::default()).unwrap_err();
    assert!(
        matches!(&err, ModelError::ShapeMismatch { name, .. } if name == "wte.weight"),
        "{err}"
    );

    let mut shorter = dense.clone();
    shorter.gpt2.n_layer = 1;
    write_config(dir.path(), &shorter);
    let err = load_model_dir::<B>(dir.path(), &Default::default()).unwrap_err();
    assert!(
        matches!(&err, ModelError::UnexpectedTensor { name, .. } if name.starts_with("h.1.")),
        "{err}"
    );

    let mut moe = dense.clone();
    moe.moe = Some(MoeConfig::default_for(2));
    write_config(dir.path(), &moe);
    let err = load_model_dir::<B>(dir.path(), &Default::default()).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingTensor { name, .. } if name.contains("router")),
        "{err}"
    );

    std::fs::write(dir.path().join(WEIGHTS_FILE), b"not safetensors").unwrap();
    write_config(dir.path(), &dense);
    let err = load_model_dir::<B>(dir.path(), &Default::default()).unwrap_err();
    assert!(matches!(err, ModelError::Safetensors { .. }), "{err}");
    assert!(err.to_string().contains(WEIGHTS_FILE));

    let err = load_model_dir::<B>(&dir.path().join("absent"), &Default::default()).unwrap_err();
    assert!(matches!(err, ModelError::Io { .. }), "{err}");
}

// MODEL-6
#[test]
fn model_6_saved_file_has_format_metadata_for_transformers() {
    let config = ModelConfig::preset("micro").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    save_safetensors(&Gpt2::<B>::init(&config, 0, &Default::default()), &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let format = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("format").cloned());
    assert_eq!(format.as_deref(), Some("pt"));
}
