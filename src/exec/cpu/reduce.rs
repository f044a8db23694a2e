//! Reductions: `ReduceMean`/`Sum`/`Max`/`Min`/`Prod`/`L1`/`L2`/`SumSquare`/`LogSumExp`
//! (axes as input, opset 13/18, or attribute, older), `keepdims`, `noop_with_empty_axes`;
//! and `ArgMax`/`ArgMin` (`keepdims`, `select_last_index`).
//!
//! Owns: reducing one tensor over a set of axes (accumulating in f64 for floats).
//! Does not own: normalizations (see `norm`).

use super::{Ctx, Elem, Num, OpResult, array, contiguous, invalid, norm_axis, typed, with_num};
use crate::graph::{Attributes, Tensor};
use ndarray::{ArrayD, Dimension};

#[derive(Clone, Copy, PartialEq)]
enum Reduce {
    Mean,
    Sum,
    Max,
    Min,
    Prod,
    L1,
    L2,
    SumSquare,
    LogSumExp,
}

/// The sorted, distinct axes a reduce node reduces over (`None`: do nothing).
fn reduce_axes(ctx: &Ctx, rank: usize) -> OpResult<Option<Vec<usize>>> {
    let axes = ctx.ints_input_or_attr(1, "axes")?.unwrap_or_default();
    if axes.is_empty() {
        return Ok(if ctx.node.attr_i_or("noop_with_empty_axes", 0) != 0 {
            None
        } else {
            Some((0..rank).collect())
        });
    }
    let mut out = axes
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<OpResult<Vec<_>>>()?;
    out.sort_unstable();
    out.dedup();
    Ok(Some(out))
}

fn reduce_typed<T: Num>(
    op: Reduce,
    a: &ArrayD<T>,
    axes: &[usize],
    keep: bool,
) -> OpResult<ArrayD<T>> {
    let shape = a.shape();
    let out_full: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let out_len: usize = out_full.iter().product();
    let count: usize = axes.iter().map(|&i| shape[i]).product();
    let init = match op {
        Reduce::Max => T::LOWEST.to_f64(),
        Reduce::Min => T::HIGHEST.to_f64(),
        Reduce::Prod => 1.0,
        _ => 0.0,
    };
    let mut acc = vec![init; out_len];
    // Row-major strides of the output (reduced dims have stride 0 in the mapping).
    let mut strides = vec![0usize; shape.len()];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        if !axes.contains(&i) {
            strides[i] = s;
            s *= out_full[i];
        }
    }
    let step = |slot: &mut f64, x: f64| {
        *slot = match op {
            Reduce::Mean | Reduce::Sum => *slot + x,
            Reduce::Max => slot.max(x),
            Reduce::Min => slot.min(x),
            Reduce::Prod => *slot * x,
            Reduce::L1 => *slot + x.abs(),
            Reduce::L2 | Reduce::SumSquare => *slot + x * x,
            Reduce::LogSumExp => *slot + x.exp(),
        }
    };
    let adjacent_axes = axes.windows(2).all(|w| w[1] == w[0] + 1);
    match (adjacent_axes, axes.last()) {
        (true, Some(&last)) => {
            // (outer, reduced, inner) view of row-major data: a tight loop.
            let inner: usize = shape[last + 1..].iter().product();
            let data = contiguous(a);
            for (o, block) in data
                .chunks((count * inner).max(1))
                .enumerate()
                .take(out_len / inner.max(1))
            {
                let dst = &mut acc[o * inner..][..inner];
                for row in block.chunks(inner.max(1)) {
                    for (slot, &v) in dst.iter_mut().zip(row) {
                        step(slot, v.to_f64());
                    }
                }
            }
        }
        _ => {
            for (idx, &v) in a.indexed_iter() {
                let o: usize = idx.slice().iter().zip(&strides).map(|(i, s)| i * s).sum();
                step(&mut acc[o], v.to_f64());
            }
        }
    }
    let values: Vec<T> = acc
        .into_iter()
        .map(|v| {
            let r = match op {
                Reduce::Mean => v / count.max(1) as f64,
                Reduce::L2 => v.sqrt(),
                Reduce::LogSumExp => v.ln(),
                _ => v,
            };
            if T::EXACT {
                T::from_i64(r as i64)
            } else {
                T::from_f64(r)
            }
        })
        .collect();
    let out_shape: Vec<usize> = if keep {
        out_full
    } else {
        shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect()
    };
    array(&out_shape, values)
}

