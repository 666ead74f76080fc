//! Our own multithreaded CPU kernels for Burn's `flex` backend (MODEL-15).
//!
//! Flex runs each element-wise op on one thread, with scalar `expf`/`tanhf`,
//! and gives every op its own output buffer; only its matmuls use all
//! cores. Two passes of a training step are element-wise and large: the
//! MLP's `gelu_new` with its derivative (MODEL-13), and the
//! `exp(logit − max)` rows of the fused LM loss (MODEL-14), `[tokens,
//! vocab]`. On `Flex` and `Autodiff<Flex>` (the CPU backends) those two
//! passes run here instead: one pass per tensor, split over rayon's pool
//! (the same pool flex's matmuls use, so `RAYON_NUM_THREADS` sets both),
//! with a polynomial `exp` the compiler vectorises. Every element's value
//! depends only on its own inputs and each row is reduced in a fixed order
//! by one thread, so results are identical at any thread count.
//!
//! How a generic `B: Backend` reaches them: [`to_flex`] checks at run time
//! whether `B`'s float tensor *is* flex's (or the autodiff wrapper of it,
//! unwrapped with the public `AutodiffBackend::inner`) and hands back the
//! [`FlexTensor`]; any other backend gets its tensor back and the caller
//! runs the generic tensor-op version, which the property tests check
//! against the same references. Only *constant* tensors (outside the
//! autodiff graph) pass through here: both callers attach gradients with a
//! surrogate, so no graph edge is lost. Burn's own extension point, a
//! backend trait with an `Autodiff` impl, would put a new bound on every
//! generic signature of the three crates (about 120); this keeps them as
//! they are.

use std::any::Any;

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::{AutodiffBackend, Backend, BackendTypes};
use burn::tensor::{Bytes, DType, Shape, Tensor, TensorPrimitive};
use burn_flex::{FlexTensor, Layout};
use rayon::prelude::*;

pub(crate) mod attention;
pub(crate) mod layer_norm;
pub(crate) mod linear;

/// The autodiff CPU backend whose tensors [`to_flex`] unwraps.
type FlexAutodiff = Autodiff<Flex>;
/// Its float tensor type (named through the trait: the struct is private).
pub(crate) type FlexAutodiffTensor = <FlexAutodiff as BackendTypes>::FloatTensorPrimitive;

/// Elements per rayon task of an element-wise kernel: large enough that the
/// task overhead is noise, small enough that two cores share a 2 MB tensor.
const CHUNK: usize = 1 << 14;

/// A float tensor of one of the two CPU backends.
pub(crate) enum OnFlex {
    /// Of `Flex`.
    Plain(FlexTensor),
    /// Of `Autodiff<Flex>`: the flex tensor and its graph node.
    Autodiff(FlexAutodiffTensor),
}

/// `t`'s primitive when `B` is `Flex` or `Autodiff<Flex>` and `t` is f32;
/// otherwise `t` unchanged.
pub(crate) fn on_flex<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<OnFlex, Tensor<B, D>> {
    if t.dtype() != DType::F32 {
        return Err(t);
    }
    let mut slot = Some(t.into_primitive().tensor());
    let any: &mut dyn Any = &mut slot;
    let flex = if let Some(s) = any.downcast_mut::<Option<FlexTensor>>() {
        s.take().map(OnFlex::Plain)
    } else if let Some(s) = any.downcast_mut::<Option<FlexAutodiffTensor>>() {
        s.take().map(OnFlex::Autodiff)
    } else {
        None
    };
    match (flex, slot) {
        (Some(flex), _) => Ok(flex),
        (None, Some(primitive)) => Err(Tensor::from_primitive(TensorPrimitive::Float(primitive))),
        (None, None) => unreachable!("the slot is emptied only by a successful downcast"),
    }
}

