//! `report.md`: the run's report as Markdown, readable as a CI comment.
//!
//! Owns the layout: a verdict line, the variant tables (latency, structure, accuracy), the baseline
//! comparison, the findings grouped by severity (the product's first; the comparison variants'
//! folded in a `<details>` block), the run's warnings, and what was not measured and why. Figures are worded by [`super::cells`]; nothing is computed here.

use std::fmt::Write;

use crate::verify::{Finding, Severity};

use super::cells::{self, MISSING};
use super::compare::CheckStatus;
use super::model::{RunReport, VariantReport};

/// Renders the report as Markdown.
pub fn to_markdown(report: &RunReport) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# trtq report: `{}`\n", report.model);
    let tensorrt = report.tensorrt.as_deref().unwrap_or("not used");
    let _ = writeln!(
        md,
        "trtq {} · batch size {} · TensorRT: {}\n",
        report.trtq_version,
        report.batch_size,
        escape(tensorrt)
    );
    let failures = report.gate_failures();
    if failures.is_empty() {
        md.push_str("**Result: passed**\n\n");
    } else {
        let _ = writeln!(md, "**Result: FAILED** ({} gates)\n", failures.len());
        for failure in &failures {
            let _ = writeln!(md, "- {}", escape(failure));
        }
        md.push('\n');
    }
    write_tables(&mut md, report);
    write_comparison(&mut md, report);
    write_findings(&mut md, report);
    if !report.warnings.is_empty() {
        md.push_str("## Warnings\n\n");
        for warning in &report.warnings {
            let _ = writeln!(md, "- {}", escape(warning));
        }
        md.push('\n');
    }
    let not_measured = report.not_measured();
    if !not_measured.is_empty() {
        md.push_str("## Not measured\n\n");
        for line in not_measured {
            let _ = writeln!(md, "- {}", escape(&line));
        }
    }
    md
}

