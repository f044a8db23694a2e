//! The TensorRT pattern library: the groups TensorRT fuses into one kernel, in every form real
//! exports take, with the QDQ points that let the fusion happen in INT8.
//!
//! Owns: [`library`] (DESIGN.md's pattern table, as data), the predicates its forms use, the
//! lists of ops through which TensorRT propagates Q/DQ ([`propagates_qdq`]) and of ops whose
//! inputs and output must share a scale ([`TIE_GROUP_OPS`]), and the printed table
//! ([`library_markdown`], [`library_text`]) — the code is the single source of truth.
//! Does not own: the matcher, the fold arithmetic, or Q/DQ insertion.

use super::fold::{bn_is_foldable, layer_is_foldable};
use super::pattern::{Constraint, Form, Pattern, Port, Predicate, QdqPoint, Rewrite, Step};
use super::query::GraphQuery;
use crate::graph::{Attributes, Graph, Node, Tensor};

const CONV: &[&str] = &["Conv", "ConvTranspose"];
const BN: &[&str] = &["BatchNormalization"];
/// Single-node activations TensorRT fuses into a convolution or GEMM.
const POINTWISE: &[&str] = &[
    "Relu",
    "Clip",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "LeakyRelu",
    "Gelu",
    "Tanh",
];

/// Ops through which TensorRT moves Q (backward) and DQ (forward), so they need no Q/DQ of their
/// own (NVIDIA's explicit-quantization guide; Resize only in nearest mode).
pub const QDQ_PROPAGATING_OPS: &[&str] = &[
    "MaxPool",
    "Concat",
    "Reshape",
    "Transpose",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Slice",
    "Resize",
];

/// Ops whose inputs and output TensorRT needs at one scale to fuse through them.
pub const TIE_GROUP_OPS: &[&str] = &["Concat", "MaxPool"];

/// True when TensorRT propagates Q/DQ through this node (see [`QDQ_PROPAGATING_OPS`]).
pub fn propagates_qdq(node: &Node) -> bool {
    node.is_onnx()
        && QDQ_PROPAGATING_OPS.contains(&node.op_type.as_str())
        && (node.op_type != "Resize" || node.attr_s("mode").is_none_or(|m| m == "nearest"))
}

const FOLDABLE_LAYER: Predicate = Predicate {
    name: "float constant weights",
    test: layer_is_foldable,
};
const FOLDABLE_BN: Predicate = Predicate {
    name: "inference mode",
    test: bn_is_foldable,
};
const CONST_BOUNDS: Predicate = Predicate {
    name: "constant bounds",
    test: clip_bounds_const,
};
const MATRIX_WEIGHT: Predicate = Predicate {
    name: "2-D constant B",
    test: matrix_weight,
};
const FEEDS_ATTENTION: Predicate = Predicate {
    name: "feeds attention",
    test: feeds_attention,
};
const SPATIAL_AXES: Predicate = Predicate {
    name: "over H,W",
    test: reduces_spatial_axes,
};
const FULL_WINDOW: Predicate = Predicate {
    name: "window covers H,W",
    test: pools_full_window,
};

/// Clip with no bounds, or constant ones (ReLU6 and friends).
fn clip_bounds_const(g: &Graph, n: &Node) -> bool {
    n.op_type != "Clip"
        || n.inputs
            .iter()
            .skip(1)
            .all(|v| v.is_empty() || g.is_const(v))
}

/// MatMul whose B is a constant matrix (a Linear layer).
fn matrix_weight(g: &Graph, n: &Node) -> bool {
    n.input(1)
        .and_then(|v| g.const_tensor(v))
        .is_some_and(|t| t.dims.len() == 2)
}

/// Ops a projection's output may pass through on its way into attention.
const TO_ATTENTION: &[&str] = &[
    "Add",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Split",
    "Slice",
    "Gather",
    "Mul",
    "Div",
];

