//! The machinery the CPU kernels share: the bridge between generic tensors
//! and Burn's `flex` backend, the runner of ops with a hand-written backward,
//! a vectorisable `exp`, row reductions and gemm wrappers.
//!
//! [`on_flex`] recognises at run time a tensor of `Flex` or `Autodiff<Flex>`
//! (the CPU backends) in f32 and [`off_flex`] puts a result back; any other
//! tensor is handed back unchanged, and the op runs its generic version
//! (see [`super`] for why this is a run-time check, not a trait bound).
//! Every sum is taken in a fixed order, so results are identical at any
//! thread count.

use std::any::Any;
use std::mem::MaybeUninit;

use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::{AutodiffBackend, Backend, BackendTypes};
use burn::tensor::{Bytes, DType, Shape, Tensor, TensorPrimitive};
use burn_flex::{FlexTensor, Layout};
use rayon::prelude::*;

/// The autodiff CPU backend whose tensors [`to_flex`] unwraps.
type FlexAutodiff = Autodiff<Flex>;
/// Its float tensor type (named through the trait: the struct is private).
pub(crate) type FlexAutodiffTensor = <FlexAutodiff as BackendTypes>::FloatTensorPrimitive;

/// Elements per rayon task of an element-wise kernel: large enough that the
/// task overhead is noise, small enough that two cores share a 2 MB tensor.
pub(crate) const CHUNK: usize = 1 << 14;

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

/// Runs `op`, a CPU op with a hand-written backward, on `inputs` (all of one
/// CPU backend). `forward(inputs, tracked)` gets them contiguous and whether
/// a backward pass will need its state; it returns the output and, when
/// tracked, that state. On `Autodiff<Flex>` the output is recorded as `op`
/// over the inputs' graph nodes.
///
/// # Panics
/// When the inputs mix plain and autodiff tensors, or a tracked forward
/// returns no state.
pub(crate) fn run_op<Op: Backward<Flex, N>, const N: usize>(
    op: Op,
    inputs: [OnFlex; N],
    forward: impl FnOnce([FlexTensor; N], bool) -> (FlexTensor, Option<Op::State>),
) -> OnFlex {
    const SAME: &str = "the inputs of an op share a backend";
    if inputs.iter().all(|t| matches!(t, OnFlex::Plain(_))) {
        let plain = inputs.map(|t| match t {
            OnFlex::Plain(t) => t.to_contiguous(),
            OnFlex::Autodiff(_) => unreachable!("{SAME}"),
        });
        return OnFlex::Plain(forward(plain, false).0);
    }
    let tracked = inputs.map(|t| match t {
        OnFlex::Autodiff(t) => t,
        OnFlex::Plain(_) => panic!("{SAME}"),
    });
    let nodes = tracked.each_ref().map(|t| t.node.clone());
    let values = tracked.map(|t| t.primitive.to_contiguous());
    let prep = op
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful();
    OnFlex::Autodiff(match prep {
        OpsKind::Tracked(prep) => {
            let (y, state) = forward(values, true);
            prep.finish(state.expect("a tracked forward returns its state"), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(values, false).0),
    })
}

/// The backward step of a `Backward<Flex, N>` op whose parts are computed
/// together: `parts(state, output gradient)` gives one gradient per parent,
/// and each parent that requires one gets it.
pub(crate) fn backward_parts<S, const N: usize>(
    ops: Ops<S, N>,
    grads: &mut Gradients,
    parts: impl FnOnce(S, FlexTensor) -> [FlexTensor; N],
) {
    let g = grads.consume::<Flex>(&ops.node);
    for (parent, grad) in ops.parents.into_iter().zip(parts(ops.state, g)) {
        if let Some(node) = parent {
            grads.register::<Flex>(node.id, grad);
        }
    }
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

/// Lanes of the row reductions: each row's max and sum are taken in this
/// many interleaved partials, combined in a fixed order.
const LANES: usize = 16;

/// The f32 elements of a contiguous tensor (as [`to_flex`] returns them).
pub(crate) fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("to_flex gives contiguous f32")
}

/// `a·b` as a new row-major `[m, n]` buffer (`[m, n, k]` = `dims`): `a` is
/// `[m, k]` row-major, or stored `[k, m]` when `a_t`; `b` is `[k, n]`, or
/// stored `[n, k]` when `b_t`. Parallel over rayon's pool (gemm).
pub(crate) fn matmul(a: &[f32], a_t: bool, b: &[f32], b_t: bool, dims: [usize; 3]) -> Vec<f32> {
    let [m, n, k] = dims;
    if k == 0 {
        return vec![0.0; m * n]; // an empty sum; not left to gemm's special cases
    }
    let mut out = Vec::with_capacity(m * n);
    // SAFETY: `out` has room for m·n elements; gemm with read_dst = false
    // writes every one of them before set_len makes them readable.
    unsafe {
        gemm_into(out.as_mut_ptr(), false, a, a_t, b, b_t, dims);
        out.set_len(m * n);
    }
    out
}

/// One product of a [`matmul_batch`]: `dst = a·b`, operands as in
/// [`matmul`] (`dims` = `[m, n, k]`); `dst` row-major `[m, n]`, or stored
/// `[n, m]` when `dst_t`. `dst` may be uninitialised: every element is
/// written.
pub(crate) struct Product<'a> {
    pub(crate) dst: &'a mut [MaybeUninit<f32>],
    pub(crate) dst_t: bool,
    pub(crate) a: &'a [f32],
    pub(crate) a_t: bool,
    pub(crate) b: &'a [f32],
    pub(crate) b_t: bool,
    pub(crate) dims: [usize; 3],
}

