//! The human-readable form of a [`VerifyOutcome`] (what `trtq verify` prints without `--json`).
//!
//! Owns the layout only; the content is the outcome's findings, summary, gate failures and notes.

use std::fmt::Write;

use super::{Finding, Severity, VerifyOutcome};

impl VerifyOutcome {
    /// One line per finding with its message indented below, then the summary, failed gates and notes.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for finding in &self.findings {
            write_finding(&mut text, finding);
        }
        let summary = &self.summary;
        let share = summary
            .reformat_time_pct
            .map(|pct| format!(" ({pct:.1}% of layer time)"))
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "layers {}, INT8 {}, reformat {}{share}, unfused Q/DQ {}, broken fusions {}",
            summary.layers,
            summary.int8_layers,
            summary.reformat_layers,
            summary.unfused_qdq,
            summary.broken_fusions
        );
        if self.reformats.layers > 0 {
            let origins: Vec<String> = self
                .reformats
                .by_origin
                .iter()
                .map(|(origin, n)| {
                    format!("{} {n}", if origin.is_empty() { "(none)" } else { origin })
                })
                .collect();
            let _ = writeln!(
                text,
                "reformats by origin: {}; dtype-changing {}, layout-only {}",
                origins.join(", "),
                self.reformats.dtype_changing,
                self.reformats.layout_only
            );
        }
        for gate in &self.gate_failures {
            let _ = writeln!(text, "gate failed: {gate}");
        }
        for note in &self.notes {
            let _ = writeln!(text, "note: {note}");
        }
        let verdict = if self.passed() {
            "PASSED".to_string()
        } else {
            format!("FAILED ({} gates)", self.gate_failures.len())
        };
        let _ = writeln!(text, "verify: {verdict}");
        text
    }
}

fn write_finding(text: &mut String, finding: &Finding) {
    let severity = match finding.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    };
    let kind = serde_json::to_value(finding.kind)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let pattern = finding
        .pattern
        .as_deref()
        .map(|p| format!(" [{p}]"))
        .unwrap_or_default();
    let layer = finding.layers.first().map(String::as_str).unwrap_or("");
    let _ = writeln!(text, "{severity:<7} {kind:<13} {layer}{pattern}");
    let _ = writeln!(text, "        {}", finding.message);
}
