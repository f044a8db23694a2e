//! The Q/DQ plan both strategies produce, and its application to a model as one patch.
//!
//! Owns: [`QdqPlan`] (which consumer slots read a dequantized activation, which weights are
//! quantized along which axis, which tensors are tied) and [`QdqPlan::apply`], which computes
//! every new node and initializer first and then edits a copy of the model.
//! Does not own: deciding the placement ([`super::insert`], [`super::uniform`]).

use super::scales::{SCALES_KEY, TIE_GROUPS_KEY, set_metadata};
use super::weights::{QuantizedWeight, quantize_weight, weight_axis};
use super::{QuantConfig, QuantizeError, WeightsAs};
use crate::graph::{Graph, Model, Node, NodeId, Tensor, attr};
use crate::onnx::proto::{DataType, type_proto};
use crate::patterns::query::GraphQuery;
use indexmap::IndexMap;
use ndarray::{ArrayD, IxDyn};

/// A consumer slot: (node, input slot).
pub(crate) type Use = (NodeId, usize);

/// Where Q/DQ goes, before any edit.
#[derive(Clone, Debug, Default)]
pub(crate) struct QdqPlan {
    /// Activation tensor → the consumer slots that read its DequantizeLinear output.
    pub activations: IndexMap<String, Vec<Use>>,
    /// Weight tensor → the consumer slots that read its DequantizeLinear output.
    pub weights: IndexMap<String, Vec<Use>>,
    /// Groups of tensors that must share one scale.
    pub tie_groups: Vec<Vec<String>>,
}

impl QdqPlan {
    /// Adds a consumer slot reading the dequantized `value`.
    pub fn quantize_activation(&mut self, value: &str, at: Use) {
        let uses = self.activations.entry(value.to_string()).or_default();
        if !uses.contains(&at) {
            uses.push(at);
        }
    }

    /// Adds the weight input (slot 1) of `node` when it is a constant the config quantizes.
    pub fn quantize_weight_of(&mut self, g: &Graph, node: NodeId, config: &QuantConfig) {
        let n = g.node(node);
        let weighted = matches!(
            n.op_type.as_str(),
            "Conv" | "ConvTranspose" | "Gemm" | "MatMul"
        );
        if !weighted || config.skip_weight_quant_for.contains(&n.op_type) {
            return;
        }
        if let Some(w) = n.input(1).filter(|w| g.is_const(w)) {
            let uses = self.weights.entry(w.to_string()).or_default();
            if !uses.contains(&(node, 1)) {
                uses.push((node, 1));
            }
        }
    }

    /// Applies the plan to a copy of `model` (placeholder activation scales of 1.0).
    pub fn apply(&self, model: &Model, config: &QuantConfig) -> Result<Model, QuantizeError> {
        config.validate_for_tensorrt()?;
        if model.opset() < 13 {
            return Err(QuantizeError::OpsetTooOld {
                opset: model.opset(),
            });
        }
        let g = &model.graph;
        let weights = self.quantized_weights(g, config)?;

        let mut out = model.clone();
        let graph = &mut out.graph;
        for (value, uses) in &self.activations {
            let scale = Tensor::F32(ArrayD::from_elem(IxDyn(&[]), 1.0f32));
            let dq = insert_pair(graph, value, scale, None)?;
            rewire(graph, uses, &dq);
        }
        for ((value, uses), q) in self.weights.iter().zip(weights) {
            let scale = Tensor::F32(
                ArrayD::from_shape_vec(IxDyn(&scale_dims(&q)), q.scales.clone())
                    .map_err(|e| weight_error(g, value, uses, e.to_string()))?,
            );
            let dq = match config.weights_as {
                WeightsAs::QdqFloat => insert_pair(graph, value, scale, q.axis)?,
                WeightsAs::Int8 => {
                    let name = graph.unique_name(&format!("{value}_quantized"));
                    graph.set_initializer(Tensor::I8(q.values).to_proto(&name), &name);
                    insert_dq(graph, value, &name, scale, q.axis)?
                }
            };
            rewire(graph, uses, &dq);
            if graph.consumers(value).is_empty()
                && !graph.is_output(value)
                && graph.initializer(value).is_some()
            {
                graph.remove_initializer(value);
            }
        }
        set_metadata(
            &mut out,
            TIE_GROUPS_KEY,
            &serde_json::to_string(&self.tie_groups).unwrap_or_else(|_| "[]".into()),
        );
        set_metadata(&mut out, SCALES_KEY, "placeholder");
        out.graph.validate()?;
        Ok(out)
    }

