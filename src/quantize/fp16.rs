//! The FP16 float policy for strongly typed TensorRT builds.
//!
//! A strongly typed TensorRT network (the only kind TensorRT 11 builds) runs every float layer in
//! the type the ONNX file gives it, so an FP16 engine — and the float part of an INT8 engine —
//! needs an ONNX model whose float regions are FP16. [`convert_float_to_fp16`] makes one from a
//! normalized model (every value typed), FP32 or Q/DQ alike, so that the FP16, uniform and pattern
//! variants differ only in what they are meant to compare.
//!
//! What it does:
//! - Every node of the op set that computes on FP32 values runs in FP16: its FP32 initializers are
//!   converted (in place when every reader wants FP16, else beside the original as `<name>_fp16`),
//!   its outputs' recorded types become FLOAT16, Cast `to` and ConstantOfShape `value` follow.
//!   Weights too small for FP16 (below 2⁻²⁴) become zero and are reported.
//! - Graph inputs and outputs keep their declared types: a Cast (`<value>_CastFp16` /
//!   `<value>_CastFp32`, output `<value>_fp16` / `<value>_fp32`) converts at the boundary and
//!   wherever an FP16 value meets a node that stays FP32; one Cast per value and type, shared.
//! - Kept in FP32 (with Casts around): the statistics of a LayerNorm exported decomposed
//!   (ReduceMean → Sub → Pow or Mul → ReduceMean → Add → Sqrt → Div; the variance overflows FP16
//!   once activations pass ~256, and TensorRT's builder warns "Running layernorm after
//!   self-attention in FP16 may cause overflow … forcing layernorm layers to run in FP32"),
//!   `Range` (ONNX has no FP16 Range), nodes reading a constant beyond FP16's ±65504 (e.g. a
//!   BatchNormalization whose running variance is 1e7, as in PP-OCRv4 det), the summing
//!   reductions (their results outgrow their inputs), ops and nodes the caller names, and ops
//!   this pass has no rule for. A single `LayerNormalization` op stays FP16: its `stash_type`
//!   keeps the statistics in FP32.
//! - Inputs whose type is fixed by the op rather than by the node's precision keep it: Resize's
//!   `roi`/`scales`, shape/axes/index inputs, Dropout's ratio, Q/DQ zero points.
//! - Q/DQ: TensorRT's ONNX parser (onnx-tensorrt, `QuantDequantLinearHelper`) gives a strongly
//!   typed DequantizeLayer the *scale's* type as its output type, and ModelOpt's FP16 export writes
//!   FP16 scales and folds away Casts around Q. So a Q/DQ inside an FP16 region gets FP16 scales
//!   and reads/writes FP16 directly — no Cast between DQ and the layer it feeds. FP16 scales need
//!   opset ≥ 19 (QuantizeLinear/DequantizeLinear-19 accept FLOAT16), so a model with Q/DQ below 19
//!   is upgraded to 19 first (reported). A Q/DQ whose scale is outside FP16's normal range
//!   (< 2⁻¹⁴ or > 65504, where FP16 loses relative precision or overflows) keeps its FP32 scale and
//!   gets Casts around it instead, and the report names it.
//! - Initializers that an IR < 4 export also lists as graph inputs are dropped from the input list
//!   when converted in place: they are weights, not inputs, and an FP16 model must not advertise an
//!   FP32 input for them.
//!
//! onnxruntime's CPU provider runs every op of the op set in FP16 (where it has no FP16 kernel it
//! computes in FP32 between Casts it inserts itself), so nothing is kept FP32 for the
//! onnxruntime oracle's sake; what is kept FP32 is kept for range or because ONNX requires it.
//!
//! Does not own: choosing which models to convert or building engines (the pipeline and
//! [`crate::trt`]), normalization (the input must already carry a type for every value), or the
//! accuracy comparison (tests/conformance/test_fp16.py measures it with onnxruntime).

use crate::graph::shape::ValueType;
use crate::graph::upgrade::upgrade_opset;
use crate::graph::{Attributes, Graph, GraphError, Model, Node, NodeId, Tensor, attr};
use crate::onnx::proto::{DataType, TensorProto};
use half::f16;
use ndarray::ArrayD;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

