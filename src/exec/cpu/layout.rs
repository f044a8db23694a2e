//! Ops that move data without arithmetic, for every element type: `Reshape`, `Flatten`,
//! `Squeeze`, `Unsqueeze`, `Transpose`, `Concat`, `Split`, `Slice`, `Expand`, `Tile`, `Pad`.
//!
//! Owns: ONNX's shape rules for these ops (Reshape's 0 and -1, Slice's clamping and negative
//! steps, Split's sizes, Pad's modes and negative pads).
//! Does not own: index-driven ops (`Gather`, `ScatterND`: see `index`).

use super::elementwise::broadcast_shape;
use super::{
    Ctx, Elem, OpResult, array, invalid, norm_axis, to_vec, typed, unsupported, with_elem,
};
use crate::graph::{Attributes, Tensor};
use ndarray::{ArrayD, Axis, IxDyn, Slice};

/// The same data under a new shape (row-major order kept).
fn with_shape(t: &Tensor, shape: &[usize]) -> OpResult<Tensor> {
    let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if count != Some(t.len()) {
        return Err(invalid(format!(
            "cannot reshape {:?} ({} values) to {shape:?}",
            t.shape(),
            t.len()
        )));
    }
    with_elem!(t, T => Ok(T::wrap(array(shape, to_vec(typed::<T>(t, "input")?))?)))
}

/// Reshape's target dims: 0 copies the input dim (unless `allowzero`), one -1 is inferred.
pub(crate) fn reshape_dims(input: &[usize], spec: &[i64], allowzero: bool) -> OpResult<Vec<usize>> {
    let total: usize = input.iter().product();
    let mut infer = None;
    let mut dims = Vec::with_capacity(spec.len());
    for (i, &d) in spec.iter().enumerate() {
        dims.push(match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            0 if !allowzero => *input
                .get(i)
                .ok_or_else(|| invalid(format!("shape {spec:?} copies dim {i} the input lacks")))?,
            d if d >= 0 => d as usize,
            _ => return Err(invalid(format!("invalid reshape target {spec:?}"))),
        });
    }
    if let Some(i) = infer {
        let known: usize = dims.iter().product();
        if known == 0 || !total.is_multiple_of(known) {
            return Err(invalid(format!(
                "cannot infer -1 in {spec:?} for {input:?}"
            )));
        }
        dims[i] = total / known;
    }
    Ok(dims)
}

fn reshape(ctx: &Ctx) -> OpResult<Tensor> {
    let x = ctx.input(0)?;
    let spec = ctx
        .ints_input_or_attr(1, "shape")?
        .ok_or_else(|| invalid("the target shape is missing"))?;
    let dims = reshape_dims(x.shape(), &spec, ctx.node.attr_i_or("allowzero", 0) != 0)?;
    with_shape(x, &dims)
}

fn flatten(ctx: &Ctx) -> OpResult<Tensor> {
    let x = ctx.input(0)?;
    let rank = x.shape().len();
    let axis = ctx.node.attr_i_or("axis", 1);
    let axis = if axis == rank as i64 {
        rank
    } else {
        norm_axis(axis, rank)?
    };
    let outer: usize = x.shape()[..axis].iter().product();
    with_shape(x, &[outer, x.len() / outer.max(1)])
}

fn squeeze(ctx: &Ctx) -> OpResult<Tensor> {
    let x = ctx.input(0)?;
    let shape = x.shape();
    let axes = match ctx.ints_input_or_attr(1, "axes")? {
        Some(a) => a
            .iter()
            .map(|&a| norm_axis(a, shape.len()))
            .collect::<OpResult<Vec<_>>>()?,
        None => (0..shape.len()).filter(|&i| shape[i] == 1).collect(),
    };
    if let Some(&bad) = axes.iter().find(|&&a| shape[a] != 1) {
        return Err(invalid(format!("cannot squeeze axis {bad} of {shape:?}")));
    }
    let dims: Vec<usize> = (0..shape.len())
        .filter(|i| !axes.contains(i))
        .map(|i| shape[i])
        .collect();
    with_shape(x, &dims)
}

