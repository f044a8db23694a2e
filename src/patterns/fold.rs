//! Folding BatchNormalization into the preceding Conv, ConvTranspose or Gemm, exactly.
//!
//! Owns: the arithmetic of the fold (computed in f64, stored as f32), the predicate that says a
//! BatchNormalization can be folded, and [`FoldEdit`], the patch one fold makes.
//! Does not own: deciding where to fold (patterns do) or applying patches ([`super::transform`]).
//!
//! With `s[c] = gamma[c] / sqrt(var[c] + eps)`: weights of output channel `c` are scaled by
//! `s[c]` and the bias becomes `(b[c] - mean[c]) * s[c] + beta[c]`. The output channel of a
//! weight element is axis 0 for Conv, `group * (C_out/group) + j` for ConvTranspose's
//! `[C_in, C_out/group, ...]`, and the N axis of `op(B)` for Gemm (whose `alpha` and `beta`
//! are folded too and then set to 1).

use super::PatternError;
use super::query::GraphQuery;
use crate::graph::attr;
use crate::graph::{Attributes, Graph, Node, NodeId, Tensor};
use crate::onnx::proto::{DataType, TensorProto};
use ndarray::{ArrayD, IxDyn};

/// The patch of one fold: replace `layer` and `bn` by `new_layer` reading new initializers.
#[derive(Clone, Debug)]
pub(crate) struct FoldEdit {
    /// The Conv/ConvTranspose/Gemm node folded into.
    pub layer: NodeId,
    /// The BatchNormalization node folded away.
    pub bn: NodeId,
    /// The layer after the fold: same name, new weight and bias, writes the BN's output.
    pub new_layer: Node,
    /// New initializers (folded weight and bias), by name.
    pub initializers: Vec<(String, TensorProto)>,
}

/// True when the node is an inference-mode BatchNormalization whose parameters are FLOAT
/// constants of one length and whose extra outputs (if any) are unused.
pub fn bn_is_foldable(g: &Graph, bn: &Node) -> bool {
    let params: Option<Vec<&TensorProto>> = (1..=4)
        .map(|s| bn.input(s).and_then(|v| g.const_tensor(v)))
        .collect();
    let Some(params) = params else {
        return false;
    };
    let len = params[0].dims.clone();
    bn.attr_i_or("training_mode", 0) == 0
        && len.len() == 1
        && params
            .iter()
            .all(|t| t.dims == len && t.data_type == Some(DataType::Float as i32))
        && bn
            .outputs
            .iter()
            .skip(1)
            .all(|o| o.is_empty() || g.consumers(o).is_empty() && !g.is_output(o))
}

/// True when the layer's weight (input 1) and bias (input 2, if any) are FLOAT constants.
pub fn layer_is_foldable(g: &Graph, layer: &Node) -> bool {
    let float_const = |v: &str| {
        g.const_tensor(v)
            .is_some_and(|t| t.data_type == Some(DataType::Float as i32))
    };
    layer.input(1).is_some_and(float_const) && layer.input(2).is_none_or(float_const)
}

fn fold_error(node: &Node, message: impl Into<String>) -> PatternError {
    PatternError::Fold {
        node: node.name.clone(),
        op: node.op_type.clone(),
        message: message.into(),
    }
}

fn const_f32(g: &Graph, node: &Node, slot: usize) -> Result<ArrayD<f32>, PatternError> {
    let name = node
        .input(slot)
        .ok_or_else(|| fold_error(node, format!("input {slot} is missing")))?;
    let t = g
        .const_tensor(name)
        .ok_or_else(|| fold_error(node, format!("input '{name}' is not a constant")))?;
    let t = Tensor::from_proto(t).map_err(crate::graph::GraphError::from)?;
    match t {
        Tensor::F32(a) => Ok(a),
        _ => Err(fold_error(node, format!("input '{name}' is not FLOAT"))),
    }
}

fn const_f64(g: &Graph, node: &Node, slot: usize) -> Result<ArrayD<f64>, PatternError> {
    const_f32(g, node, slot).map(|a| a.mapv(f64::from))
}

fn to_f32_proto(a: &ArrayD<f64>, name: &str) -> TensorProto {
    Tensor::F32(a.mapv(|v| v as f32)).to_proto(name)
}

