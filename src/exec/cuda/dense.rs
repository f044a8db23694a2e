//! Convolution, GEMM, MatMul and pooling on the GPU.
//!
//! Owns: Conv as im2col + cuBLAS SGEMM (one strided-batched GEMM over the groups of each image;
//! 1×1 stride-1 unpadded convs multiply the input directly), Gemm and MatMul through cuBLAS
//! (batched for attention-style MatMuls), 2-D Max/AveragePool and the global pools. Window
//! geometry (pads, auto_pad, ceil_mode, output size) is the CPU executor's own
//! (`cpu::window::Window`), so both backends agree on shapes by construction.
//! Does not own: the kernels (`kernels/layout.cu`, `kernels/pool.cu`) or other ops
//! ([`super::ops`]).

use super::gpu::{Gpu, device_error};
use super::ops::{Args, Eval, alloc, contiguous_strides, launch};
use super::value::Value;
use crate::exec::cpu::{Ctx, window::Window};
use crate::graph::Attributes;
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{DevicePtr, DevicePtrMut, DeviceRepr, PushKernelArg};

/// Largest matrix dimension cuBLAS's 32-bit interface takes.
const BLAS_MAX: usize = i32::MAX as usize;

/// Geometry of one im2col (the kernel's `Window`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct ColWindow {
    channels: i64,
    height: i64,
    width: i64,
    kernel_h: i64,
    kernel_w: i64,
    stride_h: i64,
    stride_w: i64,
    pad_top: i64,
    pad_left: i64,
    dilation_h: i64,
    dilation_w: i64,
    out_h: i64,
    out_w: i64,
}

// SAFETY: plain data with the C layout of `Window` in kernels/layout.cu.
unsafe impl DeviceRepr for ColWindow {}

/// Geometry of a 2-D pool (the kernel's `Pool`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct PoolWindow {
    planes: i64,
    height: i64,
    width: i64,
    kernel_h: i64,
    kernel_w: i64,
    stride_h: i64,
    stride_w: i64,
    pad_top: i64,
    pad_left: i64,
    pad_bottom: i64,
    pad_right: i64,
    dilation_h: i64,
    dilation_w: i64,
    out_h: i64,
    out_w: i64,
    count_include_pad: i32,
}

// SAFETY: plain data with the C layout of `Pool` in kernels/pool.cu.
unsafe impl DeviceRepr for PoolWindow {}

/// The CPU executor's window geometry for a 2-D op on `spatial` with `kernel`.
fn window(args: &Args, spatial: &[usize], kernel: &[usize], ceil_mode: bool) -> Option<Window> {
    let ctx = Ctx::new(args.node, &[]);
    let w = Window::new(&ctx, spatial, kernel, ceil_mode).ok()?;
    (w.rank == 2).then_some(w)
}

/// Row-major C[m, n] (+)= A[m, k] · B[k, n], `batch` times with the given element strides
/// between consecutive A, B and C matrices (0 = the same matrix for every batch entry).
#[allow(clippy::too_many_arguments)]
fn sgemm<A: DevicePtr<f32>, B: DevicePtr<f32>, C: DevicePtrMut<f32>>(
    gpu: &Gpu,
    (m, n, k): (usize, usize, usize),
    (a, trans_a): (&A, bool),
    (b, trans_b): (&B, bool),
    c: &mut C,
    beta: f32,
    batch: usize,
    (stride_a, stride_b, stride_c): (usize, usize, usize),
) -> Result<(), crate::exec::ExecError> {
    if [m, n, k, batch].iter().any(|&d| d > BLAS_MAX) {
        return Err(crate::exec::ExecError::Device(format!(
            "a GEMM of {m}x{k} by {k}x{n} (batch {batch}) exceeds cuBLAS's 32-bit sizes"
        )));
    }
    // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: cuBLAS gets B first, m and n swapped.
    let op = |t: bool| {
        if t {
            cublasOperation_t::CUBLAS_OP_T
        } else {
            cublasOperation_t::CUBLAS_OP_N
        }
    };
    let gemm = GemmConfig {
        transa: op(trans_b),
        transb: op(trans_a),
        m: n as i32,
        n: m as i32,
        k: k as i32,
        alpha: 1.0f32,
        lda: if trans_b { k } else { n } as i32,
        ldb: if trans_a { m } else { k } as i32,
        beta,
        ldc: n as i32,
    };
    // SAFETY: the callers size a, b and c for `batch` matrices of these shapes and strides.
    let result = unsafe {
        if batch == 1 {
            gpu.blas.gemm(gemm, b, a, c)
        } else {
            gpu.blas.gemm_strided_batched(
                StridedBatchedConfig {
                    gemm,
                    batch_size: batch as i32,
                    stride_a: stride_b as i64,
                    stride_b: stride_a as i64,
                    stride_c: stride_c as i64,
                },
                b,
                a,
                c,
            )
        }
    };
    result.map_err(|e| device_error("cublasSgemm", e))
}

