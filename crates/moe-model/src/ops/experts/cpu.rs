//! The experts of an MoE layer on the CPU as one op (MODEL-20): for each
//! non-empty group of the expert-sorted rows, `c_fc`, the bias and
//! `gelu_new` (value and derivative in one pass) and `c_proj`, each product
//! writing into the rows of one buffer shared by all groups, the products
//! of all groups run as one batch of single-threaded sgemm blocks
//! ([`matmul_batch`]: a multithreaded gemm per group of a few dozen rows
//! ran at a third of the dense layer's rate); the backward by hand. The same arithmetic as the dense MLP's
//! ops (MODEL-15, MODEL-18) on each group, without a `narrow` per group
//! (whose backward pads each group's gradient with zeros to the whole
//! buffer) or a `cat`.
//!
//! `burn-autodiff` ops have a fixed number of parents `N`; this one has the
//! sorted rows and four parameters per expert that got rows, so it is
//! instantiated for 1 to [`MAX_EXPERTS`] such experts (the generic path
//! runs beyond).

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::backend::Backend;
use burn::tensor::{Shape, Tensor};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::mlp::Mlp;
use crate::moe::DispatchPlan;
use crate::ops::cpu::{
    OnFlex, Product, backward_parts, column_sums, f32s, filled, matmul_batch, off_flex, on_flex,
    run_op, tensor_of,
};
use crate::ops::gelu::cpu::gelu_new_point;
use crate::ops::linear::cpu::add_bias;

/// The most experts with rows one op takes.
pub(crate) const MAX_EXPERTS: usize = 16;

/// One expert's group of rows and its parameters (contiguous f32).
#[derive(Clone)]
struct Group {
    start: usize,
    rows: usize,
    /// `c_fc` `[d_model, d_ff]`, its bias, `c_proj` `[d_ff, d_model]`, its bias.
    params: [FlexTensor; 4],
}

/// What backward needs: the sorted rows, the groups, and `gelu_new`'s value
/// and derivative at every hidden unit.
#[derive(Clone)]
struct State {
    x: FlexTensor,
    groups: Vec<Group>,
    act: Vec<f32>,
    deriv: Vec<f32>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rows: Vec<usize> = self.groups.iter().map(|g| g.rows).collect();
        f.debug_struct("State")
            .field("x", &self.x.layout().shape().dims::<2>())
            .field("group_rows", &rows)
            .finish()
    }
}

/// `(d_model, d_ff)` of a group's parameters.
fn dims(params: &[FlexTensor; 4]) -> (usize, usize) {
    let shape = params[0].layout().shape();
    (shape[0], shape[1])
}

/// `buffer` cut into one mutable slice per group (`width` values a row):
/// the groups are contiguous and in row order.
fn per_group<'a, T>(buffer: &'a mut [T], groups: &[Group], width: usize) -> Vec<&'a mut [T]> {
    let mut rest = buffer;
    let mut slices = Vec::with_capacity(groups.len());
    for g in groups {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(g.rows * width);
        slices.push(head);
        rest = tail;
    }
    slices
}

/// Group `g`'s rows of `buf` (`width` values a row).
fn rows_of<'a>(buf: &'a [f32], g: &Group, width: usize) -> &'a [f32] {
    &buf[g.start * width..(g.start + g.rows) * width]
}

