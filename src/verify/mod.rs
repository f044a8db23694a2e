//! Checks over an engine's own layer report: broken fusions, unfused Q/DQ, reformat layers and
//! precision, producing [`Finding`]s, and the gates that turn them into pass/fail.
//!
//! Owns [`verify`] (report + optional pattern matches + gates → [`VerifyOutcome`]) and the JSON form
//! of DESIGN.md's "Artifacts" section. It joins the TensorRT report ([`crate::trt::report`]) and the
//! pattern matches ([`MatchesFile`]) by node name; it does not build engines or run patterns, and it
//! does not pick exit codes (the CLI maps [`VerifyOutcome::passed`] to 0/1).

mod checks;
mod engine_view;
mod finding;
mod gates;
mod text;

use serde::{Deserialize, Serialize};

use crate::trt::report::EngineReport;

pub use crate::patterns::{MatchesError, MatchesFile};
pub use checks::reformat::ReformatStats;
pub use finding::{Finding, FindingKind, Severity};
pub use gates::VerifyGates;

/// The `summary` object of the verify JSON (DESIGN.md "Artifacts"; field names are a contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Engine layers (all, NoOps included).
    pub layers: usize,
    /// Layers (not NoOp) whose first input is Int8.
    pub int8_layers: usize,
    /// Layers TensorRT reports as Reformat (builder copies and Q/DQ-origin alike).
    pub reformat_layers: usize,
    /// Share of summed layer time in Reformat layers, percent; `null` without a profile.
    pub reformat_time_pct: Option<f64>,
    /// Q/DQ that did not fuse, in any form (network I/O conversions included).
    pub unfused_qdq: usize,
    /// Pattern matches split over several layers (0 without matches).
    pub broken_fusions: usize,
}

/// Everything [`verify`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyOutcome {
    /// Findings: broken fusions, unfused Q/DQ, reformats, precision, each in layer order.
    pub findings: Vec<Finding>,
    /// The contract summary.
    pub summary: Summary,
    /// Reformat layers broken down by Origin and kind.
    pub reformats: ReformatStats,
    /// Conv/gemm layers that read Int8 and write another type (those feeding the network output too).
    pub int8_in_non_int8_out: usize,
    /// The gates that failed, each with the reason; empty when the engine passes.
    pub gate_failures: Vec<String>,
    /// What could not be checked, and why (e.g. no matches file, no profile).
    pub notes: Vec<String>,
}

#[derive(Serialize)]
struct VerifyJson<'a> {
    findings: &'a [Finding],
    summary: &'a Summary,
}

impl VerifyOutcome {
    /// True when no gate failed.
    pub fn passed(&self) -> bool {
        self.gate_failures.is_empty()
    }

    /// Findings of one kind.
    pub fn findings_of(&self, kind: FindingKind) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.kind == kind)
    }

    /// `{"findings": [...], "summary": {...}}` as in DESIGN.md.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(VerifyJson {
            findings: &self.findings,
            summary: &self.summary,
        })
        .unwrap_or(serde_json::Value::Null)
    }
}

/// Runs every check on `report` (joined with `matches` when given) and applies `gates`.
pub fn verify(
    report: &EngineReport,
    matches: Option<&MatchesFile>,
    gates: &VerifyGates,
) -> VerifyOutcome {
    let view = engine_view::EngineView::new(report);
    let total_ms = report.total_time_ms();
    let mut notes = Vec::new();
    let broken = match matches {
        Some(file) => checks::broken_fusion::check(&view, file, gates),
        None => {
            notes.push("no matches file: the broken-fusion check did not run (pass --matches matches.json)".into());
            Vec::new()
        }
    };
    if total_ms.is_none() {
        notes
            .push("no profile: reformat time was not measured and its gate was not applied".into());
    }
    let unfused = checks::unfused_qdq::check(&view, gates);
    let reformat = checks::reformat::check(&view, gates, total_ms);
    let precision = checks::precision::check(&view, matches, gates);

    let mut gate_failures = Vec::new();
    let errors = |findings: &[Finding]| {
        findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    };
    if errors(&broken) > 0 {
        gate_failures.push(format!(
            "fail_on_broken_fusion: {} pattern matches split over several layers",
            errors(&broken)
        ));
    }
    if errors(&unfused) > 0 {
        gate_failures.push(format!(
            "fail_on_unfused_qdq: {} Q/DQ layers did not fuse (network I/O conversions not counted)",
            errors(&unfused)
        ));
    }
    gate_failures.extend(reformat.gate_failures);
    if errors(&precision.findings) > 0 {
        gate_failures.push(format!(
            "fail_on_precision: {} quantized conv/gemm layers do not run INT8 end to end",
            errors(&precision.findings)
        ));
    }

    let summary = Summary {
        layers: report.layers().len(),
        int8_layers: report.layers().iter().filter(|l| l.is_int8()).count(),
        reformat_layers: reformat.stats.layers,
        reformat_time_pct: total_ms
            .filter(|total| *total > 0.0)
            .map(|total| 100.0 * reformat.stats.time_ms.unwrap_or(0.0) / total),
        unfused_qdq: unfused.len(),
        broken_fusions: broken.len(),
    };
    let findings = broken
        .into_iter()
        .chain(unfused)
        .chain(reformat.findings)
        .chain(precision.findings)
        .collect();
    VerifyOutcome {
        findings,
        summary,
        reformats: reformat.stats,
        int8_in_non_int8_out: precision.int8_in_non_int8_out,
        gate_failures,
        notes,
    }
}
