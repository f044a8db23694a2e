//! Convolutions: `Conv` (im2col + GEMM, no im2col for 1x1 stride-1 convs, a direct kernel for
//! depthwise convs) and `ConvTranspose` (GEMM + col2im), 1-D to 3-D, with groups, dilations,
//! strides and `auto_pad`.
//!
//! Owns: im2col/col2im, the depthwise kernel and conv epilogues ([`Epilogue`]: bias, a residual
//! and an activation applied in the output loop). Work is spread over both cores: GEMM through
//! rayon inside the `gemm` crate, im2col rows, depthwise planes and col2im channels with rayon.
//! Does not own: window geometry (see `window`) or the GEMM itself (see `gemm`).

use super::buffers::SpareBuffers;
use super::elementwise::Activation;
use super::gemm::{Mat, matmul_into};
use super::window::Window;
use super::{Ctx, OpResult, array, contiguous, invalid, typed};
use crate::graph::{Attributes, Tensor};
use rayon::prelude::*;
use std::borrow::Cow;
use std::ops::Range;

/// Floats per im2col tile (4 MiB): large enough for efficient GEMMs, small enough to stay in
/// cache and to be reused by the allocator.
const COL_TILE_FLOATS: usize = 1 << 20;

/// Operands of a convolution after validation: data in row-major order.
struct ConvArgs<'a> {
    batch: usize,
    in_channels: usize,
    out_channels: usize,
    group: usize,
    x: Cow<'a, [f32]>,
    w: Cow<'a, [f32]>,
    bias: Option<Cow<'a, [f32]>>,
}

fn conv_args<'a>(
    ctx: &Ctx<'a>,
    transpose: bool,
) -> OpResult<(ConvArgs<'a>, Vec<usize>, Vec<usize>)> {
    let x = ctx.f32_input(0)?;
    let w = ctx.f32_input(1)?;
    if x.ndim() < 3 || w.ndim() != x.ndim() {
        return Err(invalid(format!(
            "X {:?} and W {:?} must both have rank >= 3 and equal rank",
            x.shape(),
            w.shape()
        )));
    }
    let group = ctx.node.attr_i_or("group", 1);
    let (batch, in_channels) = (x.shape()[0], x.shape()[1]);
    if group < 1 || in_channels % group as usize != 0 {
        return Err(invalid(format!(
            "group = {group} does not divide the {in_channels} input channels"
        )));
    }
    let group = group as usize;
    let out_channels = if transpose {
        if w.shape()[0] != in_channels {
            return Err(invalid(format!(
                "W {:?} must have {in_channels} (input channels) as its first dim",
                w.shape()
            )));
        }
        w.shape()[1] * group
    } else {
        if w.shape()[1] * group != in_channels || w.shape()[0] % group != 0 {
            return Err(invalid(format!(
                "W {:?} does not fit {in_channels} input channels in {group} groups",
                w.shape()
            )));
        }
        w.shape()[0]
    };
    let kernel = w.shape()[2..].to_vec();
    if kernel.contains(&0) {
        return Err(invalid(format!(
            "W {:?} has an empty kernel dim",
            w.shape()
        )));
    }
    if let Some(ks) = ctx.node.attr_ints("kernel_shape")
        && ks.iter().map(|&k| k as usize).ne(kernel.iter().copied())
    {
        return Err(invalid(format!(
            "kernel_shape {ks:?} contradicts W {:?}",
            w.shape()
        )));
    }
    let bias = match ctx.opt(2) {
        Some(b) => {
            let b = typed::<f32>(b, "B")?;
            if b.len() != out_channels {
                return Err(invalid(format!(
                    "B has {} values for {out_channels} output channels",
                    b.len()
                )));
            }
            Some(contiguous(b))
        }
        None => None,
    };
    let spatial = x.shape()[2..].to_vec();
    Ok((
        ConvArgs {
            batch,
            in_channels,
            out_channels,
            group,
            x: contiguous(x),
            w: contiguous(w),
            bias,
        },
        spatial,
        kernel,
    ))
}