/// `t` back as a tensor of `B`; `B` must be the backend [`on_flex`] took it
/// from.
///
/// # Panics
/// When `t`'s backend is not `B`.
pub(crate) fn off_flex<B: Backend, const D: usize>(t: OnFlex) -> Tensor<B, D> {
    let mut out: Option<<B as BackendTypes>::FloatTensorPrimitive> = None;
    let any: &mut dyn Any = &mut out;
    match t {
        OnFlex::Plain(t) => {
            if let Some(o) = any.downcast_mut::<Option<FlexTensor>>() {
                *o = Some(t);
            } else if let Some(o) = any.downcast_mut::<Option<FlexAutodiffTensor>>() {
                *o = Some(FlexAutodiff::from_inner(t));
            }
        }
        OnFlex::Autodiff(t) => {
            if let Some(o) = any.downcast_mut::<Option<FlexAutodiffTensor>>() {
                *o = Some(t);
            }
        }
    }
    let primitive = out.expect("off_flex: the tensor is of B");
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

/// The flex tensor under a constant `t` (its graph node, if any, is
/// dropped), made contiguous; `t` unchanged on other backends.
pub(crate) fn to_flex<B: Backend, const D: usize>(
    t: Tensor<B, D>,
) -> Result<FlexTensor, Tensor<B, D>> {
    Ok(match on_flex(t)? {
        OnFlex::Plain(t) => t.to_contiguous(),
        OnFlex::Autodiff(t) => FlexAutodiff::inner(t).to_contiguous(),
    })
}

/// `t` as a constant tensor of `B` (`Flex` or `Autodiff<Flex>`).
///
/// # Panics
/// When `B` is neither.
pub(crate) fn from_flex<B: Backend, const D: usize>(t: FlexTensor) -> Tensor<B, D> {
    off_flex(OnFlex::Plain(t))
}

/// A contiguous f32 flex tensor of `shape` holding `values`, without a copy.
pub(crate) fn tensor_of(values: Vec<f32>, shape: Shape) -> FlexTensor {
    debug_assert_eq!(values.len(), shape.num_elements());
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}

/// `e^a` in f32 for `a` clamped to `[-87, 88]` (the normal range), within
/// about 2 ulp: Cody–Waite reduction by ln 2 and Cephes' degree-7 `expf`
/// polynomial, branch-free so loops over it vectorise. NaN stays NaN.
#[inline(always)]
pub(crate) fn exp_f32(a: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    /// 1.5·2²³: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let a = a.clamp(-87.0, 88.0);
    let n = (a * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = (a - n * LN2_HI) - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let p = (p * r) * r + r + 1.0;
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `gelu_new(x)` and its derivative at one point (MODEL-13), through
/// `gelu_new(x) = x·σ(2u)`, `u = √(2/π)·(x + 0.044715·x³)` (the same value as
/// `0.5·x·(1 + tanh u)`, without its cancellation for negative `x`):
/// `gelu_new'(x) = σ(2u)·(1 + 2x·(1 − σ(2u))·√(2/π)·(1 + 3·0.044715·x²))`.
#[inline(always)]
pub(crate) fn gelu_new_point(x: f32) -> (f32, f32) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const CUBIC: f32 = 0.044_715;
    let x2 = x * x;
    let u = SQRT_2_OVER_PI * (x + CUBIC * (x2 * x));
    let m = exp_f32(-2.0 * u); // e^{−2u}
    let s = 1.0 / (1.0 + m); // σ(2u)
    let one_minus_s = m * s;
    let q = SQRT_2_OVER_PI * (1.0 + (3.0 * CUBIC) * x2);
    (x * s, s * (1.0 + 2.0 * x * one_minus_s * q))
}

/// `gelu_new` of every element of `x`, and its derivative when asked, in one
/// parallel pass.
pub(crate) fn gelu_new(x: &FlexTensor, with_derivative: bool) -> (FlexTensor, Option<FlexTensor>) {
    let input = x.as_slice::<f32>().expect("to_flex gives contiguous f32");
    let shape = x.layout().shape().clone();
    let mut y = vec![0.0f32; input.len()];
    if !with_derivative {
        y.par_chunks_mut(CHUNK)
            .zip(input.par_chunks(CHUNK))
            .for_each(|(y, x)| {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = gelu_new_point(x).0;
                }
            });
        return (tensor_of(y, shape), None);
    }
    let mut d = vec![0.0f32; input.len()];
    y.par_chunks_mut(CHUNK)
        .zip(d.par_chunks_mut(CHUNK))
        .zip(input.par_chunks(CHUNK))
        .for_each(|((y, d), x)| {
            for ((y, d), &x) in y.iter_mut().zip(d.iter_mut()).zip(x) {
                (*y, *d) = gelu_new_point(x);
            }
        });
    (tensor_of(y, shape.clone()), Some(tensor_of(d, shape)))
}

/// Lanes of the row reductions: each row's max and sum are taken in this
/// many interleaved partials, combined in a fixed order.
const LANES: usize = 16;

/// The fused LM head + cross-entropy on the CPU (MODEL-14, MODEL-15): each
/// token's loss and, with `with_grads`, the gradients of their mean.
pub(crate) struct LmLossParts {
    /// `[tokens]`
    pub per_token: FlexTensor,
    /// `∂x` `[tokens, d_model]` and `∂W` `[vocab, d_model]`.
    pub grads: Option<(FlexTensor, FlexTensor)>,
}

/// Cross-entropy of `targets` under `x·Wᵀ` for `x` `[tokens, d_model]`, `w`
/// `[vocab, d_model]`, `rows` tokens per chunk: per chunk one gemm for the
/// logits (into a buffer of our own, never zeroed), one parallel row pass
/// that turns them into `G = (softmax − onehot)/N` in place, and with
/// gradients `∂x = G·W` and `∂W += Gᵀ·x`.
///
/// # Panics
/// When a target is outside `0..vocab` or the shapes disagree.
pub(crate) fn lm_loss(
    x: &FlexTensor,
    w: &FlexTensor,
    targets: &[i64],
    rows: usize,
    with_grads: bool,
) -> LmLossParts {
    let (xs, ws) = (f32s(x), f32s(w));
    let (n, d, vocab) = (targets.len(), x.layout().shape()[1], w.layout().shape()[0]);
    assert_eq!(xs.len(), n * d, "one target per row of x");
    assert_eq!(ws.len(), vocab * d, "x and W share d_model");
    let rows = rows.clamp(1, n.max(1));
    let inv_n = 1.0 / n.max(1) as f32;
    let mut per_token = vec![0.0f32; n];
    let mut dx = Vec::with_capacity(if with_grads { n * d } else { 0 });
    let mut dw: Option<Vec<f32>> = None;
    for start in (0..n).step_by(rows) {
        let len = rows.min(n - start);
        let xc = &xs[start * d..(start + len) * d];
        let yc = &targets[start..start + len];
        let mut g = matmul(xc, false, ws, true, [len, vocab, d]); // logits [len, vocab]
        exp_rows_in_place(
            &mut g,
            vocab,
            yc,
            &mut per_token[start..start + len],
            with_grads.then_some(inv_n),
        );
        if with_grads {
            dx.extend(matmul(&g, false, ws, false, [len, d, vocab])); // G·W
            match &mut dw {
                Some(acc) => matmul_add(acc, &g, true, xc, false, [vocab, d, len]),
                None => dw = Some(matmul(&g, true, xc, false, [vocab, d, len])), // Gᵀ·x
            }
        }
    }
    LmLossParts {
        per_token: tensor_of(per_token, Shape::new([n])),
        grads: dw.map(|dw| {
            (
                tensor_of(dx, Shape::new([n, d])),
                tensor_of(dw, Shape::new([vocab, d])),
            )
        }),
    }
}

/// The f32 elements of a contiguous tensor (as [`to_flex`] returns them).
pub(crate) fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("to_flex gives contiguous f32")
}

