//! Check (b): Q/DQ nodes TensorRT left standalone, in every form it reports them (Reformat with
//! Origin QDQ, TensorRT 8.0 Scale layers with Int8 on one side, Myelin layers of only Q/DQ nodes).
//!
//! A Q on a network input or a DQ on a network output is reported as info with the reason; every
//! other one is gated by `fail_on_unfused_qdq`.

use crate::trt::report::Layer;

use super::super::engine_view::{EngineView, QdqRole, unfused_qdq_role};
use super::super::{Finding, FindingKind, Severity, VerifyGates};
use super::{dtype_change, gated, time_note};

/// One finding per unfused Q/DQ layer.
pub(crate) fn check(view: &EngineView<'_>, gates: &VerifyGates) -> Vec<Finding> {
    view.report
        .layers()
        .iter()
        .filter_map(|layer| unfused_qdq_role(layer).map(|role| finding(view, gates, layer, role)))
        .collect()
}

fn finding(view: &EngineView<'_>, gates: &VerifyGates, layer: &Layer, role: QdqRole) -> Finding {
    let dtypes = dtype_change(layer);
    let timed = time_note(layer.time_ms);
    let io_conversion = view.is_io_conversion(layer);
    let input = view.network_input_read_by(layer).filter(|_| io_conversion);
    let output = view
        .network_output_written_by(layer)
        .filter(|_| io_conversion);
    let (severity, message) = if let Some(input) = input {
        (
            Severity::Info,
            format!(
                "{} on network input '{input}' stays a standalone layer '{}' ({dtypes}){timed}: expected, TensorRT \
                 must convert the network's float input unless the input format is INT8 \
                 (trtexec --inputIOFormats=int8:chw with a pre-quantized input)",
                role.describe(),
                layer.name
            ),
        )
    } else if let Some(output) = output {
        (
            Severity::Info,
            format!(
                "{} on network output '{output}' stays a standalone layer '{}' ({dtypes}){timed}: expected, TensorRT \
                 must convert to the network's float output unless the output format is INT8 \
                 (trtexec --outputIOFormats=int8:chw)",
                role.describe(),
                layer.name
            ),
        )
    } else {
        let producer = view.computing_producer_of(layer).map_or_else(
            || "a network input".to_string(),
            |p| format!("'{}'", p.name),
        );
        (
            gated(gates.fail_on_unfused_qdq),
            format!(
                "{} '{}' did not fuse and runs as its own {} kernel ({dtypes}){timed} after {producer}: TensorRT \
                 fuses a Q into the layer that produces its input and a DQ into the layer that consumes its output; \
                 place the Q/DQ where the pattern's qdq_points say (both inputs of a residual Add, both sides of a \
                 pooling) or remove it",
                role.describe(),
                layer.name,
                layer.layer_type
            ),
        )
    };
    let nodes = if layer.nodes.is_empty() {
        vec![layer.name.clone()]
    } else {
        layer.nodes.clone()
    };
    Finding {
        kind: FindingKind::UnfusedQdq,
        severity,
        layers: vec![layer.name.clone()],
        nodes,
        pattern: None,
        time_ms: layer.time_ms,
        message,
    }
}
