//! Scales and tie groups as stored in a Q/DQ model.
//!
//! Owns: the model metadata keys trtq writes ([`TIE_GROUPS_KEY`], [`SCALES_KEY`]), reading tie
//! groups back ([`tie_groups`]), and writing calibrated activation scales into the Q/DQ
//! initializers by tensor name ([`set_activation_scales`]).
//! Does not own: computing ranges (calibration) or giving a tie group one scale (calibration
//! reads the groups and passes the same amax for every member).

use super::QuantizeError;
use crate::graph::{Model, Tensor};
use crate::onnx::proto::StringStringEntryProto;
use crate::patterns::query::GraphQuery;
use ndarray::{ArrayD, IxDyn};
use std::collections::HashMap;

/// Metadata key holding the tie groups as a JSON array of arrays of tensor names.
pub const TIE_GROUPS_KEY: &str = "trtq.tie_groups";
/// Metadata key saying whether activation scales are `placeholder` (1.0) or `calibrated`.
pub const SCALES_KEY: &str = "trtq.scales";

/// Sets (or replaces) a metadata entry.
pub(crate) fn set_metadata(model: &mut Model, key: &str, value: &str) {
    let props = &mut model.rest.metadata_props;
    props.retain(|p| p.key.as_deref() != Some(key));
    props.push(StringStringEntryProto {
        key: Some(key.to_string()),
        value: Some(value.to_string()),
    });
}

/// The tie groups recorded in a Q/DQ model's metadata (empty when none or unreadable).
pub fn tie_groups(model: &Model) -> Vec<Vec<String>> {
    model
        .rest
        .metadata_props
        .iter()
        .find(|p| p.key.as_deref() == Some(TIE_GROUPS_KEY))
        .and_then(|p| p.value.as_deref())
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}

/// Writes `scale = amax / 127` into the QuantizeLinear (and its DequantizeLinear, which shares
/// the initializer) of each activation tensor named in `amax`. Names without a Q/DQ are ignored.
/// Returns how many tensors were updated. Nothing is written unless every amax is usable.
pub fn set_activation_scales(
    model: &mut Model,
    amax: &HashMap<String, f32>,
) -> Result<usize, QuantizeError> {
    let g = &model.graph;
    let mut writes: Vec<(String, f32)> = Vec::new();
    for id in g.node_ids() {
        let n = g.node(id);
        if n.op_type != "QuantizeLinear" || !n.is_onnx() {
            continue;
        }
        let (Some(value), Some(scale)) = (n.input(0), n.input(1)) else {
            continue;
        };
        if g.is_const(value) {
            continue;
        }
        if let Some(&a) = amax.get(value) {
            if !(a.is_finite() && a > 0.0) {
                return Err(QuantizeError::BadAmax {
                    tensor: value.to_string(),
                    amax: a,
                });
            }
            writes.push((scale.to_string(), a / 127.0));
        }
    }
    for (name, scale) in &writes {
        let t = Tensor::F32(ArrayD::from_elem(IxDyn(&[]), *scale));
        model.graph.set_initializer(t.to_proto(name), name);
    }
    if !writes.is_empty() {
        set_metadata(model, SCALES_KEY, "calibrated");
    }
    Ok(writes.len())
}