const FLOAT: i32 = DataType::Float as i32;
const FLOAT16: i32 = DataType::Float16 as i32;

/// The lowest opset whose QuantizeLinear/DequantizeLinear accept FP16 scales and data.
pub const FP16_QDQ_MIN_OPSET: i64 = 19;

/// The largest finite FP16 value.
const FP16_MAX: f32 = 65504.0;

/// The smallest positive normal FP16 value, 2⁻¹⁴; below it FP16 loses relative precision.
const FP16_MIN_NORMAL: f32 = 6.103_515_6e-5;

/// What [`convert_float_to_fp16`] keeps in FP32 beyond its own rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fp16Options {
    /// Op types kept in FP32 (e.g. `Softmax`), with Casts around them.
    pub keep_fp32_ops: Vec<String>,
    /// Node names kept in FP32, with Casts around them.
    pub keep_fp32_nodes: Vec<String>,
    /// Keep the statistics of decomposed LayerNorms in FP32 (default: true).
    pub layer_norm_stats_fp32: bool,
}

impl Default for Fp16Options {
    fn default() -> Self {
        Fp16Options {
            keep_fp32_ops: Vec::new(),
            keep_fp32_nodes: Vec::new(),
            layer_norm_stats_fp32: true,
        }
    }
}

/// Why a node that computes on floats stays FP32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepReason {
    /// The caller named its op type or the node ([`Fp16Options`]).
    Requested,
    /// It computes the mean or variance of a decomposed LayerNorm.
    LayerNormStatistics,
    /// ONNX defines no FP16 form of the op (`Range`).
    NoFp16InOnnx,
    /// A Q/DQ whose scale FP16 cannot hold with full precision.
    QdqScaleOutOfFp16Range,
    /// It reads a constant (initializer or `value`) with values beyond FP16's ±65504, e.g. the
    /// running variance of a BatchNormalization after a large-valued convolution.
    ConstantOutOfFp16Range,
    /// An op outside this pass's rules, or of another domain.
    NoFp16Rule,
}

/// A float node left in FP32.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeptFp32 {
    /// The node's name.
    pub node: String,
    /// Its op type.
    pub op: String,
    /// Why it stays FP32.
    pub reason: KeepReason,
}

/// An initializer with non-zero values too small for FP16 (below 2⁻²⁴), now zero.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Underflow {
    /// The FP32 initializer's name.
    pub initializer: String,
    /// How many of its values became zero.
    pub flushed_to_zero: usize,
}

/// What [`convert_float_to_fp16`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Fp16Report {
    /// The opset the model had when it was upgraded to [`FP16_QDQ_MIN_OPSET`] for FP16 Q/DQ.
    pub opset_upgraded_from: Option<i64>,
    /// Nodes now computing in FP16.
    pub fp16_nodes: usize,
    /// Float nodes kept in FP32, in topological order.
    pub fp32_nodes: Vec<KeptFp32>,
    /// FP32 initializers converted in place.
    pub converted_initializers: usize,
    /// FP16 copies made of FP32 initializers that FP32 readers still need.
    pub copied_initializers: usize,
    /// Cast nodes inserted (graph boundary and FP16/FP32 region borders).
    pub casts: usize,
    /// Initializers that lost tiny values to FP16's range.
    pub underflows: Vec<Underflow>,
    /// Initializers that an IR < 4 export also listed as graph inputs, dropped from the inputs
    /// when converted.
    pub dropped_initializer_inputs: Vec<String>,
}

/// Converts the float regions of a normalized `model` to FP16 (see the module doc for the
/// policy); graph inputs and outputs keep their declared types. Returns the new model and what
/// changed. Fails when a value has no recorded type or a node carries a subgraph.
pub fn convert_float_to_fp16(
    model: &Model,
    opts: &Fp16Options,
) -> Result<(Model, Fp16Report), GraphError> {
    let mut model = model.clone();
    let mut report = Fp16Report::default();
    if model.opset() < FP16_QDQ_MIN_OPSET && has_qdq(&model.graph) {
        report.opset_upgraded_from = Some(model.opset());
        let g = &model.graph;
        let types: HashMap<String, ValueType> = all_values(g)
            .filter_map(|v| recorded_type(g, &v).map(|t| (v, t)))
            .collect();
        upgrade_opset(&mut model, FP16_QDQ_MIN_OPSET, &|v| types.get(v).cloned())?;
    }
    let plan = Plan::new(&model.graph, opts, &mut report)?;
    plan.apply(&mut model.graph, &mut report)?;
    model.graph.validate()?;
    Ok((model, report))
}