/// The forward pass: the output rows and, when `keep`, the hidden units'
/// activations and derivatives. The products of all groups run as one
/// batch per layer ([`matmul_batch`]).
fn forward(x: &[f32], groups: &[Group], rows: usize, keep: bool) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (d, f) = dims(&groups[0].params);
    let mut act = filled(rows * f, |buf| {
        matmul_batch(
            per_group(buf, groups, f)
                .into_iter()
                .zip(groups)
                .map(|(dst, g)| Product {
                    dst,
                    dst_t: false,
                    a: rows_of(x, g, d),
                    a_t: false,
                    b: f32s(&g.params[0]),
                    b_t: false,
                    dims: [g.rows, f, d],
                })
                .collect(),
        )
    });
    let mut deriv = if keep {
        vec![0.0f32; rows * f]
    } else {
        Vec::new()
    };
    for g in groups {
        let b_fc = f32s(&g.params[1]);
        let a = &mut act[g.start * f..(g.start + g.rows) * f];
        if keep {
            a.par_chunks_mut(f)
                .zip(deriv[g.start * f..(g.start + g.rows) * f].par_chunks_mut(f))
                .for_each(|(a, dv)| {
                    for ((a, dv), &b) in a.iter_mut().zip(dv).zip(b_fc) {
                        (*a, *dv) = gelu_new_point(*a + b);
                    }
                });
        } else {
            a.par_chunks_mut(f).for_each(|a| {
                for (a, &b) in a.iter_mut().zip(b_fc) {
                    *a = gelu_new_point(*a + b).0;
                }
            });
        }
    }
    let mut y = filled(rows * d, |buf| {
        matmul_batch(
            per_group(buf, groups, d)
                .into_iter()
                .zip(groups)
                .map(|(dst, g)| Product {
                    dst,
                    dst_t: false,
                    a: rows_of(&act, g, f),
                    a_t: false,
                    b: f32s(&g.params[2]),
                    b_t: false,
                    dims: [g.rows, d, f],
                })
                .collect(),
        )
    });
    for g in groups {
        add_bias(
            &mut y[g.start * d..(g.start + g.rows) * d],
            f32s(&g.params[3]),
        );
    }
    (y, act, deriv)
}

/// The backward pass from the output gradient `g` `[rows, d_model]`: `∂x`,
/// then `(∂W_fc, ∂b_fc, ∂W_proj, ∂b_proj)` per group; the products of all
/// groups as two batches ([`matmul_batch`]). The products with a weight's
/// transpose are computed transposed (`∂xᵀ = W_fc·∂hᵀ`), so the weight is
/// read row by row.
fn backward(state: &State, g: &[f32]) -> Vec<FlexTensor> {
    let State {
        x,
        groups,
        act,
        deriv,
    } = state;
    let x = f32s(x);
    let (d, f) = dims(&groups[0].params);
    let rows = x.len() / d;
    // c_proj: ∂W_proj = actᵀ·g and ∂act = g·W_projᵀ.
    let mut dw_proj: Vec<Vec<f32>> = groups.iter().map(|_| Vec::with_capacity(f * d)).collect();
    let mut dh: Vec<f32> = Vec::with_capacity(rows * f);
    {
        let mut batch = Vec::with_capacity(2 * groups.len());
        let dh_groups = per_group(&mut dh.spare_capacity_mut()[..rows * f], groups, f);
        for ((grp, dw), dh_e) in groups.iter().zip(&mut dw_proj).zip(dh_groups) {
            let ge = rows_of(g, grp, d);
            batch.push(Product {
                dst: &mut dw.spare_capacity_mut()[..f * d],
                dst_t: false,
                a: rows_of(act, grp, f),
                a_t: true,
                b: ge,
                b_t: false,
                dims: [f, d, grp.rows],
            });
            batch.push(Product {
                dst: dh_e,
                dst_t: true,
                a: f32s(&grp.params[2]),
                a_t: false,
                b: ge,
                b_t: true,
                dims: [f, grp.rows, d],
            });
        }
        matmul_batch(batch);
    }
    // SAFETY: the batch wrote every element of each (groups cover all rows).
    unsafe {
        dh.set_len(rows * f);
        dw_proj.iter_mut().for_each(|v| v.set_len(f * d));
    }
    // gelu: ∂h = ∂act ⊙ gelu'.
    dh.par_chunks_mut(f)
        .zip(deriv.par_chunks(f))
        .for_each(|(h, dv)| h.iter_mut().zip(dv).for_each(|(h, &dv)| *h *= dv));
    // c_fc: ∂W_fc = xᵀ·∂h and ∂x = ∂h·W_fcᵀ.
    let mut dw_fc: Vec<Vec<f32>> = groups.iter().map(|_| Vec::with_capacity(d * f)).collect();
    let mut dx: Vec<f32> = Vec::with_capacity(rows * d);
    {
        let mut batch = Vec::with_capacity(2 * groups.len());
        let dx_groups = per_group(&mut dx.spare_capacity_mut()[..rows * d], groups, d);
        for ((grp, dw), dx_e) in groups.iter().zip(&mut dw_fc).zip(dx_groups) {
            let dh_e = rows_of(&dh, grp, f);
            batch.push(Product {
                dst: &mut dw.spare_capacity_mut()[..d * f],
                dst_t: false,
                a: rows_of(x, grp, d),
                a_t: true,
                b: dh_e,
                b_t: false,
                dims: [d, f, grp.rows],
            });
            batch.push(Product {
                dst: dx_e,
                dst_t: true,
                a: f32s(&grp.params[0]),
                a_t: false,
                b: dh_e,
                b_t: true,
                dims: [d, grp.rows, f],
            });
        }
        matmul_batch(batch);
    }
    // SAFETY: as above.
    unsafe {
        dx.set_len(rows * d);
        dw_fc.iter_mut().for_each(|v| v.set_len(d * f));
    }
    let mut parts = vec![tensor_of(dx, Shape::new([rows, d]))];
    for ((grp, dw_fc), dw_proj) in groups.iter().zip(dw_fc).zip(dw_proj) {
        parts.extend([
            tensor_of(dw_fc, Shape::new([d, f])),
            tensor_of(column_sums(rows_of(&dh, grp, f), f), Shape::new([f])),
            tensor_of(dw_proj, Shape::new([f, d])),
            tensor_of(column_sums(rows_of(g, grp, d), d), Shape::new([d])),
        ]);
    }
    parts
}