/// Fills one im2col row (input channel plane `plane`, kernel offset `k`) for the output rows
/// `out_rows` (flattened (d, h) indices; each spans the whole output width).
fn im2col_row(win: &Window, plane: &[f32], k: [usize; 3], out_rows: Range<usize>, row: &mut [f32]) {
    let [_, i1, i2] = win.input;
    let [_, o1, o2] = win.output;
    let valid = win.valid_outputs(2, k[2]);
    for (r, seg) in out_rows.zip(row.chunks_mut(o2)) {
        let (od, oh) = (r / o1, r % o1);
        let (Some(id), Some(ih)) = (win.source(0, od, k[0]), win.source(1, oh, k[1])) else {
            seg.fill(0.0);
            continue;
        };
        if valid.is_empty() {
            seg.fill(0.0);
            continue;
        }
        let src = &plane[(id * i1 + ih) * i2..][..i2];
        seg[..valid.start].fill(0.0);
        seg[valid.end..].fill(0.0);
        let first = valid.start * win.strides[2] + k[2] * win.dilations[2] - win.pad_begin[2];
        if win.strides[2] == 1 {
            seg[valid.clone()].copy_from_slice(&src[first..first + valid.len()]);
        } else {
            for (j, ow) in valid.clone().enumerate() {
                seg[ow] = src[first + j * win.strides[2]];
            }
        }
    }
}

/// The kernel offsets (d, h, w) in row-major order.
fn kernel_offsets(win: &Window) -> Vec<[usize; 3]> {
    let [k0, k1, k2] = win.kernel;
    (0..k0)
        .flat_map(|a| (0..k1).flat_map(move |b| (0..k2).map(move |c| [a, b, c])))
        .collect()
}

/// Fills each output plane of `out` (planes `first_plane..` of the whole output, `plane_len`
/// values each) with its starting value: bias plus residual, either of which may be absent.
/// Returns true when anything was written (the product must then accumulate onto it).
fn prefill(
    out: &mut [f32],
    plane_len: usize,
    first_plane: usize,
    args: &ConvArgs,
    residual: Option<&[f32]>,
) -> bool {
    let bias_of = |plane: usize| {
        args.bias
            .as_ref()
            .map_or(0.0, |b| b[plane % args.out_channels])
    };
    match residual {
        Some(r) => {
            let r = &r[first_plane * plane_len..][..out.len()];
            for (p, (dst, src)) in out
                .chunks_mut(plane_len)
                .zip(r.chunks(plane_len))
                .enumerate()
            {
                let b = bias_of(first_plane + p);
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s + b);
            }
            true
        }
        None if args.bias.is_some() => {
            for (p, dst) in out.chunks_mut(plane_len).enumerate() {
                dst.fill(bias_of(first_plane + p));
            }
            true
        }
        None => false,
    }
}

/// Depthwise conv (one input channel per group): each output plane computed directly.
fn depthwise(
    args: &ConvArgs,
    win: &Window,
    (residual, activation): (Option<&[f32]>, Option<Activation>),
    out: &mut [f32],
) {
    let (is, os, ks) = (win.input_size(), win.output_size(), win.kernel_size());
    let per_group = args.out_channels / args.group;
    let offsets = kernel_offsets(win);
    let [_, i1, i2] = win.input;
    let [_, o1, o2] = win.output;
    out.par_chunks_mut(os)
        .enumerate()
        .for_each(|(plane_idx, dst)| {
            let (n, m) = (plane_idx / args.out_channels, plane_idx % args.out_channels);
            let c = m / per_group;
            let src = &args.x[(n * args.in_channels + c) * is..][..is];
            let weights = &args.w[m * ks..][..ks];
            if !prefill(dst, os, plane_idx, args, residual) {
                dst.fill(0.0);
            }
            for (&wv, k) in weights.iter().zip(&offsets) {
                let cols = win.valid_outputs(2, k[2]);
                if cols.is_empty() {
                    continue;
                }
                let first =
                    cols.start * win.strides[2] + k[2] * win.dilations[2] - win.pad_begin[2];
                for od in win.valid_outputs(0, k[0]) {
                    let id = od * win.strides[0] + k[0] * win.dilations[0] - win.pad_begin[0];
                    for oh in win.valid_outputs(1, k[1]) {
                        let ih = oh * win.strides[1] + k[1] * win.dilations[1] - win.pad_begin[1];
                        let in_row = &src[(id * i1 + ih) * i2..][..i2];
                        let out_row = &mut dst[(od * o1 + oh) * o2..][..o2];
                        if win.strides[2] == 1 {
                            let len = cols.len();
                            for (o, &v) in out_row[cols.clone()]
                                .iter_mut()
                                .zip(&in_row[first..first + len])
                            {
                                *o += wv * v;
                            }
                        } else {
                            for (j, ow) in cols.clone().enumerate() {
                                out_row[ow] += wv * in_row[first + j * win.strides[2]];
                            }
                        }
                    }
                }
            }
            if let Some(act) = activation {
                act.apply_all(dst);
            }
        });
}

