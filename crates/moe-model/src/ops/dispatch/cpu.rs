//! Dispatch and combine on the CPU (MODEL-20): each one parallel pass over
//! rows with a hand-written backward (`burn-autodiff` `Backward` ops), in
//! place of a `select` whose backward scatters into a zeroed tensor and a
//! gate product and sum recorded op by op. Every row is written by one
//! task and every sum is taken in the order of the choices, so no result
//! depends on the number of threads.

use std::mem::MaybeUninit;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::backend::Backend;
use burn::tensor::{Shape, Tensor};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::moe::{DispatchPlan, NO_ROW};
use crate::ops::cpu::{backward_parts, dot, f32s, off_flex, on_flex, run_op, tensor_of};

/// Rows per rayon task: a few hundred KB of a wide model per task.
const ROWS_PER_TASK: usize = 16;

/// A buffer of `rows · width` f32 each of whose rows `fill(row, out)`
/// writes completely, rows in parallel.
fn by_rows(
    rows: usize,
    width: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let len = rows * width;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    if width > 0 {
        out.spare_capacity_mut()[..len]
            .par_chunks_mut(ROWS_PER_TASK * width)
            .enumerate()
            .for_each(|(task, chunk)| {
                for (i, row) in chunk.chunks_exact_mut(width).enumerate() {
                    fill(task * ROWS_PER_TASK + i, row);
                }
            });
    }
    // SAFETY: every row of the first `len` elements was written by `fill`.
    unsafe { out.set_len(len) };
    out
}

/// `out = src`.
fn copy_row(out: &mut [MaybeUninit<f32>], src: &[f32]) {
    for (o, &v) in out.iter_mut().zip(src) {
        o.write(v);
    }
}

/// `out = s · src`.
fn scaled_row(out: &mut [MaybeUninit<f32>], s: f32, src: &[f32]) {
    for (o, &v) in out.iter_mut().zip(src) {
        o.write(s * v);
    }
}

/// `out = 0`.
fn zero_row(out: &mut [MaybeUninit<f32>]) {
    out.fill(MaybeUninit::new(0.0));
}

/// Adds `src` (times `s`) to an initialised row `out`.
fn add_row(out: &mut [MaybeUninit<f32>], s: Option<f32>, src: &[f32]) {
    for (o, &v) in out.iter_mut().zip(src) {
        // SAFETY: the caller initialised the row before adding to it.
        let acc = unsafe { o.assume_init() };
        o.write(acc + s.map_or(v, |s| s * v));
    }
}

/// The dispatch gather: row `r` of the sorted buffer is `x[t]` for its
/// assignment's token `t`, zeros for padding.
fn gather(x: &[f32], width: usize, plan: &DispatchPlan) -> Vec<f32> {
    let top_k = plan.top_k;
    let assignment = plan.assignment_of_row();
    by_rows(plan.rows(), width, |r, out| match assignment[r] {
        NO_ROW => zero_row(out),
        a => {
            let t = a as usize / top_k;
            copy_row(out, &x[t * width..(t + 1) * width]);
        }
    })
}

/// The dispatch's backward: `∂x[t] = Σ_j g[row(t, j)]` over the kept
/// choices in order, 0 for a token none of whose choices was kept.
fn scatter_sum(g: &[f32], width: usize, plan: &DispatchPlan) -> Vec<f32> {
    let top_k = plan.top_k;
    let rows = plan.row_of_assignment();
    by_rows(plan.n_tokens, width, |t, out| {
        let mut first = true;
        for &r in &rows[t * top_k..(t + 1) * top_k] {
            if r == NO_ROW {
                continue;
            }
            let src = &g[r as usize * width..(r as usize + 1) * width];
            if first {
                copy_row(out, src);
                first = false;
            } else {
                add_row(out, None, src);
            }
        }
        if first {
            zero_row(out);
        }
    })
}