/// Conv, 2-D (NCHW), any group count, optional bias.
pub(crate) fn conv(gpu: &Gpu, args: &Args) -> Eval {
    let (Some((x, xs)), Some((w, ws))) = (args.f32(0), args.f32(1)) else {
        return Ok(None);
    };
    if xs.len() != 4 || ws.len() != 4 {
        return Ok(None);
    }
    let group = args.node.attr_i_or("group", 1).max(1) as usize;
    let (batch, channels, out_channels) = (xs[0], xs[1], ws[0]);
    if channels % group != 0 || out_channels % group != 0 || ws[1] * group != channels {
        return Ok(None);
    }
    let bias = match args.get(2) {
        None => None,
        Some(_) => match args.f32(2) {
            Some((b, _)) if b.len() == out_channels => Some(b),
            _ => return Ok(None),
        },
    };
    let Some(win) = window(args, &xs[2..], &ws[2..], false) else {
        return Ok(None);
    };
    let (oh, ow) = (win.output[1], win.output[2]);
    let spatial = oh * ow;
    let k = ws[1] * ws[2] * ws[3];
    let mg = out_channels / group;
    let image_in = channels * xs[2] * xs[3];
    let image_out = out_channels * spatial;
    let mut y = alloc(gpu, batch * image_out)?;
    let direct = ws[2] == 1
        && ws[3] == 1
        && win.strides[1..] == [1, 1]
        && win.pad_begin[1..] == [0, 0]
        && win.pad_end[1..] == [0, 0];
    let geometry = ColWindow {
        channels: channels as i64,
        height: xs[2] as i64,
        width: xs[3] as i64,
        kernel_h: ws[2] as i64,
        kernel_w: ws[3] as i64,
        stride_h: win.strides[1] as i64,
        stride_w: win.strides[2] as i64,
        pad_top: win.pad_begin[1] as i64,
        pad_left: win.pad_begin[2] as i64,
        dilation_h: win.dilations[1] as i64,
        dilation_w: win.dilations[2] as i64,
        out_h: oh as i64,
        out_w: ow as i64,
    };
    let mut col = if direct {
        None
    } else {
        Some(alloc(gpu, channels * ws[2] * ws[3] * spatial)?)
    };
    for image in 0..batch {
        let input = x.slice(image * image_in..(image + 1) * image_in);
        let mut output = y.slice_mut(image * image_out..(image + 1) * image_out);
        // Per group g: out[g] [mg, spatial] = W[g] [mg, k] · col[g] [k, spatial].
        let strides = (mg * k, k * spatial, mg * spatial);
        match col.as_mut() {
            Some(col) => {
                let n = col.len();
                launch!(gpu, "im2col", gpu.grid(n), &input, &mut *col, &geometry)?;
                sgemm(
                    gpu,
                    (mg, spatial, k),
                    (w, false),
                    (&*col, false),
                    &mut output,
                    0.0,
                    group,
                    strides,
                )?;
            }
            None => {
                sgemm(
                    gpu,
                    (mg, spatial, k),
                    (w, false),
                    (&input, false),
                    &mut output,
                    0.0,
                    group,
                    strides,
                )?;
            }
        }
    }
    if let Some(b) = bias {
        let (n, c, inner) = (
            (batch * image_out) as i64,
            out_channels as i64,
            spatial as i64,
        );
        launch!(
            gpu,
            "add_channel_bias",
            gpu.grid(batch * image_out),
            &mut y,
            b,
            &n,
            &c,
            &inner
        )?;
    }
    Ok(Some(vec![Value::f32(y, vec![batch, out_channels, oh, ow])]))
}

