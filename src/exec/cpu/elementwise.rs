//! Elementwise ops with ONNX multidirectional broadcasting: arithmetic, comparisons, logic,
//! `Where`, variadic `Sum`/`Min`/`Max`/`Mean`, `Clip`, and unary math and activations.
//!
//! Owns: the broadcasting helpers ([`broadcast_shape`], [`binary_map`], [`map1`]) other kernels
//! reuse. Large tensors are processed in parallel (rayon).
//! Does not own: reductions or normalizations (see `reduce`, `norm`).

use super::{Ctx, Elem, Num, OpResult, invalid, typed, unsupported, with_elem, with_num};
use crate::graph::{Attributes, Tensor};
use ndarray::{ArrayD, IxDyn, Zip};
use rayon::prelude::*;
use std::cmp::Ordering::{Equal, Greater, Less};

/// Element count above which elementwise kernels run in parallel.
const PAR_MIN: usize = 1 << 15;

/// The ONNX multidirectional broadcast of several shapes.
pub(crate) fn broadcast_shape(shapes: &[&[usize]]) -> OpResult<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        let offset = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[offset + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(invalid(format!(
                    "shapes {:?} cannot be broadcast together",
                    shapes
                )));
            }
        }
    }
    Ok(out)
}

/// Applies `f` to every element (in parallel for large arrays).
pub(crate) fn map1<A: Elem, C: Elem>(a: &ArrayD<A>, f: impl Fn(A) -> C + Sync + Send) -> ArrayD<C> {
    if a.len() >= PAR_MIN {
        Zip::from(a).par_map_collect(|&x| f(x))
    } else {
        a.mapv(f)
    }
}

/// Applies `f` pairwise under broadcasting.
pub(crate) fn binary_map<A: Elem, B: Elem, C: Elem>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(A, B) -> C + Sync + Send,
) -> OpResult<ArrayD<C>> {
    let shape = broadcast_shape(&[a.shape(), b.shape()])?;
    if b.len() == 1 && a.shape() == shape.as_slice() {
        let y = *b.iter().next().ok_or_else(|| invalid("empty operand"))?;
        return Ok(map1(a, |x| f(x, y)));
    }
    if a.len() == 1 && b.shape() == shape.as_slice() {
        let x = *a.iter().next().ok_or_else(|| invalid("empty operand"))?;
        return Ok(map1(b, |y| f(x, y)));
    }
    let dim = IxDyn(&shape);
    let av = a
        .broadcast(dim.clone())
        .ok_or_else(|| invalid("broadcast failed"))?;
    let bv = b
        .broadcast(dim)
        .ok_or_else(|| invalid("broadcast failed"))?;
    let zip = Zip::from(&av).and(&bv);
    Ok(if av.len() >= PAR_MIN {
        zip.par_map_collect(|&x, &y| f(x, y))
    } else {
        zip.map_collect(|&x, &y| f(x, y))
    })
}

/// Both inputs as the same numeric type `T`.
fn pair<'a, T: Elem>(a: &'a Tensor, b: &'a Tensor) -> OpResult<(&'a ArrayD<T>, &'a ArrayD<T>)> {
    Ok((typed::<T>(a, "input 0")?, typed::<T>(b, "input 1")?))
}

#[derive(Clone, Copy)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
    /// Remainder with the divisor's sign (ONNX Mod, fmod=0).
    FloorMod,
    /// Remainder with the dividend's sign (ONNX Mod, fmod=1).
    FMod,
}

fn arith_typed<T: Num>(op: Arith, a: &ArrayD<T>, b: &ArrayD<T>) -> OpResult<ArrayD<T>> {
    if T::EXACT
        && matches!(op, Arith::Div | Arith::FloorMod | Arith::FMod)
        && b.iter().any(|v| v.is_int_zero())
    {
        return Err(invalid("integer division by zero"));
    }
    match op {
        Arith::Add => binary_map(a, b, T::add),
        Arith::Sub => binary_map(a, b, T::sub),
        Arith::Mul => binary_map(a, b, T::mul),
        Arith::Div => binary_map(a, b, T::div),
        Arith::Min => binary_map(a, b, |x, y| if y < x || x.is_nan() { y } else { x }),
        Arith::Max => binary_map(a, b, |x, y| if y > x || x.is_nan() { y } else { x }),
        Arith::FMod => binary_map(a, b, T::fmod),
        Arith::FloorMod => binary_map(a, b, |x, y| {
            let r = x.fmod(y);
            if r != T::ZERO && ((r < T::ZERO) != (y < T::ZERO)) {
                r.add(y)
            } else {
                r
            }
        }),
    }
}