/// The combine: `y[t] = Σ_j gate[t, j] · y_sorted[row(t, j)]` over the kept
/// choices in order, 0 for a token none of whose choices was kept.
fn combine(y_sorted: &[f32], gate: &[f32], width: usize, plan: &DispatchPlan) -> Vec<f32> {
    let top_k = plan.top_k;
    let rows = plan.row_of_assignment();
    by_rows(plan.n_tokens, width, |t, out| {
        let mut first = true;
        for a in t * top_k..(t + 1) * top_k {
            let r = rows[a];
            if r == NO_ROW {
                continue;
            }
            let src = &y_sorted[r as usize * width..(r as usize + 1) * width];
            if first {
                scaled_row(out, gate[a], src);
                first = false;
            } else {
                add_row(out, Some(gate[a]), src);
            }
        }
        if first {
            zero_row(out);
        }
    })
}

/// The combine's backward: `∂y_sorted[row(t, j)] = gate[t, j] · g[t]` (0 for
/// padding rows) and `∂gate[t, j] = g[t] · y_sorted[row(t, j)]` (0 when
/// dropped).
fn combine_backward(
    y_sorted: &[f32],
    gate: &[f32],
    g: &[f32],
    width: usize,
    plan: &DispatchPlan,
) -> (Vec<f32>, Vec<f32>) {
    let top_k = plan.top_k;
    let assignment = plan.assignment_of_row();
    let d_sorted = by_rows(plan.rows(), width, |r, out| match assignment[r] {
        NO_ROW => zero_row(out),
        a => {
            let t = a as usize / top_k;
            scaled_row(out, gate[a as usize], &g[t * width..(t + 1) * width]);
        }
    });
    let rows = plan.row_of_assignment();
    let d_gate: Vec<f32> = (0..rows.len())
        .into_par_iter()
        .map(|a| match rows[a] {
            NO_ROW => 0.0,
            r => {
                let t = a / top_k;
                let r = r as usize;
                dot(
                    &g[t * width..(t + 1) * width],
                    &y_sorted[r * width..(r + 1) * width],
                )
            }
        })
        .collect();
    (d_sorted, d_gate)
}

/// The rows' width of a `[rows, width]` tensor.
fn width(t: &FlexTensor) -> usize {
    t.layout().shape()[1]
}

/// What the dispatch's backward needs: the plan and the row width.
#[derive(Clone)]
struct DispatchState {
    plan: DispatchPlan,
    width: usize,
}

impl std::fmt::Debug for DispatchState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatchState")
            .field("rows", &self.plan.rows())
            .field("tokens", &self.plan.n_tokens)
            .field("width", &self.width)
            .finish()
    }
}

/// The `burn-autodiff` dispatch op: parent `x`.
#[derive(Debug)]
struct DispatchOp;

impl Backward<Flex, 1> for DispatchOp {
    type State = DispatchState;

    fn backward(self, ops: Ops<DispatchState, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        backward_parts(ops, grads, |DispatchState { plan, width }, g| {
            let g = g.to_contiguous();
            let dx = scatter_sum(f32s(&g), width, &plan);
            [tensor_of(dx, Shape::new([plan.n_tokens, width]))]
        });
    }
}

/// [`super::dispatch_rows`] on a CPU backend, differentiable under
/// autodiff; `x` back unchanged on any other backend.
pub(crate) fn dispatch_rows<B: Backend>(
    x: Tensor<B, 2>,
    plan: &DispatchPlan,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let x = on_flex(x)?;
    Ok(off_flex(run_op(DispatchOp, [x], |[x], tracked| {
        let width = width(&x);
        let sorted = gather(f32s(&x), width, plan);
        let y = tensor_of(sorted, Shape::new([plan.rows(), width]));
        let state = DispatchState {
            plan: plan.clone(),
            width,
        };
        (y, tracked.then_some(state))
    })))
}