/// Gemm: Y = alpha·op(A)·op(B) + beta·C with C broadcast to [M, N].
pub(crate) fn gemm(gpu: &Gpu, args: &Args) -> Eval {
    let (Some((a, a_shape)), Some((b, b_shape))) = (args.f32(0), args.f32(1)) else {
        return Ok(None);
    };
    if a_shape.len() != 2 || b_shape.len() != 2 {
        return Ok(None);
    }
    let node = args.node;
    let (trans_a, trans_b) = (
        node.attr_i_or("transA", 0) != 0,
        node.attr_i_or("transB", 0) != 0,
    );
    let (alpha, beta) = (node.attr_f_or("alpha", 1.0), node.attr_f_or("beta", 1.0));
    let (m, k) = if trans_a {
        (a_shape[1], a_shape[0])
    } else {
        (a_shape[0], a_shape[1])
    };
    let (kb, n) = if trans_b {
        (b_shape[1], b_shape[0])
    } else {
        (b_shape[0], b_shape[1])
    };
    if k != kb || alpha != 1.0 {
        return Ok(None);
    }
    let mut y = alloc(gpu, m * n)?;
    let mut accumulate = 0.0;
    if let Some(c) = args.get(2) {
        let Some((c, c_shape)) = c.value.as_f32() else {
            return Ok(None);
        };
        if c_shape.len() > 2 || beta == 0.0 {
            return Ok(None);
        }
        // Y ← broadcast C (a strided gather with stride 0 on broadcast axes), then Y += A·B with
        // beta = 1 after scaling: only beta = 1 keeps the CPU's rounding, so other betas fall back.
        if beta != 1.0 {
            return Ok(None);
        }
        let out = [m, n];
        let own = contiguous_strides(c_shape);
        let mut strides = [0i64; super::kernels::MAX_RANK];
        let shift = 2 - c_shape.len();
        for (d, &dim) in c_shape.iter().enumerate() {
            if dim == out[d + shift] && dim != 1 {
                strides[d + shift] = own[d] as i64;
            } else if dim != 1 {
                return Ok(None);
            }
        }
        let Some(layout) = super::ops::gather_strides(&out, strides) else {
            return Ok(None);
        };
        super::ops::gather_into(gpu, c, &mut y, m * n, 0, &layout)?;
        accumulate = 1.0;
    }
    sgemm(
        gpu,
        (m, n, k),
        (a, trans_a),
        (b, trans_b),
        &mut y,
        accumulate,
        1,
        (0, 0, 0),
    )?;
    Ok(Some(vec![Value::f32(y, vec![m, n])]))
}

/// MatMul of rank ≥ 2 operands: a 2-D right operand (weights) folds A's batch dims into M; equal
/// batch dims (or a 2-D left operand) run as one strided-batched GEMM.
pub(crate) fn matmul(gpu: &Gpu, args: &Args) -> Eval {
    let (Some((a, a_shape)), Some((b, b_shape))) = (args.f32(0), args.f32(1)) else {
        return Ok(None);
    };
    let (ra, rb) = (a_shape.len(), b_shape.len());
    if ra < 2 || rb < 2 {
        return Ok(None);
    }
    let (m, k) = (a_shape[ra - 2], a_shape[ra - 1]);
    let (kb, n) = (b_shape[rb - 2], b_shape[rb - 1]);
    if k != kb {
        return Ok(None);
    }
    let a_batch = &a_shape[..ra - 2];
    let b_batch = &b_shape[..rb - 2];
    let (batch_dims, batch, strides, rows) = if rb == 2 {
        (
            a_batch.to_vec(),
            1,
            (0, 0, 0),
            a_batch.iter().product::<usize>() * m,
        )
    } else if a_batch == b_batch {
        let count = a_batch.iter().product::<usize>();
        (a_batch.to_vec(), count, (m * k, k * n, m * n), m)
    } else if ra == 2 {
        let count = b_batch.iter().product::<usize>();
        (b_batch.to_vec(), count, (0, k * n, m * n), m)
    } else {
        return Ok(None);
    };
    let total = batch_dims.iter().product::<usize>() * m * n;
    let mut y = alloc(gpu, total)?;
    sgemm(
        gpu,
        (rows, n, k),
        (a, false),
        (b, false),
        &mut y,
        0.0,
        batch,
        strides,
    )?;
    let mut shape = batch_dims;
    shape.extend([m, n]);
    Ok(Some(vec![Value::f32(y, shape)]))
}

