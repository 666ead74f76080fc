//! The model's hot ops, each as a pair: `<op>/mod.rs` holds the op as the
//! model calls it and its generic version (Burn tensor ops, every backend),
//! `<op>/cpu.rs` our multithreaded kernel for the CPU backends (MODEL-15 to
//! MODEL-18). Both are tested against the same references.
//!
//! | op | model calls | CPU kernel |
//! |---|---|---|
//! | [`linear`] | [`linear_rows`] | one `[rows, in]` gemm, hand-written backward |
//! | [`layer_norm`] | [`LayerNorm::forward`] | one pass per row, hand-written backward |
//! | [`gelu`] | [`gelu_new`] | value and derivative in one pass |
//! | [`attention`] | [`causal_self_attention`] | from `c_attn`'s output to the merged heads |
//! | [`lm_loss`] | [`lm_head_cross_entropy`] | the tied head and the cross-entropy fused |
//! | [`dispatch`] | [`dispatch_rows`], [`combine_rows`] | one pass over rows each, hand-written backward |
//! | [`experts`] | [`grouped_mlp`] | every expert's MLP on its group, one op, hand-written backward |
//!
//! Which one runs is decided by [`cpu_or_generic`], the one place that
//! looks at the backend: the kernel when the input is an f32 tensor of
//! `Flex` or `Autodiff<Flex>`, the generic version otherwise (other
//! backends, and bf16 under mixed precision). The check is made at run
//! time ([`cpu::on_flex`]) so that model code stays generic over
//! `B: Backend`; Burn's extension point (a backend trait implemented for
//! each backend and for `Autodiff<B>`) would add a bound to every generic
//! signature of three crates.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

pub(crate) mod attention;
pub(crate) mod cpu;
pub(crate) mod dispatch;
pub(crate) mod experts;
pub(crate) mod gelu;
pub(crate) mod layer_norm;
pub(crate) mod linear;
pub(crate) mod lm_loss;

pub use attention::causal_self_attention;
pub use dispatch::{combine_rows, dispatch_rows};
pub use experts::grouped_mlp;
pub use gelu::gelu_new;
pub use layer_norm::LayerNorm;
pub use linear::linear_rows;
pub use lm_loss::{LmLoss, lm_head_cross_entropy};

/// `cpu(x)` when it takes `x` (an f32 tensor of a CPU backend: the kernel
/// hands it back otherwise), else `generic(x)`.
pub(crate) fn cpu_or_generic<X, Y>(
    x: X,
    cpu: impl FnOnce(X) -> Result<Y, X>,
    generic: impl FnOnce(X) -> Y,
) -> Y {
    match cpu(x) {
        Ok(y) => y,
        Err(x) => generic(x),
    }
}

/// `x` detached and not requiring a gradient: a constant of the graph
/// (`detach` alone keeps a parameter's `require_grad`).
pub(crate) fn constant<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.detach().set_require_grad(false)
}