    /// Quantizes every planned weight (before any edit, so an error leaves nothing half-done).
    fn quantized_weights(
        &self,
        g: &Graph,
        config: &QuantConfig,
    ) -> Result<Vec<QuantizedWeight>, QuantizeError> {
        self.weights
            .iter()
            .map(|(value, uses)| {
                let t = g
                    .const_tensor(value)
                    .ok_or_else(|| weight_error(g, value, uses, "is not a constant".into()))?;
                let axes: Vec<Option<usize>> = uses
                    .iter()
                    .map(|&(id, _)| weight_axis(g.node(id), t.dims.len()))
                    .collect();
                if axes.windows(2).any(|w| w[0] != w[1]) {
                    return Err(weight_error(
                        g,
                        value,
                        uses,
                        "is shared by nodes that quantize it along different axes".into(),
                    ));
                }
                let axis = axes
                    .first()
                    .copied()
                    .flatten()
                    .filter(|_| config.weight.per_channel);
                quantize_weight(t, axis).map_err(|m| weight_error(g, value, uses, m))
            })
            .collect()
    }
}

fn weight_error(g: &Graph, value: &str, uses: &[Use], message: String) -> QuantizeError {
    QuantizeError::Weight {
        tensor: value.to_string(),
        node: uses
            .first()
            .map(|&(id, _)| g.node(id).name.clone())
            .unwrap_or_default(),
        message,
    }
}

fn scale_dims(q: &QuantizedWeight) -> Vec<usize> {
    if q.axis.is_some() {
        vec![q.scales.len()]
    } else {
        Vec::new()
    }
}

/// True when `value` is known to hold something other than FLOAT/FLOAT16 (never quantized).
pub(crate) fn known_non_float(g: &Graph, value: &str) -> bool {
    let elem = g
        .value_info(value)
        .and_then(|v| v.r#type.as_ref())
        .and_then(|t| match &t.value {
            Some(type_proto::Value::TensorType(tt)) => tt.elem_type,
            _ => None,
        })
        .or_else(|| g.const_tensor(value).and_then(|t| t.data_type));
    elem.is_some_and(|e| e != DataType::Float as i32 && e != DataType::Float16 as i32)
}

/// Makes `uses` read `dq` instead of what they read.
fn rewire(g: &mut Graph, uses: &[Use], dq: &str) {
    for &(id, slot) in uses {
        g.set_input(id, slot, dq);
    }
}

/// Adds the scale and zero-point (INT8 zeros of the scale's shape) initializers of `value`
/// and returns their names.
fn add_scale(g: &mut Graph, value: &str, scale: Tensor) -> (String, String) {
    let scale_name = g.unique_name(&format!("{value}_scale"));
    g.set_initializer(scale.to_proto(&scale_name), &scale_name);
    let zp_name = g.unique_name(&format!("{value}_zero_point"));
    let zp = Tensor::I8(ArrayD::zeros(IxDyn(scale.shape())));
    g.set_initializer(zp.to_proto(&zp_name), &zp_name);
    (scale_name, zp_name)
}

fn axis_attr(node: Node, axis: Option<usize>) -> Node {
    match axis {
        Some(a) => node.with_attr(attr::int("axis", a as i64)),
        None => node,
    }
}

/// Adds `value → QuantizeLinear → DequantizeLinear`; returns the dequantized value's name.
fn insert_pair(
    g: &mut Graph,
    value: &str,
    scale: Tensor,
    axis: Option<usize>,
) -> Result<String, QuantizeError> {
    let (scale_name, zp_name) = add_scale(g, value, scale);
    let q_name = g.unique_name(&format!("{value}_QuantizeLinear"));
    let q_out = g.unique_name(&format!("{q_name}_Output"));
    let q = Node::new(
        q_name,
        "QuantizeLinear",
        &[value, &scale_name, &zp_name],
        &[&q_out],
    );
    g.add_node(axis_attr(q, axis))?;
    add_dq_node(g, value, &q_out, &scale_name, &zp_name, axis)
}

/// Adds `source (INT8) → DequantizeLinear` for the weight `value`.
fn insert_dq(
    g: &mut Graph,
    value: &str,
    source: &str,
    scale: Tensor,
    axis: Option<usize>,
) -> Result<String, QuantizeError> {
    let (scale_name, zp_name) = add_scale(g, value, scale);
    add_dq_node(g, value, source, &scale_name, &zp_name, axis)
}

fn add_dq_node(
    g: &mut Graph,
    value: &str,
    source: &str,
    scale: &str,
    zero_point: &str,
    axis: Option<usize>,
) -> Result<String, QuantizeError> {
    let dq_name = g.unique_name(&format!("{value}_DequantizeLinear"));
    let dq_out = g.unique_name(&format!("{dq_name}_Output"));
    let dq = Node::new(
        dq_name,
        "DequantizeLinear",
        &[source, scale, zero_point],
        &[&dq_out],
    );
    g.add_node(axis_attr(dq, axis))?;
    Ok(dq_out)
}