fn reduce(ctx: &Ctx, op: Reduce) -> OpResult<Tensor> {
    let x = ctx.input(0)?;
    let Some(axes) = reduce_axes(ctx, x.shape().len())? else {
        return Ok(x.clone());
    };
    let keep = ctx.node.attr_i_or("keepdims", 1) != 0;
    with_num!(x, T => Ok(T::wrap(reduce_typed(op, typed::<T>(x, "input")?, &axes, keep)?)))
}

fn arg_extreme<T: Elem>(
    a: &ArrayD<T>,
    axis: usize,
    keep: bool,
    last: bool,
    max: bool,
) -> OpResult<Tensor> {
    let shape = a.shape();
    let len = shape[axis];
    if len == 0 {
        return Err(invalid("ArgMax/ArgMin over an empty axis"));
    }
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let data = contiguous(a);
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let mut best = 0usize;
            for j in 1..len {
                let (v, b) = (
                    data[(o * len + j) * inner + i],
                    data[(o * len + best) * inner + i],
                );
                let better = if max { v > b } else { v < b };
                if better || (last && v == b) {
                    best = j;
                }
            }
            out.push(best as i64);
        }
    }
    let mut out_shape = shape.to_vec();
    if keep {
        out_shape[axis] = 1;
    } else {
        out_shape.remove(axis);
    }
    Ok(Tensor::I64(array(&out_shape, out)?))
}

fn arg(ctx: &Ctx, max: bool) -> OpResult<Tensor> {
    let x = ctx.input(0)?;
    let axis = norm_axis(ctx.node.attr_i_or("axis", 0), x.shape().len())?;
    let keep = ctx.node.attr_i_or("keepdims", 1) != 0;
    let last = ctx.node.attr_i_or("select_last_index", 0) != 0;
    with_num!(x, T => arg_extreme(typed::<T>(x, "input")?, axis, keep, last, max))
}

/// Evaluates the reduction family; `Ok(None)` for other ops.
pub(crate) fn eval(op: &str, ctx: &Ctx) -> OpResult<Option<Vec<Tensor>>> {
    let kind = match op {
        "ReduceMean" => Reduce::Mean,
        "ReduceSum" => Reduce::Sum,
        "ReduceMax" => Reduce::Max,
        "ReduceMin" => Reduce::Min,
        "ReduceProd" => Reduce::Prod,
        "ReduceL1" => Reduce::L1,
        "ReduceL2" => Reduce::L2,
        "ReduceSumSquare" => Reduce::SumSquare,
        "ReduceLogSumExp" => Reduce::LogSumExp,
        "ArgMax" => return Ok(Some(vec![arg(ctx, true)?])),
        "ArgMin" => return Ok(Some(vec![arg(ctx, false)?])),
        _ => return Ok(None),
    };
    Ok(Some(vec![reduce(ctx, kind)?]))
}

#[cfg(test)]
mod tests {
    use crate::exec::cpu::eval_node;
    use crate::graph::{Node, Tensor, attr};
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn reduce_axes_from_input_or_attribute() {
        let x = Tensor::F32(
            ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1., 2., 3., 4., 5., 6.]).unwrap(),
        );
        let axes = Tensor::from_i64s(vec![-1]);
        let node = Node::new("r", "ReduceMean", &["x", "a"], &["y"]);
        let y = eval_node(&node, &[Some(&x), Some(&axes)]).unwrap();
        assert_eq!(
            y[0],
            Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[2, 1]), vec![2., 5.]).unwrap())
        );
        let old = Node::new("r", "ReduceSum", &["x"], &["y"])
            .with_attr(attr::ints("axes", &[0]))
            .with_attr(attr::int("keepdims", 0));
        let y = eval_node(&old, &[Some(&x)]).unwrap();
        assert_eq!(
            y[0],
            Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[3]), vec![5., 7., 9.]).unwrap())
        );
        let am = Node::new("a", "ArgMax", &["x"], &["y"]).with_attr(attr::int("axis", 1));
        assert_eq!(
            eval_node(&am, &[Some(&x)]).unwrap()[0]
                .to_i64_vec()
                .unwrap(),
            vec![2, 2]
        );
    }
}
