//! Ops that make values or pass them through: `Constant`, `ConstantOfShape`, `Range`, `Shape`,
//! `Size`, `Cast`, `CastLike`, `Identity`, `Dropout` (inference: identity, mask all true).
//!
//! Owns: casts between every pair of element types (integers through i64, floats through f64).
//! Does not own: quantizing casts (see `quant`).

use super::{Ctx, Elem, OpResult, array, invalid, typed, unsupported, with_elem, with_num};
use crate::graph::{Attributes, Tensor};
use crate::onnx::proto::DataType;
use ndarray::{ArrayD, IxDyn};

fn constant(ctx: &Ctx) -> OpResult<Tensor> {
    let n = ctx.node;
    if let Some(t) = n.attr_t("value") {
        return Tensor::from_proto(t).map_err(|e| invalid(e.to_string()));
    }
    if let Some(v) = n.attr_f("value_float") {
        return Ok(Tensor::F32(ArrayD::from_elem(IxDyn(&[]), v)));
    }
    if let Some(v) = n.attr_floats("value_floats") {
        return Ok(Tensor::F32(array(&[v.len()], v.to_vec())?));
    }
    if let Some(v) = n.attr_i("value_int") {
        return Ok(Tensor::I64(ArrayD::from_elem(IxDyn(&[]), v)));
    }
    if let Some(v) = n.attr_ints("value_ints") {
        return Ok(Tensor::from_i64s(v.to_vec()));
    }
    if n.attr("value_string").is_some() || n.attr("value_strings").is_some() {
        return Err(unsupported("string constants"));
    }
    if n.attr("sparse_value").is_some() {
        return Err(unsupported("sparse constants"));
    }
    Err(invalid("no value attribute"))
}

/// Non-negative dims from an integer tensor.
fn dims(values: &[i64]) -> OpResult<Vec<usize>> {
    let dims = values
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| invalid(format!("negative dim in {values:?}"))))
        .collect::<OpResult<Vec<usize>>>()?;
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| invalid(format!("shape {values:?} has too many elements")))?;
    Ok(dims)
}

fn constant_of_shape(ctx: &Ctx) -> OpResult<Tensor> {
    let shape = dims(
        &ctx.ints_input(0)?
            .ok_or_else(|| invalid("shape is required"))?,
    )?;
    let value = match ctx.node.attr_t("value") {
        Some(t) => Tensor::from_proto(t).map_err(|e| invalid(e.to_string()))?,
        None => Tensor::F32(ArrayD::from_elem(IxDyn(&[1]), 0.0)),
    };
    with_elem!(&value, T => {
        let v = *typed::<T>(&value, "value")?
            .iter()
            .next()
            .ok_or_else(|| invalid("value must hold one element"))?;
        Ok(T::wrap(ArrayD::from_elem(IxDyn(&shape), v)))
    })
}

fn range_typed<T: Elem>(start: T, limit: T, delta: T) -> OpResult<ArrayD<T>> {
    let (s, l, d) = (start.to_f64(), limit.to_f64(), delta.to_f64());
    if d == 0.0 {
        return Err(invalid("delta must not be 0"));
    }
    let n = ((l - s) / d).ceil().max(0.0);
    if !n.is_finite() || n > 1e9 {
        return Err(invalid(format!("range of {n} elements")));
    }
    let values = (0..n as usize)
        .map(|i| {
            if T::EXACT {
                T::from_i64(start.to_i64() + i as i64 * delta.to_i64())
            } else {
                T::from_f64(s + i as f64 * d)
            }
        })
        .collect();
    array(&[n as usize], values)
}

fn range(ctx: &Ctx) -> OpResult<Tensor> {
    let start = ctx.input(0)?;
    let scalar = |i: usize| -> OpResult<&Tensor> {
        let t = ctx.input(i)?;
        if t.len() != 1 {
            return Err(invalid(format!("input {i} must be a scalar")));
        }
        Ok(t)
    };
    let (s, l, d) = (scalar(0)?, scalar(1)?, scalar(2)?);
    with_num!(start, T => {
        let first = |t: &Tensor| -> OpResult<T> {
            Ok(*typed::<T>(t, "range bound")?.iter().next().ok_or_else(|| invalid("empty"))?)
        };
        Ok(T::wrap(range_typed(first(s)?, first(l)?, first(d)?)?))
    })
}

