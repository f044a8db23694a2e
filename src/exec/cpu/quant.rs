//! `QuantizeLinear` and `DequantizeLinear`, per tensor and per axis, int8 and uint8 (and int32
//! for dequantization): `q = saturate(round_half_to_even(x / scale) + zero_point)`,
//! `x = (q - zero_point) * scale`.
//!
//! Owns: the rounding and saturation rules, computed in f32 as onnxruntime does.
//! Does not own: choosing scales (see `calib`) or placing Q/DQ nodes (see `quantize`).

use super::{
    Ctx, Elem, OpResult, array, contiguous, invalid, norm_axis, to_vec, typed, unsupported,
};
use crate::graph::{Attributes, Tensor};
use crate::onnx::proto::DataType;
use rayon::prelude::*;

/// Per-tensor or per-axis parameters: `scales[c]`, `zero_points[c]` for channel `c` of `axis`.
struct QuantParams<Q> {
    scales: Vec<f32>,
    zero_points: Vec<Q>,
    /// Elements per step of the quantization axis (1 channel spans `inner` elements).
    inner: usize,
}

impl<Q: Copy> QuantParams<Q> {
    fn channel(&self, i: usize) -> usize {
        if self.scales.len() == 1 {
            0
        } else {
            (i / self.inner) % self.scales.len()
        }
    }
}

fn params<Q: Elem>(ctx: &Ctx, shape: &[usize], zero: Option<&Tensor>) -> OpResult<QuantParams<Q>> {
    if ctx.node.attr_i_or("block_size", 0) != 0 {
        return Err(unsupported("blocked quantization (block_size)"));
    }
    let scale = typed::<f32>(ctx.input(1)?, "scale")?;
    let scales = to_vec(scale);
    let zero_points = match zero {
        Some(z) => to_vec(typed::<Q>(z, "zero point")?),
        None => vec![Q::from_i64(0); scales.len()],
    };
    if zero_points.len() != scales.len() {
        return Err(invalid("scale and zero point differ in shape"));
    }
    if scale.ndim() > 1 {
        return Err(invalid(format!(
            "scale {:?} must be a scalar or 1-D",
            scale.shape()
        )));
    }
    let per_axis = scales.len() > 1;
    let inner = if per_axis {
        let axis = norm_axis(ctx.node.attr_i_or("axis", 1), shape.len())?;
        if shape[axis] != scales.len() {
            return Err(invalid(format!(
                "{} scales for axis {axis} of {shape:?}",
                scales.len()
            )));
        }
        shape[axis + 1..].iter().product()
    } else {
        1
    };
    if scales.is_empty() {
        return Err(invalid("scale is empty"));
    }
    Ok(QuantParams {
        scales,
        zero_points,
        inner,
    })
}

fn quantize_typed<Q: Elem>(
    ctx: &Ctx,
    x: &ndarray::ArrayD<f32>,
    zero: Option<&Tensor>,
) -> OpResult<Tensor> {
    let p = params::<Q>(ctx, x.shape(), zero)?;
    let (lo, hi) = match Q::DTYPE {
        DataType::Int8 => (i8::MIN as f32, i8::MAX as f32),
        DataType::Uint8 => (0.0, u8::MAX as f32),
        other => {
            return Err(unsupported(format!(
                "quantizing to {}",
                other.as_str_name()
            )));
        }
    };
    let data = contiguous(x);
    let mut out = vec![Q::from_i64(0); data.len()];
    out.par_iter_mut()
        .zip(data.par_iter())
        .enumerate()
        .for_each(|(i, (q, &v))| {
            let c = p.channel(i);
            let r = (v / p.scales[c]).round_ties_even() + p.zero_points[c].to_f64() as f32;
            *q = Q::from_f64(r.clamp(lo, hi) as f64);
        });
    Ok(Q::wrap(array(x.shape(), out)?))
}

fn quantize(ctx: &Ctx) -> OpResult<Tensor> {
    let x = ctx.f32_input(0)?;
    let zero = ctx.opt(2);
    let to = match (zero, ctx.node.attr_i("output_dtype")) {
        (Some(z), _) => z.dtype(),
        (None, Some(t)) if t != 0 => {
            DataType::try_from(t as i32).map_err(|_| invalid("unknown output_dtype"))?
        }
        (None, _) => DataType::Uint8,
    };
    match to {
        DataType::Int8 => quantize_typed::<i8>(ctx, x, zero),
        DataType::Uint8 => quantize_typed::<u8>(ctx, x, zero),
        other => Err(unsupported(format!(
            "quantizing to {}",
            other.as_str_name()
        ))),
    }
}

