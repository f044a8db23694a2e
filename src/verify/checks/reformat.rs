//! Check (c): reformat layers: count, time and share of total, split by Origin and by
//! dtype-changing vs layout-only, gated by `max_reformat_layers` and `max_reformat_time_pct`.
//!
//! Every layer TensorRT reports as `Reformat` counts (builder copies and unfused Q/DQ alike); this
//! check writes findings for the builder copies only, since unfused Q/DQ have their own check.
//! Conversions at the network boundary are info and do not count against the gates.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::trt::report::{CopyNodeOf, Layer};

use super::super::engine_view::EngineView;
use super::super::{Finding, FindingKind, Severity, VerifyGates};
use super::{dtype_change, time_note, time_of};

/// Reformat layers of an engine, broken down.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReformatStats {
    /// All layers with LayerType `Reformat`.
    pub layers: usize,
    /// Count per `Origin` ("REFORMAT", "QDQ", "SLICE", "" when absent).
    pub by_origin: BTreeMap<String, usize>,
    /// Reformats whose input and output element types differ.
    pub dtype_changing: usize,
    /// Reformats that only change the memory layout.
    pub layout_only: usize,
    /// Their summed time, when profiled.
    pub time_ms: Option<f64>,
    /// Reformats that count against the gates (not network I/O conversions).
    pub gated_layers: usize,
    /// Time of the gated reformats, when profiled.
    pub gated_time_ms: Option<f64>,
}

/// The reformat findings, their statistics, and the reformat gates that failed (with why).
pub(crate) struct ReformatCheck {
    pub(crate) findings: Vec<Finding>,
    pub(crate) stats: ReformatStats,
    pub(crate) gate_failures: Vec<String>,
}

/// Runs the check; `total_ms` is the summed layer time when a profile is attached.
pub(crate) fn check(
    view: &EngineView<'_>,
    gates: &VerifyGates,
    total_ms: Option<f64>,
) -> ReformatCheck {
    let reformats: Vec<&Layer> = view
        .report
        .layers()
        .iter()
        .filter(|l| l.is_reformat())
        .collect();
    let gated: Vec<&Layer> = reformats
        .iter()
        .copied()
        .filter(|l| !view.is_io_conversion(l))
        .collect();
    let mut stats = ReformatStats {
        layers: reformats.len(),
        time_ms: time_of(reformats.iter().copied()),
        gated_layers: gated.len(),
        gated_time_ms: time_of(gated.iter().copied()),
        ..ReformatStats::default()
    };
    for layer in &reformats {
        *stats
            .by_origin
            .entry(layer.origin.clone().unwrap_or_default())
            .or_default() += 1;
        if layer.changes_dtype() {
            stats.dtype_changing += 1;
        } else {
            stats.layout_only += 1;
        }
    }
    let gate_failures = gate_failures(&stats, gates, total_ms);
    let severity = if gate_failures.is_empty() {
        Severity::Warning
    } else {
        Severity::Error
    };
    let findings = reformats
        .iter()
        .filter(|layer| !layer.is_qdq_reformat())
        .map(|layer| finding(view, layer, severity))
        .collect();
    ReformatCheck {
        findings,
        stats,
        gate_failures,
    }
}

fn gate_failures(stats: &ReformatStats, gates: &VerifyGates, total_ms: Option<f64>) -> Vec<String> {
    let mut failures = Vec::new();
    if stats.gated_layers > gates.max_reformat_layers {
        failures.push(format!(
            "max_reformat_layers: {} reformat layers outside the network I/O, {} allowed",
            stats.gated_layers, gates.max_reformat_layers
        ));
    }
    if let (Some(time), Some(total)) = (stats.gated_time_ms, total_ms.filter(|t| *t > 0.0)) {
        let pct = 100.0 * time / total;
        if pct > gates.max_reformat_time_pct {
            failures.push(format!(
                "max_reformat_time_pct: reformat layers outside the network I/O take {pct:.1}% of summed layer \
                 time ({time:.3} of {total:.3} ms), {}% allowed",
                gates.max_reformat_time_pct
            ));
        }
    }
    failures
}

fn finding(view: &EngineView<'_>, layer: &Layer, gated_severity: Severity) -> Finding {
    let attributed = layer
        .copy_of
        .as_ref()
        .and_then(CopyNodeOf::layer)
        .and_then(|name| view.report.layers().iter().find(|l| l.name == name));
    let change = if layer.changes_dtype() {
        format!("converts {}", dtype_change(layer))
    } else {
        "changes only the memory layout".to_string()
    };
    let from = |l: &Layer| {
        l.inputs
            .first()
            .map(|t| t.format.clone())
            .unwrap_or_default()
    };
    let to = |l: &Layer| {
        l.outputs
            .first()
            .map(|t| t.format.clone())
            .unwrap_or_default()
    };
    let origin = layer.origin.as_deref().unwrap_or("none");
    let timed = time_note(layer.time_ms);
    let (severity, message) = if view.is_io_conversion(layer) {
        (
            Severity::Info,
            format!(
                "'{}' (Origin {origin}) {change}{timed} at the network boundary: expected unless the I/O formats \
                 match the first/last layer (trtexec --inputIOFormats/--outputIOFormats)",
                layer.name
            ),
        )
    } else {
        let served = match (&layer.copy_of, attributed) {
            (Some(CopyNodeOf::InputOf(_)), Some(target)) => {
                format!(" for the input of '{}'", target.name)
            }
            (Some(CopyNodeOf::OutputOf(_)), Some(target)) => {
                format!(" for the output of '{}'", target.name)
            }
            _ => String::new(),
        };
        (
            gated_severity,
            format!(
                "reformat '{}' (Origin {origin}){served} {change} ({} → {}){timed}: adjacent layers disagree on \
                 precision or layout; usually a Q/DQ missing on one side of a layer TensorRT would otherwise run \
                 in INT8, or a scale mismatch at a Concat/pooling",
                layer.name,
                from(layer),
                to(layer)
            ),
        )
    };
    let mut layers = vec![layer.name.clone()];
    layers.extend(attributed.map(|target| target.name.clone()));
    Finding {
        kind: FindingKind::Reformat,
        severity,
        layers,
        nodes: attributed
            .map(|target| target.nodes.clone())
            .unwrap_or_default(),
        pattern: None,
        time_ms: layer.time_ms,
        message,
    }
}
