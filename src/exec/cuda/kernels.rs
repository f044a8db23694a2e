//! The CUDA C kernel sources (`kernels/*.cu`, embedded at build time) and the codes their
//! kernels take, mirrored as Rust enums.
//!
//! Owns: which kernels exist ([`SOURCES`]: source name, text, entry points) and the op codes a
//! host passes to them. Every source is prefixed with `kernels/prelude.cuh` before compiling.
//! Does not own: compiling them ([`super::nvrtc`]) or launching them (the backend).

/// One CUDA C source file and the `extern "C" __global__` functions it defines.
#[derive(Clone, Copy, Debug)]
pub struct KernelSource {
    /// File stem, e.g. "elementwise" (also the NVRTC program name).
    pub name: &'static str,
    /// The file's text (without the prelude).
    pub text: &'static str,
    /// Entry points (kernels) the file defines.
    pub entry_points: &'static [&'static str],
}

/// Definitions every source starts with: index types, the grid-stride loop, `Strides`.
pub const PRELUDE: &str = include_str!("kernels/prelude.cuh");

/// Binary arithmetic, unary activations, channel bias, BatchNormalization.
pub const ELEMENTWISE: KernelSource = KernelSource {
    name: "elementwise",
    text: include_str!("kernels/elementwise.cu"),
    entry_points: &[
        "binary_same",
        "binary_broadcast",
        "unary",
        "add_channel_bias",
        "batch_norm",
    ],
};

/// Strided gathers, Concat, im2col, Resize, ConvTranspose.
pub const LAYOUT: KernelSource = KernelSource {
    name: "layout",
    text: include_str!("kernels/layout.cu"),
    entry_points: &[
        "gather_strided",
        "concat_copy",
        "im2col",
        "resize2d",
        "conv_transpose2d",
    ],
};

/// Max / average / global pooling.
pub const POOL: KernelSource = KernelSource {
    name: "pool",
    text: include_str!("kernels/pool.cu"),
    entry_points: &["max_pool2d", "avg_pool2d", "global_pool"],
};

/// Softmax, LayerNormalization, reductions over one axis.
pub const REDUCE: KernelSource = KernelSource {
    name: "reduce",
    text: include_str!("kernels/reduce.cu"),
    entry_points: &["reduce_axis", "softmax_axis", "layer_norm"],
};

/// QuantizeLinear / DequantizeLinear (int8, uint8).
pub const QUANT: KernelSource = KernelSource {
    name: "quant",
    text: include_str!("kernels/quant.cu"),
    entry_points: &[
        "quantize_i8",
        "quantize_u8",
        "dequantize_i8",
        "dequantize_u8",
    ],
};

/// Calibration statistics: range reduction and the fine-grid |x| histogram.
pub const STATS: KernelSource = KernelSource {
    name: "stats",
    text: include_str!("kernels/stats.cu"),
    entry_points: &["range_stats", "fine_histogram"],
};

/// Every kernel source.
pub const SOURCES: &[KernelSource] = &[ELEMENTWISE, LAYOUT, POOL, REDUCE, QUANT, STATS];

/// Largest rank the strided kernels take (`MAX_RANK` in the prelude).
pub const MAX_RANK: usize = 8;

/// Bins of the fine-grid histogram kernel (`FINE_BINS` in stats.cu).
pub const FINE_BINS: usize = 16384;

/// Binary op codes of `binary_same` / `binary_broadcast`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum BinaryOp {
    /// a + b
    Add = 0,
    /// a - b
    Sub = 1,
    /// a * b
    Mul = 2,
    /// a / b
    Div = 3,
    /// a ^ b
    Pow = 4,
    /// max(a, b)
    Max = 5,
    /// min(a, b)
    Min = 6,
    /// PRelu: a < 0 ? a * b : a
    PRelu = 7,
}

impl BinaryOp {
    /// The kernel code of an ONNX op, when it is a binary op the kernels implement.
    pub fn of(op_type: &str) -> Option<BinaryOp> {
        Some(match op_type {
            "Add" => BinaryOp::Add,
            "Sub" => BinaryOp::Sub,
            "Mul" => BinaryOp::Mul,
            "Div" => BinaryOp::Div,
            "Pow" => BinaryOp::Pow,
            "Max" => BinaryOp::Max,
            "Min" => BinaryOp::Min,
            "PRelu" => BinaryOp::PRelu,
            _ => return None,
        })
    }
}

/// Unary op codes of `unary` (alpha and beta are the op's float parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum UnaryOp {
    /// max(x, 0)
    Relu = 0,
    /// 1 / (1 + e^-x)
    Sigmoid = 1,
    /// tanh
    Tanh = 2,
    /// clamp(x, alpha, beta)
    Clip = 3,
    /// clamp(alpha x + beta, 0, 1)
    HardSigmoid = 4,
    /// x clamp(x / 6 + 1/2, 0, 1)
    HardSwish = 5,
    /// x < 0 ? alpha x : x
    LeakyRelu = 6,
    /// erf
    Erf = 7,
    /// e^x
    Exp = 8,
    /// square root
    Sqrt = 9,
    /// -x
    Neg = 10,
    /// |x|
    Abs = 11,
    /// Gelu with erf
    Gelu = 12,
    /// Gelu, tanh approximation
    GeluTanh = 13,
    /// natural log
    Log = 14,
    /// 1 / x
    Reciprocal = 15,
    /// floor
    Floor = 16,
    /// ceil
    Ceil = 17,
    /// copy
    Identity = 18,
    /// x < 0 ? alpha (e^x - 1) : x
    Elu = 19,
    /// ln(1 + e^x)
    Softplus = 20,
    /// sin
    Sin = 21,
    /// cos
    Cos = 22,
    /// round half to even
    Round = 23,
    /// x / (1 + |x|)
    Softsign = 24,
}

/// Reduction codes of `reduce_axis`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum ReduceOp {
    /// Σ
    Sum = 0,
    /// Σ / n
    Mean = 1,
    /// max
    Max = 2,
    /// min
    Min = 3,
}

impl ReduceOp {
    /// The kernel code of an ONNX reduction the kernels implement.
    pub fn of(op_type: &str) -> Option<ReduceOp> {
        Some(match op_type {
            "ReduceSum" => ReduceOp::Sum,
            "ReduceMean" => ReduceOp::Mean,
            "ReduceMax" => ReduceOp::Max,
            "ReduceMin" => ReduceOp::Min,
            _ => return None,
        })
    }
}

/// Resize coordinate transforms of `resize2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum ResizeTransform {
    /// (o + 0.5) / scale - 0.5
    HalfPixel = 0,
    /// o / scale
    Asymmetric = 1,
    /// o (in - 1) / (out - 1)
    AlignCorners = 2,
    /// half_pixel, 0 when the output axis has length 1
    PytorchHalfPixel = 3,
}

/// Nearest-neighbour rounding of `resize2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum NearestMode {
    /// round, halves down
    RoundPreferFloor = 0,
    /// round, halves up
    RoundPreferCeil = 1,
    /// floor
    Floor = 2,
    /// ceil
    Ceil = 3,
}
