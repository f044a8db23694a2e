//! The uniform baseline: a Q/DQ pair on every non-constant input of every node of NVIDIA's
//! INT8 op list, as generic quantizers place them by default.
//!
//! Owns: [`insert_qdq_uniform`] and [`UNIFORM_INT8_OPS`].
//! Does not own: anything TensorRT-aware — no patterns, no output Q/DQ, no tie groups. It uses
//! the same plan, naming, per-channel weights and config as the pattern strategy, so the two
//! models differ only in placement. Give it the transformed model (BatchNormalization already
//! folded, as generic tools' pre-processing does), so BN folding is not what is compared.

use super::plan::{QdqPlan, known_non_float};
use super::{QuantConfig, QuantizeError};
use crate::graph::Model;
use crate::patterns::query::GraphQuery;

/// NVIDIA's list of ops that take INT8 inputs (the uniform strategy quantizes all their inputs),
/// plus `Sum`, which Caffe2 and Paddle exports use for the residual add and TensorRT's ONNX
/// parser turns into the same elementwise layer as `Add`.
pub const UNIFORM_INT8_OPS: &[&str] = &[
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "Add",
    "Mul",
    "AveragePool",
    "GlobalAveragePool",
    "MaxPool",
    "BatchNormalization",
    "Clip",
    "Sum",
];

/// Inserts Q/DQ on every non-constant float input of every [`UNIFORM_INT8_OPS`] node, and
/// quantizes the constant weights of Conv/ConvTranspose/Gemm/MatMul.
pub fn insert_qdq_uniform(model: &Model, config: &QuantConfig) -> Result<Model, QuantizeError> {
    let g = &model.graph;
    let mut plan = QdqPlan::default();
    for id in g.topo_order()? {
        let n = g.node(id);
        if !n.is_onnx() || !UNIFORM_INT8_OPS.contains(&n.op_type.as_str()) {
            continue;
        }
        if !config.quantize_depthwise && super::insert::is_depthwise(g, id) {
            continue;
        }
        for (slot, value) in n.inputs.iter().enumerate() {
            if value.is_empty() || g.is_const(value) || known_non_float(g, value) {
                continue;
            }
            plan.quantize_activation(value, (id, slot));
        }
        plan.quantize_weight_of(g, id, config);
    }
    plan.apply(model, config)
}