/// Per row of `buf` `[rows, vocab]` (logits), in place: `e = exp(logit −
/// max)`; `loss[r] = max − logit[target] + ln Σ e`. With `Some(1/N)`, the
/// row then becomes `G = e/(Σ e·N) − onehot(target)/N`. One row per task.
fn exp_rows_in_place(
    buf: &mut [f32],
    vocab: usize,
    targets: &[i64],
    loss: &mut [f32],
    grad_scale: Option<f32>,
) {
    buf.par_chunks_mut(vocab)
        .zip(loss.par_iter_mut())
        .zip(targets.par_iter())
        .for_each(|((row, loss), &target)| {
            let target = usize::try_from(target).expect("target ≥ 0");
            let picked = row[target];
            let max = row_max(row);
            for v in row.iter_mut() {
                *v = exp_f32(*v - max);
            }
            let sum = row_sum(row);
            *loss = (max - picked) + sum.ln();
            if let Some(inv_n) = grad_scale {
                let scale = inv_n / sum;
                for v in row.iter_mut() {
                    *v *= scale;
                }
                row[target] -= inv_n;
            }
        });
}

/// `a·b` as a new row-major `[m, n]` buffer (`[m, n, k]` = `dims`): `a` is
/// `[m, k]` row-major, or stored `[k, m]` when `a_t`; `b` is `[k, n]`, or
/// stored `[n, k]` when `b_t`. Parallel over rayon's pool (gemm).
fn matmul(a: &[f32], a_t: bool, b: &[f32], b_t: bool, dims: [usize; 3]) -> Vec<f32> {
    let [m, n, _] = dims;
    let mut out = Vec::with_capacity(m * n);
    // SAFETY: `out` has room for m·n elements; gemm with read_dst = false
    // writes every one of them before set_len makes them readable.
    unsafe {
        gemm_into(out.as_mut_ptr(), false, a, a_t, b, b_t, dims);
        out.set_len(m * n);
    }
    out
}