/// What the backend fuses into a convolution's output loop when the intermediates are not
/// needed elsewhere: `Conv → [Add(residual)] → [activation]`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Epilogue<'a> {
    /// A tensor of the conv output's shape added to it (a residual `Add`).
    pub residual: Option<&'a Tensor>,
    /// The activation applied last.
    pub activation: Option<Activation>,
}

/// `Conv` with `epilogue` fused into its output loop, writing into a buffer from `spare`;
/// `Ok(None)` when the residual does not have the conv output's shape (the caller then runs the
/// nodes one by one).
pub(crate) fn conv_with(
    ctx: &Ctx,
    epilogue: &Epilogue,
    spare: &mut SpareBuffers,
) -> OpResult<Option<Tensor>> {
    let (args, spatial, kernel) = conv_args(ctx, false)?;
    let win = Window::new(ctx, &spatial, &kernel, false)?;
    let (is, os, ks) = (win.input_size(), win.output_size(), win.kernel_size());
    let mut shape = vec![args.batch, args.out_channels];
    shape.extend_from_slice(win.output_dims());
    let residual = match epilogue.residual {
        Some(Tensor::F32(r)) if r.shape() == shape.as_slice() => Some(contiguous(r)),
        Some(_) => return Ok(None),
        None => None,
    };
    let residual = residual.as_deref();
    let activation = epilogue.activation;
    let mut out = spare.take(args.batch * args.out_channels * os);
    let cg = args.in_channels / args.group;
    let mg = args.out_channels / args.group;
    if cg == 1 && args.group > 1 {
        depthwise(&args, &win, (residual, activation), &mut out);
    } else {
        let pointwise = ks == 1
            && win.strides == [1, 1, 1]
            && win.pad_begin == [0, 0, 0]
            && win.pad_end == [0, 0, 0];
        let rows = cg * ks;
        let offsets = kernel_offsets(&win);
        // im2col in tiles of whole output rows, so the column buffer stays cache-sized
        // (a full im2col of a large feature map is tens of MB of page faults per call).
        let out_rows = win.output[0] * win.output[1];
        let width = win.output[2];
        let tile_rows = if pointwise {
            out_rows
        } else {
            (COL_TILE_FLOATS / (rows * width).max(1)).clamp(1, out_rows.max(1))
        };
        let mut col = vec![
            0.0f32;
            if pointwise {
                0
            } else {
                rows * tile_rows * width
            }
        ];
        for n in 0..args.batch {
            for g in 0..args.group {
                let x_block = &args.x[(n * args.in_channels + g * cg) * is..][..cg * is];
                let first_plane = n * args.out_channels + g * mg;
                let dst = &mut out[first_plane * os..][..mg * os];
                let accumulate = prefill(dst, os, first_plane, &args, residual);
                let weights = Mat::rows(&args.w[g * mg * rows..][..mg * rows], rows);
                for r0 in (0..out_rows).step_by(tile_rows.max(1)) {
                    let r1 = (r0 + tile_rows).min(out_rows);
                    let cols = (r1 - r0) * width;
                    let rhs = if pointwise {
                        Mat::rows(x_block, os)
                    } else {
                        col[..rows * cols]
                            .par_chunks_mut(cols.max(1))
                            .enumerate()
                            .for_each(|(r, row)| {
                                let (c, k) = (r / ks, offsets[r % ks]);
                                im2col_row(&win, &x_block[c * is..][..is], k, r0..r1, row);
                            });
                        Mat::rows(&col[..rows * cols], cols)
                    };
                    matmul_into(
                        (mg, cols, rows),
                        weights,
                        rhs,
                        (&mut dst[r0 * width..], os),
                        accumulate,
                        1.0,
                    )?;
                }
                if let Some(act) = activation {
                    // Once per group over whole planes: per tile, the rayon dispatch over every
                    // plane cost more than the cache reuse saved (bench-results/exec.md).
                    dst.par_chunks_mut(os)
                        .for_each(|plane| act.apply_all(plane));
                }
            }
        }
    }
    Ok(Some(Tensor::F32(array(&shape, out)?)))
}

