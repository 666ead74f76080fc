//! Dispatch and combine of the MoE layer (MOE-7, MODEL-20): the tokens'
//! rows gathered into the expert-sorted buffer of a [`DispatchPlan`], and
//! the experts' rows gathered back and weighted by the gate. The CPU
//! kernels are [`cpu::dispatch_rows`] and [`cpu::combine_rows`].

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::cpu_or_generic;
use crate::moe::{DispatchPlan, NO_ROW};

pub(crate) mod cpu;

/// `x`'s row of each row of the plan's sorted buffer (the token of its
/// assignment), zeros for padding rows (MOE-16): on the CPU backend one op
/// with a hand-written backward, elsewhere a `select`.
///
/// # Shapes
/// - `x`: `[tokens, d]` → `[plan.rows(), d]`
pub fn dispatch_rows<B: Backend>(x: Tensor<B, 2>, plan: &DispatchPlan) -> Tensor<B, 2> {
    cpu_or_generic(
        x,
        |x| cpu::dispatch_rows(x, plan),
        |x| dispatch_rows_generic(x, plan),
    )
}

/// `y[t] = Σ_j gate[t, j] · y_sorted[row(t, j)]`, the sum over the choices
/// in order, dropped assignments contributing nothing (MOE-6, MOE-7): on
/// the CPU backend one op with a hand-written backward, elsewhere a
/// `select`, a product and a sum.
///
/// # Shapes
/// - `y_sorted`: `[plan.rows(), d]`, `gate`: `[tokens, top_k]` → `[tokens, d]`
pub fn combine_rows<B: Backend>(
    y_sorted: Tensor<B, 2>,
    gate: Tensor<B, 2>,
    plan: &DispatchPlan,
) -> Tensor<B, 2> {
    let gate_for_generic = gate.clone();
    cpu_or_generic(
        y_sorted,
        |y| cpu::combine_rows(y, gate, plan),
        |y| combine_rows_generic(y, gate_for_generic, plan),
    )
}

/// [`dispatch_rows`] with generic ops: a `select` of `x`'s rows, from `x`
/// with a zero row appended when there is padding.
pub(crate) fn dispatch_rows_generic<B: Backend>(
    x: Tensor<B, 2>,
    plan: &DispatchPlan,
) -> Tensor<B, 2> {
    let [n_tokens, d] = x.dims();
    let top_k = plan.top_k as u32;
    let source_row: Vec<i64> = plan
        .assignment_of_row()
        .iter()
        .map(|&a| match a {
            NO_ROW => n_tokens as i64, // the appended zero row
            a => (a / top_k) as i64,
        })
        .collect();
    let padded = plan.assignment_of_row().contains(&NO_ROW);
    let device = x.device();
    let source = if padded {
        let zero = Tensor::zeros([1, d], (&device, x.dtype()));
        Tensor::cat(vec![x, zero], 0) // [tokens + 1, d]
    } else {
        x
    };
    let rows = source_row.len();
    let index = Tensor::<B, 1, Int>::from_data(TensorData::new(source_row, [rows]), &device);
    source.select(0, index) // [rows, d]
}

/// [`combine_rows`] with generic ops: each assignment's row gathered (a
/// zero row for a dropped one), multiplied by its gate and summed over
/// the choices.
pub(crate) fn combine_rows_generic<B: Backend>(
    y_sorted: Tensor<B, 2>,
    gate: Tensor<B, 2>,
    plan: &DispatchPlan,
) -> Tensor<B, 2> {
    let [rows, d] = y_sorted.dims();
    let (n_tokens, top_k) = (plan.n_tokens, plan.top_k);
    let n_assign = n_tokens * top_k;
    let row: Vec<i64> = plan
        .row_of_assignment()
        .iter()
        .map(|&r| match r {
            NO_ROW => rows as i64, // the appended zero row
            r => r as i64,
        })
        .collect();
    let dropped = plan.row_of_assignment().contains(&NO_ROW);
    let device = y_sorted.device();
    let source = if dropped {
        let zero = Tensor::zeros([1, d], (&device, y_sorted.dtype()));
        Tensor::cat(vec![y_sorted, zero], 0) // [rows + 1, d]
    } else {
        y_sorted
    };
    let index = Tensor::<B, 1, Int>::from_data(TensorData::new(row, [n_assign]), &device);
    let weighted = source.select(0, index) * gate.reshape([n_assign, 1]); // [A, d]
    if top_k == 1 {
        return weighted; // [tokens, d]
    }
    weighted
        .reshape([n_tokens, top_k, d])
        .sum_dim(1) // [tokens, 1, d]
        .reshape([n_tokens, d])
}