/// How a slot (input or output) of an op is typed relative to the node's float precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Follows the node: FP16 in an FP16 node, FP32 in an FP32 one.
    Compute,
    /// Keeps the type the model gave it (shapes, indices, Resize scales, zero points).
    Fixed,
    /// Takes any type as it comes (Cast's and Shape's input).
    Any,
}

/// Ops whose every input and output follow the node's precision (output types that are not
/// float, like ArgMax's, are left alone by the FP32-only rule).
const ALL_COMPUTE: &[&str] = &[
    "Abs",
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Ceil",
    "Clip",
    "Concat",
    "Conv",
    "ConvTranspose",
    "Cos",
    "Div",
    "Elu",
    "Erf",
    "Exp",
    "Flatten",
    "Floor",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "InstanceNormalization",
    "LeakyRelu",
    "Log",
    "LogSoftmax",
    "LpPool",
    "LRN",
    "MatMul",
    "Max",
    "Mean",
    "Min",
    "Mod",
    "Mul",
    "Neg",
    "Pow",
    "PRelu",
    "Range",
    "Reciprocal",
    "Relu",
    "Round",
    "Selu",
    "Sigmoid",
    "Sign",
    "Sin",
    "Softmax",
    "Softplus",
    "Softsign",
    "Sqrt",
    "Sub",
    "Sum",
    "Tanh",
    "Transpose",
];

/// Ops whose data is input 0 and whose other inputs are shapes, axes, indices or sizes. The
/// summing reductions (ReduceSum, ReduceSumSquare, ReduceProd, ReduceLogSumExp) have no rule: their
/// results outgrow their inputs, so they stay FP32.
const DATA_FIRST: &[&str] = &[
    "ArgMax",
    "ArgMin",
    "Expand",
    "Gather",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "Reshape",
    "Resize",
    "Slice",
    "Split",
    "Squeeze",
    "Tile",
    "Unsqueeze",
];

/// Ops with a slot rule whose float slots are not all of ALL_COMPUTE/DATA_FIRST's kind.
const SPECIAL: &[&str] = &[
    "Cast",
    "ConstantOfShape",
    "DequantizeLinear",
    "Dropout",
    "Equal",
    "Greater",
    "GreaterOrEqual",
    "LayerNormalization",
    "Less",
    "LessOrEqual",
    "MaxPool",
    "Pad",
    "QuantizeLinear",
    "ScatterND",
    "Shape",
    "Size",
    "Where",
];

/// True when this pass has a slot rule for `node` (default domain, op listed above).
fn has_rule(node: &Node) -> bool {
    let op = node.op_type.as_str();
    node.is_onnx()
        && (ALL_COMPUTE.contains(&op) || DATA_FIRST.contains(&op) || SPECIAL.contains(&op))
}

/// The kind of input slot `i` of `op`; ops without a rule are all Compute (and kept FP32).
fn input_slot(op: &str, i: usize) -> Slot {
    match (op, i) {
        ("Cast" | "Shape" | "Size", _) => Slot::Any,
        (op, 0) if DATA_FIRST.contains(&op) => Slot::Compute,
        (op, _) if DATA_FIRST.contains(&op) => Slot::Fixed,
        ("Pad", 0 | 2) | ("QuantizeLinear", 0 | 1) | ("DequantizeLinear", 1) => Slot::Compute,
        ("Pad" | "QuantizeLinear" | "DequantizeLinear" | "ConstantOfShape", _) => Slot::Fixed,
        ("Dropout", 0) => Slot::Compute,
        ("Dropout", _) | ("ScatterND", 1) | ("Where", 0) => Slot::Fixed,
        _ => Slot::Compute,
    }
}