fn conv(ctx: &Ctx) -> OpResult<Tensor> {
    conv_with(ctx, &Epilogue::default(), &mut SpareBuffers::default())?
        .ok_or_else(|| invalid("internal: a conv without residual refused its output"))
}

/// The geometry of a ConvTranspose as the adjoint conv: `input` is Y's spatial size and
/// `output` is X's, so a conv window reading Y at `source(o, k)` is where X's `o` scatters.
fn transpose_window(ctx: &Ctx, x_spatial: &[usize], kernel: &[usize]) -> OpResult<Window> {
    let rank = x_spatial.len();
    if !(1..=3).contains(&rank) {
        return Err(super::unsupported(format!(
            "{rank} spatial dims (1 to 3 supported)"
        )));
    }
    let list = |name: &str, default: i64| -> OpResult<Vec<i64>> {
        match ctx.node.attr_ints(name) {
            None => Ok(vec![default; rank]),
            Some(v) if v.len() == rank => Ok(v.to_vec()),
            Some(v) => Err(invalid(format!("{name} = {v:?} must have {rank} values"))),
        }
    };
    let strides = list("strides", 1)?;
    let dilations = list("dilations", 1)?;
    let out_pad = list("output_padding", 0)?;
    let auto_pad = ctx.attr_s_or("auto_pad", "NOTSET");
    let output_shape = match ctx.node.attr_ints("output_shape") {
        Some(v) if v.len() >= rank => Some(v[v.len() - rank..].to_vec()),
        Some(v) => {
            return Err(invalid(format!(
                "output_shape {v:?} has fewer than {rank} dims"
            )));
        }
        None => None,
    };
    let pads = ctx.node.attr_ints("pads");
    let mut win = Window {
        rank,
        input: [1; 3],
        kernel: [1; 3],
        strides: [1; 3],
        dilations: [1; 3],
        pad_begin: [0; 3],
        pad_end: [0; 3],
        output: [1; 3],
    };
    for i in 0..rank {
        let d = 3 - rank + i;
        let (s, dil) = (strides[i], dilations[i]);
        if s < 1 || dil < 1 {
            return Err(invalid("strides and dilations must be positive"));
        }
        let span = (kernel[i] as i64 - 1) * dil + 1;
        let full = s * (x_spatial[i] as i64 - 1) + out_pad[i] + span;
        let (pb, pe, y) = match (&output_shape, auto_pad.as_str()) {
            (Some(shape), mode) => {
                let total = full - shape[i];
                let (small, large) = (total / 2, total - total / 2);
                if mode == "SAME_UPPER" {
                    (small, large, shape[i])
                } else {
                    (large, small, shape[i])
                }
            }
            (None, "SAME_UPPER" | "SAME_LOWER") => {
                let y = x_spatial[i] as i64 * s;
                let total = full - y;
                let (small, large) = (total / 2, total - total / 2);
                if auto_pad == "SAME_UPPER" {
                    (small, large, y)
                } else {
                    (large, small, y)
                }
            }
            (None, _) => {
                let (pb, pe) = match pads {
                    Some(p) if p.len() == 2 * rank => (p[i], p[i + rank]),
                    Some(p) => {
                        return Err(invalid(format!(
                            "pads = {p:?} must have {} values",
                            2 * rank
                        )));
                    }
                    None => (0, 0),
                };
                (pb, pe, full - pb - pe)
            }
        };
        if pb < 0 || pe < 0 || y < 1 {
            return Err(invalid(format!(
                "output size {y} with pads ({pb}, {pe}) on spatial dim {i} is not valid"
            )));
        }
        win.input[d] = y as usize;
        win.output[d] = x_spatial[i];
        win.kernel[d] = kernel[i];
        win.strides[d] = s as usize;
        win.dilations[d] = dil as usize;
        win.pad_begin[d] = pb as usize;
        win.pad_end[d] = pe as usize;
    }
    Ok(win)
}