/// `out += a·b`, operands as in [`matmul`].
fn matmul_add(out: &mut [f32], a: &[f32], a_t: bool, b: &[f32], b_t: bool, dims: [usize; 3]) {
    assert_eq!(out.len(), dims[0] * dims[1], "output is [m, n]");
    // SAFETY: `out` holds m·n initialised elements.
    unsafe { gemm_into(out.as_mut_ptr(), true, a, a_t, b, b_t, dims) }
}

/// `dst (+)= a·b` through `gemm::gemm`, with the strides of [`matmul`]'s
/// layouts.
///
/// # Safety
/// `dst` points to `m·n` writable f32, initialised when `accumulate`.
unsafe fn gemm_into(
    dst: *mut f32,
    accumulate: bool,
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    [m, n, k]: [usize; 3],
) {
    assert_eq!(a.len(), m * k, "a is [m, k]");
    assert_eq!(b.len(), k * n, "b is [k, n]");
    let (m_i, n_i, k_i) = (m as isize, n as isize, k as isize);
    let a = if a_t {
        View::new(a.as_ptr(), 1, m_i)
    } else {
        View::new(a.as_ptr(), k_i, 1)
    };
    let b = if b_t {
        View::new(b.as_ptr(), 1, k_i)
    } else {
        View::new(b.as_ptr(), n_i, 1)
    };
    let par = gemm::Parallelism::Rayon(0);
    // SAFETY: the views address exactly the elements of the slices; dst per
    // the caller.
    unsafe { gemm_views([m, n, k], dst, n_i, accumulate, a, b, 1.0, par) }
}

/// A strided f32 matrix operand: element `(i, j)` at `ptr + i·rs + j·cs`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

impl View {
    /// The view of `ptr` with row stride `rs` and column stride `cs`.
    pub(crate) fn new(ptr: *const f32, rs: isize, cs: isize) -> Self {
        Self { ptr, rs, cs }
    }