/// The kind of output slot `i` of `op`; ops without a rule are all Compute (and kept FP32).
fn output_slot(op: &str, i: usize) -> Slot {
    match (op, i) {
        ("MaxPool" | "Dropout", 1)
        | ("LayerNormalization", 1 | 2)
        | ("Equal" | "Greater" | "GreaterOrEqual" | "Less" | "LessOrEqual", _)
        | ("QuantizeLinear" | "Shape" | "Size", _) => Slot::Fixed,
        _ => Slot::Compute,
    }
}

/// True when the graph has a QuantizeLinear or DequantizeLinear of the default domain.
fn has_qdq(g: &Graph) -> bool {
    g.node_ids().any(|id| {
        let n = g.node(id);
        n.is_onnx() && matches!(n.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear")
    })
}

/// Every value name the graph defines: graph inputs, initializers, node outputs.
fn all_values(g: &Graph) -> impl Iterator<Item = String> + '_ {
    g.inputs
        .iter()
        .filter_map(|v| v.name.clone())
        .chain(g.initializers().map(|(name, _)| name.clone()))
        .chain(
            g.node_ids()
                .flat_map(|id| g.node(id).outputs.iter().filter(|o| !o.is_empty()).cloned()),
        )
}

/// The recorded type of a value: an initializer's own, else its value_info (or graph I/O).
fn recorded_type(g: &Graph, value: &str) -> Option<ValueType> {
    match g.initializer(value) {
        Some(t) => Some(ValueType::known(t.data_type.unwrap_or(0), &t.dims)),
        None => ValueType::from_value_info(g.value_info(value)?),
    }
}

/// Which nodes run in FP16, decided on the unmodified graph.
struct Plan {
    /// Element type of every value before conversion.
    dtype: HashMap<String, i32>,
    /// Names of the nodes that run in FP16.
    fp16: HashSet<String>,
}

impl Plan {
    fn new(g: &Graph, opts: &Fp16Options, report: &mut Fp16Report) -> Result<Plan, GraphError> {
        let mut dtype = HashMap::new();
        for v in all_values(g) {
            let Some(t) = recorded_type(g, &v) else {
                let producer = g.producer(&v).map(|id| g.node(id));
                return Err(GraphError::InvalidNode {
                    node: producer.map_or_else(|| "graph input".into(), |n| n.name.clone()),
                    op: producer.map_or_else(String::new, |n| n.op_type.clone()),
                    message: format!(
                        "value '{v}' has no recorded type; FP16 conversion needs a normalized \
                         model (normalization records every value's type)"
                    ),
                });
            };
            dtype.insert(v, t.dtype);
        }
        let stats = if opts.layer_norm_stats_fp32 {
            layer_norm_statistics(g)
        } else {
            HashSet::new()
        };
        let mut plan = Plan {
            dtype,
            fp16: HashSet::new(),
        };
        for id in g.topo_order()? {
            let n = g.node(id);
            if n.attributes
                .iter()
                .any(|a| a.g.is_some() || !a.graphs.is_empty())
            {
                return Err(GraphError::UnsupportedOp {
                    node: n.name.clone(),
                    op: n.op_type.clone(),
                    hint: " (FP16 conversion does not handle subgraphs)".into(),
                });
            }
            if !plan.computes_on_fp32(n) {
                continue;
            }
            let reason = if opts.keep_fp32_nodes.contains(&n.name)
                || opts.keep_fp32_ops.contains(&n.op_type)
            {
                Some(KeepReason::Requested)
            } else if !has_rule(n) {
                Some(KeepReason::NoFp16Rule)
            } else if stats.contains(&id) {
                Some(KeepReason::LayerNormStatistics)
            } else if n.op_type == "Range" {
                Some(KeepReason::NoFp16InOnnx)
            } else if !qdq_scale_fits_fp16(g, n)? {
                Some(KeepReason::QdqScaleOutOfFp16Range)
            } else if reads_constant_beyond_fp16(g, n)? {
                Some(KeepReason::ConstantOutOfFp16Range)
            } else {
                None
            };
            match reason {
                Some(reason) => report.fp32_nodes.push(KeptFp32 {
                    node: n.name.clone(),
                    op: n.op_type.clone(),
                    reason,
                }),
                None => {
                    plan.fp16.insert(n.name.clone());
                }
            }
        }
        report.fp16_nodes = plan.fp16.len();
        Ok(plan)
    }