fn conv_transpose(ctx: &Ctx) -> OpResult<Tensor> {
    let (args, spatial, kernel) = conv_args(ctx, true)?;
    let win = transpose_window(ctx, &spatial, &kernel)?;
    // In adjoint terms: X positions are the window's outputs, Y positions its inputs.
    let (ys, xs, ks) = (win.input_size(), win.output_size(), win.kernel_size());
    let cg = args.in_channels / args.group;
    let mg = args.out_channels / args.group;
    let rows = mg * ks;
    let offsets = kernel_offsets(&win);
    let mut out = vec![0.0f32; args.batch * args.out_channels * ys];
    let mut col = vec![0.0f32; rows * xs];
    let [_, i1, i2] = win.input;
    let [_, o1, o2] = win.output;
    for n in 0..args.batch {
        for g in 0..args.group {
            let x_block = &args.x[(n * args.in_channels + g * cg) * xs..][..cg * xs];
            let w_block = &args.w[g * cg * rows..][..cg * rows];
            matmul_into(
                (rows, xs, cg),
                Mat::transposed(w_block, rows),
                Mat::rows(x_block, xs),
                (&mut col, xs),
                false,
                1.0,
            )?;
            let dst = &mut out[(n * args.out_channels + g * mg) * ys..][..mg * ys];
            dst.par_chunks_mut(ys).enumerate().for_each(|(m, plane)| {
                for (kk, k) in offsets.iter().enumerate() {
                    let row = &col[(m * ks + kk) * xs..][..xs];
                    for od in win.valid_outputs(0, k[0]) {
                        let yd = od * win.strides[0] + k[0] * win.dilations[0] - win.pad_begin[0];
                        for oh in win.valid_outputs(1, k[1]) {
                            let yh =
                                oh * win.strides[1] + k[1] * win.dilations[1] - win.pad_begin[1];
                            let y_row = &mut plane[(yd * i1 + yh) * i2..][..i2];
                            let x_row = &row[(od * o1 + oh) * o2..][..o2];
                            for ow in win.valid_outputs(2, k[2]) {
                                let yw = ow * win.strides[2] + k[2] * win.dilations[2]
                                    - win.pad_begin[2];
                                y_row[yw] += x_row[ow];
                            }
                        }
                    }
                }
            });
        }
    }
    if let Some(b) = &args.bias {
        for (i, plane) in out.chunks_mut(ys).enumerate() {
            let bias = b[i % args.out_channels];
            plane.iter_mut().for_each(|v| *v += bias);
        }
    }
    let mut shape = vec![args.batch, args.out_channels];
    shape.extend_from_slice(&win.input[3 - win.rank..]);
    Ok(Tensor::F32(array(&shape, out)?))
}