/// What the combine's backward needs: the sorted expert outputs, the gate
/// and the plan.
#[derive(Clone)]
struct CombineState {
    y_sorted: FlexTensor,
    gate: FlexTensor,
    plan: DispatchPlan,
}

impl std::fmt::Debug for CombineState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CombineState")
            .field("rows", &self.plan.rows())
            .field("tokens", &self.plan.n_tokens)
            .field("width", &width(&self.y_sorted))
            .finish()
    }
}

/// The `burn-autodiff` combine op: parents `y_sorted`, `gate`.
#[derive(Debug)]
struct CombineOp;

impl Backward<Flex, 2> for CombineOp {
    type State = CombineState;

    fn backward(self, ops: Ops<CombineState, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        backward_parts(ops, grads, |state, g| {
            let g = g.to_contiguous();
            let CombineState {
                y_sorted,
                gate,
                plan,
            } = state;
            let width = width(&y_sorted);
            let (d_sorted, d_gate) =
                combine_backward(f32s(&y_sorted), f32s(&gate), f32s(&g), width, &plan);
            [
                tensor_of(d_sorted, Shape::new([plan.rows(), width])),
                tensor_of(d_gate, Shape::new([plan.n_tokens, plan.top_k])),
            ]
        });
    }
}

/// [`super::combine_rows`] on a CPU backend, differentiable under
/// autodiff; `y_sorted` back unchanged on any other backend.
///
/// # Panics
/// When `y_sorted` is on a CPU backend and `gate` is not on the same one.
pub(crate) fn combine_rows<B: Backend>(
    y_sorted: Tensor<B, 2>,
    gate: Tensor<B, 2>,
    plan: &DispatchPlan,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let y_sorted = on_flex(y_sorted)?;
    let gate = on_flex(gate).expect("y_sorted and the gate share a CPU backend in f32");
    Ok(off_flex(run_op(
        CombineOp,
        [y_sorted, gate],
        |[y_sorted, gate], tracked| {
            let width = width(&y_sorted);
            let y = combine(f32s(&y_sorted), f32s(&gate), width, plan);
            let y = tensor_of(y, Shape::new([plan.n_tokens, width]));
            let state = CombineState {
                y_sorted,
                gate,
                plan: plan.clone(),
            };
            (y, tracked.then_some(state))
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A top-2 plan over 37 tokens and 5 experts with a capacity and
    /// padding: dropped assignments, padding rows and tokens with no kept
    /// choice all occur.
    fn plan() -> DispatchPlan {
        let ids: Vec<usize> = (0..37 * 2)
            .map(|a| {
                let (t, j) = (a / 2, a % 2);
                (t * 7 + j * 3) % 5
            })
            .collect();
        DispatchPlan::from_ids(&ids, [37, 2], 5, Some(9), 4)
    }

    // MODEL-20: dispatch and combine, forward and backward, are
    // bit-identical on 1 and 3 threads.
    #[test]
    fn model_20_dispatch_and_combine_do_not_depend_on_threads() {
        let plan = plan();
        assert!(plan.dropped() > 0 && plan.rows() > plan.kept.iter().sum::<usize>());
        let width = 40;
        let values = |n: usize, k: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * k % 1009) as f32 / 300.0) - 1.5)
                .collect()
        };
        let x = values(37 * width, 7919);
        let gate = values(37 * 2, 31);
        let g_sorted = values(plan.rows() * width, 104_729);
        let g = values(37 * width, 37);
        let run = |threads: usize| {
            crate::ops::cpu::on_threads(threads, || {
                let sorted = gather(&x, width, &plan);
                let dx = scatter_sum(&g_sorted, width, &plan);
                let y = combine(&g_sorted, &gate, width, &plan);
                let (d_sorted, d_gate) = combine_backward(&g_sorted, &gate, &g, width, &plan);
                [sorted, dx, y, d_sorted, d_gate]
            })
        };
        assert_eq!(run(1), run(3));
    }
}
