//! The CI regression gate: [`compare`] a run's report with a committed baseline report.
//!
//! Owns what counts as a regression, per variant present in both reports:
//! - latency: the median grew by more than `max_latency_regression_pct` percent;
//! - broken fusions: a pattern match is split over several layers that was not in the baseline
//!   (compared by pattern and node names, so one fixed and another broken still fails; needs both
//!   runs verified with their matches.json);
//! - reformat layers: more than in the baseline;
//! - unfused Q/DQ: more than in the baseline (the new ones named when their nodes differ);
//! - accuracy: SQNR lower than the baseline's by more than [`MAX_SQNR_DROP_DB`].
//!
//! A check whose figure is missing on either side (engine not built, not timed, accuracy not
//! measured) is *skipped* with the reason, never passed silently. It does not read files or pick
//! exit codes (the CLI does).

use std::collections::BTreeSet;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::verify::{FindingKind, Severity};

use super::model::{RunReport, Variant, VariantReport, VerifyRecord};

/// Largest SQNR drop (dB) against the baseline that still passes. Calibration is deterministic for
/// a given data set and method, so identical inputs give identical SQNR; 0.5 dB (about 12 % more
/// noise power) leaves room for CPU vs CUDA calibration and summation-order differences, while a
/// changed placement or scale that costs accuracy drops SQNR by whole dB.
pub const MAX_SQNR_DROP_DB: f64 = 0.5;

/// Which figure a comparison check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareCheckKind {
    /// Median latency.
    Latency,
    /// Pattern matches split over several layers.
    BrokenFusions,
    /// Reformat layers.
    ReformatLayers,
    /// Q/DQ that did not fuse.
    UnfusedQdq,
    /// SQNR against FP32.
    Accuracy,
}

impl CompareCheckKind {
    /// All checks, in report order.
    pub const ALL: [CompareCheckKind; 5] = [
        CompareCheckKind::Latency,
        CompareCheckKind::BrokenFusions,
        CompareCheckKind::ReformatLayers,
        CompareCheckKind::UnfusedQdq,
        CompareCheckKind::Accuracy,
    ];

    /// The snake_case key (JSON, JUnit test names).
    pub fn key(self) -> &'static str {
        match self {
            CompareCheckKind::Latency => "latency",
            CompareCheckKind::BrokenFusions => "broken_fusions",
            CompareCheckKind::ReformatLayers => "reformat_layers",
            CompareCheckKind::UnfusedQdq => "unfused_qdq",
            CompareCheckKind::Accuracy => "accuracy",
        }
    }
}

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// No regression.
    Passed,
    /// A regression.
    Failed,
    /// Not comparable (a figure is missing on one side).
    Skipped,
}

/// One variant's check against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareCheck {
    /// The variant compared.
    pub variant: Variant,
    /// The figure compared.
    pub check: CompareCheckKind,
    /// The result.
    pub status: CheckStatus,
    /// The figures and, for a failure, what regressed; for a skip, why.
    pub message: String,
}

/// The result of [`compare`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareOutcome {
    /// The latency threshold applied, in percent.
    pub max_latency_regression_pct: f64,
    /// The SQNR tolerance applied, in dB ([`MAX_SQNR_DROP_DB`]).
    pub max_sqnr_drop_db: f64,
    /// Every check, variant by variant.
    pub checks: Vec<CompareCheck>,
}

impl CompareOutcome {
    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.failures().next().is_none()
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &CompareCheck> {
        self.checks
            .iter()
            .filter(|c| c.status == CheckStatus::Failed)
    }

    /// One line per check, then the verdict (what `trtq compare` prints).
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for check in &self.checks {
            let status = match check.status {
                CheckStatus::Passed => "ok",
                CheckStatus::Failed => "FAILED",
                CheckStatus::Skipped => "skipped",
            };
            let _ = writeln!(
                text,
                "{status:<7} {:<13} {:<16} {}",
                check.variant.key(),
                check.check.key(),
                check.message
            );
        }
        let failed = self.failures().count();
        let verdict = if failed == 0 {
            "PASSED".to_string()
        } else {
            format!("FAILED ({failed} regressions)")
        };
        let _ = writeln!(text, "compare: {verdict}");
        text
    }
}

/// Compares `current` with `baseline`, variant by variant (see the module doc for the rules).
/// A variant of the baseline missing from `current` gives skipped checks.
pub fn compare(
    baseline: &RunReport,
    current: &RunReport,
    max_latency_regression_pct: f64,
) -> CompareOutcome {
    let mut checks = Vec::new();
    for variant in Variant::ALL {
        let (Some(base), Some(cur)) = (baseline.variant(variant), current.variant(variant)) else {
            if baseline.variant(variant).is_some() {
                checks.extend(CompareCheckKind::ALL.map(|check| CompareCheck {
                    variant,
                    check,
                    status: CheckStatus::Skipped,
                    message: "the current run has no such variant".into(),
                }));
            }
            continue;
        };
        for check in CompareCheckKind::ALL {
            let (status, message) = match check {
                CompareCheckKind::Latency => latency(base, cur, max_latency_regression_pct),
                CompareCheckKind::BrokenFusions => broken_fusions(base, cur),
                CompareCheckKind::ReformatLayers => {
                    count(base, cur, "reformat layers", |r| r.summary.reformat_layers)
                }
                CompareCheckKind::UnfusedQdq => unfused_qdq(base, cur),
                CompareCheckKind::Accuracy => accuracy(base, cur),
            };
            checks.push(CompareCheck {
                variant,
                check,
                status,
                message,
            });
        }
    }
    CompareOutcome {
        max_latency_regression_pct,
        max_sqnr_drop_db: MAX_SQNR_DROP_DB,
        checks,
    }
}