fn arith(op: Arith, a: &Tensor, b: &Tensor) -> OpResult<Tensor> {
    with_num!(a, T => {
        let (x, y) = pair::<T>(a, b)?;
        Ok(T::wrap(arith_typed(op, x, y)?))
    })
}

#[derive(Clone, Copy)]
enum Compare {
    Equal,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
}

fn compare(op: Compare, a: &Tensor, b: &Tensor) -> OpResult<Tensor> {
    with_elem!(a, T => {
        let (x, y) = pair::<T>(a, b)?;
        let out = match op {
            Compare::Equal => binary_map(x, y, |p, q| p == q),
            Compare::Less => binary_map(x, y, |p, q| p.partial_cmp(&q) == Some(Less)),
            Compare::Greater => binary_map(x, y, |p, q| p.partial_cmp(&q) == Some(Greater)),
            Compare::LessOrEqual => binary_map(x, y, |p, q| matches!(p.partial_cmp(&q), Some(Less | Equal))),
            Compare::GreaterOrEqual => {
                binary_map(x, y, |p, q| matches!(p.partial_cmp(&q), Some(Greater | Equal)))
            }
        }?;
        Ok(Tensor::Bool(out))
    })
}

fn logic(ctx: &Ctx, f: fn(bool, bool) -> bool) -> OpResult<Tensor> {
    let a = typed::<bool>(ctx.input(0)?, "input 0")?;
    let b = typed::<bool>(ctx.input(1)?, "input 1")?;
    Ok(Tensor::Bool(binary_map(a, b, f)?))
}

fn where_op(ctx: &Ctx) -> OpResult<Tensor> {
    let cond = typed::<bool>(ctx.input(0)?, "condition")?;
    let (x, y) = (ctx.input(1)?, ctx.input(2)?);
    with_elem!(x, T => {
        let (xa, ya) = pair::<T>(x, y)?;
        let shape = broadcast_shape(&[cond.shape(), xa.shape(), ya.shape()])?;
        let dim = IxDyn(&shape);
        let fail = || invalid("broadcast failed");
        let (c, xv, yv) = (
            cond.broadcast(dim.clone()).ok_or_else(fail)?,
            xa.broadcast(dim.clone()).ok_or_else(fail)?,
            ya.broadcast(dim).ok_or_else(fail)?,
        );
        Ok(T::wrap(Zip::from(&c).and(&xv).and(&yv).map_collect(|&c, &p, &q| if c { p } else { q })))
    })
}

/// Folds a variadic op (`Sum`, `Min`, `Max`, `Mean`) over all inputs with broadcasting.
fn variadic(ctx: &Ctx, op: Arith, mean: bool) -> OpResult<Tensor> {
    let inputs = ctx.all();
    let (first, rest) = inputs
        .split_first()
        .ok_or_else(|| invalid("needs at least one input"))?;
    let mut acc = (*first).clone();
    for t in rest {
        acc = arith(op, &acc, t)?;
    }
    if mean {
        let n = inputs.len() as f64;
        acc = with_num!(&acc, T => {
            let a = typed::<T>(&acc, "sum")?;
            T::wrap(map1(a, |v| T::from_f64(v.to_f64() / n)))
        });
    }
    Ok(acc)
}

/// The bounds of a `Clip` node (inputs 1 and 2 in opset 11+, attributes before), defaulting to
/// the type's range.
fn clip_bounds<T: Num>(ctx: &Ctx) -> OpResult<(T, T)> {
    let bound = |i: usize, attr: &str, default: T| -> OpResult<T> {
        match ctx.opt(i) {
            Some(t) => typed::<T>(t, "clip bound")?
                .iter()
                .next()
                .copied()
                .ok_or_else(|| invalid("clip bound is empty")),
            None => Ok(ctx
                .node
                .attr_f(attr)
                .map(|v| T::from_f64(v as f64))
                .unwrap_or(default)),
        }
    };
    Ok((bound(1, "min", T::LOWEST)?, bound(2, "max", T::HIGHEST)?))
}