/// Computes the fold of `bn` into `layer` (nothing is changed in `g`).
pub(crate) fn plan_fold(g: &Graph, layer: NodeId, bn: NodeId) -> Result<FoldEdit, PatternError> {
    let l = g.node(layer);
    let b = g.node(bn);
    let [gamma, beta, mean, var] = [1, 2, 3, 4].map(|s| const_f64(g, b, s));
    let (gamma, beta, mean, var) = (gamma?, beta?, mean?, var?);
    let eps = f64::from(b.attr_f_or("epsilon", 1e-5));
    let channels = gamma.len();
    let scale: Vec<f64> = (0..channels)
        .map(|c| gamma[[c]] / (var[[c]] + eps).sqrt())
        .collect();
    if let Some(c) = scale.iter().position(|s| !s.is_finite()) {
        return Err(fold_error(
            l,
            format!(
                "BatchNormalization '{}' channel {c}: gamma / sqrt(var + epsilon) is not finite (var {}, epsilon {eps})",
                b.name,
                var[[c]]
            ),
        ));
    }
    let weight = const_f32(g, l, 1)?;
    let dims = weight.shape().to_vec();
    let mut new_layer = l.clone();

    // Output channel of the weight element at flat (row-major) index `e`, per layer type.
    let inner = |from: usize| dims.iter().skip(from).product::<usize>().max(1);
    let (out_channels, channel_of): (usize, Box<dyn Fn(usize) -> usize>) = match l.op_type.as_str()
    {
        "Conv" if dims.len() >= 2 => {
            let per_channel = inner(1);
            (dims[0], Box::new(move |e| e / per_channel))
        }
        "ConvTranspose" if dims.len() >= 2 => {
            let group = usize::try_from(l.attr_i_or("group", 1))
                .ok()
                .filter(|&g| g >= 1 && dims[0] % g == 0)
                .ok_or_else(|| fold_error(l, "invalid group"))?;
            let in_per_group = dims[0] / group;
            let out_per_group = dims[1];
            let kernel = inner(2);
            (
                out_per_group * group,
                Box::new(move |e| {
                    let (i, j) = (e / (out_per_group * kernel), (e / kernel) % out_per_group);
                    (i / in_per_group) * out_per_group + j
                }),
            )
        }
        "Gemm" if dims.len() == 2 => {
            let n = dims[1];
            if l.attr_i_or("transB", 0) != 0 {
                (dims[0], Box::new(move |e| e / n))
            } else {
                (n, Box::new(move |e| e % n))
            }
        }
        _ => {
            return Err(fold_error(
                l,
                format!("cannot fold BatchNormalization into weights of shape {dims:?}"),
            ));
        }
    };
    if out_channels != channels {
        return Err(fold_error(
            l,
            format!(
                "has {out_channels} output channels but BatchNormalization '{}' has {channels}",
                b.name
            ),
        ));
    }
    let alpha = if l.op_type == "Gemm" {
        f64::from(l.attr_f_or("alpha", 1.0))
    } else {
        1.0
    };
    let factor: Vec<f64> = scale.iter().map(|s| alpha * s).collect();
    let folded: Vec<f32> = weight
        .iter()
        .enumerate()
        .map(|(e, &w)| (f64::from(w) * factor[channel_of(e)]) as f32)
        .collect();
    let weight =
        ArrayD::from_shape_vec(IxDyn(&dims), folded).map_err(|e| fold_error(l, e.to_string()))?;

    // Existing bias as one value per output channel (Gemm's C may be a scalar, [N] or [1, N]).
    let bias_in = match l.input(2) {
        None => vec![0.0; channels],
        Some(_) => {
            let c = const_f64(g, l, 2)?;
            let beta_gemm = if l.op_type == "Gemm" {
                f64::from(l.attr_f_or("beta", 1.0))
            } else {
                1.0
            };
            match c.len() {
                1 => vec![c.iter().next().copied().unwrap_or(0.0) * beta_gemm; channels],
                n if n == channels && c.shape().iter().rev().skip(1).all(|&d| d == 1) => {
                    c.iter().map(|v| v * beta_gemm).collect()
                }
                _ => {
                    return Err(fold_error(
                        l,
                        format!("bias of shape {:?} is not per output channel", c.shape()),
                    ));
                }
            }
        }
    };
    let bias: Vec<f64> = (0..channels)
        .map(|c| (bias_in[c] - mean[[c]]) * scale[c] + beta[[c]])
        .collect();
    let bias = ArrayD::from_shape_vec(IxDyn(&[channels]), bias)
        .map_err(|e| fold_error(l, e.to_string()))?;

    let weight_name = g.unique_name(&format!("{}_folded_weight", l.name));
    let bias_name = g.unique_name(&format!("{}_folded_bias", l.name));
    new_layer.inputs.truncate(3);
    new_layer.inputs.resize(3, String::new());
    new_layer.inputs[1] = weight_name.clone();
    new_layer.inputs[2] = bias_name.clone();
    new_layer.outputs = vec![b.outputs.first().cloned().unwrap_or_default()];
    if l.op_type == "Gemm" {
        new_layer.set_attr(attr::float("alpha", 1.0));
        new_layer.set_attr(attr::float("beta", 1.0));
    }
    Ok(FoldEdit {
        layer,
        bn,
        new_layer,
        initializers: vec![
            (
                weight_name.clone(),
                Tensor::F32(weight).to_proto(&weight_name),
            ),
            (bias_name.clone(), to_f32_proto(&bias, &bias_name)),
        ],
    })
}