fn shape(ctx: &Ctx) -> OpResult<Tensor> {
    let shape: Vec<i64> = ctx.input(0)?.shape().iter().map(|&d| d as i64).collect();
    let r = shape.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clamp(ctx.node.attr_i_or("start", 0));
    let end = clamp(ctx.node.attr_i_or("end", r));
    Ok(Tensor::from_i64s(shape[start..end.max(start)].to_vec()))
}

fn cast_typed<S: Elem, T: Elem>(a: &ArrayD<S>) -> ArrayD<T> {
    if S::EXACT {
        a.mapv(|v| T::from_i64(v.to_i64()))
    } else {
        a.mapv(|v| T::from_f64(v.to_f64()))
    }
}

/// Casts `x` to the ONNX element type `to`.
pub(crate) fn cast(x: &Tensor, to: i32) -> OpResult<Tensor> {
    let to = DataType::try_from(to).map_err(|_| invalid(format!("unknown element type {to}")))?;
    with_elem!(x, S => {
        let a = typed::<S>(x, "input")?;
        Ok(match to {
            DataType::Float => Tensor::F32(cast_typed(a)),
            DataType::Double => Tensor::F64(cast_typed(a)),
            DataType::Float16 => Tensor::F16(cast_typed(a)),
            DataType::Int8 => Tensor::I8(cast_typed(a)),
            DataType::Uint8 => Tensor::U8(cast_typed(a)),
            DataType::Int32 => Tensor::I32(cast_typed(a)),
            DataType::Int64 => Tensor::I64(cast_typed(a)),
            DataType::Bool => Tensor::Bool(cast_typed(a)),
            other => return Err(unsupported(format!("cast to {}", other.as_str_name()))),
        })
    })
}

/// Evaluates the value family; `Ok(None)` for other ops.
pub(crate) fn eval(op: &str, ctx: &Ctx) -> OpResult<Option<Vec<Tensor>>> {
    let out = match op {
        "Constant" => constant(ctx)?,
        "ConstantOfShape" => constant_of_shape(ctx)?,
        "Range" => range(ctx)?,
        "Shape" => shape(ctx)?,
        "Size" => Tensor::I64(ArrayD::from_elem(IxDyn(&[]), ctx.input(0)?.len() as i64)),
        "Cast" => {
            let to = ctx
                .node
                .attr_i("to")
                .ok_or_else(|| invalid("to is required"))?;
            cast(ctx.input(0)?, to as i32)?
        }
        "CastLike" => cast(ctx.input(0)?, ctx.input(1)?.dtype() as i32)?,
        "Identity" => ctx.input(0)?.clone(),
        "Dropout" => {
            let x = ctx.input(0)?.clone();
            if ctx.wants_output(1) {
                let mask = Tensor::Bool(ArrayD::from_elem(IxDyn(x.shape()), true));
                return Ok(Some(vec![x, mask]));
            }
            x
        }
        _ => return Ok(None),
    };
    Ok(Some(vec![out]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Node;

    #[test]
    fn range_and_shape_slices() {
        let t = |v: i64| Tensor::I64(ArrayD::from_elem(IxDyn(&[]), v));
        let node = Node::new("r", "Range", &["a", "b", "c"], &["y"]);
        let y =
            crate::exec::cpu::eval_node(&node, &[Some(&t(10)), Some(&t(1)), Some(&t(-3))]).unwrap();
        assert_eq!(y[0].to_i64_vec().unwrap(), vec![10, 7, 4]);
        let x = Tensor::F32(ArrayD::zeros(IxDyn(&[2, 3, 4])));
        let node =
            Node::new("s", "Shape", &["x"], &["y"]).with_attr(crate::graph::attr::int("start", -2));
        let y = crate::exec::cpu::eval_node(&node, &[Some(&x)]).unwrap();
        assert_eq!(y[0].to_i64_vec().unwrap(), vec![3, 4]);
    }

    #[test]
    fn casts_truncate_and_keep_large_integers_exact() {
        let x = Tensor::F32(ndarray::arr1(&[-1.7f32, 2.9, 300.0]).into_dyn());
        assert_eq!(
            cast(&x, DataType::Int32 as i32)
                .unwrap()
                .to_i64_vec()
                .unwrap(),
            vec![-1, 2, 300]
        );
        let big = Tensor::from_i64s(vec![(1 << 53) + 1]);
        assert_eq!(
            cast(&big, DataType::Int64 as i32)
                .unwrap()
                .to_i64_vec()
                .unwrap(),
            vec![(1 << 53) + 1]
        );
    }
}