/// `v` clamped to [lo, hi]; NaN passes through.
fn clamp<T: PartialOrd>(v: T, lo: T, hi: T) -> T {
    let v = if v < lo { lo } else { v };
    if v > hi { hi } else { v }
}

fn clip(ctx: &Ctx) -> OpResult<Tensor> {
    let x = ctx.input(0)?;
    with_num!(x, T => {
        let a = typed::<T>(x, "input")?;
        let (lo, hi) = clip_bounds::<T>(ctx)?;
        Ok(T::wrap(map1(a, |v| clamp(v, lo, hi))))
    })
}

/// The ops [`Activation::of`] knows.
pub(crate) const ACTIVATION_OPS: &[&str] = &[
    "Relu",
    "Clip",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "LeakyRelu",
];

/// A pointwise float activation: one definition shared by the out-of-place kernels, the in-place
/// path (see `inplace`) and convolution epilogues (see `conv`), so all three compute the same
/// values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Activation {
    /// max(x, 0).
    Relu,
    /// x clamped to [min, max].
    Clip(f32, f32),
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// clamp(alpha x + beta, 0, 1).
    HardSigmoid { alpha: f64, beta: f64 },
    /// x · clamp(x / 6 + 1/2, 0, 1).
    HardSwish,
    /// x, or alpha x below zero.
    LeakyRelu(f64),
}

impl Activation {
    /// The activation `op` computes on float32 input (`Ok(None)`: not an activation).
    pub(crate) fn of(op: &str, ctx: &Ctx) -> OpResult<Option<Activation>> {
        let attr = |name: &str, default: f32| ctx.node.attr_f_or(name, default) as f64;
        Ok(Some(match op {
            "Relu" => Activation::Relu,
            "Clip" => {
                let (lo, hi) = clip_bounds::<f32>(ctx)?;
                Activation::Clip(lo, hi)
            }
            "Sigmoid" => Activation::Sigmoid,
            "HardSigmoid" => Activation::HardSigmoid {
                alpha: attr("alpha", 0.2),
                beta: attr("beta", 0.5),
            },
            "HardSwish" => Activation::HardSwish,
            "LeakyRelu" => Activation::LeakyRelu(attr("alpha", 0.01)),
            _ => return Ok(None),
        }))
    }

    /// The activation in f64 (the precision every float type computes in).
    fn apply_f64(self, x: f64) -> f64 {
        match self {
            Activation::Relu => x.max(0.0),
            Activation::Clip(lo, hi) => clamp(x, lo as f64, hi as f64),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            Activation::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            Activation::LeakyRelu(alpha) => {
                if x < 0.0 {
                    alpha * x
                } else {
                    x
                }
            }
        }
    }

    /// The activation of one float32 value (exact ops stay in f32, the others go through f64).
    #[inline]
    pub(crate) fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Relu => x.max(0.0),
            Activation::Clip(lo, hi) => clamp(x, lo, hi),
            _ => self.apply_f64(x as f64) as f32,
        }
    }

    /// Applies the activation to every value of `data` in place (in parallel chunks when large).
    pub(crate) fn apply_all(self, data: &mut [f32]) {
        if data.len() > PAR_MIN {
            data.par_chunks_mut(PAR_MIN)
                .for_each(|chunk| self.apply_serial(chunk));
        } else {
            self.apply_serial(data);
        }
    }

    /// Applies the activation to every value of `data` on this thread.
    fn apply_serial(self, data: &mut [f32]) {
        // One loop per activation (not a match per value), so the simple ones vectorize.
        fn each(data: &mut [f32], f: impl Fn(f32) -> f32) {
            data.iter_mut().for_each(|v| *v = f(*v));
        }
        match self {
            Activation::Relu => each(data, |x| x.max(0.0)),
            Activation::Clip(lo, hi) => each(data, |x| clamp(x, lo, hi)),
            other => each(data, |x| other.apply_f64(x as f64) as f32),
        }
    }
}