/// A buffer of `len` f32 for [`matmul_batch`] to fill: `fill(spare)` must
/// write every one of the `len` elements.
pub(crate) fn filled(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: per the caller, every element was written.
    unsafe { v.set_len(len) };
    v
}

/// Output columns per task of a [`matmul_batch`].
const BATCH_COLUMNS: usize = 256;

/// Every product of `batch` at once on rayon's pool: each split into
/// blocks of at most [`BATCH_COLUMNS`] output columns, each block one
/// single-threaded `matrixmultiply` sgemm. For many small products (the
/// experts' groups, MODEL-20), where a multithreaded gemm per product
/// wastes most of its tile on a few dozen rows. Each output element is
/// computed by one sgemm call, so the result does not depend on the
/// number of threads.
pub(crate) fn matmul_batch(batch: Vec<Product<'_>>) {
    /// A block's destination, shared with the task that writes it.
    #[derive(Clone, Copy)]
    struct Dst(*mut f32);
    // SAFETY: every task writes a disjoint block of columns of one product.
    unsafe impl Send for Dst {}
    unsafe impl Sync for Dst {}
    let mut tasks = Vec::new();
    for p in batch {
        let [m, n, k] = p.dims;
        assert_eq!(p.dst.len(), m * n, "output is [m, n]");
        assert_eq!(p.a.len(), m * k, "a is [m, k]");
        assert_eq!(p.b.len(), k * n, "b is [k, n]");
        if k == 0 {
            p.dst.fill(MaybeUninit::new(0.0)); // an empty sum
            continue;
        }
        let dst = Dst(p.dst.as_mut_ptr().cast::<f32>());
        for c0 in (0..n).step_by(BATCH_COLUMNS) {
            tasks.push((dst, p.dst_t, p.a, p.a_t, p.b, p.b_t, p.dims, c0));
        }
    }
    tasks
        .into_par_iter()
        .for_each(|(dst, dst_t, a, a_t, b, b_t, [m, n, k], c0)| {
            let cols = BATCH_COLUMNS.min(n - c0);
            let (rsa, csa) = if a_t {
                (1, m as isize)
            } else {
                (k as isize, 1)
            };
            let (rsb, csb) = if b_t {
                (1, k as isize)
            } else {
                (n as isize, 1)
            };
            let (rsc, csc) = if dst_t {
                (1, m as isize)
            } else {
                (n as isize, 1)
            };
            let b_block = if b_t { c0 * k } else { c0 };
            let c_block = if dst_t { c0 * m } else { c0 };
            // SAFETY: the strides address exactly the elements of `a`, of
            // `b`'s columns c0..c0+cols and of dst's; beta = 0 makes sgemm
            // write, not read, dst; no other task writes these columns.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    cols,
                    1.0,
                    a.as_ptr(),
                    rsa,
                    csa,
                    b.as_ptr().add(b_block),
                    rsb,
                    csb,
                    0.0,
                    dst.0.add(c_block),
                    rsc,
                    csc,
                );
            }
        });
}

/// `out += a·b`, operands as in [`matmul`].
pub(crate) fn matmul_add(
    out: &mut [f32],
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    dims: [usize; 3],
) {
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
pub(crate) fn row_max(row: &[f32]) -> f32 {
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
pub(crate) fn row_sum(row: &[f32]) -> f32 {
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

/// Rows per block of [`column_sums`].
const ROWS_PER_BLOCK: usize = 32;

/// The sum over rows of each column of the row-major `[rows, width]`
/// `values`: blocks of [`ROWS_PER_BLOCK`] rows summed in parallel, the
/// blocks added in order, so the result does not depend on the number of
/// threads. (A bias gradient.)
pub(crate) fn column_sums(values: &[f32], width: usize) -> Vec<f32> {
    let mut sums = vec![0.0f32; width];
    if width == 0 {
        return sums;
    }
    let partials: Vec<Vec<f32>> = values
        .par_chunks(ROWS_PER_BLOCK * width)
        .map(|block| {
            let mut acc = vec![0.0f32; width];
            for row in block.chunks_exact(width) {
                acc.iter_mut().zip(row).for_each(|(a, &g)| *a += g);
            }
            acc
        })
        .collect();
    for part in &partials {
        sums.iter_mut().zip(part).for_each(|(s, &p)| *s += p);
    }
    sums
}

/// `Σ a_i·b_i` in [`LANES`] partials, added in a fixed order.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let mut a_chunks = a.chunks_exact(LANES);
    let mut b_chunks = b.chunks_exact(LANES);
    for (ca, cb) in (&mut a_chunks).zip(&mut b_chunks) {
        for ((s, &x), &y) in acc.iter_mut().zip(ca).zip(cb) {
            *s += x * y;
        }
    }
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

/// Whether `B` is one of the CPU backends (`Flex`, `Autodiff<Flex>`), by
/// its float tensor type.
pub(crate) fn is_cpu_backend<B: Backend>() -> bool {
    let id = std::any::TypeId::of::<<B as BackendTypes>::FloatTensorPrimitive>();
    id == std::any::TypeId::of::<FlexTensor>() || id == std::any::TypeId::of::<FlexAutodiffTensor>()
}

/// `f` on a rayon pool of `threads` threads (the kernels' thread-count
/// tests).
#[cfg(test)]
pub(crate) fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool");
    pool.install(f)
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
