//! `Resize` on float32 tensors: nearest (all `nearest_mode`s), linear (n-linear) and cubic,
//! under every `coordinate_transformation_mode` except `tf_crop_and_resize`, sized by scales or
//! sizes (optionally on `axes`, opset 18).
//!
//! Owns: the interpolation. Every mode is separable, so a resize is a sequence of 1-D resamples,
//! one per resized axis, each a small list of (source index, weight) taps per output index.
//! Does not own: `antialias` or `keep_aspect_ratio_policy` other than `stretch` (reported as
//! unsupported).

use super::{Ctx, OpResult, array, contiguous, invalid, norm_axis, typed, unsupported};
use crate::graph::{Attributes, Tensor};
use rayon::prelude::*;

/// How an output coordinate maps back to an input coordinate.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Transform {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfHalfPixelForNn,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Interp {
    Nearest(Rounding),
    Linear,
    Cubic { a: f64, exclude_outside: bool },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Rounding {
    PreferFloor,
    PreferCeil,
    Floor,
    Ceil,
}

/// The input coordinate of output index `j`, computed in f32 as onnxruntime does (ties such as
/// 1.5 / 0.6 - 0.5 round differently in f64).
fn source_coord(t: Transform, j: usize, in_len: usize, out_len: usize, scale: f32) -> f32 {
    let j = j as f32;
    match t {
        Transform::HalfPixel => (j + 0.5) / scale - 0.5,
        Transform::HalfPixelSymmetric => {
            let adjustment = out_len as f32 / (scale * in_len as f32);
            let center = in_len as f32 / 2.0;
            center * (1.0 - adjustment) + (j + 0.5) / scale - 0.5
        }
        Transform::PytorchHalfPixel => {
            if out_len > 1 {
                (j + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        Transform::AlignCorners => {
            if out_len == 1 {
                0.0
            } else {
                j * (in_len as f32 - 1.0) / (out_len as f32 - 1.0)
            }
        }
        Transform::Asymmetric => j / scale,
        Transform::TfHalfPixelForNn => (j + 0.5) / scale,
    }
}

fn cubic_coeffs(r: f64, a: f64) -> [f64; 4] {
    let outer = |x: f64| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    let inner = |x: f64| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    [outer(r + 1.0), inner(r), inner(1.0 - r), outer(2.0 - r)]
}

/// The (source index, weight) taps of every output index along one axis.
fn taps(
    interp: Interp,
    t: Transform,
    in_len: usize,
    out_len: usize,
    scale: f32,
) -> Vec<Vec<(usize, f32)>> {
    let last = in_len as f64 - 1.0;
    (0..out_len)
        .map(|j| {
            let x = source_coord(t, j, in_len, out_len, scale) as f64;
            match interp {
                Interp::Nearest(r) => {
                    let frac = x - x.floor();
                    let n = match r {
                        Rounding::PreferFloor if frac == 0.5 => x.floor(),
                        Rounding::PreferCeil if frac == 0.5 => x.ceil(),
                        Rounding::PreferFloor | Rounding::PreferCeil => x.round(),
                        Rounding::Floor => x.floor(),
                        Rounding::Ceil => x.ceil(),
                    };
                    vec![(n.clamp(0.0, last) as usize, 1.0)]
                }
                Interp::Linear => {
                    let x = x.clamp(0.0, last);
                    let x0 = x.floor();
                    let w1 = x - x0;
                    let i0 = x0 as usize;
                    vec![
                        (i0, (1.0 - w1) as f32),
                        ((i0 + 1).min(in_len - 1), w1 as f32),
                    ]
                }
                Interp::Cubic { a, exclude_outside } => {
                    let x0 = x.floor();
                    let coeffs = cubic_coeffs(x - x0, a);
                    let mut list: Vec<(isize, f64)> = (0..4)
                        .map(|k| (x0 as isize - 1 + k as isize, coeffs[k]))
                        .collect();
                    if exclude_outside {
                        for (i, w) in list.iter_mut() {
                            if *i < 0 || *i > last as isize {
                                *w = 0.0;
                            }
                        }
                        let sum: f64 = list.iter().map(|(_, w)| w).sum();
                        list.iter_mut().for_each(|(_, w)| *w /= sum);
                    }
                    list.into_iter()
                        .map(|(i, w)| (i.clamp(0, last as isize) as usize, w as f32))
                        .collect()
                }
            }
        })
        .collect()
}

/// Resamples `data` (row-major `shape`) along `axis` to `taps.len()` entries.
fn resample(data: &[f32], shape: &[usize], axis: usize, taps: &[Vec<(usize, f32)>]) -> Vec<f32> {
    let in_len = shape[axis];
    let out_len = taps.len();
    let inner: usize = shape[axis + 1..].iter().product();
    let outer: usize = shape[..axis].iter().product();
    let mut out = vec![0.0f32; outer * out_len * inner];
    if inner == 0 || out.is_empty() {
        return out;
    }
    out.par_chunks_mut(out_len * inner)
        .enumerate()
        .for_each(|(o, block)| {
            let src = &data[o * in_len * inner..][..in_len * inner];
            for (j, dst) in block.chunks_mut(inner).enumerate() {
                match taps[j].as_slice() {
                    [(i, w)] if *w == 1.0 => dst.copy_from_slice(&src[i * inner..][..inner]),
                    list => {
                        for &(i, w) in list {
                            for (d, &s) in dst.iter_mut().zip(&src[i * inner..][..inner]) {
                                *d += w * s;
                            }
                        }
                    }
                }
            }
        });
    out
}

fn nonempty(t: Option<&Tensor>) -> Option<&Tensor> {
    t.filter(|t| !t.is_empty())
}

fn resize(ctx: &Ctx) -> OpResult<Tensor> {
    let x = ctx.f32_input(0)?;
    let rank = x.ndim();
    if ctx.node.attr_i_or("antialias", 0) != 0 {
        return Err(unsupported("antialias = 1"));
    }
    let opset10 = ctx.node.inputs.len() == 2;
    let (scales, sizes) = if opset10 {
        (ctx.opt(1), None)
    } else {
        (nonempty(ctx.opt(2)), nonempty(ctx.opt(3)))
    };
    let axes: Vec<usize> = match ctx.node.attr_ints("axes") {
        Some(a) => a
            .iter()
            .map(|&v| norm_axis(v, rank))
            .collect::<OpResult<_>>()?,
        None => (0..rank).collect(),
    };
    let mut plan: Vec<(usize, usize, f32)> = Vec::new(); // (axis, out_len, scale)
    match (scales, sizes) {
        (Some(s), None) => {
            let s = typed::<f32>(s, "scales")?;
            if s.len() != axes.len() {
                return Err(invalid(format!(
                    "{} scales for {} axes",
                    s.len(),
                    axes.len()
                )));
            }
            for (&axis, &sc) in axes.iter().zip(s.iter()) {
                if sc <= 0.0 || !sc.is_finite() {
                    return Err(invalid(format!("scale {sc} must be positive")));
                }
                let out = (x.shape()[axis] as f64 * sc as f64).floor() as usize;
                plan.push((axis, out, sc));
            }
        }
        (None, Some(s)) => {
            let policy = ctx.attr_s_or("keep_aspect_ratio_policy", "stretch");
            if policy != "stretch" {
                return Err(unsupported(format!("keep_aspect_ratio_policy = {policy}")));
            }
            let s = s
                .to_i64_vec()
                .ok_or_else(|| invalid("sizes must be int64"))?;
            if s.len() != axes.len() {
                return Err(invalid(format!(
                    "{} sizes for {} axes",
                    s.len(),
                    axes.len()
                )));
            }
            for (&axis, &out) in axes.iter().zip(&s) {
                let out = usize::try_from(out).map_err(|_| invalid("sizes must be >= 0"))?;
                let scale = out as f32 / x.shape()[axis].max(1) as f32;
                plan.push((axis, out, scale));
            }
        }
        _ => return Err(invalid("exactly one of scales and sizes must be given")),
    }
    let default_transform = if opset10 { "asymmetric" } else { "half_pixel" };
    let transform = match ctx
        .attr_s_or("coordinate_transformation_mode", default_transform)
        .as_str()
    {
        "half_pixel" => Transform::HalfPixel,
        "half_pixel_symmetric" => Transform::HalfPixelSymmetric,
        "pytorch_half_pixel" => Transform::PytorchHalfPixel,
        "align_corners" => Transform::AlignCorners,
        "asymmetric" => Transform::Asymmetric,
        "tf_half_pixel_for_nn" => Transform::TfHalfPixelForNn,
        other => {
            return Err(unsupported(format!(
                "coordinate_transformation_mode = {other}"
            )));
        }
    };
    let default_rounding = if opset10 {
        "floor"
    } else {
        "round_prefer_floor"
    };
    let interp = match ctx.attr_s_or("mode", "nearest").as_str() {
        "nearest" => Interp::Nearest(
            match ctx.attr_s_or("nearest_mode", default_rounding).as_str() {
                "round_prefer_floor" => Rounding::PreferFloor,
                "round_prefer_ceil" => Rounding::PreferCeil,
                "floor" => Rounding::Floor,
                "ceil" => Rounding::Ceil,
                other => return Err(invalid(format!("nearest_mode = {other}"))),
            },
        ),
        "linear" | "bilinear" | "trilinear" => Interp::Linear,
        "cubic" | "bicubic" => Interp::Cubic {
            a: ctx.node.attr_f_or("cubic_coeff_a", -0.75) as f64,
            exclude_outside: ctx.node.attr_i_or("exclude_outside", 0) != 0,
        },
        other => return Err(invalid(format!("mode = {other}"))),
    };
    let mut shape = x.shape().to_vec();
    let mut data = contiguous(x);
    for (axis, out_len, scale) in plan {
        let in_len = shape[axis];
        if out_len == in_len && scale == 1.0 {
            continue;
        }
        if in_len == 0 {
            return Err(invalid("cannot resize an empty axis"));
        }
        let t = taps(interp, transform, in_len, out_len, scale);
        data = std::borrow::Cow::Owned(resample(&data, &shape, axis, &t));
        shape[axis] = out_len;
    }
    Ok(Tensor::F32(array(&shape, data.into_owned())?))
}

/// Evaluates `Resize`; `Ok(None)` for other ops.
pub(crate) fn eval(op: &str, ctx: &Ctx) -> OpResult<Option<Vec<Tensor>>> {
    match op {
        "Resize" => Ok(Some(vec![resize(ctx)?])),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(taps: &[Vec<(usize, f32)>]) -> Vec<usize> {
        taps.iter().map(|t| t[0].0).collect()
    }

    #[test]
    fn nearest_modes_pick_the_documented_source() {
        // 2 -> 4 upsampling, half_pixel: x = (j + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25
        let near = |r| taps(Interp::Nearest(r), Transform::HalfPixel, 2, 4, 2.0);
        assert_eq!(src(&near(Rounding::PreferFloor)), vec![0, 0, 1, 1]);
        assert_eq!(src(&near(Rounding::Floor)), vec![0, 0, 0, 1]);
        assert_eq!(src(&near(Rounding::Ceil)), vec![0, 1, 1, 1]);
        // 4 -> 2 asymmetric: x = 0, 2
        let down = taps(
            Interp::Nearest(Rounding::PreferFloor),
            Transform::Asymmetric,
            4,
            2,
            0.5,
        );
        assert_eq!(src(&down), vec![0, 2]);
        // ties: 3 -> 2 with align_corners gives x = 0, 2; asymmetric 1 -> 2 at scale 2 gives 0, 0.5
        let ties = |r| src(&taps(Interp::Nearest(r), Transform::Asymmetric, 2, 4, 2.0));
        assert_eq!(ties(Rounding::PreferFloor), vec![0, 0, 1, 1]);
        assert_eq!(ties(Rounding::PreferCeil), vec![0, 1, 1, 1]);
    }

    #[test]
    fn linear_coordinate_modes() {
        // 2 -> 4, align_corners: x = 0, 1/3, 2/3, 1
        let t = taps(Interp::Linear, Transform::AlignCorners, 2, 4, 2.0);
        let value =
            |t: &Vec<(usize, f32)>| t.iter().map(|&(i, w)| w * [10.0, 20.0][i]).sum::<f32>();
        let got: Vec<f32> = t.iter().map(value).collect();
        for (g, w) in got.iter().zip([10.0, 13.333_333, 16.666_666, 20.0]) {
            assert!((g - w).abs() < 1e-4, "{got:?}");
        }
        // half_pixel clamps at the edges: -0.25 -> 10, 0.25 -> 12.5, 0.75 -> 17.5, 1.25 -> 20
        let got: Vec<f32> = taps(Interp::Linear, Transform::HalfPixel, 2, 4, 2.0)
            .iter()
            .map(value)
            .collect();
        assert_eq!(got, vec![10.0, 12.5, 17.5, 20.0]);
        // pytorch_half_pixel with one output reads index 0
        let one = taps(Interp::Linear, Transform::PytorchHalfPixel, 4, 1, 0.25);
        assert_eq!(one[0][0], (0, 1.0));
    }

    #[test]
    fn cubic_weights_sum_to_one() {
        for r in [0.0, 0.25, 0.5, 0.9] {
            let s: f64 = cubic_coeffs(r, -0.75).iter().sum();
            assert!((s - 1.0).abs() < 1e-12);
        }
        assert_eq!(cubic_coeffs(0.0, -0.5), [0.0, 1.0, 0.0, 0.0]);
    }
}