/// The node's output reaches, through at most 16 shape ops (or a bias/scale by a constant), a
/// MatMul whose two operands are both activations (Q·Kᵀ or P·V). torchvision's fused QKV
/// projection takes 11 (bias Add, Reshape, Unsqueeze, Transpose, Squeeze, Gather, Reshape,
/// Transpose, Reshape, Mul by √scale).
fn feeds_attention(g: &Graph, n: &Node) -> bool {
    let mut frontier: Vec<&str> = n.outputs.iter().map(String::as_str).collect();
    for _ in 0..16 {
        let mut next = Vec::new();
        for v in frontier {
            for &c in g.consumers(v) {
                let node = g.node(c);
                if !node.is_onnx() {
                    continue;
                }
                let var_inputs = node
                    .inputs
                    .iter()
                    .filter(|i| !i.is_empty() && !g.is_const(i))
                    .count();
                if node.op_type == "MatMul" && var_inputs == 2 {
                    return true;
                }
                if TO_ATTENTION.contains(&node.op_type.as_str()) && var_inputs == 1 {
                    next.extend(node.outputs.iter().map(String::as_str));
                }
            }
        }
        if next.is_empty() {
            return false;
        }
        frontier = next;
    }
    false
}

/// The rank of a node's input 0, when known.
fn input_rank(g: &Graph, n: &Node) -> Option<usize> {
    n.input(0).and_then(|v| g.static_shape(v)).map(|s| s.len())
}

/// ReduceMean over exactly axes 2 and 3 of a 4-D tensor (axes as attribute or constant input).
fn reduces_spatial_axes(g: &Graph, n: &Node) -> bool {
    let axes: Option<Vec<i64>> = match n.attr_ints("axes") {
        Some(a) => Some(a.to_vec()),
        None => n
            .input(1)
            .and_then(|v| g.const_tensor(v))
            .and_then(|t| Tensor::from_proto(t).ok())
            .and_then(|t| t.to_i64_vec()),
    };
    let Some(axes) = axes else {
        return false;
    };
    let rank = input_rank(g, n);
    if rank.is_some_and(|r| r != 4) {
        return false;
    }
    let mut norm: Vec<i64> = axes
        .iter()
        .map(|&a| if a < 0 { a + 4 } else { a })
        .collect();
    norm.sort_unstable();
    norm == [2, 3] && (rank.is_some() || axes.iter().all(|&a| a >= 0))
}

/// AveragePool whose kernel equals the input's spatial size, without padding.
fn pools_full_window(g: &Graph, n: &Node) -> bool {
    let Some(shape) = n.input(0).and_then(|v| g.static_shape(v)) else {
        return false;
    };
    let kernel = n.attr_ints("kernel_shape").unwrap_or(&[]);
    let unpadded = n
        .attr_ints("pads")
        .is_none_or(|p| p.iter().all(|&x| x == 0))
        && n.attr_s("auto_pad")
            .is_none_or(|a| a == "NOTSET" || a == "VALID");
    shape.len() > 2 && kernel == &shape[2..] && unpadded
}

/// Conv/ConvTranspose [→ BatchNormalization] [→ Mul(const)] [→ Add(const)], ending at step
/// `bias`: the per-channel affine Paddle exports write as Mul/Add is fused like a BN.
/// The activation input is the group's Input.
fn conv_head(ops: &'static [&'static str]) -> Vec<Step> {
    vec![
        Step::anchor("conv", ops)
            .with(Constraint::VarInput(0))
            .with(Constraint::Holds(FOLDABLE_LAYER))
            .mark(QdqPoint::Input, Port::Input(0)),
        Step::after_at("bn", BN, "conv", 0)
            .optional()
            .with(Constraint::Holds(FOLDABLE_BN)),
        Step::after("scale", &["Mul"], "bn")
            .optional()
            .with(Constraint::ExternalConst),
        Step::after("bias", &["Add"], "scale")
            .optional()
            .with(Constraint::ExternalConst),
    ]
}

