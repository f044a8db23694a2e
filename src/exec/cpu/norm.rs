//! Normalizations over float32 tensors: `BatchNormalization` (inference form),
//! `LayerNormalization` (with its optional Mean and InvStdDev outputs),
//! `InstanceNormalization`, `Softmax` and `LogSoftmax` (opset 13 semantics: one axis).
//!
//! Owns: the per-row and per-channel loops (parallel over rows or planes).
//! Does not own: reductions as standalone ops (see `reduce`).

use super::{Ctx, OpResult, array, invalid, norm_axis, to_vec, typed, unsupported};
use crate::graph::{Attributes, Tensor};
use rayon::prelude::*;

/// A per-channel parameter vector of length `c`.
fn channel_param(ctx: &Ctx, i: usize, name: &str, c: usize) -> OpResult<Vec<f32>> {
    let p = typed::<f32>(ctx.input(i)?, name)?;
    if p.len() != c {
        return Err(invalid(format!(
            "{name} has {} values for {c} channels",
            p.len()
        )));
    }
    Ok(to_vec(p))
}

fn batch_norm(ctx: &Ctx) -> OpResult<Tensor> {
    if ctx.node.attr_i_or("training_mode", 0) != 0 {
        return Err(unsupported("training_mode = 1"));
    }
    let x = ctx.f32_input(0)?;
    if x.ndim() < 2 {
        return Err(invalid("input must be N x C x ..."));
    }
    let c = x.shape()[1];
    let scale = channel_param(ctx, 1, "scale", c)?;
    let bias = channel_param(ctx, 2, "B", c)?;
    let mean = channel_param(ctx, 3, "mean", c)?;
    let var = channel_param(ctx, 4, "var", c)?;
    let eps = ctx.node.attr_f_or("epsilon", 1e-5);
    let inner: usize = x.shape()[2..].iter().product();
    let mut out = to_vec(x);
    out.par_chunks_mut(inner.max(1))
        .enumerate()
        .for_each(|(p, plane)| {
            let ch = p % c;
            let a = scale[ch] / (var[ch] + eps).sqrt();
            let b = bias[ch] - mean[ch] * a;
            plane.iter_mut().for_each(|v| *v = *v * a + b);
        });
    Ok(Tensor::F32(array(x.shape(), out)?))
}

fn instance_norm(ctx: &Ctx) -> OpResult<Tensor> {
    let x = ctx.f32_input(0)?;
    if x.ndim() < 3 {
        return Err(invalid("input must be N x C x spatial"));
    }
    let c = x.shape()[1];
    let scale = channel_param(ctx, 1, "scale", c)?;
    let bias = channel_param(ctx, 2, "B", c)?;
    let eps = ctx.node.attr_f_or("epsilon", 1e-5) as f64;
    let inner: usize = x.shape()[2..].iter().product();
    let mut out = to_vec(x);
    out.par_chunks_mut(inner.max(1))
        .enumerate()
        .for_each(|(p, plane)| {
            let ch = p % c;
            let (mean, var) = mean_var(plane);
            let a = scale[ch] as f64 / (var + eps).sqrt();
            plane
                .iter_mut()
                .for_each(|v| *v = ((*v as f64 - mean) * a + bias[ch] as f64) as f32);
        });
    Ok(Tensor::F32(array(x.shape(), out)?))
}