type Column = (&'static str, fn(&RunReport, &VariantReport) -> String);

fn write_tables(md: &mut String, report: &RunReport) {
    let latency: &[Column] = &[
        ("engine", |_, v| {
            cells::engine_figure(v, |_| Some("built".into()))
        }),
        ("median (ms)", |_, v| {
            cells::engine_figure(v, |e| e.latency.as_ref().map(|l| cells::ms(l.median_ms)))
        }),
        ("p90 (ms)", |_, v| {
            cells::engine_figure(v, |e| e.latency.as_ref().map(|l| cells::ms(l.p90_ms)))
        }),
        ("p99 (ms)", |_, v| {
            cells::engine_figure(v, |e| e.latency.as_ref().map(|l| cells::ms(l.p99_ms)))
        }),
        ("mean (ms)", |_, v| {
            cells::engine_figure(v, |e| e.latency.as_ref().map(|l| cells::ms(l.mean_ms)))
        }),
        ("throughput (inf/s)", |_, v| {
            cells::engine_figure(v, |e| e.throughput_per_s.map(|t| format!("{t:.0}")))
        }),
        ("engine size", |_, v| {
            cells::engine_figure(v, |e| e.engine_bytes.map(cells::bytes))
        }),
    ];
    let structure: &[Column] = &[
        ("Q/DQ nodes (ONNX)", |_, v| {
            cells::or_missing(v.qdq_nodes, |n| n.to_string())
        }),
        ("layers", |_, v| {
            cells::structure_figure(v, |r| r.summary.layers.to_string())
        }),
        ("INT8 layers", |_, v| {
            cells::structure_figure(v, |r| r.summary.int8_layers.to_string())
        }),
        ("reformat layers (time)", |_, v| {
            cells::structure_figure(v, cells::reformats)
        }),
        ("unfused Q/DQ", |_, v| {
            cells::structure_figure(v, |r| r.summary.unfused_qdq.to_string())
        }),
        ("broken fusions", |_, v| {
            cells::structure_figure(v, |r| r.summary.broken_fusions.to_string())
        }),
        ("verify", |r, v| {
            cells::structure_figure(v, |record| cells::verdict(record, v.variant == r.product))
        }),
    ];
    let accuracy: &[Column] = &[
        ("SQNR (dB)", |_, v| {
            cells::or_missing(v.accuracy.as_ref(), |a| format!("{:.2}", a.sqnr_db))
        }),
        ("SQNR, FP16 float regions (dB)", |_, v| {
            cells::or_missing(v.accuracy_fp16.as_ref(), |a| format!("{:.2}", a.sqnr_db))
        }),
        ("cosine", |_, v| {
            cells::or_missing(v.accuracy.as_ref(), |a| format!("{:.5}", a.cosine))
        }),
        ("max abs error", |_, v| {
            cells::or_missing(v.accuracy.as_ref(), |a| format!("{:.4}", a.max_abs_error))
        }),
        ("top-1 agreement", |_, v| {
            cells::or_missing(v.accuracy.as_ref().and_then(|a| a.top1_agreement), |t| {
                format!("{:.1}%", 100.0 * t)
            })
        }),
        ("samples", |_, v| {
            cells::or_missing(v.accuracy.as_ref(), |a| a.samples.to_string())
        }),
        ("accuracy gate", |r, v| match (&v.accuracy, r.min_sqnr_db) {
            (Some(_), Some(min)) => {
                let verdict = match (r.accuracy_gate_failure(v), v.variant == r.product) {
                    (Some(_), true) => "FAILED",
                    (Some(_), false) => "below (not gated)",
                    (None, _) => "passed",
                };
                format!("{verdict} (min {min} dB)")
            }
            _ => MISSING.to_string(),
        }),
    ];
    for (title, columns) in [
        ("Latency", latency),
        ("Structure", structure),
        ("Accuracy vs FP32", accuracy),
    ] {
        let _ = writeln!(md, "## {title}\n");
        write_table(md, report, columns);
        md.push('\n');
    }
}

fn write_table(md: &mut String, report: &RunReport, columns: &[Column]) {
    md.push_str("| variant |");
    for (header, _) in columns {
        let _ = write!(md, " {header} |");
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(columns.len()));
    md.push('\n');
    for entry in &report.variants {
        let _ = write!(md, "| {} |", entry.variant.label());
        for (_, cell) in columns {
            let _ = write!(md, " {} |", escape(&cell(report, entry)));
        }
        md.push('\n');
    }
}

fn write_comparison(md: &mut String, report: &RunReport) {
    let Some(comparison) = &report.comparison else {
        return;
    };
    let verdict = if comparison.passed() {
        "passed"
    } else {
        "FAILED"
    };
    let _ = writeln!(
        md,
        "## Baseline comparison: {verdict}\n\nmax latency regression {}%, max SQNR drop {} dB\n",
        comparison.max_latency_regression_pct, comparison.max_sqnr_drop_db
    );
    md.push_str("| variant | check | result | detail |\n|---|---|---|---|\n");
    for check in &comparison.checks {
        let status = match check.status {
            CheckStatus::Passed => "ok",
            CheckStatus::Failed => "**FAILED**",
            CheckStatus::Skipped => "skipped",
        };
        let _ = writeln!(
            md,
            "| {} | {} | {status} | {} |",
            check.variant.label(),
            check.check.key(),
            escape(&check.message)
        );
    }
    md.push('\n');
}

fn write_findings(md: &mut String, report: &RunReport) {
    let findings_of = |product: bool| -> Vec<(&VariantReport, &Finding)> {
        report
            .variants
            .iter()
            .filter(|v| (v.variant == report.product) == product)
            .filter_map(|v| v.verify().map(|r| (v, r)))
            .flat_map(|(v, r)| r.findings.iter().map(move |f| (v, f)))
            .collect()
    };
    let product = findings_of(true);
    if !product.is_empty() {
        let _ = writeln!(
            md,
            "## Findings: {}
",
            report.product.label()
        );
        write_by_severity(md, &product);
    }
    // The comparison variants' findings explain their latency but do not gate the run: folded away
    // so a CI comment leads with what matters.
    let others = findings_of(false);
    if !others.is_empty() {
        let _ = writeln!(
            md,
            "<details><summary>Findings of the comparison variants ({}; not gated)</summary>\n",
            others.len()
        );
        write_by_severity(md, &others);
        md.push_str("</details>\n\n");
    }
}

fn write_by_severity(md: &mut String, findings: &[(&VariantReport, &Finding)]) {
    for (severity, title) in [
        (Severity::Error, "Errors"),
        (Severity::Warning, "Warnings"),
        (Severity::Info, "Info"),
    ] {
        let group: Vec<_> = findings
            .iter()
            .filter(|(_, f)| f.severity == severity)
            .collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(md, "### {title} ({})\n", group.len());
        for (variant, finding) in group {
            let kind = serde_json::to_value(finding.kind)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "- **{}** `{kind}`: {}",
                variant.variant.label(),
                escape(&finding.message)
            );
        }
        md.push('\n');
    }
}

/// Keeps text from breaking a table row or being read as markup: pipes and newlines escaped,
/// HTML-significant characters as entities.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}