    /// Its transpose (no data moves).
    pub(crate) fn t(self) -> Self {
        Self {
            ptr: self.ptr,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// `dst (+)= scale·a·b` for `a` `[m, k]`, `b` `[k, n]` and `dst` `[m, n]`
/// with row stride `dst_rs` and unit column stride.
///
/// # Safety
/// Every element the views and `dst` address for these sizes must be valid
/// (`dst`'s writable, and initialised when `accumulate`), and `dst` must not
/// overlap the operands or memory another thread touches meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_views(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    dst_rs: isize,
    accumulate: bool,
    a: View,
    b: View,
    scale: f32,
    par: gemm::Parallelism,
) {
    // SAFETY: per the caller. gemm computes dst := 1·dst + scale·a·b, and
    // never reads dst when read_dst (accumulate) is false.
    unsafe {
        gemm::gemm(
            m, n, k, dst, 1, dst_rs, accumulate, a.ptr, a.cs, a.rs, b.ptr, b.cs, b.rs, 1.0, scale,
            false, false, false, par,
        );
    }
}

/// The largest element of `row` (NaN-free input), in [`LANES`] partials.
fn row_max(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = if v > *a { v } else { *a };
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    acc.iter().fold(tail, |m, &v| m.max(v))
}

/// The sum of `row` in [`LANES`] partials, added in a fixed order.
fn row_sum(row: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += v;
        }
    }
    let tail: f32 = chunks.remainder().iter().sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        // MODEL-15: the polynomial exp is within 3 ulp (relative 3·2⁻²³) of
        // f64's exp over the whole clamped range.
        #[test]
        fn model_15_exp_within_three_ulp(a in -87.0f32..88.0) {
            let want = (a as f64).exp();
            let got = exp_f32(a) as f64;
            prop_assert!((got - want).abs() <= 3.0 * f32::EPSILON as f64 * want, "{a}: {got} vs {want}");
        }
    }

    // MODEL-15: outside the clamp the exp saturates instead of overflowing
    // to infinity or NaN, and NaN propagates.
    #[test]
    fn model_15_exp_saturates() {
        assert!(exp_f32(1e6).is_finite());
        assert!(exp_f32(-1e6) > 0.0 && exp_f32(-1e6) < 1e-37);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    // MODEL-15: both kernels give bit-identical results on 1 and 3 threads
    // (inputs large enough to be split into many tasks; the LM loss in
    // chunks of 3 rows, so ∂W is accumulated).
    #[test]
    fn model_15_kernels_do_not_depend_on_threads() {
        let (rows, vocab) = (7, 9000);
        let values: Vec<f32> = (0..vocab * 64)
            .map(|i| ((i * 7919 % 10007) as f32 / 1000.0) - 5.0)
            .collect();
        let targets: Vec<i64> = (0..rows as i64).map(|r| r * 1000).collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let x = tensor_of(values[..rows * vocab].to_vec(), Shape::new([rows, vocab]));
                let (y, d) = gelu_new(&x, true);
                let h = tensor_of(values[..rows * 64].to_vec(), Shape::new([rows, 64]));
                let w = tensor_of(values[..vocab * 64].to_vec(), Shape::new([vocab, 64]));
                let out = lm_loss(&h, &w, &targets, 3, true);
                let (dx, dw) = out.grads.unwrap();
                [y, d.unwrap(), out.per_token, dx, dw].map(|t| f32s(&t).to_vec())
            })
        };
        assert_eq!(run(1), run(3));
    }

    // MODEL-15: a non-flex tensor is handed back untouched, so callers run
    // the generic version; a flex one round-trips.
    #[test]
    fn model_15_to_flex_accepts_only_flex() {
        let dev = Default::default();
        let t = Tensor::<Flex, 1>::from_floats([1.0, 2.0], &dev);
        let flex = to_flex(t).expect("flex");
        let back: Tensor<FlexAutodiff, 1> = from_flex(flex);
        assert_eq!(back.into_data().to_vec::<f32>().unwrap(), vec![1.0, 2.0]);
        let f64_tensor =
            Tensor::<Flex, 1>::from_floats([1.0], &dev).cast(burn::tensor::FloatDType::F64);
        assert!(to_flex(f64_tensor).is_err(), "only f32 goes to the kernels");
    }
}