/// The `burn-autodiff` op: parents the sorted rows, then each group's four
/// parameters (`N = 1 + 4 · groups`).
#[derive(Debug)]
struct GroupedMlpOp<const N: usize>;

impl<const N: usize> Backward<Flex, N> for GroupedMlpOp<N> {
    type State = State;

    fn backward(self, ops: Ops<State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        backward_parts(ops, grads, |state, g| {
            let g = g.to_contiguous();
            let parts = backward(&state, f32s(&g));
            let Ok(parts) = <[FlexTensor; N]>::try_from(parts) else {
                unreachable!("one gradient per parent");
            };
            parts
        });
    }
}

/// Runs the op with its `N` inputs.
fn run<const N: usize>(inputs: Vec<OnFlex>, layout: Vec<(usize, usize)>, rows: usize) -> OnFlex {
    let Ok(inputs) = <[OnFlex; N]>::try_from(inputs) else {
        unreachable!("the caller passes 1 + 4 · groups inputs");
    };
    run_op(GroupedMlpOp::<N>, inputs, |tensors, tracked| {
        let mut tensors = tensors.into_iter();
        let x = tensors.next().expect("the sorted rows");
        let params: Vec<FlexTensor> = tensors.collect();
        let groups: Vec<Group> = layout
            .iter()
            .zip(params.chunks_exact(4))
            .map(|(&(start, rows), p)| Group {
                start,
                rows,
                params: [p[0].clone(), p[1].clone(), p[2].clone(), p[3].clone()],
            })
            .collect();
        let (d, _) = dims(&groups[0].params);
        let (y, act, deriv) = forward(f32s(&x), &groups, rows, tracked);
        let y = tensor_of(y, Shape::new([rows, d]));
        let state = State {
            x,
            groups,
            act,
            deriv,
        };
        (y, tracked.then_some(state))
    })
}