fn pow(ctx: &Ctx) -> OpResult<Tensor> {
    let (base, exp) = (ctx.input(0)?, ctx.input(1)?);
    let e: ArrayD<f64> = with_elem!(exp, E => typed::<E>(exp, "exponent")?.mapv(|v| v.to_f64()));
    with_num!(base, T => {
        let b = typed::<T>(base, "base")?;
        Ok(T::wrap(binary_map(b, &e, |x, y| {
            if y == 2.0 { x.mul(x) } else { T::from_f64(x.to_f64().powf(y)) }
        })?))
    })
}

fn prelu_typed<T: Num>(x: &ArrayD<T>, slope: &ArrayD<T>) -> OpResult<ArrayD<T>> {
    binary_map(x, slope, |v, k| if v < T::ZERO { v.mul(k) } else { v })
}

fn prelu(ctx: &Ctx) -> OpResult<Tensor> {
    let (x, slope) = (ctx.input(0)?, ctx.input(1)?);
    with_num!(x, T => {
        let (a, s) = pair::<T>(x, slope)?;
        Ok(T::wrap(prelu_typed(a, s)?))
    })
}

/// A numeric unary op that keeps the element type (Abs, Neg, Relu, Sign).
fn numeric_unary(ctx: &Ctx, f: fn(f64) -> f64, exact: fn(i64) -> i64) -> OpResult<Tensor> {
    let x = ctx.input(0)?;
    with_num!(x, T => {
        let a = typed::<T>(x, "input")?;
        Ok(T::wrap(if T::EXACT {
            map1(a, |v| T::from_i64(exact(v.to_i64())))
        } else {
            map1(a, |v| T::from_f64(f(v.to_f64())))
        }))
    })
}

/// A float unary op computed in f64 (f32, f64 and f16 inputs).
fn float_unary(ctx: &Ctx, f: impl Fn(f64) -> f64 + Sync + Send) -> OpResult<Tensor> {
    let x = ctx.input(0)?;
    match x {
        Tensor::F32(a) => Ok(Tensor::F32(map1(a, |v| f(v as f64) as f32))),
        Tensor::F64(a) => Ok(Tensor::F64(map1(a, &f))),
        Tensor::F16(a) => Ok(Tensor::F16(map1(a, |v| half::f16::from_f64(f(v.to_f64()))))),
        other => Err(unsupported(format!(
            "element type {}",
            other.dtype().as_str_name()
        ))),
    }
}

/// The error function (Abramowitz & Stegun 7.1.26; absolute error < 1.5e-7).
pub(crate) fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let y = 1.0 - poly * (-x * x).exp();
    if x < 0.0 { -y } else { y }
}

fn gelu(ctx: &Ctx) -> OpResult<Tensor> {
    match ctx.attr_s_or("approximate", "none").as_str() {
        "none" => float_unary(ctx, |x| 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))),
        "tanh" => float_unary(ctx, |x| {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (k * (x + 0.044_715 * x * x * x)).tanh())
        }),
        other => Err(unsupported(format!("approximate = {other}"))),
    }
}