fn unsqueeze(ctx: &Ctx) -> OpResult<Tensor> {
    let x = ctx.input(0)?;
    let axes = ctx
        .ints_input_or_attr(1, "axes")?
        .ok_or_else(|| invalid("axes are required"))?;
    let rank = x.shape().len() + axes.len();
    let mut axes = axes
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<OpResult<Vec<_>>>()?;
    axes.sort_unstable();
    if axes.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("axes repeat"));
    }
    let mut src = x.shape().iter();
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            if axes.contains(&i) {
                1
            } else {
                src.next().copied().unwrap_or(1)
            }
        })
        .collect();
    with_shape(x, &dims)
}

fn transpose(ctx: &Ctx) -> OpResult<Tensor> {
    let x = ctx.input(0)?;
    let rank = x.shape().len();
    let perm: Vec<usize> = match ctx.node.attr_ints("perm") {
        Some(p) => p
            .iter()
            .map(|&a| norm_axis(a, rank))
            .collect::<OpResult<_>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut seen = perm.clone();
    seen.sort_unstable();
    if seen != (0..rank).collect::<Vec<_>>() {
        return Err(invalid(format!(
            "perm {perm:?} is not a permutation of rank {rank}"
        )));
    }
    with_elem!(x, T => {
        let a = typed::<T>(x, "input")?;
        Ok(T::wrap(a.view().permuted_axes(IxDyn(&perm)).as_standard_layout().into_owned()))
    })
}

fn concat_typed<T: Elem>(inputs: &[&Tensor], axis: usize) -> OpResult<ArrayD<T>> {
    let views = inputs
        .iter()
        .map(|t| typed::<T>(t, "every input").map(|a| a.view()))
        .collect::<OpResult<Vec<_>>>()?;
    ndarray::concatenate(Axis(axis), &views)
        .map_err(|e| invalid(format!("inputs cannot be concatenated: {e}")))
}

fn concat(ctx: &Ctx) -> OpResult<Tensor> {
    let inputs = ctx.all();
    let first = inputs
        .first()
        .ok_or_else(|| invalid("needs at least one input"))?;
    let axis = norm_axis(
        ctx.node
            .attr_i("axis")
            .ok_or_else(|| invalid("axis is required"))?,
        first.shape().len(),
    )?;
    with_elem!(first, T => Ok(T::wrap(concat_typed::<T>(&inputs, axis)?)))
}

/// A view's owned copy restricted to `range` on `axis`.
fn slice_axis<T: Elem>(a: &ArrayD<T>, axis: usize, slice: Slice) -> ArrayD<T> {
    a.slice_axis(Axis(axis), slice)
        .as_standard_layout()
        .into_owned()
}

fn split(ctx: &Ctx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let axis = norm_axis(ctx.node.attr_i_or("axis", 0), x.shape().len())?;
    let dim = x.shape()[axis];
    let outputs = ctx.output_count();
    let sizes: Vec<usize> = match ctx.ints_input_or_attr(1, "split")? {
        Some(s) => s
            .iter()
            .map(|&v| usize::try_from(v).map_err(|_| invalid("split sizes must be >= 0")))
            .collect::<OpResult<_>>()?,
        None => {
            let parts = ctx
                .node
                .attr_i("num_outputs")
                .map_or(outputs, |n| n.max(1) as usize);
            let chunk = dim.div_ceil(parts.max(1));
            (0..parts)
                .map(|i| chunk.min(dim.saturating_sub(i * chunk)))
                .collect()
        }
    };
    if sizes.iter().sum::<usize>() != dim {
        return Err(invalid(format!(
            "split sizes {sizes:?} do not add up to {dim}"
        )));
    }
    let mut start = 0;
    let mut out = Vec::with_capacity(sizes.len());
    for s in sizes {
        let slice = Slice::from(start..start + s);
        out.push(with_elem!(x, T => T::wrap(slice_axis(typed::<T>(x, "input")?, axis, slice))));
        start += s;
    }
    Ok(out)
}

/// ONNX Slice bounds on one axis of length `dim`, as an ndarray slice.
pub(crate) fn slice_bounds(dim: usize, start: i64, end: i64, step: i64) -> OpResult<Slice> {
    if step == 0 {
        return Err(invalid("slice step must not be 0"));
    }
    if dim == 0 {
        return Ok(Slice::new(0, Some(0), 1));
    }
    let d = dim as i64;
    let resolve = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (s, e) = (resolve(start), resolve(end));
    Ok(if step > 0 {
        let s = s.clamp(0, d);
        let e = e.clamp(0, d);
        if e <= s {
            Slice::new(0, Some(0), 1)
        } else {
            Slice::new(s as isize, Some(e as isize), step as isize)
        }
    } else {
        let s = s.clamp(0, d - 1);
        let e = e.clamp(-1, d - 1);
        if s <= e {
            Slice::new(0, Some(0), 1)
        } else {
            Slice::new((e + 1) as isize, Some((s + 1) as isize), step as isize)
        }
    })
}

fn slice(ctx: &Ctx) -> OpResult<Tensor> {
    let x = ctx.input(0)?;
    let rank = x.shape().len();
    let starts = ctx
        .ints_input_or_attr(1, "starts")?
        .ok_or_else(|| invalid("starts are required"))?;
    let ends = ctx
        .ints_input_or_attr(2, "ends")?
        .ok_or_else(|| invalid("ends are required"))?;
    let axes = ctx
        .ints_input_or_attr(3, "axes")?
        .unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = ctx.ints_input(4)?.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(invalid(
            "starts, ends, axes and steps must have the same length",
        ));
    }
    let mut slices: Vec<Slice> = vec![Slice::from(..); rank];
    for i in 0..starts.len() {
        let axis = norm_axis(axes[i], rank)?;
        slices[axis] = slice_bounds(x.shape()[axis], starts[i], ends[i], steps[i])?;
    }
    with_elem!(x, T => {
        let a = typed::<T>(x, "input")?;
        Ok(T::wrap(a.slice_each_axis(|ax| slices[ax.axis.index()]).as_standard_layout().into_owned()))
    })
}