    /// True when one of the node's Compute slots holds an FP32 value.
    fn computes_on_fp32(&self, n: &Node) -> bool {
        let fp32 = |v: &String| !v.is_empty() && self.dtype.get(v) == Some(&FLOAT);
        let input = n.inputs.iter().enumerate();
        let output = n.outputs.iter().enumerate();
        input
            .filter(|(i, _)| input_slot(&n.op_type, *i) == Slot::Compute)
            .any(|(_, v)| fp32(v))
            || output
                .filter(|(i, _)| output_slot(&n.op_type, *i) == Slot::Compute)
                .any(|(_, v)| fp32(v))
    }

    /// The type input `slot` of `n` must read, when the value was FP32 and that matters.
    fn expected_input(&self, n: &Node, slot: usize, value: &str) -> Option<i32> {
        if self.dtype.get(value) != Some(&FLOAT) {
            return None;
        }
        match input_slot(&n.op_type, slot) {
            Slot::Any => None,
            Slot::Fixed => Some(FLOAT),
            Slot::Compute if self.fp16.contains(&n.name) => Some(FLOAT16),
            Slot::Compute => Some(FLOAT),
        }
    }

    /// Rewrites `g` by the plan.
    fn apply(self, g: &mut Graph, report: &mut Fp16Report) -> Result<(), GraphError> {
        let mut edit = Edit {
            plan: self,
            now_fp16: HashSet::new(),
            versions: HashMap::new(),
        };
        edit.convert_node_outputs(g);
        edit.convert_initializers_in_place(g, report)?;
        edit.cast_graph_outputs(g, report)?;
        edit.match_input_types(g, report)?;
        edit.retype_attributes(g)?;
        Ok(())
    }
}

/// The rewrite in progress.
struct Edit {
    plan: Plan,
    /// Values (originally FP32) that now hold FP16.
    now_fp16: HashSet<String>,
    /// (value, element type) → the value holding it in that type.
    versions: HashMap<(String, i32), String>,
}

impl Edit {
    /// The element type `value` holds now.
    fn current(&self, value: &str) -> Option<i32> {
        if self.now_fp16.contains(value) {
            Some(FLOAT16)
        } else {
            self.plan.dtype.get(value).copied()
        }
    }

    /// FP16 nodes' FP32 Compute outputs become FP16 (recorded types too).
    fn convert_node_outputs(&mut self, g: &mut Graph) {
        for id in g.node_ids() {
            let n = g.node(id);
            if !self.plan.fp16.contains(&n.name) {
                continue;
            }
            for (i, o) in n.outputs.iter().enumerate() {
                if !o.is_empty()
                    && output_slot(&n.op_type, i) == Slot::Compute
                    && self.plan.dtype.get(o) == Some(&FLOAT)
                {
                    self.now_fp16.insert(o.clone());
                }
            }
        }
        for v in &self.now_fp16 {
            if !g.is_output(v) {
                retype_value_info(g, v, FLOAT16);
            }
        }
    }