type Verdict = (CheckStatus, String);

fn skipped(what: &str, base_missing: bool) -> Verdict {
    let side = if base_missing {
        "baseline"
    } else {
        "current run"
    };
    (CheckStatus::Skipped, format!("{what}: not in the {side}"))
}

fn latency(base: &VariantReport, cur: &VariantReport, max_pct: f64) -> Verdict {
    let (Some(before), Some(after)) = (base.median_ms(), cur.median_ms()) else {
        return skipped("median latency", base.median_ms().is_none());
    };
    let change_pct = if before > 0.0 {
        100.0 * (after - before) / before
    } else {
        0.0
    };
    let message =
        format!("median {before:.3} → {after:.3} ms ({change_pct:+.1}%, {max_pct}% allowed)");
    if change_pct > max_pct {
        (CheckStatus::Failed, message)
    } else {
        (CheckStatus::Passed, message)
    }
}

fn verify_pair<'a>(
    base: &'a VariantReport,
    cur: &'a VariantReport,
    what: &str,
) -> Result<(&'a VerifyRecord, &'a VerifyRecord), Verdict> {
    match (base.verify(), cur.verify()) {
        (Some(b), Some(c)) => Ok((b, c)),
        (b, _) => Err(skipped(
            &format!("{what} (engine layer report)"),
            b.is_none(),
        )),
    }
}

fn count(
    base: &VariantReport,
    cur: &VariantReport,
    what: &str,
    of: fn(&VerifyRecord) -> usize,
) -> Verdict {
    let (b, c) = match verify_pair(base, cur, what) {
        Ok(pair) => pair,
        Err(verdict) => return verdict,
    };
    let (before, after) = (of(b), of(c));
    let message = format!("{what} {before} → {after}");
    if after > before {
        (
            CheckStatus::Failed,
            format!("{message}: {} new", after - before),
        )
    } else {
        (CheckStatus::Passed, message)
    }
}

/// Identity of a finding across runs: its pattern and node names (layer names change between
/// builds; node names come from the ONNX model).
fn finding_keys(record: &VerifyRecord, kind: FindingKind) -> BTreeSet<String> {
    record
        .findings
        .iter()
        .filter(|f| f.kind == kind && f.severity != Severity::Info)
        .map(|f| {
            let mut nodes = f.nodes.clone();
            nodes.sort();
            match &f.pattern {
                Some(pattern) => format!("{pattern}[{}]", nodes.join(", ")),
                None => nodes.join(" + "),
            }
        })
        .collect()
}

fn broken_fusions(base: &VariantReport, cur: &VariantReport) -> Verdict {
    let (b, c) = match verify_pair(base, cur, "broken fusions") {
        Ok(pair) => pair,
        Err(verdict) => return verdict,
    };
    if !(b.broken_fusions_checked && c.broken_fusions_checked) {
        return skipped(
            "broken-fusion check (needs matches.json)",
            !b.broken_fusions_checked,
        );
    }
    let before = finding_keys(b, FindingKind::BrokenFusion);
    let new_keys: Vec<String> = finding_keys(c, FindingKind::BrokenFusion)
        .difference(&before)
        .cloned()
        .collect();
    let after = c.summary.broken_fusions;
    let message = format!("broken fusions {} → {after}", b.summary.broken_fusions);
    match (new_keys.is_empty(), after > b.summary.broken_fusions) {
        (true, false) => (CheckStatus::Passed, message),
        (true, true) => (
            CheckStatus::Failed,
            format!("{message}: {} more", after - b.summary.broken_fusions),
        ),
        (false, _) => (
            CheckStatus::Failed,
            format!("{message}; new: {}", new_keys.join("; ")),
        ),
    }
}

fn unfused_qdq(base: &VariantReport, cur: &VariantReport) -> Verdict {
    let (b, c) = match verify_pair(base, cur, "unfused Q/DQ") {
        Ok(pair) => pair,
        Err(verdict) => return verdict,
    };
    let (before, after) = (b.summary.unfused_qdq, c.summary.unfused_qdq);
    let message = format!("unfused Q/DQ {before} → {after}");
    if after <= before {
        return (CheckStatus::Passed, message);
    }
    let new: Vec<String> = finding_keys(c, FindingKind::UnfusedQdq)
        .difference(&finding_keys(b, FindingKind::UnfusedQdq))
        .cloned()
        .collect();
    let named = if new.is_empty() {
        String::new()
    } else {
        format!(": {}", new.join("; "))
    };
    (
        CheckStatus::Failed,
        format!("{message}, {} new{named}", after - before),
    )
}

fn accuracy(base: &VariantReport, cur: &VariantReport) -> Verdict {
    let (Some(before), Some(after)) = (&base.accuracy, &cur.accuracy) else {
        return skipped("accuracy", base.accuracy.is_none());
    };
    let (b, a) = (before.sqnr_db, after.sqnr_db);
    let drop = b - a;
    let message = format!("SQNR {b:.2} → {a:.2} dB ({MAX_SQNR_DROP_DB} dB drop allowed)");
    // Exact (infinite) SQNR on both sides gives NaN, which passes; exact before and not after, +inf,
    // which fails.
    if drop > MAX_SQNR_DROP_DB {
        (CheckStatus::Failed, message)
    } else {
        (CheckStatus::Passed, message)
    }
}
