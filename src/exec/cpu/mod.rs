//! The CPU executor: per-op kernels on ndarray and the [`CpuBackend`] that runs a plan with them.
//!
//! Owns: [`eval_node`] (the single kernel entry, shared with constant folding), the element
//! traits the kernels are generic over, and one file per op family. Semantics are those of ONNX
//! opsets 13–18; older attribute forms that mean the same thing (axes, split, pads, clip bounds,
//! slice bounds as attributes) are accepted too.
//! Does not own: the schedule ([`super::Plan`]) or observers' statistics.

mod backend;
mod buffers;
mod conv;
mod elementwise;
mod fusion;
mod gemm;
mod half_precision;
mod index;
mod inplace;
mod layout;
mod norm;
mod pool;
mod quant;
mod reduce;
mod resize;
#[cfg(test)]
mod test_graph;
mod values;
pub(crate) mod window;

pub use backend::CpuBackend;

use super::ExecError;
use crate::graph::{Attributes, Node, Tensor};
use crate::onnx::proto::DataType;
use half::f16;
use ndarray::ArrayD;

/// Why a kernel refused its inputs; [`eval_node`] adds the node's name and op.
#[derive(Debug)]
pub(crate) enum OpError {
    /// The inputs or attributes are invalid for the operator.
    Invalid(String),
    /// A valid form the executor does not implement (names what).
    Unsupported(String),
}

/// Result of a kernel.
pub(crate) type OpResult<T> = Result<T, OpError>;

/// An [`OpError::Invalid`] with a message.
pub(crate) fn invalid(message: impl Into<String>) -> OpError {
    OpError::Invalid(message.into())
}

/// An [`OpError::Unsupported`] naming what is not supported.
pub(crate) fn unsupported(what: impl Into<String>) -> OpError {
    OpError::Unsupported(what.into())
}

/// An element type a [`Tensor`] can hold, with the conversions casts and fills need.
pub(crate) trait Elem: Copy + Send + Sync + PartialEq + PartialOrd + 'static {
    /// The array when `t` holds this element type.
    fn view(t: &Tensor) -> Option<&ArrayD<Self>>;
    /// Wraps an array into the matching [`Tensor`] variant.
    fn wrap(a: ArrayD<Self>) -> Tensor;
    /// Converts from f64 (saturating for integers, `!= 0` for bool).
    fn from_f64(v: f64) -> Self;
    /// Converts from i64 (wrapping like a C cast for narrower integers, `!= 0` for bool).
    fn from_i64(v: i64) -> Self;
    /// The value as f64.
    fn to_f64(self) -> f64;
    /// The value as i64 (truncating floats toward zero).
    fn to_i64(self) -> i64;
    /// True for integer and bool types (casts go through i64, not f64).
    const EXACT: bool;
    /// The ONNX element type.
    const DTYPE: DataType;
}

macro_rules! impl_elem {
    ($t:ty, $variant:ident, $dtype:ident, $exact:expr, $from_f64:expr, $from_i64:expr, $to_f64:expr, $to_i64:expr) => {
        impl Elem for $t {
            fn view(t: &Tensor) -> Option<&ArrayD<Self>> {
                match t {
                    Tensor::$variant(a) => Some(a),
                    _ => None,
                }
            }
            fn wrap(a: ArrayD<Self>) -> Tensor {
                Tensor::$variant(a)
            }
            fn from_f64(v: f64) -> Self {
                $from_f64(v)
            }
            fn from_i64(v: i64) -> Self {
                $from_i64(v)
            }
            fn to_f64(self) -> f64 {
                $to_f64(self)
            }
            fn to_i64(self) -> i64 {
                $to_i64(self)
            }
            const EXACT: bool = $exact;
            const DTYPE: DataType = DataType::$dtype;
        }
    };
}

