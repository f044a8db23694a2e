//! The four checks of an engine report: broken fusions, unfused Q/DQ, reformat layers, precision.
//!
//! Each check owns one kind of [`super::Finding`] and the severity rule for it; the shared dataflow
//! questions are in [`super::engine_view`]. Aggregating the findings into an outcome is
//! [`super::verify`]'s job.

pub(crate) mod broken_fusion;
pub(crate) mod precision;
pub(crate) mod reformat;
pub(crate) mod unfused_qdq;

use crate::trt::report::{DataType, Layer};

use super::Severity;

/// Summed profile time of `layers`; `None` when none of them was profiled.
pub(crate) fn time_of<'a>(layers: impl IntoIterator<Item = &'a Layer>) -> Option<f64> {
    layers
        .into_iter()
        .filter_map(|layer| layer.time_ms)
        .reduce(|a, b| a + b)
}

/// `Error` when the finding's gate is on, else `Warning`.
pub(crate) fn gated(gate_on: bool) -> Severity {
    if gate_on {
        Severity::Error
    } else {
        Severity::Warning
    }
}

/// " (0.028 ms)" when timed, else "".
pub(crate) fn time_note(time_ms: Option<f64>) -> String {
    time_ms
        .map(|ms| format!(" ({ms:.3} ms)"))
        .unwrap_or_default()
}

/// "FP16 → Int8": the layer's first input and first output types.
pub(crate) fn dtype_change(layer: &Layer) -> String {
    let name = |t: Option<&DataType>| t.map_or_else(|| "?".to_string(), ToString::to_string);
    format!(
        "{} → {}",
        name(layer.precision()),
        name(layer.output_precision())
    )
}