/// MaxPool (one output) and AveragePool over 2-D windows of NCHW.
pub(crate) fn pool(gpu: &Gpu, args: &Args) -> Eval {
    let Some((x, xs)) = args.f32(0) else {
        return Ok(None);
    };
    let node = args.node;
    let max = node.op_type == "MaxPool";
    let extra_outputs = node.outputs.iter().skip(1).any(|o| !o.is_empty());
    let Some(kernel) = node.attr_ints("kernel_shape") else {
        return Ok(None);
    };
    if xs.len() != 4 || extra_outputs || kernel.len() != 2 || kernel.iter().any(|&v| v < 1) {
        return Ok(None);
    }
    if !max
        && node
            .attr_ints("dilations")
            .is_some_and(|d| d.iter().any(|&v| v != 1))
    {
        return Ok(None);
    }
    let kernel: Vec<usize> = kernel.iter().map(|&v| v as usize).collect();
    let ceil_mode = node.attr_i_or("ceil_mode", 0) != 0;
    let Some(win) = window(args, &xs[2..], &kernel, ceil_mode) else {
        return Ok(None);
    };
    let (oh, ow) = (win.output[1], win.output[2]);
    let geometry = PoolWindow {
        planes: (xs[0] * xs[1]) as i64,
        height: xs[2] as i64,
        width: xs[3] as i64,
        kernel_h: kernel[0] as i64,
        kernel_w: kernel[1] as i64,
        stride_h: win.strides[1] as i64,
        stride_w: win.strides[2] as i64,
        pad_top: win.pad_begin[1] as i64,
        pad_left: win.pad_begin[2] as i64,
        pad_bottom: win.pad_end[1] as i64,
        pad_right: win.pad_end[2] as i64,
        dilation_h: win.dilations[1] as i64,
        dilation_w: win.dilations[2] as i64,
        out_h: oh as i64,
        out_w: ow as i64,
        count_include_pad: i32::from(node.attr_i_or("count_include_pad", 0) != 0),
    };
    let n = xs[0] * xs[1] * oh * ow;
    let mut y = alloc(gpu, n)?;
    if max {
        launch!(gpu, "max_pool2d", gpu.grid(n), x, &mut y, &geometry)?;
    } else {
        launch!(gpu, "avg_pool2d", gpu.grid(n), x, &mut y, &geometry)?;
    }
    Ok(Some(vec![Value::f32(y, vec![xs[0], xs[1], oh, ow])]))
}

/// GlobalAveragePool / GlobalMaxPool over every axis after the channel axis.
pub(crate) fn global_pool(gpu: &Gpu, args: &Args) -> Eval {
    let Some((x, xs)) = args.f32(0) else {
        return Ok(None);
    };
    if xs.len() < 3 {
        return Ok(None);
    }
    let planes = xs[0] * xs[1];
    let size: usize = xs[2..].iter().product();
    if size == 0 || planes == 0 {
        return Ok(None);
    }
    let mut y = alloc(gpu, planes)?;
    let (len, is_max) = (size as i64, i32::from(args.node.op_type == "GlobalMaxPool"));
    launch!(
        gpu,
        "global_pool",
        gpu.rows(planes),
        x,
        &mut y,
        &len,
        &is_max
    )?;
    let mut shape = xs[..2].to_vec();
    shape.extend(std::iter::repeat_n(1, xs.len() - 2));
    Ok(Some(vec![Value::f32(y, shape)]))
}

