//! The ops the GPU runs with kernels, and which forms of them: [`eval`] returns `Ok(None)` for
//! an op or form without a kernel, and the backend then runs that node on the CPU.
//!
//! Owns: dispatch by op type, argument checks that decide "kernel or CPU", and the launches of
//! the elementwise, layout, reduction and Q/DQ kernels; shape-only ops (Reshape, Flatten,
//! Squeeze, Unsqueeze, Identity) share the input's buffer. Convolution, GEMM and pooling are in
//! [`super::dense`]. Does not own: the kernels' math (`kernels/*.cu`) or the fallback.

use super::dense;
use super::gpu::{Gpu, device_error};
use super::kernels::{BinaryOp, MAX_RANK, NearestMode, ReduceOp, ResizeTransform, UnaryOp};
use super::value::{DeviceData, Value};
use crate::exec::ExecError;
use crate::graph::{Attributes, Node, Tensor};
use cudarc::driver::{CudaSlice, DeviceRepr, PushKernelArg};
use std::rc::Rc;

/// One input of a node: its value, and a host copy when one exists (host values and small
/// constants), for ops that read an input as a parameter (axes, shapes, Clip bounds, scales).
#[derive(Clone, Copy)]
pub(crate) struct Arg<'a> {
    /// The value.
    pub value: &'a Value,
    /// The same value on the host, when available without a copy.
    pub host: Option<&'a Tensor>,
}

/// A node's inputs (`None`: omitted) as the op functions see them.
pub(crate) struct Args<'a> {
    /// The node.
    pub node: &'a Node,
    /// Positional inputs.
    pub inputs: &'a [Option<Arg<'a>>],
}

impl<'a> Args<'a> {
    /// Input `i` when given.
    pub fn get(&self, i: usize) -> Option<Arg<'a>> {
        self.inputs.get(i).copied().flatten()
    }

    /// Input `i` as a float32 device buffer with its shape.
    pub fn f32(&self, i: usize) -> Option<(&'a CudaSlice<f32>, &'a [usize])> {
        self.get(i).and_then(|a| a.value.as_f32())
    }

    /// Input `i` read on the host as integers (axes, shapes).
    pub fn ints(&self, i: usize) -> Option<Vec<i64>> {
        self.get(i)?.host?.to_i64_vec()
    }

    /// Input `i` read on the host as a float32 scalar.
    pub fn scalar(&self, i: usize) -> Option<f32> {
        match self.get(i)?.host? {
            Tensor::F32(a) if a.len() == 1 => a.iter().next().copied(),
            _ => None,
        }
    }

    /// Integers from input `i` when given (readable on the host), else from attribute `name`.
    /// `Err(())` when the input is given but only on the device.
    pub fn ints_or_attr(&self, i: usize, name: &str) -> Result<Option<Vec<i64>>, ()> {
        match self.get(i) {
            Some(_) => self.ints(i).map(Some).ok_or(()),
            None => Ok(self.node.attr_ints(name).map(<[i64]>::to_vec)),
        }
    }
}

/// Outputs of a node run on the GPU, or `None` for "no kernel: run it on the CPU".
pub(crate) type Eval = Result<Option<Vec<Value>>, ExecError>;

/// An output shape and each input's element strides per output axis (the kernels' `Strides`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Strides {
    rank: i32,
    dims: [i64; MAX_RANK],
    a: [i64; MAX_RANK],
    b: [i64; MAX_RANK],
}

// SAFETY: plain data with the C layout of `Strides` in kernels/prelude.cuh.
unsafe impl DeviceRepr for Strides {}

/// Row-major element strides of `shape`.
pub(crate) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    strides
}

/// Strides of `input` read broadcast into `out` (numpy rules, right-aligned; 0 on broadcast
/// axes).
fn broadcast_strides(input: &[usize], out: &[usize]) -> [i64; MAX_RANK] {
    let mut strides = [0i64; MAX_RANK];
    let own = contiguous_strides(input);
    let shift = out.len() - input.len();
    for (d, (&dim, &stride)) in input.iter().zip(&own).enumerate() {
        if dim != 1 {
            strides[d + shift] = stride as i64;
        }
    }
    strides
}

impl Strides {
    /// `out`'s dims with the two inputs' strides; `None` past [`MAX_RANK`].
    fn new(out: &[usize], a: [i64; MAX_RANK], b: [i64; MAX_RANK]) -> Option<Strides> {
        if out.len() > MAX_RANK {
            return None;
        }
        let mut dims = [1i64; MAX_RANK];
        for (d, &v) in out.iter().enumerate() {
            dims[d] = v as i64;
        }
        Some(Strides {
            rank: out.len() as i32,
            dims,
            a,
            b,
        })
    }
}