impl_elem!(
    f32,
    F32,
    Float,
    false,
    |v| v as f32,
    |v| v as f32,
    |v: f32| v as f64,
    |v: f32| v as i64
);
impl_elem!(
    f64,
    F64,
    Double,
    false,
    |v| v,
    |v| v as f64,
    |v| v,
    |v: f64| v as i64
);
impl_elem!(
    f16,
    F16,
    Float16,
    false,
    f16::from_f64,
    |v| f16::from_f64(v as f64),
    |v: f16| v.to_f64(),
    |v: f16| v.to_f64() as i64
);
impl_elem!(
    i8,
    I8,
    Int8,
    true,
    |v| v as i8,
    |v| v as i8,
    |v: i8| v as f64,
    |v: i8| v as i64
);
impl_elem!(
    u8,
    U8,
    Uint8,
    true,
    |v| v as u8,
    |v| v as u8,
    |v: u8| v as f64,
    |v: u8| v as i64
);
impl_elem!(
    i32,
    I32,
    Int32,
    true,
    |v| v as i32,
    |v| v as i32,
    |v: i32| v as f64,
    |v: i32| v as i64
);
impl_elem!(
    i64,
    I64,
    Int64,
    true,
    |v| v as i64,
    |v| v,
    |v: i64| v as f64,
    |v| v
);
impl_elem!(
    bool,
    Bool,
    Bool,
    true,
    |v| v != 0.0,
    |v| v != 0,
    |v: bool| v as u8 as f64,
    |v: bool| v as i64
);

/// A numeric element type: arithmetic for the math kernels (floats and integers, not bool/f16).
pub(crate) trait Num: Elem + std::fmt::Debug {
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// Smallest value (for max reductions).
    const LOWEST: Self;
    /// Largest value (for min reductions).
    const HIGHEST: Self;
    /// a + b (wrapping for integers).
    fn add(self, o: Self) -> Self;
    /// a - b (wrapping for integers).
    fn sub(self, o: Self) -> Self;
    /// a * b (wrapping for integers).
    fn mul(self, o: Self) -> Self;
    /// a / b; integers truncate toward zero (callers reject a zero divisor first).
    fn div(self, o: Self) -> Self;
    /// Remainder with the sign of the dividend (C fmod).
    fn fmod(self, o: Self) -> Self;
    /// True when this is an integer zero (a forbidden divisor).
    fn is_int_zero(self) -> bool;
    /// True for a float NaN.
    fn is_nan(self) -> bool;
}

macro_rules! impl_num_int {
    ($t:ty) => {
        impl Num for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const LOWEST: Self = <$t>::MIN;
            const HIGHEST: Self = <$t>::MAX;
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            fn div(self, o: Self) -> Self {
                if o == 0 { 0 } else { self.wrapping_div(o) }
            }
            fn fmod(self, o: Self) -> Self {
                if o == 0 { 0 } else { self.wrapping_rem(o) }
            }
            fn is_int_zero(self) -> bool {
                self == 0
            }
            fn is_nan(self) -> bool {
                false
            }
        }
    };
}
impl_num_int!(i8);
impl_num_int!(u8);
impl_num_int!(i32);
impl_num_int!(i64);

macro_rules! impl_num_float {
    ($t:ty) => {
        impl Num for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const LOWEST: Self = <$t>::NEG_INFINITY;
            const HIGHEST: Self = <$t>::INFINITY;
            fn add(self, o: Self) -> Self {
                self + o
            }
            fn sub(self, o: Self) -> Self {
                self - o
            }
            fn mul(self, o: Self) -> Self {
                self * o
            }
            fn div(self, o: Self) -> Self {
                self / o
            }
            fn fmod(self, o: Self) -> Self {
                self % o
            }
            fn is_int_zero(self) -> bool {
                false
            }
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}
impl_num_float!(f32);
impl_num_float!(f64);

/// Runs `$body` with `$T` bound to the element type of tensor `$t` (any type).
macro_rules! with_elem {
    ($t:expr, $T:ident => $body:expr) => {
        match $t {
            Tensor::F32(_) => {
                type $T = f32;
                $body
            }
            Tensor::F64(_) => {
                type $T = f64;
                $body
            }
            Tensor::F16(_) => {
                type $T = half::f16;
                $body
            }
            Tensor::I8(_) => {
                type $T = i8;
                $body
            }
            Tensor::U8(_) => {
                type $T = u8;
                $body
            }
            Tensor::I32(_) => {
                type $T = i32;
                $body
            }
            Tensor::I64(_) => {
                type $T = i64;
                $body
            }
            Tensor::Bool(_) => {
                type $T = bool;
                $body
            }
        }
    };
}

/// Runs `$body` with `$T` bound to the numeric element type of `$t`; f16 and bool are an error.
macro_rules! with_num {
    ($t:expr, $T:ident => $body:expr) => {
        match $t {
            Tensor::F32(_) => {
                type $T = f32;
                $body
            }
            Tensor::F64(_) => {
                type $T = f64;
                $body
            }
            Tensor::I8(_) => {
                type $T = i8;
                $body
            }
            Tensor::U8(_) => {
                type $T = u8;
                $body
            }
            Tensor::I32(_) => {
                type $T = i32;
                $body
            }
            Tensor::I64(_) => {
                type $T = i64;
                $body
            }
            other => {
                return Err($crate::exec::cpu::unsupported(format!(
                    "element type {}",
                    other.dtype().as_str_name()
                )));
            }
        }
    };
}

pub(crate) use {with_elem, with_num};

/// The array of `t` as element type `T`, or an error naming the expected and actual types.
pub(crate) fn typed<'a, T: Elem>(t: &'a Tensor, what: &str) -> OpResult<&'a ArrayD<T>> {
    T::view(t).ok_or_else(|| {
        invalid(format!(
            "{what} has element type {}, expected {}",
            t.dtype().as_str_name(),
            T::DTYPE.as_str_name()
        ))
    })
}