fn expand(ctx: &Ctx) -> OpResult<Tensor> {
    let x = ctx.input(0)?;
    let target: Vec<usize> = ctx
        .ints_input(1)?
        .ok_or_else(|| invalid("shape is required"))?
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| invalid("shape must be >= 0")))
        .collect::<OpResult<_>>()?;
    let shape = broadcast_shape(&[x.shape(), &target])?;
    with_elem!(x, T => {
        let a = typed::<T>(x, "input")?;
        let b = a.broadcast(IxDyn(&shape)).ok_or_else(|| invalid("broadcast failed"))?;
        Ok(T::wrap(b.as_standard_layout().into_owned()))
    })
}

fn tile(ctx: &Ctx) -> OpResult<Tensor> {
    let x = ctx.input(0)?;
    let repeats = ctx
        .ints_input(1)?
        .ok_or_else(|| invalid("repeats are required"))?;
    if repeats.len() != x.shape().len() || repeats.iter().any(|&r| r < 0) {
        return Err(invalid(format!(
            "repeats {repeats:?} must be {} values >= 0",
            x.shape().len()
        )));
    }
    with_elem!(x, T => {
        let mut a = typed::<T>(x, "input")?.clone();
        for (axis, &r) in repeats.iter().enumerate() {
            if r != 1 {
                let views = vec![a.view(); r as usize];
                a = if views.is_empty() {
                    let mut shape = a.shape().to_vec();
                    shape[axis] = 0;
                    array(&shape, Vec::new())?
                } else {
                    ndarray::concatenate(Axis(axis), &views).map_err(|e| invalid(e.to_string()))?
                };
            }
        }
        Ok(T::wrap(a))
    })
}

#[derive(Clone, Copy, PartialEq)]
enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