/// Geometry of a 2-D transposed convolution (the kernel's `Deconv`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct DeconvWindow {
    batch: i64,
    in_c: i64,
    in_h: i64,
    in_w: i64,
    out_c: i64,
    out_h: i64,
    out_w: i64,
    kernel_h: i64,
    kernel_w: i64,
    stride_h: i64,
    stride_w: i64,
    pad_top: i64,
    pad_left: i64,
    dilation_h: i64,
    dilation_w: i64,
    group: i64,
}

// SAFETY: plain data with the C layout of `Deconv` in kernels/layout.cu.
unsafe impl DeviceRepr for DeconvWindow {}

/// ConvTranspose, 2-D, sized by `pads` / `output_padding` (an `output_shape` attribute or
/// `auto_pad` SAME_* runs on the CPU).
pub(crate) fn conv_transpose(gpu: &Gpu, args: &Args) -> Eval {
    let (Some((x, xs)), Some((w, ws))) = (args.f32(0), args.f32(1)) else {
        return Ok(None);
    };
    let node = args.node;
    let auto_pad = node.attr_s("auto_pad");
    if xs.len() != 4
        || ws.len() != 4
        || node.attr_ints("output_shape").is_some()
        || !matches!(
            auto_pad.as_deref(),
            None | Some("NOTSET") | Some("VALID") | Some("")
        )
    {
        return Ok(None);
    }
    let pair = |name: &str, default: i64| -> Option<[i64; 2]> {
        match node.attr_ints(name) {
            None => Some([default; 2]),
            Some(&[a, b]) => Some([a, b]),
            Some(_) => None,
        }
    };
    let (Some(strides), Some(dilations), Some(out_pad)) = (
        pair("strides", 1),
        pair("dilations", 1),
        pair("output_padding", 0),
    ) else {
        return Ok(None);
    };
    let pads = match node.attr_ints("pads") {
        None => [0; 4],
        Some(&[a, b, c, d]) if auto_pad.as_deref() != Some("VALID") => [a, b, c, d],
        Some(_) => return Ok(None),
    };
    let group = node.attr_i_or("group", 1);
    let (batch, in_c) = (xs[0] as i64, xs[1] as i64);
    if group < 1
        || ws[0] as i64 != in_c
        || in_c % group != 0
        || strides.iter().chain(&dilations).any(|&v| v < 1)
    {
        return Ok(None);
    }
    let out_c = ws[1] as i64 * group;
    let size = |axis: usize| {
        let span = (ws[2 + axis] as i64 - 1) * dilations[axis] + 1;
        strides[axis] * (xs[2 + axis] as i64 - 1) + out_pad[axis] + span
            - pads[axis]
            - pads[axis + 2]
    };
    let (out_h, out_w) = (size(0), size(1));
    if out_h < 1 || out_w < 1 || pads.iter().any(|&p| p < 0) {
        return Ok(None);
    }
    let bias = match args.get(2) {
        None => None,
        Some(_) => match args.f32(2) {
            Some((b, _)) if b.len() as i64 == out_c => Some(b),
            _ => return Ok(None),
        },
    };
    let geometry = DeconvWindow {
        batch,
        in_c,
        in_h: xs[2] as i64,
        in_w: xs[3] as i64,
        out_c,
        out_h,
        out_w,
        kernel_h: ws[2] as i64,
        kernel_w: ws[3] as i64,
        stride_h: strides[0],
        stride_w: strides[1],
        pad_top: pads[0],
        pad_left: pads[1],
        dilation_h: dilations[0],
        dilation_w: dilations[1],
        group,
    };
    let n = (batch * out_c * out_h * out_w) as usize;
    let mut y = alloc(gpu, n)?;
    match bias {
        Some(b) => launch!(
            gpu,
            "conv_transpose2d",
            gpu.grid(n),
            x,
            w,
            b,
            &mut y,
            &geometry
        )?,
        None => {
            let null = 0u64;
            launch!(
                gpu,
                "conv_transpose2d",
                gpu.grid(n),
                x,
                w,
                &null,
                &mut y,
                &geometry
            )?
        }
    }
    let shape = vec![xs[0], out_c as usize, out_h as usize, out_w as usize];
    Ok(Some(vec![Value::f32(y, shape)]))
}
