//! Index-driven ops for every element type: `Gather`, `GatherElements`, `ScatterND`
//! (negative indices wrap once; out-of-range indices are an error, never a panic).
//!
//! Owns: index validation and the copy loops.
//! Does not own: slicing by ranges (see `layout`).

use super::{
    Ctx, Elem, OpResult, array, contiguous, invalid, norm_axis, to_vec, typed, unsupported,
    with_elem,
};
use crate::graph::{Attributes, Tensor};
use ndarray::{ArrayD, Dimension};

/// Resolves index `i` against an axis of length `len` (negative counts from the end).
fn resolve(i: i64, len: usize) -> OpResult<usize> {
    let n = len as i64;
    let r = if i < 0 { i + n } else { i };
    if (0..n).contains(&r) {
        Ok(r as usize)
    } else {
        Err(invalid(format!(
            "index {i} is out of range for an axis of {len}"
        )))
    }
}

fn indices(ctx: &Ctx, i: usize) -> OpResult<(Vec<i64>, Vec<usize>)> {
    let t = ctx.input(i)?;
    let v = match t {
        Tensor::I64(_) | Tensor::I32(_) => t.to_i64_vec(),
        _ => None,
    }
    .ok_or_else(|| invalid("indices must be int32 or int64"))?;
    Ok((v, t.shape().to_vec()))
}

fn gather_typed<T: Elem>(
    a: &ArrayD<T>,
    axis: usize,
    idx: &[i64],
    idx_shape: &[usize],
) -> OpResult<ArrayD<T>> {
    let shape = a.shape();
    let len = shape[axis];
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let resolved = idx
        .iter()
        .map(|&i| resolve(i, len))
        .collect::<OpResult<Vec<_>>>()?;
    let data = contiguous(a);
    let mut out = Vec::with_capacity(outer * resolved.len() * inner);
    for o in 0..outer {
        for &i in &resolved {
            out.extend_from_slice(&data[(o * len + i) * inner..][..inner]);
        }
    }
    let mut out_shape = shape[..axis].to_vec();
    out_shape.extend_from_slice(idx_shape);
    out_shape.extend_from_slice(&shape[axis + 1..]);
    array(&out_shape, out)
}

fn gather(ctx: &Ctx) -> OpResult<Tensor> {
    let x = ctx.input(0)?;
    if x.shape().is_empty() {
        return Err(invalid("cannot gather from a scalar"));
    }
    let axis = norm_axis(ctx.node.attr_i_or("axis", 0), x.shape().len())?;
    let (idx, idx_shape) = indices(ctx, 1)?;
    with_elem!(x, T => Ok(T::wrap(gather_typed(typed::<T>(x, "data")?, axis, &idx, &idx_shape)?)))
}

fn gather_elements_typed<T: Elem>(
    a: &ArrayD<T>,
    axis: usize,
    idx: &[i64],
    idx_shape: &[usize],
) -> OpResult<ArrayD<T>> {
    if idx_shape.len() != a.ndim() {
        return Err(invalid("indices must have the rank of data"));
    }
    let len = a.shape()[axis];
    let mut out = Vec::with_capacity(idx.len());
    let index_array = array(idx_shape, idx.to_vec())?;
    for (pos, &i) in index_array.indexed_iter() {
        let mut at = pos.slice().to_vec();
        at[axis] = resolve(i, len)?;
        out.push(
            *a.get(at.as_slice())
                .ok_or_else(|| invalid("indices exceed data's shape"))?,
        );
    }
    array(idx_shape, out)
}

fn gather_elements(ctx: &Ctx) -> OpResult<Tensor> {
    let x = ctx.input(0)?;
    let axis = norm_axis(ctx.node.attr_i_or("axis", 0), x.shape().len())?;
    let (idx, idx_shape) = indices(ctx, 1)?;
    with_elem!(x, T => Ok(T::wrap(gather_elements_typed(typed::<T>(x, "data")?, axis, &idx, &idx_shape)?)))
}

