//! Helpers shared by the integration tests: fixtures and float comparisons.
#![allow(dead_code)]

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use safetensors::SafeTensors;

/// The directory of a committed parity fixture.
pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Tokens `[batch, seq]` and reference logits (flat, with their shape) of a fixture.
pub fn expected(name: &str) -> (Vec<i64>, [usize; 2], Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(fixture_dir(name).join("expected.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let tokens = st.tensor("tokens").unwrap();
    let logits = st.tensor("logits").unwrap();
    let ids = tokens
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let values = logits
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let shape = [tokens.shape()[0], tokens.shape()[1]];
    (ids, shape, values, logits.shape().to_vec())
}

/// An int tensor `[batch, seq]` on the backend.
pub fn tokens<B: Backend>(ids: &[i64], shape: [usize; 2], device: &B::Device) -> Tensor<B, 2, Int> {
    Tensor::from_data(TensorData::new(ids.to_vec(), shape), device)
}

/// The values of a float tensor.
pub fn values<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Vec<f32> {
    t.to_data().iter::<f32>().collect()
}

/// Largest `|a - b| / max(1, |b|)` over two equally long slices.
pub fn max_rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).abs() / (y as f64).abs().max(1.0))
        .fold(0.0, f64::max)
}

/// Largest `|a - b|`.
pub fn max_abs_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).abs())
        .fold(0.0, f64::max)
}