    /// FP32 initializers that every reader wants in FP16 become FP16 under their own name.
    fn convert_initializers_in_place(
        &mut self,
        g: &mut Graph,
        report: &mut Fp16Report,
    ) -> Result<(), GraphError> {
        let names: Vec<String> = g
            .initializers()
            .filter(|(_, t)| t.data_type == Some(FLOAT))
            .map(|(name, _)| name.clone())
            .collect();
        for name in names {
            let mut uses = g.consumers(&name).iter().flat_map(|&id| {
                let n = g.node(id);
                n.inputs
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v == name)
                    .map(|(slot, _)| self.plan.expected_input(n, slot, &name))
                    .collect::<Vec<_>>()
            });
            let all_fp16 = uses.all(|t| t == Some(FLOAT16));
            if !all_fp16 || g.consumers(&name).is_empty() || g.is_output(&name) {
                continue;
            }
            let Some(t) = g.initializer(&name) else {
                continue;
            };
            let converted = to_fp16_initializer(t, &name, report)?;
            g.set_initializer(converted, &name);
            if g.inputs
                .iter()
                .any(|i| i.name.as_deref() == Some(name.as_str()))
            {
                g.inputs
                    .retain(|i| i.name.as_deref() != Some(name.as_str()));
                report.dropped_initializer_inputs.push(name.clone());
            }
            retype_value_info(g, &name, FLOAT16);
            self.now_fp16.insert(name);
            report.converted_initializers += 1;
        }
        Ok(())
    }

    /// A graph output an FP16 node produces: the node writes `<output>_fp16` instead, and a Cast
    /// to FP32 writes the output under its declared name.
    fn cast_graph_outputs(
        &mut self,
        g: &mut Graph,
        report: &mut Fp16Report,
    ) -> Result<(), GraphError> {
        let outputs: Vec<String> = g.outputs.iter().filter_map(|o| o.name.clone()).collect();
        for out in outputs {
            let Some(producer) = g.producer(&out).filter(|_| self.now_fp16.contains(&out)) else {
                continue;
            };
            let fp16_name = g.unique_name(&format!("{out}_fp16"));
            let mut node = g.remove_node(producer);
            for o in node.outputs.iter_mut().filter(|o| **o == out) {
                o.clone_from(&fp16_name);
            }
            g.add_node(node)?;
            g.replace_all_uses(&out, &fp16_name);
            if let Some(t) = recorded_type(g, &out) {
                g.set_value_info(
                    ValueType {
                        dtype: FLOAT16,
                        ..t
                    }
                    .to_value_info(&fp16_name),
                );
            }
            let cast = Node::new(
                g.unique_name(&format!("{out}_CastFp32")),
                "Cast",
                &[&fp16_name],
                &[&out],
            )
            .with_attr(attr::int("to", i64::from(FLOAT)));
            g.add_node(cast)?;
            report.casts += 1;
            self.now_fp16.remove(&out);
            self.now_fp16.insert(fp16_name.clone());
            self.plan.dtype.insert(fp16_name.clone(), FLOAT);
            self.versions.insert((fp16_name, FLOAT), out);
        }
        Ok(())
    }

    /// Every input that reads a type other than its slot wants reads a converted version.
    fn match_input_types(
        &mut self,
        g: &mut Graph,
        report: &mut Fp16Report,
    ) -> Result<(), GraphError> {
        for id in g.topo_order()? {
            let n = g.node(id);
            let needed: Vec<(usize, String, i32)> = n
                .inputs
                .iter()
                .enumerate()
                .filter_map(|(slot, v)| {
                    let want = self.plan.expected_input(n, slot, v)?;
                    (self.current(v) != Some(want)).then(|| (slot, v.clone(), want))
                })
                .collect();
            for (slot, value, want) in needed {
                let version = self.version(g, &value, want, report)?;
                g.set_input(id, slot, &version);
            }
        }
        Ok(())
    }

    /// The name of `value` in element type `want`: an FP16 copy of an initializer, or the output
    /// of a (shared) Cast.
    fn version(
        &mut self,
        g: &mut Graph,
        value: &str,
        want: i32,
        report: &mut Fp16Report,
    ) -> Result<String, GraphError> {
        let key = (value.to_string(), want);
        if let Some(name) = self.versions.get(&key) {
            return Ok(name.clone());
        }
        let (suffix, cast_suffix) = if want == FLOAT16 {
            ("fp16", "CastFp16")
        } else {
            ("fp32", "CastFp32")
        };
        let name = g.unique_name(&format!("{value}_{suffix}"));
        match g.initializer(value) {
            Some(t) if want == FLOAT16 && !self.now_fp16.contains(value) => {
                let copy = to_fp16_initializer(t, value, report)?;
                g.set_initializer(copy, &name);
                report.copied_initializers += 1;
            }
            _ => {
                let cast_name = g.unique_name(&format!("{value}_{cast_suffix}"));
                let cast = Node::new(cast_name, "Cast", &[value], &[&name])
                    .with_attr(attr::int("to", i64::from(want)));
                g.add_node(cast)?;
                if let Some(t) = recorded_type(g, value) {
                    g.set_value_info(ValueType { dtype: want, ..t }.to_value_info(&name));
                }
                report.casts += 1;
            }
        }
        self.versions.insert(key, name.clone());
        Ok(name)
    }

    /// FP16 nodes whose output type an attribute sets: Cast `to`, ConstantOfShape `value`.
    fn retype_attributes(&self, g: &mut Graph) -> Result<(), GraphError> {
        for id in g.node_ids().collect::<Vec<_>>() {
            let n = g.node(id);
            if !self.plan.fp16.contains(&n.name) {
                continue;
            }
            let replacement = match n.op_type.as_str() {
                "Cast" if n.attr_i("to") == Some(i64::from(FLOAT)) => {
                    attr::int("to", i64::from(FLOAT16))
                }
                "ConstantOfShape" => {
                    let value = match n.attr_t("value") {
                        Some(t) => Tensor::from_proto(t)?.to_f32_array(),
                        None => ArrayD::zeros(ndarray::IxDyn(&[1])),
                    };
                    let (values, _) = fp16_values(&value);
                    attr::tensor("value", Tensor::F16(values).to_proto("value"))
                }
                _ => continue,
            };
            let attributes = g.attributes_mut(id);
            attributes.retain(|a| a.name != replacement.name);
            attributes.push(replacement);
        }
        Ok(())
    }
}