/// The source index (or `None` = fill) for each output position along one axis. Negative pads
/// crop first; the positive pads then extend the cropped axis (as onnxruntime does).
fn pad_indices(len: usize, before: i64, after: i64, mode: PadMode) -> OpResult<Vec<Option<usize>>> {
    let first = (-before).max(0);
    let n = len as i64 - first - (-after).max(0);
    if n < 0 {
        return Err(invalid("pads remove more than the whole axis"));
    }
    let (before, after) = (before.max(0), after.max(0));
    if n == 0 && mode != PadMode::Constant && before + after > 0 {
        return Err(invalid("cannot pad an empty axis in this mode"));
    }
    let source = |i: i64| -> Option<i64> {
        if (0..n).contains(&i) {
            return Some(i);
        }
        match mode {
            PadMode::Constant => None,
            PadMode::Edge => Some(i.clamp(0, n - 1)),
            PadMode::Wrap => Some(i.rem_euclid(n)),
            PadMode::Reflect if n == 1 => Some(0),
            PadMode::Reflect => {
                let period = 2 * (n - 1);
                let m = i.rem_euclid(period);
                Some(if m < n { m } else { period - m })
            }
        }
    };
    Ok((-before..n + after)
        .map(|i| source(i).map(|s| (s + first) as usize))
        .collect())
}

fn pad_typed<T: Elem>(ctx: &Ctx, a: &ArrayD<T>, mode: PadMode) -> OpResult<ArrayD<T>> {
    let rank = a.ndim();
    let pads = ctx
        .ints_input_or_attr(1, "pads")?
        .ok_or_else(|| invalid("pads are required"))?;
    let axes: Vec<usize> = match ctx.ints_input(3)? {
        Some(ax) => ax
            .iter()
            .map(|&v| norm_axis(v, rank))
            .collect::<OpResult<_>>()?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(invalid(format!(
            "pads {pads:?} must have {} values",
            2 * axes.len()
        )));
    }
    let fill = match ctx.opt(2) {
        Some(t) => typed::<T>(t, "constant_value")?
            .iter()
            .next()
            .copied()
            .unwrap_or(T::from_i64(0)),
        None => T::from_f64(ctx.node.attr_f_or("value", 0.0) as f64),
    };
    let mut cur = a.clone();
    for (i, &axis) in axes.iter().enumerate() {
        let (before, after) = (pads[i], pads[i + axes.len()]);
        if before == 0 && after == 0 {
            continue;
        }
        let idx = pad_indices(cur.shape()[axis], before, after, mode)?;
        let mut shape = cur.shape().to_vec();
        shape[axis] = idx.len();
        let mut next = ArrayD::from_elem(IxDyn(&shape), fill);
        for (o, src) in idx.iter().enumerate() {
            if let Some(s) = src {
                next.index_axis_mut(Axis(axis), o)
                    .assign(&cur.index_axis(Axis(axis), *s));
            }
        }
        cur = next;
    }
    Ok(cur)
}

fn pad(ctx: &Ctx) -> OpResult<Tensor> {
    let mode = match ctx.attr_s_or("mode", "constant").as_str() {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" => PadMode::Wrap,
        other => return Err(unsupported(format!("mode = {other}"))),
    };
    let x = ctx.input(0)?;
    with_elem!(x, T => Ok(T::wrap(pad_typed(ctx, typed::<T>(x, "input")?, mode)?)))
}