/// The Linear forms, each with the label of its last step: Gemm [→ BN], MatMul(const B) [→ Add
/// bias]. `extra` constrains the Gemm/MatMul node.
fn linear_heads(extra: &[Constraint]) -> Vec<(Vec<Step>, &'static str)> {
    let anchor = |op: &'static [&'static str]| {
        extra.iter().fold(
            Step::anchor("linear", op)
                .with(Constraint::VarInput(0))
                .mark(QdqPoint::Input, Port::Input(0)),
            |s, &c| s.with(c),
        )
    };
    vec![
        (
            vec![
                anchor(&["Gemm"]).with(Constraint::Holds(FOLDABLE_LAYER)),
                Step::after_at("bn", BN, "linear", 0)
                    .optional()
                    .with(Constraint::Holds(FOLDABLE_BN)),
            ],
            "bn",
        ),
        (
            vec![
                anchor(&["MatMul"]).with(Constraint::Holds(MATRIX_WEIGHT)),
                Step::after("bias", &["Add"], "linear")
                    .optional()
                    .with(Constraint::ExternalConst),
            ],
            "bias",
        ),
    ]
}

/// The activation tails fusable after `pre`, each ending in a step labelled `act`.
fn activation_tails(pre: &'static str) -> Vec<Vec<Step>> {
    let scale_by_const =
        |label, of| Step::after_at(label, &["Div", "Mul"], of, 0).with(Constraint::ExternalConst);
    let times_input =
        |label, of| Step::after(label, &["Mul"], of).with(Constraint::ExternalFrom(pre));
    let relu6_of_x_plus_3 = || {
        vec![
            Step::after("plus3", &["Add"], pre).with(Constraint::ExternalConst),
            Step::after_at("relu6", &["Clip"], "plus3", 0).with(Constraint::Holds(CONST_BOUNDS)),
        ]
    };
    let erf_plus_one = || {
        vec![
            scale_by_const("div", pre),
            Step::after_at("erf", &["Erf"], "div", 0),
            Step::after("plus1", &["Add"], "erf").with(Constraint::ExternalConst),
        ]
    };
    vec![
        // Relu, Clip (ReLU6), Sigmoid, HardSigmoid, HardSwish, LeakyRelu, Gelu, Tanh as one op.
        vec![Step::after_at("act", POINTWISE, pre, 0).with(Constraint::Holds(CONST_BOUNDS))],
        // SiLU as x·sigmoid(x); HardSwish as x·HardSigmoid(x).
        vec![
            Step::after_at("gate", &["Sigmoid", "HardSigmoid"], pre, 0),
            times_input("act", "gate"),
        ],
        // HardSwish as x·relu6(x+3)/6.
        [
            relu6_of_x_plus_3(),
            vec![
                times_input("times", "relu6"),
                scale_by_const("act", "times"),
            ],
        ]
        .concat(),
        // HardSwish as x·(relu6(x+3)/6).
        [
            relu6_of_x_plus_3(),
            vec![
                scale_by_const("sixth", "relu6"),
                times_input("act", "sixth"),
            ],
        ]
        .concat(),
        // Gelu as the Erf chain: x·(erf(x/√2)+1)·0.5 (TorchScript exporter).
        [
            erf_plus_one(),
            vec![
                times_input("times", "plus1"),
                scale_by_const("act", "times"),
            ],
        ]
        .concat(),
        // Gelu as x·(0.5·(erf(x/√2)+1)) (dynamo exporter).
        [
            erf_plus_one(),
            vec![
                Step::after("half", &["Mul"], "plus1").with(Constraint::ExternalConst),
                times_input("act", "half"),
            ],
        ]
        .concat(),
    ]
}