/// The `Strides` of a one-input gather of shape `out` reading with `strides`.
pub(crate) fn gather_strides(out: &[usize], strides: [i64; MAX_RANK]) -> Option<Strides> {
    Strides::new(out, strides, [0; MAX_RANK])
}

/// `y[i] = x[offset + Σ index_d · stride_d]` for the first `n` elements of `y`, the index
/// walking `layout`'s output shape (Transpose, Slice, broadcast copies).
pub(crate) fn gather_into(
    gpu: &Gpu,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
    n: usize,
    offset: i64,
    layout: &Strides,
) -> Result<(), ExecError> {
    let count = n as i64;
    launch!(
        gpu,
        "gather_strided",
        gpu.grid(n),
        x,
        y,
        &count,
        &offset,
        layout
    )
}

/// The numpy broadcast of two shapes, `None` when they do not broadcast.
fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    (0..rank)
        .map(|i| {
            let da = if i + a.len() >= rank {
                a[i + a.len() - rank]
            } else {
                1
            };
            let db = if i + b.len() >= rank {
                b[i + b.len() - rank]
            } else {
                1
            };
            match (da, db) {
                (x, y) if x == y => Some(x),
                (1, y) => Some(y),
                (x, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// A new float32 device buffer of `n` elements (contents undefined until a kernel writes it).
pub(crate) fn alloc(gpu: &Gpu, n: usize) -> Result<CudaSlice<f32>, ExecError> {
    // SAFETY: every caller launches a kernel or GEMM that writes all `n` elements before the
    // buffer is read.
    unsafe { gpu.stream.alloc::<f32>(n.max(1)) }.map_err(|e| device_error("cuMemAlloc", e))
}

/// Launches `name` over `n` elements with `args` pushed by `push`.
macro_rules! launch {
    ($gpu:expr, $name:expr, $cfg:expr, $($arg:expr),+ $(,)?) => {{
        let function = $gpu.function($name)?;
        let mut builder = $gpu.stream.launch_builder(function);
        $(builder.arg($arg);)+
        // SAFETY: the argument list matches the kernel's signature in kernels/*.cu, and every
        // buffer holds the element counts the kernel indexes (checked by the caller).
        unsafe { builder.launch($cfg) }
            .map(|_| ())
            .map_err(|e| $crate::exec::cuda::gpu::device_error(concat!("kernel ", $name), e))
    }};
}
pub(crate) use launch;

fn binary(gpu: &Gpu, args: &Args, op: BinaryOp) -> Eval {
    let (Some((a, a_shape)), Some((b, b_shape))) = (args.f32(0), args.f32(1)) else {
        return Ok(None);
    };
    let Some(shape) = broadcast_shape(a_shape, b_shape) else {
        return Ok(None);
    };
    let n: usize = shape.iter().product();
    let mut y = alloc(gpu, n)?;
    let (count, code) = (n as i64, op as i32);
    if a_shape == b_shape {
        launch!(gpu, "binary_same", gpu.grid(n), a, b, &mut y, &count, &code)?;
    } else {
        let Some(strides) = Strides::new(
            &shape,
            broadcast_strides(a_shape, &shape),
            broadcast_strides(b_shape, &shape),
        ) else {
            return Ok(None);
        };
        launch!(
            gpu,
            "binary_broadcast",
            gpu.grid(n),
            a,
            b,
            &mut y,
            &count,
            &code,
            &strides
        )?;
    }
    Ok(Some(vec![Value::f32(y, shape)]))
}

/// The unary kernel code and its two parameters for `node`, `None` when no kernel fits.
fn unary_code(args: &Args) -> Option<(UnaryOp, f32, f32)> {
    let node = args.node;
    let alpha = |default: f32| node.attr_f_or("alpha", default);
    Some(match node.op_type.as_str() {
        "Relu" => (UnaryOp::Relu, 0.0, 0.0),
        "Sigmoid" => (UnaryOp::Sigmoid, 0.0, 0.0),
        "Tanh" => (UnaryOp::Tanh, 0.0, 0.0),
        "Clip" => {
            let bound = |i: usize, attr: &str, default: f32| match args.get(i) {
                Some(_) => args.scalar(i),
                None => Some(node.attr_f_or(attr, default)),
            };
            (
                UnaryOp::Clip,
                bound(1, "min", f32::NEG_INFINITY)?,
                bound(2, "max", f32::INFINITY)?,
            )
        }
        "HardSigmoid" => (
            UnaryOp::HardSigmoid,
            alpha(0.2),
            node.attr_f_or("beta", 0.5),
        ),
        "HardSwish" => (UnaryOp::HardSwish, 0.0, 0.0),
        "LeakyRelu" => (UnaryOp::LeakyRelu, alpha(0.01), 0.0),
        "Erf" => (UnaryOp::Erf, 0.0, 0.0),
        "Exp" => (UnaryOp::Exp, 0.0, 0.0),
        "Sqrt" => (UnaryOp::Sqrt, 0.0, 0.0),
        "Neg" => (UnaryOp::Neg, 0.0, 0.0),
        "Abs" => (UnaryOp::Abs, 0.0, 0.0),
        "Gelu" => match node.attr_s("approximate").as_deref().unwrap_or("none") {
            "none" => (UnaryOp::Gelu, 0.0, 0.0),
            "tanh" => (UnaryOp::GeluTanh, 0.0, 0.0),
            _ => return None,
        },
        "Log" => (UnaryOp::Log, 0.0, 0.0),
        "Reciprocal" => (UnaryOp::Reciprocal, 0.0, 0.0),
        "Floor" => (UnaryOp::Floor, 0.0, 0.0),
        "Ceil" => (UnaryOp::Ceil, 0.0, 0.0),
        "Elu" => (UnaryOp::Elu, alpha(1.0), 0.0),
        "Softplus" => (UnaryOp::Softplus, 0.0, 0.0),
        "Sin" => (UnaryOp::Sin, 0.0, 0.0),
        "Cos" => (UnaryOp::Cos, 0.0, 0.0),
        "Round" => (UnaryOp::Round, 0.0, 0.0),
        "Softsign" => (UnaryOp::Softsign, 0.0, 0.0),
        _ => return None,
    })
}

fn unary(gpu: &Gpu, args: &Args) -> Eval {
    let (Some((x, shape)), Some((op, alpha, beta))) = (args.f32(0), unary_code(args)) else {
        return Ok(None);
    };
    let n = x.len();
    let mut y = alloc(gpu, n)?;
    let (count, code) = (n as i64, op as i32);
    launch!(
        gpu,
        "unary",
        gpu.grid(n),
        x,
        &mut y,
        &count,
        &code,
        &alpha,
        &beta
    )?;
    Ok(Some(vec![Value::f32(y, shape.to_vec())]))
}

/// Resolves a possibly negative axis against `rank`.
fn axis(value: i64, rank: usize) -> Option<usize> {
    let a = if value < 0 {
        value + rank as i64
    } else {
        value
    };
    (0..rank as i64).contains(&a).then_some(a as usize)
}

/// The output shape of a shape-only op, `None` when the form is not handled here.
fn reshaped_shape(args: &Args, shape: &[usize]) -> Option<Vec<usize>> {
    let node = args.node;
    let total: usize = shape.iter().product();
    let out = match node.op_type.as_str() {
        "Identity" | "Dropout" => shape.to_vec(),
        "Flatten" => {
            let rank = shape.len();
            let a = node.attr_i_or("axis", 1);
            let a = if a < 0 { a + rank as i64 } else { a };
            if !(0..=rank as i64).contains(&a) {
                return None;
            }
            let outer: usize = shape[..a as usize].iter().product();
            vec![outer, total / outer.max(1)]
        }
        "Reshape" => {
            let spec = args.ints(1)?;
            let allow_zero = node.attr_i_or("allowzero", 0) == 1;
            let mut out = Vec::with_capacity(spec.len());
            let mut infer = None;
            for (i, &d) in spec.iter().enumerate() {
                match d {
                    0 if !allow_zero => out.push(*shape.get(i)?),
                    -1 if infer.is_none() => {
                        infer = Some(i);
                        out.push(1);
                    }
                    d if d >= 0 => out.push(d as usize),
                    _ => return None,
                }
            }
            if let Some(i) = infer {
                let known: usize = out.iter().product();
                if known == 0 || !total.is_multiple_of(known) {
                    return None;
                }
                out[i] = total / known;
            }
            out
        }
        "Squeeze" => {
            let axes = args.ints_or_attr(1, "axes").ok()?;
            match axes {
                None => shape.iter().copied().filter(|&d| d != 1).collect(),
                Some(axes) => {
                    let axes: Vec<usize> = axes
                        .iter()
                        .map(|&a| axis(a, shape.len()))
                        .collect::<Option<_>>()?;
                    if axes.iter().any(|&a| shape[a] != 1) {
                        return None;
                    }
                    shape
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !axes.contains(i))
                        .map(|(_, &d)| d)
                        .collect()
                }
            }
        }
        "Unsqueeze" => {
            let axes = args.ints_or_attr(1, "axes").ok()??;
            let rank = shape.len() + axes.len();
            let axes: Vec<usize> = axes.iter().map(|&a| axis(a, rank)).collect::<Option<_>>()?;
            let mut rest = shape.iter();
            (0..rank)
                .map(|i| {
                    if axes.contains(&i) {
                        Some(1)
                    } else {
                        rest.next().copied()
                    }
                })
                .collect::<Option<Vec<_>>>()?
        }
        _ => return None,
    };
    (out.iter().product::<usize>() == total).then_some(out)
}

fn shape_only(args: &Args) -> Eval {
    let Some(input) = args.get(0) else {
        return Ok(None);
    };
    if !matches!(input.value, Value::Device { .. }) || args.node.outputs.len() > 1 {
        return Ok(None);
    }
    Ok(reshaped_shape(args, input.value.shape()).map(|shape| vec![input.value.reshaped(shape)]))
}

/// Shape (with opset-15 `start` / `end`): read from the value's shape, never its data.
fn shape_of(args: &Args) -> Eval {
    let Some(input) = args.get(0) else {
        return Ok(None);
    };
    let dims = input.value.shape();
    let rank = dims.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let start = clamp(args.node.attr_i_or("start", 0));
    let end = clamp(args.node.attr_i_or("end", rank));
    let picked: Vec<i64> = dims
        .get(start..end.max(start))
        .unwrap_or(&[])
        .iter()
        .map(|&d| d as i64)
        .collect();
    Ok(Some(vec![Value::Host(Rc::new(Tensor::from_i64s(picked)))]))
}

fn transpose(gpu: &Gpu, args: &Args) -> Eval {
    let Some((x, shape)) = args.f32(0) else {
        return Ok(None);
    };
    let rank = shape.len();
    let perm: Vec<usize> = match args.node.attr_ints("perm") {
        Some(p) => match p.iter().map(|&a| axis(a, rank)).collect::<Option<Vec<_>>>() {
            Some(p) if p.len() == rank => p,
            _ => return Ok(None),
        },
        None => (0..rank).rev().collect(),
    };
    let own = contiguous_strides(shape);
    let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let mut a = [0i64; MAX_RANK];
    for (d, &p) in perm.iter().enumerate().take(MAX_RANK) {
        a[d] = own[p] as i64;
    }
    let Some(strides) = gather_strides(&out, a) else {
        return Ok(None);
    };
    let n = x.len();
    let mut y = alloc(gpu, n)?;
    gather_into(gpu, x, &mut y, n, 0, &strides)?;
    Ok(Some(vec![Value::f32(y, out)]))
}

/// One sliced axis: first index, step and length (ONNX Slice clamping rules).
fn slice_axis(dim: usize, start: i64, end: i64, step: i64) -> Option<(i64, i64, usize)> {
    let dim = i64::try_from(dim).ok()?;
    let wrap = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
    let (first, len) = if step > 0 {
        let first = wrap(start).clamp(0, dim);
        let last = wrap(end).clamp(0, dim);
        (first, ((last - first).max(0) + step - 1) / step)
    } else if step < 0 {
        let first = wrap(start).clamp(0, dim - 1);
        let last = wrap(end).clamp(-1, dim - 1);
        (first, ((first - last).max(0) - step - 1) / -step)
    } else {
        return None;
    };
    Some((first, step, usize::try_from(len).ok()?))
}

fn slice(gpu: &Gpu, args: &Args) -> Eval {
    let Some((x, shape)) = args.f32(0) else {
        return Ok(None);
    };
    let (Some(starts), Some(ends)) = (args.ints(1), args.ints(2)) else {
        return Ok(None);
    };
    let rank = shape.len();
    let axes: Vec<usize> = match args.get(3) {
        None => (0..starts.len()).collect(),
        Some(_) => match args
            .ints(3)
            .and_then(|a| a.iter().map(|&v| axis(v, rank)).collect())
        {
            Some(a) => a,
            None => return Ok(None),
        },
    };
    let steps = match args.get(4) {
        None => vec![1; axes.len()],
        Some(_) => match args.ints(4) {
            Some(s) => s,
            None => return Ok(None),
        },
    };
    if starts.len() != axes.len()
        || ends.len() != axes.len()
        || steps.len() != axes.len()
        || rank > MAX_RANK
    {
        return Ok(None);
    }
    let own = contiguous_strides(shape);
    let mut out = shape.to_vec();
    let mut strides = [0i64; MAX_RANK];
    for (d, &s) in own.iter().enumerate() {
        strides[d] = s as i64;
    }
    let mut offset = 0i64;
    for (i, &a) in axes.iter().enumerate() {
        let Some((first, step, len)) = slice_axis(shape[a], starts[i], ends[i], steps[i]) else {
            return Ok(None);
        };
        offset += first * own[a] as i64;
        strides[a] = step * own[a] as i64;
        out[a] = len;
    }
    let n: usize = out.iter().product();
    let Some(layout) = gather_strides(&out, strides) else {
        return Ok(None);
    };
    if n == 0 {
        return Ok(None);
    }
    let mut y = alloc(gpu, n)?;
    gather_into(gpu, x, &mut y, n, offset, &layout)?;
    Ok(Some(vec![Value::f32(y, out)]))
}

fn concat(gpu: &Gpu, args: &Args) -> Eval {
    let parts: Option<Vec<_>> = (0..args.inputs.len()).map(|i| args.f32(i)).collect();
    let Some(parts) = parts else {
        return Ok(None);
    };
    let Some(&(_, first)) = parts.first() else {
        return Ok(None);
    };
    let Some(ax) = axis(args.node.attr_i_or("axis", 0), first.len()) else {
        return Ok(None);
    };
    let same_elsewhere = parts.iter().all(|(_, s)| {
        s.len() == first.len()
            && s.iter()
                .zip(first)
                .enumerate()
                .all(|(d, (a, b))| d == ax || a == b)
    });
    if !same_elsewhere {
        return Ok(None);
    }
    let mut out = first.to_vec();
    out[ax] = parts.iter().map(|(_, s)| s[ax]).sum();
    let outer: i64 = first[..ax].iter().product::<usize>() as i64;
    let inner: i64 = first[ax + 1..].iter().product::<usize>() as i64;
    let n: usize = out.iter().product();
    let mut y = alloc(gpu, n)?;
    let out_len = out[ax] as i64;
    let mut at = 0i64;
    for (x, s) in &parts {
        let len = s[ax] as i64;
        if !x.is_empty() {
            launch!(
                gpu,
                "concat_copy",
                gpu.grid(x.len()),
                *x,
                &mut y,
                &outer,
                &len,
                &inner,
                &out_len,
                &at
            )?;
        }
        at += len;
    }
    Ok(Some(vec![Value::f32(y, out)]))
}

/// `shape` viewed as [outer, len, inner] around the contiguous block of axes `axes`.
fn split_around(shape: &[usize], axes: &[usize]) -> Option<(usize, usize, usize)> {
    let (&lo, &hi) = (axes.iter().min()?, axes.iter().max()?);
    if hi - lo + 1 != axes.len() {
        return None;
    }
    Some((
        shape[..lo].iter().product(),
        shape[lo..=hi].iter().product(),
        shape[hi + 1..].iter().product(),
    ))
}

fn reduce(gpu: &Gpu, args: &Args, op: ReduceOp) -> Eval {
    let Some((x, shape)) = args.f32(0) else {
        return Ok(None);
    };
    let Ok(axes) = args.ints_or_attr(1, "axes") else {
        return Ok(None);
    };
    let mut axes: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => match a.iter().map(|&v| axis(v, shape.len())).collect() {
            Some(a) => a,
            None => return Ok(None),
        },
        _ if args.node.attr_i_or("noop_with_empty_axes", 0) == 1 => return Ok(None),
        _ => (0..shape.len()).collect(),
    };
    axes.sort_unstable();
    axes.dedup();
    let Some((outer, len, inner)) = split_around(shape, &axes) else {
        return Ok(None);
    };
    let keep = args.node.attr_i_or("keepdims", 1) == 1;
    let out: Vec<usize> = shape
        .iter()
        .enumerate()
        .filter_map(|(d, &v)| match (axes.contains(&d), keep) {
            (false, _) => Some(v),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    if len == 0 {
        return Ok(None);
    }
    let n = outer * inner;
    let mut y = alloc(gpu, n)?;
    let (o, l, i, code) = (outer as i64, len as i64, inner as i64, op as i32);
    launch!(
        gpu,
        "reduce_axis",
        gpu.grid(n),
        x,
        &mut y,
        &o,
        &l,
        &i,
        &code
    )?;
    Ok(Some(vec![Value::f32(y, out)]))
}

fn softmax(gpu: &Gpu, args: &Args, log: bool) -> Eval {
    let Some((x, shape)) = args.f32(0) else {
        return Ok(None);
    };
    let Some(ax) = axis(args.node.attr_i_or("axis", -1), shape.len()) else {
        return Ok(None);
    };
    let (outer, len, inner) = (
        shape[..ax].iter().product::<usize>(),
        shape[ax],
        shape[ax + 1..].iter().product::<usize>(),
    );
    let mut y = alloc(gpu, x.len())?;
    let (o, l, i, code) = (outer as i64, len as i64, inner as i64, i32::from(log));
    launch!(
        gpu,
        "softmax_axis",
        gpu.grid(outer * inner),
        x,
        &mut y,
        &o,
        &l,
        &i,
        &code
    )?;
    Ok(Some(vec![Value::f32(y, shape.to_vec())]))
}

fn layer_norm(gpu: &Gpu, args: &Args) -> Eval {
    let (Some((x, shape)), Some((scale, _))) = (args.f32(0), args.f32(1)) else {
        return Ok(None);
    };
    let Some(ax) = axis(args.node.attr_i_or("axis", -1), shape.len()) else {
        return Ok(None);
    };
    let len: usize = shape[ax..].iter().product();
    let bias = args.f32(2);
    let extra_outputs = args.node.outputs.iter().skip(1).any(|o| !o.is_empty());
    if extra_outputs
        || len == 0
        || scale.len() != len
        || bias.is_some_and(|(b, _)| b.len() != len)
        || (args.get(2).is_some() && bias.is_none())
    {
        return Ok(None);
    }
    let rows = x.len() / len;
    let mut y = alloc(gpu, x.len())?;
    let (l, eps) = (len as i64, args.node.attr_f_or("epsilon", 1e-5));
    match bias {
        Some((b, _)) => launch!(
            gpu,
            "layer_norm",
            gpu.rows(rows),
            x,
            &mut y,
            scale,
            b,
            &l,
            &eps
        )?,
        None => {
            let null = 0u64;
            launch!(
                gpu,
                "layer_norm",
                gpu.rows(rows),
                x,
                &mut y,
                scale,
                &null,
                &l,
                &eps
            )?
        }
    }
    Ok(Some(vec![Value::f32(y, shape.to_vec())]))
}

/// Q/DQ parameters on the device: scales, zero points (i32), channel count, inner size.
type QuantParams = (CudaSlice<f32>, CudaSlice<i32>, i64, i64);

fn batch_norm(gpu: &Gpu, args: &Args) -> Eval {
    let Some((x, shape)) = args.f32(0) else {
        return Ok(None);
    };
    let params: Option<Vec<_>> = (1..5).map(|i| args.f32(i).map(|(p, _)| p)).collect();
    let (Some(params), Some(&channels)) = (params, shape.get(1)) else {
        return Ok(None);
    };
    let extra_outputs = args.node.outputs.iter().skip(1).any(|o| !o.is_empty());
    if extra_outputs
        || args.node.attr_i_or("training_mode", 0) != 0
        || params.iter().any(|p| p.len() != channels)
    {
        return Ok(None);
    }
    let n = x.len();
    let mut y = alloc(gpu, n)?;
    let (count, c, inner) = (
        n as i64,
        channels as i64,
        shape[2..].iter().product::<usize>() as i64,
    );
    let eps = args.node.attr_f_or("epsilon", 1e-5);
    launch!(
        gpu,
        "batch_norm",
        gpu.grid(n),
        x,
        &mut y,
        params[0],
        params[1],
        params[2],
        params[3],
        &count,
        &c,
        &inner,
        &eps
    )?;
    Ok(Some(vec![Value::f32(y, shape.to_vec())]))
}

/// Per-tensor or per-axis Q/DQ parameters of `args` for an input of `shape`.
fn quant_params(gpu: &Gpu, args: &Args, shape: &[usize]) -> Result<Option<QuantParams>, ExecError> {
    let Some(Tensor::F32(scale)) = args.get(1).and_then(|a| a.host) else {
        return Ok(None);
    };
    let zero: Vec<i32> = match args.get(2) {
        None => vec![0; scale.len()],
        Some(a) => match a.host.and_then(Tensor::to_i64_vec) {
            Some(z) if z.len() == scale.len() => z.iter().map(|&v| v as i32).collect(),
            _ => return Ok(None),
        },
    };
    let channels = scale.len();
    let inner = if channels == 1 {
        1
    } else {
        match axis(args.node.attr_i_or("axis", 1), shape.len()) {
            Some(a) if shape[a] == channels => shape[a + 1..].iter().product(),
            _ => return Ok(None),
        }
    };
    let scales: Vec<f32> = scale.iter().copied().collect();
    let copy = |e| device_error("host → device copy", e);
    Ok(Some((
        gpu.stream.clone_htod(&scales).map_err(copy)?,
        gpu.stream.clone_htod(&zero).map_err(copy)?,
        channels as i64,
        inner as i64,
    )))
}

fn quantize(gpu: &Gpu, args: &Args) -> Eval {
    let Some((x, shape)) = args.f32(0) else {
        return Ok(None);
    };
    let signed = match args.get(2).and_then(|a| a.host) {
        None | Some(Tensor::U8(_)) => false,
        Some(Tensor::I8(_)) => true,
        Some(_) => return Ok(None),
    };
    let Some((scale, zero, channels, inner)) = quant_params(gpu, args, shape)? else {
        return Ok(None);
    };
    let n = x.len();
    let count = n as i64;
    let alloc_err = |e| device_error("cuMemAlloc", e);
    let data = if signed {
        // SAFETY: the kernel writes all n elements.
        let mut y = unsafe { gpu.stream.alloc::<i8>(n.max(1)) }.map_err(alloc_err)?;
        launch!(
            gpu,
            "quantize_i8",
            gpu.grid(n),
            x,
            &mut y,
            &count,
            &scale,
            &zero,
            &channels,
            &inner
        )?;
        DeviceData::I8(y)
    } else {
        // SAFETY: as above.
        let mut y = unsafe { gpu.stream.alloc::<u8>(n.max(1)) }.map_err(alloc_err)?;
        launch!(
            gpu,
            "quantize_u8",
            gpu.grid(n),
            x,
            &mut y,
            &count,
            &scale,
            &zero,
            &channels,
            &inner
        )?;
        DeviceData::U8(y)
    };
    Ok(Some(vec![Value::Device {
        data: Rc::new(data),
        shape: shape.to_vec(),
    }]))
}

fn dequantize(gpu: &Gpu, args: &Args) -> Eval {
    let Some(Value::Device { data, shape }) = args.get(0).map(|a| a.value) else {
        return Ok(None);
    };
    let Some((scale, zero, channels, inner)) = quant_params(gpu, args, shape)? else {
        return Ok(None);
    };
    let n: usize = shape.iter().product();
    let count = n as i64;
    let mut y = alloc(gpu, n)?;
    match data.as_ref() {
        DeviceData::I8(q) => launch!(
            gpu,
            "dequantize_i8",
            gpu.grid(n),
            q,
            &mut y,
            &count,
            &scale,
            &zero,
            &channels,
            &inner
        )?,
        DeviceData::U8(q) => launch!(
            gpu,
            "dequantize_u8",
            gpu.grid(n),
            q,
            &mut y,
            &count,
            &scale,
            &zero,
            &channels,
            &inner
        )?,
        DeviceData::F32(_) => return Ok(None),
    }
    Ok(Some(vec![Value::f32(y, shape.clone())]))
}

/// A host-readable float list (Resize scales).
fn floats(arg: Option<Arg>) -> Option<Vec<f32>> {
    match arg?.host? {
        Tensor::F32(a) => Some(a.iter().copied().collect()),
        _ => None,
    }
}

/// Resize of NCHW over H and W (N and C kept), nearest or linear, with the coordinate transforms
/// half_pixel, pytorch_half_pixel, align_corners and asymmetric; sized by scales or sizes.
fn resize(gpu: &Gpu, args: &Args) -> Eval {
    let Some((x, shape)) = args.f32(0) else {
        return Ok(None);
    };
    let node = args.node;
    let policy = node.attr_s("keep_aspect_ratio_policy");
    if shape.len() != 4
        || node.attr_i_or("antialias", 0) != 0
        || node.attr_ints("axes").is_some()
        || !matches!(policy.as_deref(), None | Some("stretch"))
        || shape[2] == 0
        || shape[3] == 0
    {
        return Ok(None);
    }
    let opset10 = node.inputs.len() == 2;
    let given = |i: usize| args.get(i).filter(|a| !a.value.shape().contains(&0));
    let (scales, sizes) = if opset10 {
        (given(1), None)
    } else {
        (given(2), given(3))
    };
    let (out, scale): (Vec<usize>, [f32; 2]) = match (scales, sizes) {
        (Some(s), None) => {
            let Some(s) = floats(Some(s)) else {
                return Ok(None);
            };
            if s.len() != 4
                || s[0] != 1.0
                || s[1] != 1.0
                || s.iter().any(|&v| !(v > 0.0 && v.is_finite()))
            {
                return Ok(None);
            }
            let out = (0..4)
                .map(|d| (shape[d] as f64 * f64::from(s[d])).floor() as usize)
                .collect();
            (out, [s[2], s[3]])
        }
        (None, Some(s)) => {
            let Some(s) = s.host.and_then(Tensor::to_i64_vec) else {
                return Ok(None);
            };
            if s.len() != 4
                || s[0] != shape[0] as i64
                || s[1] != shape[1] as i64
                || s.iter().any(|&v| v < 1)
            {
                return Ok(None);
            }
            let out: Vec<usize> = s.iter().map(|&v| v as usize).collect();
            let scale = [
                out[2] as f32 / shape[2] as f32,
                out[3] as f32 / shape[3] as f32,
            ];
            (out, scale)
        }
        _ => return Ok(None),
    };
    let default_transform = if opset10 { "asymmetric" } else { "half_pixel" };
    let transform = match node
        .attr_s("coordinate_transformation_mode")
        .as_deref()
        .unwrap_or(default_transform)
    {
        "half_pixel" => ResizeTransform::HalfPixel,
        "asymmetric" => ResizeTransform::Asymmetric,
        "align_corners" => ResizeTransform::AlignCorners,
        "pytorch_half_pixel" => ResizeTransform::PytorchHalfPixel,
        _ => return Ok(None),
    };
    let default_rounding = if opset10 {
        "floor"
    } else {
        "round_prefer_floor"
    };
    let (linear, rounding) = match node.attr_s("mode").as_deref().unwrap_or("nearest") {
        "nearest" => {
            let rounding = match node
                .attr_s("nearest_mode")
                .as_deref()
                .unwrap_or(default_rounding)
            {
                "round_prefer_floor" => NearestMode::RoundPreferFloor,
                "round_prefer_ceil" => NearestMode::RoundPreferCeil,
                "floor" => NearestMode::Floor,
                "ceil" => NearestMode::Ceil,
                _ => return Ok(None),
            };
            (0i32, rounding)
        }
        "linear" | "bilinear" => (1i32, NearestMode::RoundPreferFloor),
        _ => return Ok(None),
    };
    let n: usize = out.iter().product();
    if n == 0 {
        return Ok(None);
    }
    let mut y = alloc(gpu, n)?;
    let planes = (shape[0] * shape[1]) as i64;
    let (in_h, in_w, out_h, out_w) = (
        shape[2] as i64,
        shape[3] as i64,
        out[2] as i64,
        out[3] as i64,
    );
    let (transform, rounding) = (transform as i32, rounding as i32);
    launch!(
        gpu,
        "resize2d",
        gpu.grid(n),
        x,
        &mut y,
        &planes,
        &in_h,
        &in_w,
        &out_h,
        &out_w,
        &scale[0],
        &scale[1],
        &transform,
        &linear,
        &rounding
    )?;
    Ok(Some(vec![Value::f32(y, out)]))
}

/// Runs `args.node` with kernels when the op and its form have them; `Ok(None)` otherwise.
pub(crate) fn eval(gpu: &Gpu, args: &Args) -> Eval {
    if !args.node.is_onnx() {
        return Ok(None);
    }
    let op = args.node.op_type.as_str();
    if let Some(code) = BinaryOp::of(op) {
        // Variadic Max / Min / Sum take exactly two inputs here.
        return if args.inputs.len() == 2 {
            binary(gpu, args, code)
        } else {
            Ok(None)
        };
    }
    if op == "Sum" && args.inputs.len() == 2 {
        return binary(gpu, args, BinaryOp::Add);
    }
    if let Some(code) = ReduceOp::of(op) {
        return reduce(gpu, args, code);
    }
    match op {
        "Identity" | "Dropout" | "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" => {
            shape_only(args)
        }
        "Shape" => shape_of(args),
        "Transpose" => transpose(gpu, args),
        "Concat" => concat(gpu, args),
        "Slice" => slice(gpu, args),
        "Softmax" => softmax(gpu, args, false),
        "LogSoftmax" => softmax(gpu, args, true),
        "LayerNormalization" => layer_norm(gpu, args),
        "BatchNormalization" => batch_norm(gpu, args),
        "QuantizeLinear" => quantize(gpu, args),
        "DequantizeLinear" => dequantize(gpu, args),
        "Conv" => dense::conv(gpu, args),
        "ConvTranspose" => dense::conv_transpose(gpu, args),
        "Resize" => resize(gpu, args),
        "Gemm" => dense::gemm(gpu, args),
        "MatMul" => dense::matmul(gpu, args),
        "MaxPool" | "AveragePool" => dense::pool(gpu, args),
        "GlobalAveragePool" | "GlobalMaxPool" => dense::global_pool(gpu, args),
        _ => unary(gpu, args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_axis_follows_onnx_clamping() {
        // 1, 3, 5, 7 of 8.
        assert_eq!(slice_axis(8, 1, i64::MAX, 2), Some((1, 2, 4)));
        // 10, 7, 4, 1 of 11 (end 0 excluded).
        assert_eq!(slice_axis(11, -1, 0, -3), Some((10, -3, 4)));
        // Everything backwards: end below -dim clamps to "before 0".
        assert_eq!(slice_axis(5, i64::MAX, i64::MIN, -1), Some((4, -1, 5)));
        // Empty and invalid.
        assert_eq!(slice_axis(5, 3, 1, 1), Some((3, 1, 0)));
        assert_eq!(slice_axis(5, 0, 5, 0), None);
    }

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(
            broadcast_shape(&[2, 8, 9, 11], &[8, 1, 11]),
            Some(vec![2, 8, 9, 11])
        );
        assert_eq!(broadcast_shape(&[3], &[4]), None);
        let strides = broadcast_strides(&[8, 1, 11], &[2, 8, 9, 11]);
        assert_eq!(&strides[..4], &[0, 11, 0, 1]);
    }
}