/// A kernel's view of its node: positional inputs and attribute reads.
pub(crate) struct Ctx<'a> {
    /// The node being evaluated.
    pub node: &'a Node,
    inputs: &'a [Option<&'a Tensor>],
}

impl<'a> Ctx<'a> {
    /// A view of `node` with its positional inputs (`None`: omitted), for code outside the CPU
    /// kernels that reads attributes the same way (the CUDA backend's window geometry).
    #[cfg(feature = "cuda")]
    pub(crate) fn new(node: &'a Node, inputs: &'a [Option<&'a Tensor>]) -> Ctx<'a> {
        Ctx { node, inputs }
    }

    /// Input `i`, required.
    pub fn input(&self, i: usize) -> OpResult<&'a Tensor> {
        self.opt(i)
            .ok_or_else(|| invalid(format!("required input {i} is missing")))
    }

    /// Input `i` when given (omitted or past the end: `None`).
    pub fn opt(&self, i: usize) -> Option<&'a Tensor> {
        self.inputs.get(i).copied().flatten()
    }

    /// All given inputs (variadic ops).
    pub fn all(&self) -> Vec<&'a Tensor> {
        self.inputs.iter().flatten().copied().collect()
    }

    /// Input `i` as float32.
    pub fn f32_input(&self, i: usize) -> OpResult<&'a ArrayD<f32>> {
        typed::<f32>(self.input(i)?, &format!("input {i}"))
    }

    /// Input `i` (when given) as a list of i64, e.g. axes, pads, shape.
    pub fn ints_input(&self, i: usize) -> OpResult<Option<Vec<i64>>> {
        self.opt(i)
            .map(|t| {
                t.to_i64_vec()
                    .ok_or_else(|| invalid(format!("input {i} must be an integer tensor")))
            })
            .transpose()
    }

    /// Integers from input `input` (newer opsets) or attribute `attr` (older opsets).
    pub fn ints_input_or_attr(&self, input: usize, attr: &str) -> OpResult<Option<Vec<i64>>> {
        match self.ints_input(input)? {
            Some(v) => Ok(Some(v)),
            None => Ok(self.node.attr_ints(attr).map(<[i64]>::to_vec)),
        }
    }

    /// The STRING attribute `name`, or `default`.
    pub fn attr_s_or(&self, name: &str, default: &str) -> String {
        self.node
            .attr_s(name)
            .unwrap_or_else(|| default.to_string())
    }

    /// Number of outputs the node declares (omitted trailing ones included).
    pub fn output_count(&self) -> usize {
        self.node.outputs.len()
    }

    /// True when output `i` is declared and not omitted.
    pub fn wants_output(&self, i: usize) -> bool {
        self.node.outputs.get(i).is_some_and(|o| !o.is_empty())
    }
}

/// Resolves a possibly negative axis against `rank`.
pub(crate) fn norm_axis(axis: i64, rank: usize) -> OpResult<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(invalid(format!(
            "axis {axis} is out of range for rank {rank}"
        )))
    }
}