fn forms_with_tails(heads: Vec<(Vec<Step>, &'static str)>) -> Vec<Form> {
    heads
        .into_iter()
        .flat_map(|(head, pre)| {
            activation_tails(pre)
                .into_iter()
                .map(move |tail| Form::new([head.clone(), tail].concat()))
        })
        .collect()
}

const FOLD_CONV_BN: Option<Rewrite> = Some(Rewrite::FoldBatchNorm {
    layer: "conv",
    bn: "bn",
});
const FOLD_LINEAR_BN: Option<Rewrite> = Some(Rewrite::FoldBatchNorm {
    layer: "linear",
    bn: "bn",
});

/// The library, in priority order among forms of equal size (larger forms always go first).
pub fn library() -> Vec<Pattern> {
    use QdqPoint::*;
    let mut stem = [
        conv_head(&["Conv"]),
        vec![
            Step::after_at("relu", &["Relu"], "bias", 0),
            Step::after_at("pool", &["MaxPool"], "relu", 0),
        ],
    ]
    .concat();
    stem[0] = stem[0].clone().with(Constraint::GraphInput(0));
    let residual = |add_slot| {
        Form::new(
            [
                conv_head(CONV),
                vec![
                    Step::after_at("add", &["Add", "Sum"], "bias", add_slot)
                        .with(Constraint::InputCount(2))
                        .with(Constraint::ExternalVar)
                        .mark(ResidualInput, Port::External),
                    Step::after_at("relu", &["Relu"], "add", 0).optional(),
                ],
            ]
            .concat(),
        )
    };
    let layer_norm_decomposed = Form::new(vec![
        Step::anchor("sub", &["Sub"]),
        Step::before("mean", &["ReduceMean"], "sub", 1).with(Constraint::SameInput {
            slot: 0,
            label: "sub",
            other_slot: 0,
        }),
        Step::after_at("pow", &["Pow"], "sub", 0).with(Constraint::ConstInput(1)),
        Step::after_at("var", &["ReduceMean"], "pow", 0),
        Step::after("eps", &["Add"], "var").with(Constraint::ExternalConst),
        Step::after_at("sqrt", &["Sqrt"], "eps", 0),
        Step::after_at("div", &["Div"], "sqrt", 1).with(Constraint::ExternalFrom("sub")),
        Step::after("gamma", &["Mul"], "div")
            .optional()
            .with(Constraint::ExternalConst),
        Step::after("beta", &["Add"], "gamma")
            .optional()
            .with(Constraint::ExternalConst),
    ]);
    let attention = Form::new(vec![
        Step::anchor("scores", &["MatMul"])
            .with(Constraint::VarInput(0))
            .with(Constraint::VarInput(1))
            .mark(Input, Port::Input(0))
            .mark(KeyInput, Port::Input(1)),
        Step::after_at("scale", &["Mul", "Div"], "scores", 0)
            .optional()
            .with(Constraint::ExternalConst),
        Step::after("mask", &["Add"], "scale").optional(),
        // A Softmax upgraded from opset < 13 is Flatten/Reshape → Softmax → Reshape.
        Step::after_at("flatten", &["Flatten", "Reshape"], "mask", 0).optional(),
        Step::after_at("softmax", &["Softmax"], "flatten", 0),
        Step::after_at("unflatten", &["Reshape"], "softmax", 0).optional(),
        Step::after_at("context", &["MatMul"], "unflatten", 0)
            .with(Constraint::VarInput(1))
            .mark(ValueInput, Port::Input(1)),
    ]);
    vec![
        Pattern {
            name: "StemConvBNReLUMaxPool",
            rationale: "quantize the input image; TensorRT fuses conv, activation and pool (ConvActPool)",
            forms: vec![Form::new(stem)],
            qdq_points: &[Input],
            rewrite: FOLD_CONV_BN,
        },
        Pattern {
            name: "ConvBNAddReLU",
            rationale: "both paths into the add must be quantized for TensorRT to fuse the add into the conv",
            forms: vec![residual(0), residual(1)],
            qdq_points: &[Input, ResidualInput],
            rewrite: FOLD_CONV_BN,
        },
        Pattern {
            name: "ScaledDotProductAttention",
            rationale: "Q, K and V each quantized",
            forms: vec![attention],
            qdq_points: &[Input, KeyInput, ValueInput],
            rewrite: None,
        },
        Pattern {
            name: "ConvBNReLU",
            rationale: "the activation is fused, no Q/DQ between",
            forms: forms_with_tails(vec![(conv_head(CONV), "bias")]),
            qdq_points: &[Input],
            rewrite: FOLD_CONV_BN,
        },
        Pattern {
            name: "LinearReLU",
            rationale: "the activation is fused, no Q/DQ between",
            forms: forms_with_tails(linear_heads(&[])),
            qdq_points: &[Input],
            rewrite: FOLD_LINEAR_BN,
        },
        Pattern {
            name: "LayerNorm",
            rationale: "runs in FP16; quantizing hurts accuracy for no speed",
            forms: vec![
                Form::new(vec![Step::anchor("ln", &["LayerNormalization"])]),
                layer_norm_decomposed,
            ],
            qdq_points: &[],
            rewrite: None,
        },
        Pattern {
            name: "MHAInProjection",
            rationale: "the Q/K/V projections run as INT8 GEMMs",
            forms: linear_heads(&[Constraint::Holds(FEEDS_ATTENTION)])
                .into_iter()
                .map(|(steps, _)| Form::new(steps))
                .collect(),
            qdq_points: &[Input],
            rewrite: FOLD_LINEAR_BN,
        },
        Pattern {
            name: "Linear",
            rationale: "quantize the activation entering the GEMM",
            forms: linear_heads(&[])
                .into_iter()
                .map(|(steps, _)| Form::new(steps))
                .collect(),
            qdq_points: &[Input],
            rewrite: FOLD_LINEAR_BN,
        },
        Pattern {
            name: "ConvBN",
            rationale: "quantize the activation entering the conv",
            forms: vec![Form::new(conv_head(CONV))],
            qdq_points: &[Input],
            rewrite: FOLD_CONV_BN,
        },
        Pattern {
            name: "AdaptiveAvgPool",
            rationale: "both sides quantized, so TensorRT keeps the pool in INT8",
            forms: vec![
                Form::new(vec![Step::anchor("pool", &["GlobalAveragePool"])]),
                Form::new(vec![
                    Step::anchor("pool", &["ReduceMean"]).with(Constraint::Holds(SPATIAL_AXES)),
                ]),
                Form::new(vec![
                    Step::anchor("pool", &["AveragePool"]).with(Constraint::Holds(FULL_WINDOW)),
                ]),
            ]
            .into_iter()
            .map(|f| {
                Form::new(
                    f.steps
                        .into_iter()
                        .map(|s| s.mark(Input, Port::Input(0)).mark(Output, Port::Output))
                        .collect(),
                )
            })
            .collect(),
            qdq_points: &[Input, Output],
            rewrite: None,
        },
    ]
}

/// Rows of the library table: name, forms, QDQ points, rationale.
fn rows() -> Vec<[String; 4]> {
    library()
        .iter()
        .map(|p| {
            let points = if p.qdq_points.is_empty() {
                "none".to_string()
            } else {
                p.qdq_points
                    .iter()
                    .map(|q| q.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let forms = p.forms.iter().map(Form::describe).collect::<Vec<_>>();
            [
                p.name.to_string(),
                forms.join("\n"),
                points,
                p.rationale.to_string(),
            ]
        })
        .collect()
}

/// The library as a Markdown table (what `trtq patterns --markdown` prints).
pub fn library_markdown() -> String {
    let mut s = String::from(
        "| pattern | ONNX it matches (any listed form) | QDQ points | why |\n|---|---|---|---|\n",
    );
    for [name, forms, points, why] in rows() {
        s.push_str(&format!(
            "| {name} | {} | {points} | {why} |\n",
            forms.replace('|', "\\|").replace('\n', "<br>")
        ));
    }
    s.push_str(&format!(
        "\nQ/DQ propagates through (no Q/DQ of their own): {}. Tie groups (one scale for inputs \
         and output): {}.\n",
        QDQ_PROPAGATING_OPS.join(", "),
        TIE_GROUP_OPS.join(", ")
    ));
    s
}

/// The library as plain text (what `trtq patterns` prints).
pub fn library_text() -> String {
    let mut s = String::new();
    for [name, forms, points, why] in rows() {
        s.push_str(&format!("{name}  [QDQ: {points}]\n  {why}\n"));
        for f in forms.lines() {
            s.push_str(&format!("    {f}\n"));
        }
    }
    s.push_str(&format!(
        "Q/DQ propagates through: {}\nTie groups: {}\n",
        QDQ_PROPAGATING_OPS.join(", "),
        TIE_GROUP_OPS.join(", ")
    ));
    s
}