/// Sets the recorded element type of `value`, keeping its shape.
fn retype_value_info(g: &mut Graph, value: &str, dtype: i32) {
    if let Some(t) = g.value_info(value).and_then(ValueType::from_value_info) {
        g.set_value_info(ValueType { dtype, ..t }.to_value_info(value));
    }
}

/// An FP32 initializer converted to FP16, its underflow (if any) added to the report.
fn to_fp16_initializer(
    t: &TensorProto,
    name: &str,
    report: &mut Fp16Report,
) -> Result<TensorProto, GraphError> {
    let (converted, flushed_to_zero) = fp16_values(&Tensor::from_proto(t)?.to_f32_array());
    if flushed_to_zero > 0 {
        report.underflows.push(Underflow {
            initializer: name.to_string(),
            flushed_to_zero,
        });
    }
    let mut proto = Tensor::F16(converted).to_proto(name);
    proto.doc_string.clone_from(&t.doc_string);
    Ok(proto)
}

/// FP16 values of `values` (round to nearest), and how many non-zero values became zero.
/// Nodes reading values beyond FP16's range stay FP32, so nothing here overflows.
fn fp16_values(values: &ArrayD<f32>) -> (ArrayD<f16>, usize) {
    let converted = values.mapv(f16::from_f32);
    let flushed = values
        .iter()
        .zip(converted.iter())
        .filter(|(v, h)| **v != 0.0 && h.to_f32() == 0.0)
        .count();
    (converted, flushed)
}

/// True when a finite value of `t` lies beyond FP16's ±65504.
fn exceeds_fp16(t: &TensorProto) -> Result<bool, GraphError> {
    Ok(Tensor::from_proto(t)?
        .to_f32_array()
        .iter()
        .any(|v| v.is_finite() && v.abs() > FP16_MAX))
}