/// The data of `a` in logical (row-major) order.
pub(crate) fn to_vec<T: Clone>(a: &ArrayD<T>) -> Vec<T> {
    match a.as_slice() {
        Some(s) => s.to_vec(),
        None => a.iter().cloned().collect(),
    }
}

/// The data of `a` in row-major order, borrowed when `a` is already contiguous (the usual case:
/// weights and activations are not copied just to be read).
pub(crate) fn contiguous<T: Clone>(a: &ArrayD<T>) -> std::borrow::Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(a.iter().cloned().collect()),
    }
}

/// An array of `shape` from row-major `data` (the caller guarantees the length).
pub(crate) fn array<T>(shape: &[usize], data: Vec<T>) -> OpResult<ArrayD<T>> {
    let len = data.len();
    ArrayD::from_shape_vec(ndarray::IxDyn(shape), data).map_err(|_| {
        invalid(format!(
            "internal: {len} values do not fill shape {shape:?}"
        ))
    })
}

/// Evaluates one node on its inputs (positional; `None` is an omitted optional input) and
/// returns its outputs in order (one per declared output; omitted outputs may be skipped at the
/// end). Semantics of ONNX opsets 13–18. A node reading FLOAT16 computes in f32 and rounds its
/// float outputs to FLOAT16 (see `half_precision`).
pub fn eval_node(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, ExecError> {
    if half_precision::reads_f16(inputs) {
        return half_precision::eval_widened(node, inputs, eval_f32_node);
    }
    eval_f32_node(node, inputs)
}

/// [`eval_node`] for nodes whose float inputs are f32 (or f64).
fn eval_f32_node(node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, ExecError> {
    if !node.is_onnx() {
        return Err(ExecError::UnsupportedOp {
            node: node.name.clone(),
            op: format!("{}::{}", node.domain, node.op_type),
        });
    }
    let ctx = Ctx { node, inputs };
    dispatch(&ctx)
        .map_err(|e| node_error(node, e))?
        .ok_or_else(|| ExecError::UnsupportedOp {
            node: node.name.clone(),
            op: node.op_type.clone(),
        })
}

/// A kernel's refusal as an [`ExecError`] naming the node.
fn node_error(node: &Node, e: OpError) -> ExecError {
    match e {
        OpError::Invalid(message) => ExecError::InvalidNode {
            node: node.name.clone(),
            op: node.op_type.clone(),
            message,
        },
        OpError::Unsupported(what) => ExecError::UnsupportedForm {
            node: node.name.clone(),
            op: node.op_type.clone(),
            what,
        },
    }
}

/// Like [`eval_node`] for a node whose single output may overwrite input `slot`, which the
/// caller gives as `target` (that slot of `inputs` is `None`). Returns true when `target` now
/// holds the output; false (target untouched) when the node has no in-place form for these
/// inputs, and [`eval_node`] must run instead.
pub(crate) fn eval_node_in_place(
    node: &Node,
    inputs: &[Option<&Tensor>],
    target: &mut Tensor,
    slot: usize,
) -> Result<bool, ExecError> {
    inplace::eval_in_place(node, inputs, target, slot).map_err(|e| node_error(node, e))
}

/// Runs the conv `node` with the links of `fused` in its output loop, its output in storage
/// from `spare` when a buffer fits; `Ok(None)` when an input is not f32 or the residual does
/// not have the conv output's shape (run the nodes one by one instead).
pub(crate) fn eval_conv_fused(
    node: &Node,
    inputs: &[Option<&Tensor>],
    fused: &fusion::FusedConv,
    spare: &mut buffers::SpareBuffers,
) -> Result<Option<Tensor>, ExecError> {
    // The epilogue is f32 only: other element types (FP16 graphs) run node by node, where
    // eval_node widens and rounds them.
    let all_f32 = inputs
        .iter()
        .flatten()
        .chain(fused.residual.iter())
        .all(|t| matches!(t, Tensor::F32(_)));
    if !all_f32 {
        return Ok(None);
    }
    let ctx = Ctx { node, inputs };
    let epilogue = conv::Epilogue {
        residual: fused.residual,
        activation: fused.activation,
    };
    conv::conv_with(&ctx, &epilogue, spare).map_err(|e| node_error(node, e))
}

/// True when `node` may be computed in the buffer of its input `slot` (an op with an in-place
/// form; the element type and shapes are checked by [`eval_node_in_place`]).
pub(crate) fn can_overwrite(node: &Node, slot: usize) -> bool {
    node.is_onnx() && inplace::can_overwrite(&node.op_type, slot)
}

/// True when [`eval_node`] implements `op_type` of the default domain.
pub fn is_supported(op_type: &str) -> bool {
    let probe = Node::new("probe", op_type, &[], &[]);
    let ctx = Ctx {
        node: &probe,
        inputs: &[],
    };
    !matches!(dispatch(&ctx), Ok(None))
}

/// Routes a node to its op family; `Ok(None)` when no family knows the op.
fn dispatch(ctx: &Ctx) -> OpResult<Option<Vec<Tensor>>> {
    let op = ctx.node.op_type.as_str();
    for family in [
        elementwise::eval,
        gemm::eval,
        conv::eval,
        pool::eval,
        norm::eval,
        reduce::eval,
        layout::eval,
        index::eval,
        values::eval,
        resize::eval,
        quant::eval,
    ] {
        if let Some(out) = family(op, ctx)? {
            return Ok(Some(out));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::attr;
    use ndarray::IxDyn;

    #[test]
    fn malformed_nodes_are_errors_not_panics() {
        let scalar = Tensor::F32(ArrayD::from_elem(IxDyn(&[]), 1.0));
        let empty = Tensor::F32(ArrayD::zeros(IxDyn(&[0, 3])));
        let big = Tensor::from_i64s(vec![i64::MAX, i64::MAX]);
        let w0 = Tensor::F32(ArrayD::zeros(IxDyn(&[1, 1, 0, 1])));
        let x4 = Tensor::F32(ArrayD::zeros(IxDyn(&[1, 1, 3, 3])));
        let cases: Vec<(Node, Vec<&Tensor>)> = vec![
            (
                Node::new("a", "Squeeze", &["x"], &["y"]).with_attr(attr::ints("axes", &[0])),
                vec![&scalar],
            ),
            (Node::new("b", "Softmax", &["x"], &["y"]), vec![&scalar]),
            (Node::new("c", "ArgMax", &["x"], &["y"]), vec![&scalar]),
            (
                Node::new("d", "Reshape", &["x", "s"], &["y"]),
                vec![&empty, &big],
            ),
            (
                Node::new("e", "ConstantOfShape", &["s"], &["y"]),
                vec![&big],
            ),
            (Node::new("f", "Conv", &["x", "w"], &["y"]), vec![&x4, &w0]),
            (
                Node::new("g", "Split", &["x"], &["y", "z"])
                    .with_attr(attr::ints("split", &[1, 1])),
                vec![&empty],
            ),
            (
                Node::new("h", "Gather", &["x", "i"], &["y"]),
                vec![&empty, &big],
            ),
            (
                Node::new("i", "MaxPool", &["x"], &["y"])
                    .with_attr(attr::ints("kernel_shape", &[5, 5])),
                vec![&x4],
            ),
            (
                Node::new("j", "Add", &["x", "y"], &["z"]),
                vec![&x4, &empty],
            ),
            (
                Node::new("k", "QuantizeLinear", &["x", "s"], &["y"]),
                vec![&x4, &empty],
            ),
        ];
        for (node, inputs) in &cases {
            let args: Vec<Option<&Tensor>> = inputs.iter().map(|t| Some(*t)).collect();
            let err = eval_node(node, &args).expect_err(&node.name);
            assert!(
                err.to_string().contains(&format!("'{}'", node.name)),
                "{err}"
            );
        }
        // An empty axis sliced backwards is empty, not a panic.
        let s = Node::new("s", "Slice", &["x", "a", "b", "c", "d"], &["y"]);
        let (st, en, ax, sp) = (
            Tensor::from_i64s(vec![-1]),
            Tensor::from_i64s(vec![i64::MIN]),
            Tensor::from_i64s(vec![0]),
            Tensor::from_i64s(vec![-1]),
        );
        let y = eval_node(
            &s,
            &[Some(&empty), Some(&st), Some(&en), Some(&ax), Some(&sp)],
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[0, 3]);
        assert!(is_supported("Conv") && !is_supported("NonMaxSuppression"));
    }
}