fn scatter_nd_typed<T: Elem>(
    a: &ArrayD<T>,
    idx: &[i64],
    idx_shape: &[usize],
    updates: &ArrayD<T>,
) -> OpResult<ArrayD<T>> {
    let shape = a.shape();
    let k = *idx_shape
        .last()
        .ok_or_else(|| invalid("indices must have rank >= 1"))?;
    if k > shape.len() {
        return Err(invalid(format!(
            "index tuples of {k} exceed data rank {}",
            shape.len()
        )));
    }
    let slice_len: usize = shape[k..].iter().product();
    let count = idx.len() / k.max(1);
    let mut want = idx_shape[..idx_shape.len() - 1].to_vec();
    want.extend_from_slice(&shape[k..]);
    if updates.shape() != want.as_slice() {
        return Err(invalid(format!(
            "updates {:?} must have shape {want:?}",
            updates.shape()
        )));
    }
    let mut data = to_vec(a);
    let upd = to_vec(updates);
    for j in 0..count {
        let tuple = &idx[j * k..][..k];
        let mut offset = 0;
        for (d, &i) in tuple.iter().enumerate() {
            offset = offset * shape[d] + resolve(i, shape[d])?;
        }
        let start = offset * slice_len;
        data[start..start + slice_len].copy_from_slice(&upd[j * slice_len..][..slice_len]);
    }
    array(shape, data)
}

fn scatter_nd(ctx: &Ctx) -> OpResult<Tensor> {
    let reduction = ctx.attr_s_or("reduction", "none");
    if reduction != "none" {
        return Err(unsupported(format!("reduction = {reduction}")));
    }
    let x = ctx.input(0)?;
    let (idx, idx_shape) = indices(ctx, 1)?;
    let updates = ctx.input(2)?;
    with_elem!(x, T => Ok(T::wrap(scatter_nd_typed(
        typed::<T>(x, "data")?,
        &idx,
        &idx_shape,
        typed::<T>(updates, "updates")?,
    )?)))
}

/// Evaluates the index family; `Ok(None)` for other ops.
pub(crate) fn eval(op: &str, ctx: &Ctx) -> OpResult<Option<Vec<Tensor>>> {
    let out = match op {
        "Gather" => gather(ctx)?,
        "GatherElements" => gather_elements(ctx)?,
        "ScatterND" => scatter_nd(ctx)?,
        _ => return Ok(None),
    };
    Ok(Some(vec![out]))
}

#[cfg(test)]
mod tests {
    use crate::exec::cpu::eval_node;
    use crate::graph::{Node, Tensor, attr};
    use ndarray::{ArrayD, IxDyn};

    fn i64s(shape: &[usize], v: Vec<i64>) -> Tensor {
        Tensor::I64(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
    }

    #[test]
    fn gather_negative_indices_on_an_inner_axis() {
        let x = i64s(&[2, 3], vec![0, 1, 2, 3, 4, 5]);
        let idx = i64s(&[2], vec![-1, 0]);
        let node = Node::new("g", "Gather", &["x", "i"], &["y"]).with_attr(attr::int("axis", 1));
        let y = eval_node(&node, &[Some(&x), Some(&idx)]).unwrap();
        assert_eq!(y[0], i64s(&[2, 2], vec![2, 0, 5, 3]));
        let bad = i64s(&[1], vec![3]);
        assert!(eval_node(&node, &[Some(&x), Some(&bad)]).is_err());
    }

    #[test]
    fn scatter_nd_replaces_slices() {
        let x = i64s(&[3, 2], vec![0; 6]);
        let idx = i64s(&[2, 1], vec![2, 0]);
        let upd = i64s(&[2, 2], vec![1, 2, 3, 4]);
        let node = Node::new("s", "ScatterND", &["x", "i", "u"], &["y"]);
        let y = eval_node(&node, &[Some(&x), Some(&idx), Some(&upd)]).unwrap();
        assert_eq!(y[0], i64s(&[3, 2], vec![3, 4, 0, 0, 1, 2]));
    }
}