/// True when `n` reads an FP32 constant beyond FP16's range in a Compute slot (initializer, or
/// ConstantOfShape's `value`).
fn reads_constant_beyond_fp16(g: &Graph, n: &Node) -> Result<bool, GraphError> {
    if n.op_type == "ConstantOfShape"
        && let Some(value) = n.attr_t("value")
        && exceeds_fp16(value)?
    {
        return Ok(true);
    }
    for (slot, value) in n.inputs.iter().enumerate() {
        if input_slot(&n.op_type, slot) != Slot::Compute {
            continue;
        }
        if let Some(t) = g.initializer(value).filter(|t| t.data_type == Some(FLOAT))
            && exceeds_fp16(t)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// For a Q/DQ node: whether its constant scale fits FP16's normal range (other nodes: true).
fn qdq_scale_fits_fp16(g: &Graph, n: &Node) -> Result<bool, GraphError> {
    if !matches!(n.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear") {
        return Ok(true);
    }
    let Some(scale) = n.input(1).and_then(|s| g.initializer(s)) else {
        return Ok(true);
    };
    let values = Tensor::from_proto(scale)?.to_f32_array();
    Ok(values
        .iter()
        .all(|v| v.is_finite() && (FP16_MIN_NORMAL..=FP16_MAX).contains(&v.abs())))
}

/// The nodes of every decomposed LayerNorm's statistics:
/// `ReduceMean(x) → Sub(x, mean) → Pow(·, 2) or Mul(d, d) → ReduceMean → Add → Sqrt →
/// Div(x − mean, ·)`.
fn layer_norm_statistics(g: &Graph) -> HashSet<NodeId> {
    g.node_ids()
        .filter_map(|id| statistics_chain(g, id))
        .flatten()
        .collect()
}

/// The statistics chain that starts at the ReduceMean `mean_id`, if the whole chain is there.
fn statistics_chain(g: &Graph, mean_id: NodeId) -> Option<[NodeId; 7]> {
    let mean = g.node(mean_id);
    if mean.op_type != "ReduceMean" || !mean.is_onnx() {
        return None;
    }
    let x = mean.input(0)?;
    let m = mean.outputs.first()?;
    let sub = consumer(g, m, "Sub", |n| {
        n.input(0) == Some(x) && n.input(1) == Some(m)
    })?;
    let centered = first_output(g, sub)?;
    let square = consumer(g, centered, "Pow", |n| n.input(0) == Some(centered)).or_else(|| {
        consumer(g, centered, "Mul", |n| {
            n.input(0) == Some(centered) && n.input(1) == Some(centered)
        })
    })?;
    let var = consumer(g, first_output(g, square)?, "ReduceMean", |_| true)?;
    let add = consumer(g, first_output(g, var)?, "Add", |_| true)?;
    let sqrt = consumer(g, first_output(g, add)?, "Sqrt", |_| true)?;
    let std = first_output(g, sqrt)?;
    let div = consumer(g, std, "Div", |n| {
        n.input(0) == Some(centered) && n.input(1) == Some(std)
    })?;
    Some([mean_id, sub, square, var, add, sqrt, div])
}

/// The first consumer of `value` of type `op` (default domain) that `accept` accepts.
fn consumer(g: &Graph, value: &str, op: &str, accept: impl Fn(&Node) -> bool) -> Option<NodeId> {
    g.consumers(value).iter().copied().find(|&id| {
        let n = g.node(id);
        n.op_type == op && n.is_onnx() && accept(n)
    })
}

/// The first output of node `id`, unless omitted.
fn first_output(g: &Graph, id: NodeId) -> Option<&str> {
    g.node(id)
        .outputs
        .first()
        .map(String::as_str)
        .filter(|o| !o.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn fp16_values_round_and_count_underflow() {
        let values =
            ArrayD::from_shape_vec(IxDyn(&[5]), vec![1e-9, f32::NEG_INFINITY, 0.1, 0.0, 3e4])
                .unwrap();
        let (h, flushed) = fp16_values(&values);
        let back: Vec<f32> = h.iter().map(|v| v.to_f32()).collect();
        assert_eq!(
            back,
            vec![0.0, f32::NEG_INFINITY, 0.099975586, 0.0, 30000.0]
        );
        assert_eq!(flushed, 1);
    }

    #[test]
    fn slot_rules_keep_shapes_and_scales_out_of_the_float_precision() {
        assert_eq!(input_slot("Resize", 0), Slot::Compute);
        assert_eq!(input_slot("Resize", 2), Slot::Fixed);
        assert_eq!(input_slot("DequantizeLinear", 0), Slot::Fixed);
        assert_eq!(input_slot("DequantizeLinear", 1), Slot::Compute);
        assert_eq!(input_slot("QuantizeLinear", 2), Slot::Fixed);
        assert_eq!(output_slot("QuantizeLinear", 0), Slot::Fixed);
        assert_eq!(input_slot("Pad", 2), Slot::Compute);
        assert_eq!(input_slot("Where", 0), Slot::Fixed);
        assert_eq!(input_slot("Cast", 0), Slot::Any);
        assert_eq!(output_slot("MaxPool", 1), Slot::Fixed);
    }
}
