//! The text of one report figure, shared by the Markdown, SVG and JUnit writers so a number reads
//! the same everywhere: engine figures of an unbuilt engine read `"not built: <reason>"`, a figure
//! that was not measured reads "—".
//!
//! Owns number formatting and the not-built/not-measured wording; not the layout of any format.

use super::model::{BuiltEngine, VariantReport, VerifyRecord};

/// Shown for a figure that was not measured.
pub const MISSING: &str = "—";

/// Milliseconds with three decimals.
pub fn ms(value: f64) -> String {
    format!("{value:.3}")
}

/// A byte count in MiB (KiB under one MiB).
pub fn bytes(value: u64) -> String {
    let value = value as f64;
    if value >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", value / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KiB", value / 1024.0)
    }
}

/// An engine figure of `entry`: `figure(engine)` when built (`—` when that is `None`),
/// `"not built: <reason>"` otherwise.
pub fn engine_figure(
    entry: &VariantReport,
    figure: impl FnOnce(&BuiltEngine) -> Option<String>,
) -> String {
    match entry.engine() {
        Some(engine) => figure(engine).unwrap_or_else(|| MISSING.to_string()),
        None => entry.not_built_text().unwrap_or_default(),
    }
}

/// An engine-structure figure of `entry` (from its layer report), like [`engine_figure`].
pub fn structure_figure(
    entry: &VariantReport,
    figure: impl FnOnce(&VerifyRecord) -> String,
) -> String {
    engine_figure(entry, |engine| engine.verify.as_ref().map(figure))
}

/// An optional figure, `—` when absent.
pub fn or_missing<T>(value: Option<T>, format: impl FnOnce(T) -> String) -> String {
    value.map(format).unwrap_or_else(|| MISSING.to_string())
}

/// Reformat layers with their time: "3 (0.116 ms)".
pub fn reformats(record: &VerifyRecord) -> String {
    match record.reformat_time_ms {
        Some(time) => format!("{} ({} ms)", record.summary.reformat_layers, ms(time)),
        None => record.summary.reformat_layers.to_string(),
    }
}

/// The verify verdict of an engine: "passed" / "FAILED (n gates)" for the run's product,
/// "passes" / "fails n gates" (not gated) for a comparison variant.
pub fn verdict(record: &VerifyRecord, gated: bool) -> String {
    let failed = record.gate_failures.len();
    match (gated, record.passed) {
        (true, true) => "passed".to_string(),
        (true, false) => format!("FAILED ({failed} gates)"),
        (false, true) => "passes (not gated)".to_string(),
        (false, false) => format!("fails {failed} gates (not gated)"),
    }
}
