//! Check (d): quantized convolutions and GEMMs that do not run INT8 end to end: a conv/gemm with
//! quantized weights (or matched by a quantized pattern) whose input is not Int8 (it runs FP16, FP32
//! or TF32 although its weights are quantized), and one that reads Int8 but writes float when its
//! consumer quantizes again (TREx's "Quantized Convolution has float outputs").
//!
//! A float output feeding the network output is what the model asked for and is not reported.

use std::collections::BTreeSet;

use crate::trt::report::Layer;
use crate::trt::report::names::is_qdq_node;

use super::super::engine_view::{EngineView, Requantized};
use super::super::{Finding, FindingKind, MatchesFile, VerifyGates};
use super::{dtype_change, gated, time_note};

/// Precision findings, and how many conv/gemm layers read Int8 but write another type.
pub(crate) struct PrecisionCheck {
    pub(crate) findings: Vec<Finding>,
    pub(crate) int8_in_non_int8_out: usize,
}

/// Runs the check.
pub(crate) fn check(
    view: &EngineView<'_>,
    matches: Option<&MatchesFile>,
    gates: &VerifyGates,
) -> PrecisionCheck {
    let matched_quantized = quantized_matched_layers(view, matches);
    let mut findings = Vec::new();
    let mut int8_in_non_int8_out = 0;
    for layer in view
        .report
        .layers()
        .iter()
        .filter(|l| l.is_conv_or_gemm() && !l.is_noop())
    {
        let int8_in = layer.precision().is_some_and(|t| t.is_int8());
        let int8_out = layer.output_precision().is_some_and(|t| t.is_int8());
        let float_out = layer.output_precision().is_some_and(|t| t.is_float());
        if int8_in && !int8_out {
            int8_in_non_int8_out += 1;
        }
        let quantized = has_quantized_weights(layer) || matched_quantized.contains(&layer.index);
        let message = if quantized && !int8_in && layer.precision().is_some() {
            Some(not_int8_message(layer))
        } else if int8_in && float_out {
            view.requantizing_consumer_of(layer)
                .map(|next| float_output_message(layer, next))
        } else {
            None
        };
        if let Some(message) = message {
            findings.push(Finding {
                kind: FindingKind::Precision,
                severity: gated(gates.fail_on_precision),
                layers: vec![layer.name.clone()],
                nodes: layer.nodes.clone(),
                pattern: None,
                time_ms: layer.time_ms,
                message,
            });
        }
    }
    PrecisionCheck {
        findings,
        int8_in_non_int8_out,
    }
}

fn has_quantized_weights(layer: &Layer) -> bool {
    layer.weights_dtype.as_ref().is_some_and(|t| t.is_int8())
        || layer.nodes.iter().any(|n| is_qdq_node(n))
}

/// Layers holding a node of a match that has QDQ points (a pattern meant to run INT8).
fn quantized_matched_layers(
    view: &EngineView<'_>,
    matches: Option<&MatchesFile>,
) -> BTreeSet<usize> {
    matches
        .into_iter()
        .flat_map(|file| file.matches.iter())
        .filter(|record| !record.qdq_points.is_empty())
        .flat_map(|record| record.nodes.iter())
        .flat_map(|node| view.layers_of_node(node).iter().copied())
        .collect()
}

fn not_int8_message(layer: &Layer) -> String {
    let precision = layer
        .precision()
        .map_or_else(|| "?".to_string(), ToString::to_string);
    let tactic = layer.tactic.as_deref().unwrap_or("");
    let tf32 = if tactic.to_ascii_lowercase().contains("tf32") {
        " (a TF32 tactic)"
    } else {
        ""
    };
    format!(
        "'{}' ({}) runs in {precision}{tf32}{} although its weights are quantized: its input is not Int8, so the \
         INT8 fusion broke; tactic '{tactic}'. Check that a Q/DQ sits directly on its activation input and that \
         the layer before it can write Int8",
        layer.name,
        layer.layer_type,
        time_note(layer.time_ms)
    )
}

fn float_output_message(layer: &Layer, next: Requantized<'_>) -> String {
    let what_next = match next {
        Requantized::ByUnfusedQ(q) => format!(
            "then '{}' quantizes it again: the Q after it did not fuse",
            q.name
        ),
        Requantized::IntoInt8Layer(int8) => {
            format!(
                "and the INT8 layer '{}' reads it as a float input (an unquantized residual input)",
                int8.name
            )
        }
    };
    format!(
        "quantized {} '{}' has float outputs ({}){}, {what_next}. TensorRT keeps the output Int8 only when every \
         consumer of it is quantized (e.g. quantize the residual input of the Add as well)",
        layer.layer_type,
        layer.name,
        dtype_change(layer),
        time_note(layer.time_ms)
    )
}