/// Evaluates the layout family; `Ok(None)` for other ops.
pub(crate) fn eval(op: &str, ctx: &Ctx) -> OpResult<Option<Vec<Tensor>>> {
    let out = match op {
        "Reshape" => reshape(ctx)?,
        "Flatten" => flatten(ctx)?,
        "Squeeze" => squeeze(ctx)?,
        "Unsqueeze" => unsqueeze(ctx)?,
        "Transpose" => transpose(ctx)?,
        "Concat" => concat(ctx)?,
        "Split" => return split(ctx).map(Some),
        "Slice" => slice(ctx)?,
        "Expand" => expand(ctx)?,
        "Tile" => tile(ctx)?,
        "Pad" => pad(ctx)?,
        _ => return Ok(None),
    };
    Ok(Some(vec![out]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::cpu::eval_node;
    use crate::graph::{Node, attr};

    fn run(node: &Node, inputs: &[&Tensor]) -> Vec<Tensor> {
        let args: Vec<Option<&Tensor>> = inputs.iter().map(|t| Some(*t)).collect();
        eval_node(node, &args).unwrap()
    }

    fn i64s(shape: &[usize], v: Vec<i64>) -> Tensor {
        Tensor::I64(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
    }

    #[test]
    fn reshape_zero_and_minus_one() {
        assert_eq!(
            reshape_dims(&[2, 3, 4], &[0, -1], false).unwrap(),
            vec![2, 12]
        );
        // allowzero: 0 is a real zero, so -1 cannot be inferred
        assert!(reshape_dims(&[2, 3, 4], &[-1, 0, 2], true).is_err());
        assert!(reshape_dims(&[2, 3, 4], &[5, -1], false).is_err());
    }

    #[test]
    fn slice_clamps_and_steps_backwards() {
        let x = i64s(&[5], vec![0, 1, 2, 3, 4]);
        let s = |a: i64, b: i64, st: i64| {
            let node = Node::new("s", "Slice", &["x", "a", "b", "ax", "st"], &["y"]);
            run(
                &node,
                &[
                    &x,
                    &Tensor::from_i64s(vec![a]),
                    &Tensor::from_i64s(vec![b]),
                    &Tensor::from_i64s(vec![0]),
                    &Tensor::from_i64s(vec![st]),
                ],
            )[0]
            .to_i64_vec()
            .unwrap()
        };
        assert_eq!(s(1, i64::MAX, 1), vec![1, 2, 3, 4]);
        assert_eq!(s(-1, i64::MIN, -1), vec![4, 3, 2, 1, 0]);
        assert_eq!(s(4, 0, -2), vec![4, 2]);
        assert_eq!(s(-2, -100, -3), vec![3, 0]);
        assert_eq!(s(3, 1, 1), Vec::<i64>::new());
        // opset-1 form: attributes
        let old = Node::new("s", "Slice", &["x"], &["y"])
            .with_attr(attr::ints("starts", &[1]))
            .with_attr(attr::ints("ends", &[-1]));
        assert_eq!(run(&old, &[&x])[0].to_i64_vec().unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn pad_modes_and_negative_pads() {
        let x = i64s(&[4], vec![1, 2, 3, 4]);
        let p = |mode: &str, b: i64, a: i64| {
            let node =
                Node::new("p", "Pad", &["x", "p"], &["y"]).with_attr(attr::string("mode", mode));
            run(&node, &[&x, &Tensor::from_i64s(vec![b, a])])[0]
                .to_i64_vec()
                .unwrap()
        };
        assert_eq!(p("constant", 2, 1), vec![0, 0, 1, 2, 3, 4, 0]);
        assert_eq!(p("reflect", 2, 2), vec![3, 2, 1, 2, 3, 4, 3, 2]);
        assert_eq!(p("edge", 1, 2), vec![1, 1, 2, 3, 4, 4, 4]);
        assert_eq!(p("wrap", 1, 1), vec![4, 1, 2, 3, 4, 1]);
        assert_eq!(p("constant", -1, 1), vec![2, 3, 4, 0]);
    }

    #[test]
    fn split_forms() {
        let x = i64s(&[5], vec![0, 1, 2, 3, 4]);
        let by_input = Node::new("s", "Split", &["x", "s"], &["a", "b"]);
        let out = run(&by_input, &[&x, &Tensor::from_i64s(vec![2, 3])]);
        assert_eq!(out[1].to_i64_vec().unwrap(), vec![2, 3, 4]);
        let by_count = Node::new("s", "Split", &["x"], &["a", "b", "c"])
            .with_attr(attr::int("num_outputs", 3));
        let out = run(&by_count, &[&x]);
        assert_eq!(
            out.iter().map(|t| t.len()).collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
    }
}