fn dequantize_typed<Q: Elem>(ctx: &Ctx, x: &ndarray::ArrayD<Q>) -> OpResult<Tensor> {
    let p = params::<Q>(ctx, x.shape(), ctx.opt(2))?;
    let data = contiguous(x);
    let mut out = vec![0.0f32; data.len()];
    out.par_iter_mut()
        .zip(data.par_iter())
        .enumerate()
        .for_each(|(i, (y, &q))| {
            let c = p.channel(i);
            *y = (q.to_i64() - p.zero_points[c].to_i64()) as f32 * p.scales[c];
        });
    Ok(Tensor::F32(array(x.shape(), out)?))
}

fn dequantize(ctx: &Ctx) -> OpResult<Tensor> {
    match ctx.input(0)? {
        Tensor::I8(a) => dequantize_typed(ctx, a),
        Tensor::U8(a) => dequantize_typed(ctx, a),
        Tensor::I32(a) => dequantize_typed(ctx, a),
        other => Err(unsupported(format!(
            "dequantizing {}",
            other.dtype().as_str_name()
        ))),
    }
}

/// Evaluates the quantization family; `Ok(None)` for other ops.
pub(crate) fn eval(op: &str, ctx: &Ctx) -> OpResult<Option<Vec<Tensor>>> {
    let out = match op {
        "QuantizeLinear" => quantize(ctx)?,
        "DequantizeLinear" => dequantize(ctx)?,
        _ => return Ok(None),
    };
    Ok(Some(vec![out]))
}

#[cfg(test)]
mod tests {
    use crate::exec::cpu::eval_node;
    use crate::graph::{Node, Tensor, attr};
    use ndarray::{ArrayD, IxDyn, arr1};

    fn f(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
    }

    #[test]
    fn rounds_half_to_even_and_saturates() {
        let x = f(&[6], vec![0.5, 1.5, 2.5, -2.5, 1000.0, -1000.0]);
        let scale = Tensor::F32(ArrayD::from_elem(IxDyn(&[]), 1.0));
        let zp = Tensor::I8(ArrayD::from_elem(IxDyn(&[]), 0));
        let q = Node::new("q", "QuantizeLinear", &["x", "s", "z"], &["y"]);
        let y = eval_node(&q, &[Some(&x), Some(&scale), Some(&zp)]).unwrap();
        assert_eq!(
            y[0],
            Tensor::I8(arr1(&[0i8, 2, 2, -2, 127, -128]).into_dyn())
        );
        // no zero point: uint8 output, saturating at 0 and 255
        let y = eval_node(&q, &[Some(&x), Some(&scale)]).unwrap();
        assert_eq!(y[0], Tensor::U8(arr1(&[0u8, 2, 2, 0, 255, 0]).into_dyn()));
    }

    #[test]
    fn per_axis_round_trip() {
        // shape [2, 2], axis 0: rows scaled by 0.5 and 2, zero points 1 and -1
        let x = f(&[2, 2], vec![1.0, -1.0, 4.0, 5.0]);
        let s = f(&[2], vec![0.5, 2.0]);
        let z = Tensor::I8(arr1(&[1i8, -1]).into_dyn());
        let q = Node::new("q", "QuantizeLinear", &["x", "s", "z"], &["y"])
            .with_attr(attr::int("axis", 0));
        let y = eval_node(&q, &[Some(&x), Some(&s), Some(&z)]).unwrap();
        // 1/0.5+1 = 3, -1/0.5+1 = -1, 4/2-1 = 1, 5/2 = 2.5 -> 2 (even) - 1 = 1
        assert_eq!(
            y[0],
            Tensor::I8(ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![3, -1, 1, 1]).unwrap())
        );
        let dq = Node::new("d", "DequantizeLinear", &["q", "s", "z"], &["x"])
            .with_attr(attr::int("axis", 0));
        let back = eval_node(&dq, &[Some(&y[0]), Some(&s), Some(&z)]).unwrap();
        assert_eq!(back[0], f(&[2, 2], vec![1.0, -1.0, 4.0, 4.0]));
    }
}
