//! `junit.xml`: the run's checks and gates as JUnit XML, so a CI system shows each as a test.
//!
//! Owns the mapping: one `<testsuite>` per variant with a test case for the engine build, plus, for
//! the run's product variant, one per verify gate and one for the accuracy gate; one `<testsuite>`
//! for the baseline comparison with a test case per check (every variant). A gate that could not
//! run (engine not built, no matches file, no profile, figure not measured, gate not configured)
//! is `<skipped>` with the reason, never a pass; a failed gate is a `<failure>` whose message says
//! why. Not owned: the gates' logic.

use std::fmt::Write;

use super::compare::CheckStatus;
use super::model::{RunReport, VariantReport};

/// The verify gates (config keys of `verify:`); a gate failure names its key before a colon.
const VERIFY_GATES: [&str; 5] = [
    "fail_on_broken_fusion",
    "fail_on_unfused_qdq",
    "max_reformat_layers",
    "max_reformat_time_pct",
    "fail_on_precision",
];

enum Outcome {
    Passed,
    Failed(String),
    Skipped(String),
}

struct TestCase {
    name: String,
    outcome: Outcome,
}

struct Suite {
    name: String,
    cases: Vec<TestCase>,
}

/// Renders the report as JUnit XML.
pub fn to_junit(report: &RunReport) -> String {
    let mut suites: Vec<Suite> = report
        .variants
        .iter()
        .map(|entry| variant_suite(report, entry))
        .collect();
    if let Some(comparison) = &report.comparison {
        suites.push(Suite {
            name: "trtq.compare".into(),
            cases: comparison
                .checks
                .iter()
                .map(|check| TestCase {
                    name: format!("{}.{}", check.variant.key(), check.check.key()),
                    outcome: match check.status {
                        CheckStatus::Passed => Outcome::Passed,
                        CheckStatus::Failed => Outcome::Failed(check.message.clone()),
                        CheckStatus::Skipped => Outcome::Skipped(check.message.clone()),
                    },
                })
                .collect(),
        });
    }
    let count = |suites: &[Suite], pick: fn(&Outcome) -> bool| -> usize {
        suites
            .iter()
            .flat_map(|s| &s.cases)
            .filter(|c| pick(&c.outcome))
            .count()
    };
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"trtq\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
        count(&suites, |_| true),
        count(&suites, |o| matches!(o, Outcome::Failed(_))),
        count(&suites, |o| matches!(o, Outcome::Skipped(_))),
    );
    for suite in &suites {
        write_suite(&mut xml, suite);
    }
    xml.push_str("</testsuites>\n");
    xml
}

fn variant_suite(report: &RunReport, entry: &VariantReport) -> Suite {
    let mut cases = vec![TestCase {
        name: "engine_built".into(),
        outcome: match entry.not_built_text() {
            Some(text) => Outcome::Skipped(text),
            None => Outcome::Passed,
        },
    }];
    if entry.variant == report.product {
        cases.extend(VERIFY_GATES.iter().map(|gate| TestCase {
            name: format!("verify.{gate}"),
            outcome: verify_gate(entry, gate),
        }));
        cases.push(TestCase {
            name: "accuracy.min_sqnr_db".into(),
            outcome: accuracy_gate(report, entry),
        });
    }
    // A gate failure under a key this writer does not know still shows up as a failed test.
    if let Some(record) = entry.verify().filter(|_| entry.variant == report.product) {
        cases.extend(
            record
                .gate_failures
                .iter()
                .filter(|f| !VERIFY_GATES.contains(&gate_key(f)))
                .map(|failure| TestCase {
                    name: format!("verify.{}", gate_key(failure)),
                    outcome: Outcome::Failed(failure.clone()),
                }),
        );
    }
    Suite {
        name: format!("trtq.{}", entry.variant.key()),
        cases,
    }
}

fn gate_key(failure: &str) -> &str {
    failure.split(':').next().unwrap_or(failure).trim()
}

fn verify_gate(entry: &VariantReport, gate: &str) -> Outcome {
    if let Some(text) = entry.not_built_text() {
        return Outcome::Skipped(text);
    }
    let Some(record) = entry.verify() else {
        return Outcome::Skipped("no layer report of this engine".into());
    };
    if gate == "fail_on_broken_fusion" && !record.broken_fusions_checked {
        return Outcome::Skipped("no matches file: the broken-fusion check did not run".into());
    }
    if gate == "max_reformat_time_pct" && record.summary.reformat_time_pct.is_none() {
        return Outcome::Skipped("no profile: reformat time was not measured".into());
    }
    let failures: Vec<&str> = record
        .gate_failures
        .iter()
        .filter(|f| gate_key(f) == gate)
        .map(String::as_str)
        .collect();
    if failures.is_empty() {
        Outcome::Passed
    } else {
        Outcome::Failed(failures.join("; "))
    }
}

fn accuracy_gate(report: &RunReport, entry: &VariantReport) -> Outcome {
    if report.min_sqnr_db.is_none() {
        return Outcome::Skipped("verify.min_sqnr_db is not set".into());
    }
    if entry.accuracy.is_none() {
        return Outcome::Skipped("accuracy not measured".into());
    }
    match report.accuracy_gate_failure(entry) {
        Some(failure) => Outcome::Failed(failure),
        None => Outcome::Passed,
    }
}

fn write_suite(xml: &mut String, suite: &Suite) {
    let failures = suite
        .cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
        .count();
    let skipped = suite
        .cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Skipped(_)))
        .count();
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">",
        escape(&suite.name),
        suite.cases.len()
    );
    for case in &suite.cases {
        let head = format!(
            "    <testcase classname=\"{}\" name=\"{}\"",
            escape(&suite.name),
            escape(&case.name)
        );
        match &case.outcome {
            Outcome::Passed => {
                let _ = writeln!(xml, "{head}/>");
            }
            Outcome::Failed(message) => {
                let _ = writeln!(
                    xml,
                    "{head}>\n      <failure message=\"{0}\">{0}</failure>\n    </testcase>",
                    escape(message)
                );
            }
            Outcome::Skipped(message) => {
                let _ = writeln!(
                    xml,
                    "{head}>\n      <skipped message=\"{}\"/>\n    </testcase>",
                    escape(message)
                );
            }
        }
    }
    xml.push_str("  </testsuite>\n");
}

/// XML attribute/text escaping; characters XML 1.0 forbids (control characters other than tab,
/// newline, carriage return, e.g. TensorRT's U+001E/U+001F separators) become spaces.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