/// Evaluates `Conv` and `ConvTranspose`; `Ok(None)` for other ops.
pub(crate) fn eval(op: &str, ctx: &Ctx) -> OpResult<Option<Vec<Tensor>>> {
    let out = match op {
        "Conv" => conv(ctx)?,
        "ConvTranspose" => conv_transpose(ctx)?,
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

    /// Direct definition of a 2-D conv (NCHW), as the reference for the fast paths.
    fn naive(
        x: &[f32],
        xs: [usize; 4],
        w: &[f32],
        ws: [usize; 4],
        (group, s, p, d): (usize, usize, usize, usize),
    ) -> (Vec<f32>, [usize; 4]) {
        let [n, c, h, wd] = xs;
        let [m, cg, kh, kw] = ws;
        let oh = (h + 2 * p - ((kh - 1) * d + 1)) / s + 1;
        let ow = (wd + 2 * p - ((kw - 1) * d + 1)) / s + 1;
        let mg = m / group;
        let mut out = vec![0.0; n * m * oh * ow];
        for b in 0..n {
            for o in 0..m {
                let g = o / mg;
                for y in 0..oh {
                    for xx in 0..ow {
                        let mut acc = 0.0;
                        for ci in 0..cg {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let iy = (y * s + i * d) as isize - p as isize;
                                    let ix = (xx * s + j * d) as isize - p as isize;
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd
                                    {
                                        let cin = g * cg + ci;
                                        acc += x
                                            [((b * c + cin) * h + iy as usize) * wd + ix as usize]
                                            * w[((o * cg + ci) * kh + i) * kw + j];
                                    }
                                }
                            }
                        }
                        out[((b * m + o) * oh + y) * ow + xx] = acc;
                    }
                }
            }
        }
        (out, [n, m, oh, ow])
    }

    #[test]
    fn conv_paths_match_the_definition() {
        // (channels, out channels, group, kernel, stride, pad, dilation): im2col, pointwise,
        // grouped, depthwise with multiplier, strided + dilated.
        for &(c, m, group, k, s, p, d) in &[
            (3, 4, 1, 3, 1, 1, 1),
            (4, 6, 1, 1, 1, 0, 1),
            (4, 6, 2, 3, 2, 1, 1),
            (4, 8, 4, 3, 1, 1, 1),
            (4, 4, 4, 3, 2, 1, 2),
            (2, 3, 1, 2, 3, 0, 2),
        ] {
            let xs = [2, c, 7, 6];
            let ws = [m, c / group, k, k];
            let x: Vec<f32> = (0..xs.iter().product::<usize>())
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
                .collect();
            let w: Vec<f32> = (0..ws.iter().product::<usize>())
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 7.0)
                .collect();
            let (want, shape) = naive(&x, xs, &w, ws, (group, s, p, d));
            let node = Node::new("c", "Conv", &["x", "w"], &["y"])
                .with_attr(attr::int("group", group as i64))
                .with_attr(attr::ints("strides", &[s as i64; 2]))
                .with_attr(attr::ints("dilations", &[d as i64; 2]))
                .with_attr(attr::ints("pads", &[p as i64; 4]));
            let y = eval_node(&node, &[Some(&t(&xs, x)), Some(&t(&ws, w))]).unwrap();
            let got = y[0].as_f32().unwrap();
            assert_eq!(got.shape(), &shape);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() < 1e-4,
                    "case {:?}: {g} vs {w}",
                    (c, m, group, k, s, p, d)
                );
            }
        }
    }

    #[test]
    fn tiled_im2col_matches_the_definition() {
        // 120 channels x 3x3 taps x 1000 columns per output row exceeds one im2col tile, so the
        // output rows are computed in several tiles.
        let xs = [1, 120, 3, 1000];
        let ws = [4, 120, 3, 3];
        let x: Vec<f32> = (0..xs.iter().product::<usize>())
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
            .collect();
        let w: Vec<f32> = (0..ws.iter().product::<usize>())
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 7.0)
            .collect();
        const { assert!(120 * 9 * 1000 > super::COL_TILE_FLOATS) };
        let (want, shape) = naive(&x, xs, &w, ws, (1, 1, 1, 1));
        let node =
            Node::new("c", "Conv", &["x", "w"], &["y"]).with_attr(attr::ints("pads", &[1; 4]));
        let y = eval_node(&node, &[Some(&t(&xs, x)), Some(&t(&ws, w))]).unwrap();
        let got = y[0].as_f32().unwrap();
        assert_eq!(got.shape(), &shape);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-3, "{g} vs {w}");
        }
    }

    #[test]
    fn conv_transpose_is_the_adjoint_scatter() {
        // 1-D: x = [1, 2], w = [1, 10, 100], stride 2 -> y (len 5) = [1, 10, 102, 20, 200]
        let x = t(&[1, 1, 2], vec![1., 2.]);
        let w = t(&[1, 1, 3], vec![1., 10., 100.]);
        let node = Node::new("t", "ConvTranspose", &["x", "w"], &["y"])
            .with_attr(attr::ints("strides", &[2]));
        let y = eval_node(&node, &[Some(&x), Some(&w)]).unwrap();
        assert_eq!(y[0], t(&[1, 1, 5], vec![1., 10., 102., 20., 200.]));
        // pads [1, 1] crop one at each end; output_padding 1 adds one at the end.
        let node = node
            .with_attr(attr::ints("pads", &[1, 1]))
            .with_attr(attr::ints("output_padding", &[1]));
        let y = eval_node(&node, &[Some(&x), Some(&w)]).unwrap();
        assert_eq!(y[0], t(&[1, 1, 4], vec![10., 102., 20., 200.]));
    }
}