/// Evaluates the elementwise family; `Ok(None)` when `op` is not one of it.
pub(crate) fn eval(op: &str, ctx: &Ctx) -> OpResult<Option<Vec<Tensor>>> {
    let attr = |name: &str, default: f32| ctx.node.attr_f_or(name, default) as f64;
    let binary = |op: Arith| arith(op, ctx.input(0)?, ctx.input(1)?);
    let cmp = |op: Compare| compare(op, ctx.input(0)?, ctx.input(1)?);
    if let Some(Tensor::F32(x)) = ctx.opt(0)
        && let Some(act) = Activation::of(op, ctx)?
    {
        let mut y = x.clone();
        match y.as_slice_mut() {
            Some(values) => act.apply_all(values),
            None => y.mapv_inplace(|v| act.apply(v)),
        }
        return Ok(Some(vec![Tensor::F32(y)]));
    }
    let out = match op {
        "Add" => binary(Arith::Add)?,
        "Sub" => binary(Arith::Sub)?,
        "Mul" => binary(Arith::Mul)?,
        "Div" => binary(Arith::Div)?,
        "Mod" => binary(if ctx.node.attr_i_or("fmod", 0) == 1 {
            Arith::FMod
        } else {
            Arith::FloorMod
        })?,
        "Pow" => pow(ctx)?,
        "Sum" => variadic(ctx, Arith::Add, false)?,
        "Mean" => variadic(ctx, Arith::Add, true)?,
        "Min" => variadic(ctx, Arith::Min, false)?,
        "Max" => variadic(ctx, Arith::Max, false)?,
        "Equal" => cmp(Compare::Equal)?,
        "Less" => cmp(Compare::Less)?,
        "Greater" => cmp(Compare::Greater)?,
        "LessOrEqual" => cmp(Compare::LessOrEqual)?,
        "GreaterOrEqual" => cmp(Compare::GreaterOrEqual)?,
        "And" => logic(ctx, |a, b| a & b)?,
        "Or" => logic(ctx, |a, b| a | b)?,
        "Xor" => logic(ctx, |a, b| a ^ b)?,
        "Not" => Tensor::Bool(typed::<bool>(ctx.input(0)?, "input")?.mapv(|v| !v)),
        "Where" => where_op(ctx)?,
        // Float32 input took the activation path above; these are the other element types.
        "Relu" => numeric_unary(ctx, |x| x.max(0.0), |x| x.max(0))?,
        "Clip" => clip(ctx)?,
        "Sigmoid" | "HardSigmoid" | "HardSwish" | "LeakyRelu" => {
            let act = Activation::of(op, ctx)?.ok_or_else(|| invalid("not an activation"))?;
            float_unary(ctx, move |v| act.apply_f64(v))?
        }
        "PRelu" => prelu(ctx)?,
        "Abs" => numeric_unary(ctx, f64::abs, i64::wrapping_abs)?,
        "Neg" => numeric_unary(ctx, |x| -x, i64::wrapping_neg)?,
        "Sign" => numeric_unary(
            ctx,
            |x| if x == 0.0 { 0.0 } else { x.signum() },
            i64::signum,
        )?,
        "Tanh" => float_unary(ctx, f64::tanh)?,
        "Erf" => float_unary(ctx, erf)?,
        "Exp" => float_unary(ctx, f64::exp)?,
        "Log" => float_unary(ctx, f64::ln)?,
        "Sqrt" => float_unary(ctx, f64::sqrt)?,
        "Reciprocal" => float_unary(ctx, f64::recip)?,
        "Ceil" => float_unary(ctx, f64::ceil)?,
        "Floor" => float_unary(ctx, f64::floor)?,
        "Round" => float_unary(ctx, f64::round_ties_even)?,
        "Sin" => float_unary(ctx, f64::sin)?,
        "Cos" => float_unary(ctx, f64::cos)?,
        "Softplus" => float_unary(ctx, |x| if x > 30.0 { x } else { x.exp().ln_1p() })?,
        "Softsign" => float_unary(ctx, |x| x / (1.0 + x.abs()))?,
        "Gelu" => gelu(ctx)?,
        "Elu" => {
            let alpha = attr("alpha", 1.0);
            float_unary(
                ctx,
                move |x| if x < 0.0 { alpha * (x.exp() - 1.0) } else { x },
            )?
        }
        "Selu" => {
            let alpha = attr("alpha", 1.673_263_2);
            let gamma = attr("gamma", 1.050_701);
            float_unary(ctx, move |x| {
                gamma * if x <= 0.0 { alpha * (x.exp() - 1.0) } else { x }
            })?
        }
        "Shrink" => {
            let (lambd, bias) = (attr("lambd", 0.5), attr("bias", 0.0));
            float_unary(ctx, move |x| {
                if x < -lambd {
                    x + bias
                } else if x > lambd {
                    x - bias
                } else {
                    0.0
                }
            })?
        }
        "ThresholdedRelu" => {
            let alpha = attr("alpha", 1.0);
            float_unary(ctx, move |x| if x > alpha { x } else { 0.0 })?
        }
        _ => return Ok(None),
    };
    Ok(Some(vec![out]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Node;
    use crate::graph::attr;
    use ndarray::arr1;

    fn run(node: &Node, inputs: &[&Tensor]) -> Vec<Tensor> {
        let args: Vec<Option<&Tensor>> = inputs.iter().map(|t| Some(*t)).collect();
        crate::exec::cpu::eval_node(node, &args).unwrap()
    }

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(
            broadcast_shape(&[&[2, 1, 3], &[4, 1]]).unwrap(),
            vec![2, 4, 3]
        );
        assert!(broadcast_shape(&[&[2, 3], &[4, 3]]).is_err());
        let a = Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[2, 1]), vec![1.0, 2.0]).unwrap());
        let b = Tensor::F32(arr1(&[10.0f32, 20.0, 30.0]).into_dyn());
        let out = run(&Node::new("n", "Add", &["a", "b"], &["c"]), &[&a, &b]);
        let want = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![11.0f32, 21., 31., 12., 22., 32.]);
        assert_eq!(out[0], Tensor::F32(want.unwrap()));
    }

    #[test]
    fn integer_mod_and_div_follow_onnx_signs() {
        let a = Tensor::I64(arr1(&[-7i64, 7, -7, 7]).into_dyn());
        let b = Tensor::I64(arr1(&[2i64, -2, -2, 2]).into_dyn());
        let m = run(&Node::new("m", "Mod", &["a", "b"], &["c"]), &[&a, &b]);
        assert_eq!(m[0].to_i64_vec().unwrap(), vec![1, -1, -1, 1]);
        let f = Node::new("f", "Mod", &["a", "b"], &["c"]).with_attr(attr::int("fmod", 1));
        assert_eq!(
            run(&f, &[&a, &b])[0].to_i64_vec().unwrap(),
            vec![-1, 1, -1, 1]
        );
        let d = run(&Node::new("d", "Div", &["a", "b"], &["c"]), &[&a, &b]);
        assert_eq!(d[0].to_i64_vec().unwrap(), vec![-3, -3, 3, 3]);
        let zero = Tensor::I64(arr1(&[0i64]).into_dyn());
        let err = crate::exec::cpu::eval_node(
            &Node::new("z", "Div", &["a", "b"], &["c"]),
            &[Some(&a), Some(&zero)],
        );
        assert!(err.is_err());
    }

    #[test]
    fn clip_where_and_activations() {
        let x = Tensor::F32(arr1(&[-3.0f32, -1.0, 0.5, 4.0]).into_dyn());
        let lo = Tensor::F32(ArrayD::from_elem(IxDyn(&[]), 0.0));
        let hi = Tensor::F32(ArrayD::from_elem(IxDyn(&[]), 1.0));
        let c = run(
            &Node::new("c", "Clip", &["x", "lo", "hi"], &["y"]),
            &[&x, &lo, &hi],
        );
        assert_eq!(c[0], Tensor::F32(arr1(&[0.0f32, 0.0, 0.5, 1.0]).into_dyn()));
        let hs = run(&Node::new("h", "HardSwish", &["x"], &["y"]), &[&x]);
        // x * clamp(x/6 + 0.5, 0, 1): -3 -> 0, -1 -> -1/3, 0.5 -> 0.5*0.58333, 4 -> 4
        let got = hs[0].as_f32().unwrap();
        let want = [0.0f32, -1.0 / 3.0, 0.5 * (0.5 / 6.0 + 0.5), 4.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
        let cond = Tensor::Bool(arr1(&[true, false, true, false]).into_dyn());
        let zero = Tensor::F32(ArrayD::from_elem(IxDyn(&[]), 0.0));
        let w = run(
            &Node::new("w", "Where", &["c", "x", "z"], &["y"]),
            &[&cond, &x, &zero],
        );
        assert_eq!(
            w[0],
            Tensor::F32(arr1(&[-3.0f32, 0.0, 0.5, 0.0]).into_dyn())
        );
    }

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (-2.0, -0.995_322_265),
        ] {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x})");
        }
    }
}