/// Mean and population variance, accumulated in f64.
fn mean_var(v: &[f32]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

fn layer_norm(ctx: &Ctx) -> OpResult<Vec<Tensor>> {
    let x = ctx.f32_input(0)?;
    let axis = norm_axis(ctx.node.attr_i_or("axis", -1), x.ndim())?;
    let eps = ctx.node.attr_f_or("epsilon", 1e-5) as f64;
    let norm_shape = &x.shape()[axis..];
    let inner: usize = norm_shape.iter().product();
    let broadcast = |i: usize, name: &str| -> OpResult<Option<Vec<f32>>> {
        let Some(t) = ctx.opt(i) else { return Ok(None) };
        let p = typed::<f32>(t, name)?;
        let b = p.broadcast(ndarray::IxDyn(norm_shape)).ok_or_else(|| {
            invalid(format!(
                "{name} {:?} does not broadcast to {norm_shape:?}",
                p.shape()
            ))
        })?;
        Ok(Some(b.iter().copied().collect()))
    };
    let scale = broadcast(1, "Scale")?.ok_or_else(|| invalid("Scale is required"))?;
    let bias = broadcast(2, "B")?;
    let mut out = to_vec(x);
    let rows = out.len() / inner.max(1);
    let mut stats = vec![(0.0f32, 0.0f32); rows];
    out.par_chunks_mut(inner.max(1))
        .zip(stats.par_iter_mut())
        .for_each(|(row, stat)| {
            let (mean, var) = mean_var(row);
            let inv = 1.0 / (var + eps).sqrt();
            *stat = (mean as f32, inv as f32);
            for (i, v) in row.iter_mut().enumerate() {
                let n = ((*v as f64 - mean) * inv) as f32 * scale[i];
                *v = bias.as_ref().map_or(n, |b| n + b[i]);
            }
        });
    let mut outs = vec![Tensor::F32(array(x.shape(), out)?)];
    if ctx.wants_output(1) || ctx.wants_output(2) {
        let mut stat_shape = x.shape()[..axis].to_vec();
        stat_shape.extend(std::iter::repeat_n(1, x.ndim() - axis));
        outs.push(Tensor::F32(array(
            &stat_shape,
            stats.iter().map(|s| s.0).collect(),
        )?));
        outs.push(Tensor::F32(array(
            &stat_shape,
            stats.iter().map(|s| s.1).collect(),
        )?));
    }
    Ok(outs)
}

fn softmax(ctx: &Ctx, log: bool) -> OpResult<Tensor> {
    let x = ctx.f32_input(0)?;
    let axis = norm_axis(ctx.node.attr_i_or("axis", -1), x.ndim())?;
    let len = x.shape().get(axis).copied().unwrap_or(1);
    let inner: usize = x.shape()[axis + 1..].iter().product();
    let mut out = to_vec(x);
    out.par_chunks_mut((len * inner).max(1)).for_each(|block| {
        for i in 0..inner {
            let at = |j: usize| j * inner + i;
            let max = (0..len)
                .map(|j| block[at(j)])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f64;
            for j in 0..len {
                let e = (block[at(j)] - max).exp();
                block[at(j)] = e;
                sum += e as f64;
            }
            for j in 0..len {
                let v = &mut block[at(j)];
                *v = if log {
                    (*v as f64).ln() as f32 - sum.ln() as f32
                } else {
                    (*v as f64 / sum) as f32
                };
            }
        }
    });
    Ok(Tensor::F32(array(x.shape(), out)?))
}

/// Evaluates the normalization family; `Ok(None)` for other ops.
pub(crate) fn eval(op: &str, ctx: &Ctx) -> OpResult<Option<Vec<Tensor>>> {
    Ok(Some(match op {
        "BatchNormalization" => vec![batch_norm(ctx)?],
        "InstanceNormalization" => vec![instance_norm(ctx)?],
        "LayerNormalization" => layer_norm(ctx)?,
        "Softmax" => vec![softmax(ctx, false)?],
        "LogSoftmax" => vec![softmax(ctx, true)?],
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use crate::exec::cpu::eval_node;
    use crate::graph::{Node, Tensor, attr};
    use ndarray::{ArrayD, IxDyn};

    fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
    }

    #[test]
    fn layer_norm_rows_and_stats() {
        let x = t(&[2, 2], vec![1., 3., 0., 4.]);
        let s = t(&[2], vec![1., 2.]);
        let node = Node::new("ln", "LayerNormalization", &["x", "s"], &["y", "m", "i"])
            .with_attr(attr::float("epsilon", 0.0));
        let out = eval_node(&node, &[Some(&x), Some(&s)]).unwrap();
        assert_eq!(out[0], t(&[2, 2], vec![-1., 2., -1., 2.]));
        assert_eq!(out[1], t(&[2, 1], vec![2., 2.]));
        assert_eq!(out[2].as_f32().unwrap()[[0, 0]], 1.0);
    }

    #[test]
    fn softmax_over_a_middle_axis() {
        let x = t(&[1, 2, 2], vec![0., 1., 0., 3.]);
        let node = Node::new("s", "Softmax", &["x"], &["y"]).with_attr(attr::int("axis", 1));
        let y = eval_node(&node, &[Some(&x)]).unwrap();
        let y = y[0].as_f32().unwrap();
        assert!((y[[0, 0, 0]] - 0.5).abs() < 1e-7);
        let e2 = 2f32.exp();
        assert!((y[[0, 1, 1]] - e2 / (1.0 + e2)).abs() < 1e-6);
    }
}
