//! Pools and local normalization over NC[D]HW float tensors: `MaxPool`, `AveragePool`
//! (`count_include_pad`, `ceil_mode`, dilations), `GlobalAveragePool`, `GlobalMaxPool`, `LRN`.
//!
//! Owns: the window loops; planes (one per batch × channel) run in parallel.
//! Does not own: window geometry (see `window`).

use super::window::Window;
use super::{Ctx, OpResult, array, contiguous, invalid, unsupported};
use crate::graph::{Attributes, Tensor};
use rayon::prelude::*;

#[derive(Clone, Copy, PartialEq)]
enum PoolKind {
    Max,
    Average { count_include_pad: bool },
}

fn pool(ctx: &Ctx, kind: PoolKind) -> OpResult<Tensor> {
    let x = ctx.f32_input(0)?;
    if x.ndim() < 3 {
        return Err(invalid(format!(
            "input {:?} must be N x C x spatial",
            x.shape()
        )));
    }
    if ctx.wants_output(1) {
        return Err(unsupported("the Indices output of MaxPool"));
    }
    let kernel: Vec<usize> = ctx
        .node
        .attr_ints("kernel_shape")
        .ok_or_else(|| invalid("kernel_shape is required"))?
        .iter()
        .map(|&k| usize::try_from(k).ok().filter(|&k| k > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| invalid("kernel_shape must be positive"))?;
    let ceil_mode = ctx.node.attr_i_or("ceil_mode", 0) != 0;
    let win = Window::new(ctx, &x.shape()[2..], &kernel, ceil_mode)?;
    let (is, os) = (win.input_size(), win.output_size());
    let data = contiguous(x);
    let planes = x.shape()[0] * x.shape()[1];
    let mut out = vec![0.0f32; planes * os];
    let [_, i1, i2] = win.input;
    let [_, o1, o2] = win.output;
    let padded = |d: usize, o: usize, k: usize| {
        let pos = (o * win.strides[d] + k * win.dilations[d]) as isize;
        pos < (win.input[d] + win.pad_begin[d] + win.pad_end[d]) as isize
    };
    out.par_chunks_mut(os.max(1))
        .enumerate()
        .for_each(|(p, dst)| {
            let src = &data[p * is..][..is];
            for od in 0..win.output[0] {
                for oh in 0..o1 {
                    for ow in 0..o2 {
                        let (mut acc, mut count, mut padded_count) = match kind {
                            PoolKind::Max => (f32::NEG_INFINITY, 0usize, 0usize),
                            PoolKind::Average { .. } => (0.0, 0, 0),
                        };
                        for kd in 0..win.kernel[0] {
                            let id = win.source(0, od, kd);
                            for kh in 0..win.kernel[1] {
                                let ih = win.source(1, oh, kh);
                                for kw in 0..win.kernel[2] {
                                    if padded(0, od, kd) && padded(1, oh, kh) && padded(2, ow, kw) {
                                        padded_count += 1;
                                    }
                                    let (Some(id), Some(ih), Some(iw)) =
                                        (id, ih, win.source(2, ow, kw))
                                    else {
                                        continue;
                                    };
                                    let v = src[(id * i1 + ih) * i2 + iw];
                                    count += 1;
                                    acc = match kind {
                                        PoolKind::Max => {
                                            if v > acc || v.is_nan() {
                                                v
                                            } else {
                                                acc
                                            }
                                        }
                                        PoolKind::Average { .. } => acc + v,
                                    };
                                }
                            }
                        }
                        dst[(od * o1 + oh) * o2 + ow] = match kind {
                            PoolKind::Max => acc,
                            PoolKind::Average { count_include_pad } => {
                                let n = if count_include_pad {
                                    padded_count
                                } else {
                                    count
                                };
                                if n == 0 { 0.0 } else { acc / n as f32 }
                            }
                        };
                    }
                }
            }
        });
    let mut shape = x.shape()[..2].to_vec();
    shape.extend_from_slice(win.output_dims());
    Ok(Tensor::F32(array(&shape, out)?))
}

fn global_pool(ctx: &Ctx, max: bool) -> OpResult<Tensor> {
    let x = ctx.f32_input(0)?;
    if x.ndim() < 2 {
        return Err(invalid(format!(
            "input {:?} must be N x C x spatial",
            x.shape()
        )));
    }
    let size: usize = x.shape()[2..].iter().product();
    let data = contiguous(x);
    let out: Vec<f32> = data
        .par_chunks(size.max(1))
        .map(|plane| {
            if max {
                plane.iter().copied().fold(f32::NEG_INFINITY, f32::max)
            } else {
                plane.iter().sum::<f32>() / size as f32
            }
        })
        .collect();
    let mut shape = x.shape()[..2].to_vec();
    shape.extend(std::iter::repeat_n(1, x.ndim() - 2));
    Ok(Tensor::F32(array(&shape, out)?))
}

fn lrn(ctx: &Ctx) -> OpResult<Tensor> {
    let x = ctx.f32_input(0)?;
    if x.ndim() < 2 {
        return Err(invalid("LRN input must be N x C x ..."));
    }
    let size = ctx
        .node
        .attr_i("size")
        .filter(|&s| s > 0)
        .ok_or_else(|| invalid("size is required and positive"))? as usize;
    let alpha = ctx.node.attr_f_or("alpha", 1e-4);
    let beta = ctx.node.attr_f_or("beta", 0.75);
    let bias = ctx.node.attr_f_or("bias", 1.0);
    let c = x.shape()[1];
    let inner: usize = x.shape()[2..].iter().product();
    let data = contiguous(x);
    let (before, after) = ((size - 1) / 2, size.div_ceil(2) - 1);
    let mut out = vec![0.0f32; data.len()];
    out.par_chunks_mut(inner.max(1))
        .enumerate()
        .for_each(|(p, dst)| {
            let (b, ch) = (p / c, p % c);
            let lo = ch.saturating_sub(before);
            let hi = (ch + after).min(c - 1);
            for (i, o) in dst.iter_mut().enumerate() {
                let sq: f32 = (lo..=hi)
                    .map(|k| data[(b * c + k) * inner + i])
                    .map(|v| v * v)
                    .sum();
                *o = data[p * inner + i] / (bias + alpha / size as f32 * sq).powf(beta);
            }
        });
    Ok(Tensor::F32(array(x.shape(), out)?))
}

/// Evaluates the pool family; `Ok(None)` for other ops.
pub(crate) fn eval(op: &str, ctx: &Ctx) -> OpResult<Option<Vec<Tensor>>> {
    let out = match op {
        "MaxPool" => {
            if ctx.node.attr_i_or("storage_order", 0) != 0 && ctx.wants_output(1) {
                return Err(unsupported("storage_order = 1"));
            }
            pool(ctx, PoolKind::Max)?
        }
        "AveragePool" => pool(
            ctx,
            PoolKind::Average {
                count_include_pad: ctx.node.attr_i_or("count_include_pad", 0) != 0,
            },
        )?,
        "GlobalAveragePool" => global_pool(ctx, false)?,
        "GlobalMaxPool" => global_pool(ctx, true)?,
        "LRN" => lrn(ctx)?,
        _ => return Ok(None),
    };
    Ok(Some(vec![out]))
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
    fn average_pool_pads_count_and_ceil_mode() {
        // x = [1, 2, 3, 4, 5], k = 2, s = 2, pads [1, 0], ceil_mode.
        // windows: [pad,1] [2,3] [4,5] -> exclude pad: 1, 2.5, 4.5; include pad: 0.5, 2.5, 4.5
        let x = t(&[1, 1, 5], vec![1., 2., 3., 4., 5.]);
        let base = Node::new("p", "AveragePool", &["x"], &["y"])
            .with_attr(attr::ints("kernel_shape", &[2]))
            .with_attr(attr::ints("strides", &[2]))
            .with_attr(attr::ints("pads", &[1, 0]));
        let y = eval_node(&base, &[Some(&x)]).unwrap();
        assert_eq!(y[0], t(&[1, 1, 3], vec![1., 2.5, 4.5]));
        let inc = base.clone().with_attr(attr::int("count_include_pad", 1));
        assert_eq!(
            eval_node(&inc, &[Some(&x)]).unwrap()[0],
            t(&[1, 1, 3], vec![0.5, 2.5, 4.5])
        );
        // no pads, ceil_mode: windows [1,2] [3,4] [5] -> last window averages only 5.
        let ceil = Node::new("p", "AveragePool", &["x"], &["y"])
            .with_attr(attr::ints("kernel_shape", &[2]))
            .with_attr(attr::ints("strides", &[2]))
            .with_attr(attr::int("ceil_mode", 1));
        assert_eq!(
            eval_node(&ceil, &[Some(&x)]).unwrap()[0],
            t(&[1, 1, 3], vec![1.5, 3.5, 5.])
        );
    }

    #[test]
    fn max_pool_with_dilation() {
        let x = t(&[1, 1, 6], vec![1., 9., 2., 8., 3., 7.]);
        let node = Node::new("p", "MaxPool", &["x"], &["y"])
            .with_attr(attr::ints("kernel_shape", &[2]))
            .with_attr(attr::ints("dilations", &[2]));
        // windows (0,2) (1,3) (2,4) (3,5)
        assert_eq!(
            eval_node(&node, &[Some(&x)]).unwrap()[0],
            t(&[1, 1, 4], vec![2., 9., 3., 8.])
        );
    }
}
