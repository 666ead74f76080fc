//! GPT-2's causal self-attention of `c_attn`'s output, heads merged, as HF
//! `GPT2Attention` computes it (MODEL-16): scores scaled by
//! `1/sqrt(head_dim)`, causal mask, softmax, weighted values. The CPU kernel
//! is [`cpu::causal_self_attention`].

use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, FloatDType, Tensor};

use super::cpu::{off_flex, on_flex};
use super::cpu_or_generic;

pub(crate) mod cpu;

/// GPT-2's causal self-attention of `c_attn`'s output, heads merged
/// (MODEL-16): one op with a hand-written backward on the CPU backend
/// ([`cpu::causal_self_attention`]), [`attention_by_ops`] elsewhere.
///
/// # Shapes
/// - `qkv`: `[batch·seq, 3·d_model]` → `[batch·seq, d_model]`
pub fn causal_self_attention<B: Backend>(
    qkv: Tensor<B, 2>,
    batch: usize,
    n_head: usize,
) -> Tensor<B, 2> {
    cpu_or_generic(
        qkv,
        |qkv| {
            Ok(off_flex(cpu::causal_self_attention(
                on_flex(qkv)?,
                batch,
                n_head,
            )))
        },
        |qkv| attention_by_ops(qkv, batch, n_head),
    )
}

/// [`causal_self_attention`] with generic tensor ops: Burn's `attention` on
/// f32 input; on any other dtype (bf16 under mixed precision, MODEL-19) the
/// two products run in that dtype and the scores are scaled, masked and
/// normalised in f32 (Burn's `attention` would take the softmax in bf16).
pub fn attention_by_ops<B: Backend>(
    qkv: Tensor<B, 2>,
    batch: usize,
    n_head: usize,
) -> Tensor<B, 2> {
    let [rows, width] = qkv.dims();
    let (seq, d_model) = (rows / batch, width / 3);
    let head_dim = d_model / n_head;
    let qkv = qkv.reshape([batch, seq, width]);
    let heads = |i: usize| {
        qkv.clone()
            .narrow(2, i * d_model, d_model) // [batch, seq, d_model]
            .reshape([batch, seq, n_head, head_dim])
            .swap_dims(1, 2) // [batch, n_head, seq, head_dim]
    };
    let (q, k, v) = (heads(0), heads(1), heads(2));
    let y = if qkv.dtype() == DType::F32 {
        let options = AttentionModuleOptions {
            scale: None, // 1/sqrt(head_dim), as GPT-2's scale_attn_weights
            softcap: None,
            is_causal: true,
        };
        attention(q, k, v, None, None, options) // [batch, n_head, seq, head_dim]
    } else {
        let dtype = v.dtype();
        let scale = 1.0 / (head_dim as f64).sqrt();
        let scores = q.matmul(k.swap_dims(2, 3)).cast(FloatDType::F32) * scale; // [batch, n_head, seq, seq]
        let future = Tensor::<B, 2, Bool>::tril_mask([seq, seq], 0, &scores.device())
            .unsqueeze::<4>()
            .expand([batch, n_head, seq, seq]);
        let weights = softmax(scores.mask_fill(future, f32::NEG_INFINITY), 3);
        weights.cast(dtype).matmul(v) // [batch, n_head, seq, head_dim]
    };
    y.swap_dims(1, 2).reshape([rows, d_model]) // [batch·seq, d_model]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::NormalRng;
    use burn::tensor::TensorData;
    use proptest::prelude::*;

    type Ad = crate::CpuAutodiff;
    type Path = fn(Tensor<Ad, 2>, usize, usize) -> Tensor<Ad, 2>;

    fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    /// (output, ∂Σ(g·out)/∂qkv) of `path`.
    fn run(path: Path, qkv: &[f32], g: &[f32], dims: [usize; 4]) -> (Vec<f32>, Vec<f32>) {
        let [batch, seq, n_head, head_dim] = dims;
        let (rows, d) = (batch * seq, n_head * head_dim);
        let dev = Default::default();
        let x = Tensor::<Ad, 2>::from_data(TensorData::new(qkv.to_vec(), [rows, 3 * d]), &dev)
            .require_grad();
        let gt = Tensor::<Ad, 2>::from_data(TensorData::new(g.to_vec(), [rows, d]), &dev);
        let y = path(x.clone(), batch, n_head);
        let grads = (y.clone() * gt).sum().backward();
        (values(y), values(x.grad(&grads).unwrap()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        // MODEL-16: the CPU op's output and its gradient equal the generic
        // composition through Burn's attention within 1e-5·max(1, scale²)
        // (scores of scale² magnitude go through exp), for any batch,
        // sequence length, head count and width, with and without autodiff.
        #[test]
        fn model_16_cpu_attention_equals_generic(
            batch in 1usize..4,
            seq in 1usize..20,
            n_head in 1usize..4,
            head_dim in 1usize..9,
            scale in 0.1f64..2.0,
            seed in 0u64..1000,
        ) {
            let dims = [batch, seq, n_head, head_dim];
            let (rows, d) = (batch * seq, n_head * head_dim);
            let mut rng = NormalRng::new(seed, 3);
            let qkv = rng.samples(rows * 3 * d, scale);
            let g = rng.samples(rows * d, 1.0);
            let (y, dx) = run(causal_self_attention, &qkv, &g, dims);
            let (y_ref, dx_ref) = run(attention_by_ops, &qkv, &g, dims);
            let tol = 1e-5 * (scale * scale).max(1.0);
            for (what, got, want) in [("output", &y, &y_ref), ("gradient", &dx, &dx_ref)] {
                let err = got.iter().zip(want.iter()).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max);
                prop_assert!(err <= tol, "{what}: error {err}");
            }
            let dev = Default::default();
            let plain = Tensor::<crate::CpuBackend, 2>::from_data(TensorData::new(qkv.clone(), [rows, 3 * d]), &dev);
            prop_assert_eq!(values(causal_self_attention(plain, batch, n_head)), y);
        }
    }
}