/// Calls [`run`] with `N = 1 + 4 · groups` for 1 to [`MAX_EXPERTS`] groups.
macro_rules! run_for_parents {
    ($inputs:expr, $layout:expr, $rows:expr; $($n:literal)*) => {
        match $inputs.len() {
            $($n => run::<$n>($inputs, $layout, $rows),)*
            n => unreachable!("{n} inputs: the caller checks the group count"),
        }
    };
}

/// [`super::grouped_mlp`] on a CPU backend, differentiable under autodiff;
/// `x_sorted` back unchanged on any other backend, for an MLP without
/// biases, or with more than [`MAX_EXPERTS`] (or no) experts with rows.
///
/// # Panics
/// When the experts' parameters are not on `x_sorted`'s CPU backend in f32.
pub(crate) fn grouped_mlp<B: Backend>(
    experts: &[Mlp<B>],
    x_sorted: Tensor<B, 2>,
    plan: &DispatchPlan,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let layout: Vec<(usize, usize, usize)> = plan.groups().collect();
    let biased = |e: usize| experts[e].c_fc.bias.is_some() && experts[e].c_proj.bias.is_some();
    if layout.is_empty() || layout.len() > MAX_EXPERTS || !layout.iter().all(|g| biased(g.0)) {
        return Err(x_sorted);
    }
    let x = on_flex(x_sorted)?;
    let same = "the experts' parameters share the rows' CPU backend in f32";
    let mut inputs = vec![x];
    for &(e, _, _) in &layout {
        let mlp = &experts[e];
        let bias = |l: &burn::nn::Linear<B>| l.bias.as_ref().expect("checked above").val();
        inputs.push(on_flex(mlp.c_fc.weight.val()).expect(same));
        inputs.push(on_flex(bias(&mlp.c_fc)).expect(same));
        inputs.push(on_flex(mlp.c_proj.weight.val()).expect(same));
        inputs.push(on_flex(bias(&mlp.c_proj)).expect(same));
    }
    let rows = plan.rows();
    let groups: Vec<(usize, usize)> = layout.iter().map(|&(_, s, n)| (s, n)).collect();
    let y = run_for_parents!(inputs, groups, rows; 5 9 13 17 21 25 29 33 37 41 45 49 53 57 61 65);
    Ok(off_flex(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    // MODEL-20: the grouped experts' forward and backward are bit-identical
    // on 1 and 3 threads (three groups, one of them bigger than a gemm
    // block).
    #[test]
    fn model_20_grouped_mlp_does_not_depend_on_threads() {
        let (d, f) = (24, 56);
        let layout = [(0, 70), (70, 3), (73, 40)];
        let rows = 113;
        let values = |n: usize, k: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * k % 1009) as f32 / 300.0) - 1.5)
                .collect()
        };
        let groups: Vec<Group> = layout
            .iter()
            .enumerate()
            .map(|(i, &(start, n))| Group {
                start,
                rows: n,
                params: [
                    tensor_of(values(d * f, 31 + i), Shape::new([d, f])),
                    tensor_of(values(f, 37 + i), Shape::new([f])),
                    tensor_of(values(f * d, 41 + i), Shape::new([f, d])),
                    tensor_of(values(d, 43 + i), Shape::new([d])),
                ],
            })
            .collect();
        let x = values(rows * d, 7919);
        let g = values(rows * d, 104_729);
        let run = |threads: usize| {
            crate::ops::cpu::on_threads(threads, || {
                let (y, act, deriv) = forward(&x, &groups, rows, true);
                let state = State {
                    x: tensor_of(x.clone(), Shape::new([rows, d])),
                    groups: groups.clone(),
                    act,
                    deriv,
                };
                let mut out = vec![y];
                out.extend(backward(&state, &g).iter().map(|t| f32s(t).to_vec()));
                out
            })
        };
        assert_eq!(run(1), run(3));
    }
}
