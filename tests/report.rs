//! The report stage on real TensorRT recordings (../shared/trt-reports): the TREx ResNet-18 trio
//! turned into run reports exactly as a run would (layer info + profile + timing file → EngineReport
//! → verify with the default gates → RunReport → report.md/json/svg/junit), the CI comparison gate
//! in both directions (library and `trtq compare`), and a CPU-only report where no engine was built.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use trtq::config::ReportFormat;
use trtq::report::{
    Accuracy, BuiltEngine, CheckStatus, CompareCheckKind, NO_TENSORRT, ReportError, RunReport,
    Variant, VariantReport, compare, to_junit, to_markdown, to_svg, write_reports,
};
use trtq::trt::report::{EngineReport, LatencySummary};
use trtq::verify::{MatchesFile, VerifyGates, verify};

const ALL_FORMATS: [ReportFormat; 4] = [
    ReportFormat::Markdown,
    ReportFormat::Json,
    ReportFormat::Svg,
    ReportFormat::Junit,
];

/// The trio's batch (PROVENANCE.md: built by TREx's process_resnet.sh with 32x3x224x224).
const BATCH: usize = 32;

/// trtexec's mean latency of each engine, from the recorded `*.profile.metadata.json` summaries
/// quoted in PROVENANCE.md (CUDA graph on, no data transfers). The recordings hold no per-iteration
/// timing file, so each number is written as a one-iteration `--exportTimes` file and read back
/// through the same parser a run uses.
const FP16_MS: f64 = 0.863;
const QAT_MS: f64 = 0.882;
const QAT_RESIDUAL_MS: f64 = 0.546;
const QGAP_MS: f64 = 0.500;

// The engines' roles: `qat` has Q/DQ on conv inputs and weights only, the naive placement generic
// tools produce (what `strategy: uniform` stands for); `qat-residual-qgap` adds the residual-Add and
// global-average-pool inputs, the TensorRT-aware placement the pattern library makes
// (ConvBNAddReLU's RESIDUAL_INPUT, AdaptiveAvgPool's INPUT); `qat-residual` is the halfway step.
const QAT: (&str, f64) = ("trex_resnet18_a100_qat", QAT_MS);
const QAT_RESIDUAL: (&str, f64) = ("trex_resnet18_a100_qat-residual", QAT_RESIDUAL_MS);
const QGAP: (&str, f64) = ("trex_resnet18_a100_qat-residual-qgap", QGAP_MS);

fn timing_file(dir: &Path, stem: &str, mean_ms: f64) -> PathBuf {
    let path = dir.join(format!("{stem}.timing.json"));
    std::fs::write(&path, format!("[{{\"latencyMs\": {mean_ms}}}]")).unwrap();
    path
}

/// An INT8 variant built from a recorded engine, as the engine and verify stages would hand it over.
fn recorded_engine(
    recordings: &Path,
    tmp: &Path,
    (stem, mean_ms): (&str, f64),
    matches: Option<&MatchesFile>,
) -> BuiltEngine {
    let layers = recordings.join(format!("{stem}.graph.json"));
    let profile = recordings.join(format!("{stem}.profile.json"));
    let times = timing_file(tmp, stem, mean_ms);
    let report = EngineReport::load(&layers, Some(&profile), Some(&times))
        .unwrap_or_else(|e| panic!("{stem}: {e}"));
    let outcome = verify(&report, matches, &VerifyGates::default());
    BuiltEngine::from_engine(&report, matches, &outcome, BATCH, None)
}

/// A run whose pattern variant is `pattern`, the uniform one `qat`, and FP16 known by latency only
/// (its layer report is not among the recordings).
fn trio_run(recordings: &Path, tmp: &Path, pattern: (&str, f64)) -> RunReport {
    trio_run_with(recordings, tmp, pattern, None)
}

/// [`trio_run`] with the broken-fusion check joined to `matches`.
fn trio_run_with(
    recordings: &Path,
    tmp: &Path,
    pattern: (&str, f64),
    matches: Option<&MatchesFile>,
) -> RunReport {
    let mut run = RunReport::new(
        "resnet18 (TREx A100 recordings)",
        BATCH,
        Variant::PatternInt8,
    );
    run.tensorrt = Some("TensorRT 8.4 (inferred), A100 80GB PCIe — recorded by TREx".into());
    run.variants = vec![
        VariantReport::built(
            Variant::Fp16,
            BuiltEngine::new(LatencySummary::from_samples(&[FP16_MS]), BATCH, None),
        ),
        VariantReport::built(
            Variant::UniformInt8,
            recorded_engine(recordings, tmp, QAT, matches),
        ),
        VariantReport::built(
            Variant::PatternInt8,
            recorded_engine(recordings, tmp, pattern, matches),
        ),
    ];
    run
}

fn table_row<'a>(md: &'a str, section: &str, label: &str) -> Vec<&'a str> {
    let start = md
        .find(&format!("## {section}"))
        .unwrap_or_else(|| panic!("no section {section} in\n{md}"));
    let line = md[start..]
        .lines()
        .find(|l| l.starts_with(&format!("| {label} |")))
        .unwrap_or_else(|| panic!("no row {label} in section {section}:\n{md}"));
    line.trim_matches('|').split(" | ").map(str::trim).collect()
}

fn junit_counts(xml: &str) -> (usize, usize, usize) {
    let attr = |name: &str| -> usize {
        let key = format!("{name}=\"");
        let head = xml.find("<testsuites").unwrap();
        let start = xml[head..].find(&key).unwrap() + head + key.len();
        let end = xml[start..].find('"').unwrap() + start;
        xml[start..end].parse().unwrap()
    };
    let cases = xml.matches("<testcase ").count();
    assert_eq!(
        attr("tests"),
        cases,
        "the tests attribute counts the test cases"
    );
    assert_eq!(
        attr("failures"),
        xml.matches("<failure ").count(),
        "failures attribute"
    );
    assert_eq!(
        attr("skipped"),
        xml.matches("<skipped ").count(),
        "skipped attribute"
    );
    (cases, attr("failures"), attr("skipped"))
}

#[test]
fn trex_trio_report_in_four_formats_as_a_run_writes_it() {
    let Some(recordings) = support::recordings_dir() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let run = trio_run(&recordings, tmp.path(), QGAP);
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let written = write_reports(&run, &ALL_FORMATS, &out).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["report.md", "report.json", "report.svg", "junit.xml"]
    );
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();

    // Markdown: the latency table from the recorded trtexec means, throughput = 32 / median.
    let md = read("report.md");
    if let Ok(dir) = std::env::var("TRTQ_REPORT_SAMPLES") {
        std::fs::write(Path::new(&dir).join("trio.svg"), read("report.svg")).unwrap();
        std::fs::write(Path::new(&dir).join("trio.md"), &md).unwrap();
        std::fs::write(
            Path::new(&dir).join("trio.report.json"),
            read("report.json"),
        )
        .unwrap();
        std::fs::write(Path::new(&dir).join("trio.junit.xml"), read("junit.xml")).unwrap();
    }
    assert!(md.contains("**Result: passed**"), "{md}");
    assert_eq!(
        table_row(&md, "Latency", "FP16"),
        [
            "FP16", "built", "0.863", "0.863", "0.863", "0.863", "37080", "—"
        ]
    );
    assert_eq!(
        table_row(&md, "Latency", "uniform INT8")[..3],
        ["uniform INT8", "built", "0.882"]
    );
    assert_eq!(
        table_row(&md, "Latency", "pattern INT8")[..7],
        [
            "pattern INT8",
            "built",
            "0.500",
            "0.500",
            "0.500",
            "0.500",
            "64000"
        ]
    );
    // Structure, with PROVENANCE.md's counts: qat 37 layers / 12 Reformat (0.232 + 0.046 ms) / 10
    // unfused Q; qgap 24 layers / 1 Reformat (the network-input Q, 0.095 ms).
    let uniform = table_row(&md, "Structure", "uniform INT8");
    assert_eq!(uniform[2], "37", "{uniform:?}");
    assert!(uniform[4].starts_with("12 (0.2"), "{uniform:?}");
    assert_eq!(uniform[5], "10", "{uniform:?}");
    assert_eq!(uniform[7], "fails 4 gates (not gated)", "{uniform:?}");
    let pattern = table_row(&md, "Structure", "pattern INT8");
    assert_eq!(pattern[2], "24", "{pattern:?}");
    assert_eq!(pattern[4], "1 (0.095 ms)", "{pattern:?}");
    assert_eq!(pattern[5], "1", "{pattern:?}");
    assert_eq!(pattern[7], "passed", "{pattern:?}");
    let fp16 = table_row(&md, "Structure", "FP16");
    assert_eq!(fp16[2], "—", "FP16 has no layer report: {fp16:?}");
    // Findings grouped by severity: the product's only finding is the network-input Q (info); the
    // uniform engine's unfused Q are errors, folded away as a comparison variant's.
    let product = md.find(
        "## Findings: pattern INT8\n\n### Info (1)\n\n- **pattern INT8** `unfused_qdq`: \
         QuantizeLinear on network input",
    );
    let folded = md.find("<details><summary>Findings of the comparison variants (24; not gated)");
    assert!(
        product.is_some() && folded.is_some() && product < folded,
        "{md}"
    );
    let folded = &md[folded.unwrap()..];
    assert!(folded.contains("### Errors (23)"), "{folded}");
    assert!(folded.contains(
        "- **uniform INT8** `unfused_qdq`: QuantizeLinear 'QuantizeLinear_15' did not fuse"
    ));
    assert!(md.contains("## Not measured"));
    assert!(md.contains("FP16: engine structure: no layer report of this engine"));
    assert!(md.contains("pattern INT8: accuracy: not measured"));

    // JSON: the versioned model, the verify part as in DESIGN.md, and a lossless round trip.
    let json_text = read("report.json");
    let json: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["product"], "pattern_int8");
    let variants = json["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 3);
    let pattern = &variants[2];
    assert_eq!(pattern["variant"], "pattern_int8");
    assert_eq!(pattern["engine"]["status"], "built");
    assert_eq!(pattern["engine"]["latency"]["median_ms"], 0.5);
    assert_eq!(pattern["engine"]["throughput_per_s"], 64000.0);
    assert_eq!(pattern["engine"]["verify"]["passed"], true);
    assert_eq!(pattern["engine"]["verify"]["summary"]["layers"], 24);
    assert_eq!(pattern["engine"]["verify"]["summary"]["unfused_qdq"], 1);
    assert_eq!(
        pattern["engine"]["verify"]["findings"][0]["severity"],
        "info"
    );
    let uniform = &variants[1]["engine"]["verify"];
    assert_eq!(uniform["passed"], false);
    assert_eq!(uniform["summary"]["reformat_layers"], 12);
    assert!(variants[0]["engine"]["verify"].is_null());
    let back = RunReport::from_json(&json_text, Path::new("report.json")).unwrap();
    let again = back.to_json().unwrap();
    for (a, b) in json_text.lines().zip(again.lines()) {
        assert_eq!(a, b);
    }

    // JUnit: 3 engine_built + the product's 5 verify gates + its accuracy gate; nothing failed;
    // skipped: the broken-fusion gate (no matches file) and the accuracy gate (no min_sqnr_db).
    let xml = read("junit.xml");
    assert_eq!(junit_counts(&xml), (9, 0, 2), "{xml}");
    assert!(xml.contains("name=\"verify.fail_on_unfused_qdq\"/>"));

    // SVG: one bar per variant with its latency; the Q/DQ panel says why it is empty.
    let svg = read("report.svg");
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    for label in ["0.863", "0.882", "0.500", "0.095"] {
        assert!(svg.contains(label), "no {label} in the SVG");
    }
    assert!(svg.contains("Q/DQ nodes: model not available"));
    assert!(svg.contains("font-family=\"sans-serif\""));
}

#[test]
fn trex_trio_comparison_gate_passes_forward_and_fails_backward() {
    let Some(recordings) = support::recordings_dir() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let qat = trio_run(&recordings, tmp.path(), QAT);
    let residual = trio_run(&recordings, tmp.path(), QAT_RESIDUAL);
    let qgap = trio_run(&recordings, tmp.path(), QGAP);

    let forward = compare(&qat, &qgap, 5.0);
    assert!(forward.passed(), "{}", forward.to_text());
    assert!(compare(&residual, &qgap, 5.0).passed());
    assert!(compare(&qat, &residual, 5.0).passed());

    let backward = compare(&qgap, &qat, 5.0);
    assert!(!backward.passed());
    let failed: Vec<(Variant, CompareCheckKind)> =
        backward.failures().map(|c| (c.variant, c.check)).collect();
    assert_eq!(
        failed,
        [
            (Variant::PatternInt8, CompareCheckKind::Latency),
            (Variant::PatternInt8, CompareCheckKind::ReformatLayers),
            (Variant::PatternInt8, CompareCheckKind::UnfusedQdq),
        ],
        "{}",
        backward.to_text()
    );
    let latency = backward.failures().next().unwrap();
    assert!(
        latency.message.contains("0.500 → 0.882 ms (+76.4%"),
        "{}",
        latency.message
    );
    // Figures missing on either side are skipped, not passed: FP16 has no layer report (3 checks),
    // no run measured accuracy (3), no matches file was given for the INT8 engines (2).
    let skipped = backward
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Skipped)
        .count();
    assert_eq!(skipped, 3 + 3 + 2, "{}", backward.to_text());

    // The same regression as a run's report: junit lists each comparison check, failed ones as
    // failures, next to the product's failed verify gates.
    let mut regressed = qat.clone();
    regressed.comparison = Some(backward);
    let xml = to_junit(&regressed);
    if let Ok(dir) = std::env::var("TRTQ_REPORT_SAMPLES") {
        std::fs::write(Path::new(&dir).join("regressed.junit.xml"), &xml).unwrap();
        std::fs::write(
            Path::new(&dir).join("regressed.md"),
            to_markdown(&regressed),
        )
        .unwrap();
    }
    // 9 as above + 15 comparison checks; failures: 4 verify gates of qat + 3 regressions;
    // skipped: 2 as above + 8 comparison checks.
    assert_eq!(junit_counts(&xml), (24, 7, 10), "{xml}");
    let md = to_markdown(&regressed);
    assert!(md.contains("## Baseline comparison: FAILED"), "{md}");
    assert!(md.contains("| pattern INT8 | unfused_qdq | **FAILED** | unfused Q/DQ 1 → 10, 9 new"));

    // The CLI gate on the written files: exit 0 forward, 1 backward, 2 for a non-report.
    let write = |run: &RunReport, name: &str| {
        let path = tmp.path().join(name);
        std::fs::write(&path, run.to_json().unwrap()).unwrap();
        path
    };
    let (old, new) = (write(&qat, "qat.json"), write(&qgap, "qgap.json"));
    let trtq = |args: &[&Path], pct: &str| {
        Command::new(env!("CARGO_BIN_EXE_trtq"))
            .arg("compare")
            .args(args)
            .args(["--max-latency-regression", pct])
            .output()
            .unwrap()
    };
    let pass = trtq(&[&old, &new], "5%");
    assert_eq!(pass.status.code(), Some(0), "{pass:?}");
    assert!(String::from_utf8_lossy(&pass.stdout).contains("compare: PASSED"));
    let fail = trtq(&[&new, &old], "5%");
    assert_eq!(fail.status.code(), Some(1), "{fail:?}");
    let stdout = String::from_utf8_lossy(&fail.stdout);
    let latency_line = stdout
        .lines()
        .find(|l| l.contains("pattern_int8  latency"))
        .unwrap();
    assert!(latency_line.starts_with("FAILED"), "{stdout}");
    let not_a_report = recordings.join("trex_resnet18_a100_qat.profile.json");
    let bad = trtq(&[&not_a_report, &new], "5");
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a trtq report.json"));
}

#[test]
fn a_new_broken_fusion_fails_the_comparison() {
    let Some(recordings) = support::recordings_dir() else {
        return;
    };
    // Node names of the TREx ResNet-18 QAT exports, as a pattern engine would list them: the
    // -residual engine runs the stem as one ConvActPool layer, the qat engine splits it.
    let matches = r#"{"matches": [
        {"pattern": "StemConvBNReLUMaxPool", "nodes": ["Conv_9", "Relu_11", "MaxPool_12"], "qdq_points": {"Input": "input.1"}},
        {"pattern": "ConvBNAddReLU", "nodes": ["Conv_34", "Add_36", "Relu_37"], "qdq_points": {"Input": "a", "ResidualInput": "b"}}
    ]}"#;
    let matches = MatchesFile::parse(matches, Path::new("matches.json")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let fused = trio_run_with(&recordings, tmp.path(), QAT_RESIDUAL, Some(&matches));
    let split = trio_run_with(&recordings, tmp.path(), QAT, Some(&matches));
    let broken_check = |outcome: &trtq::report::CompareOutcome| {
        outcome
            .checks
            .iter()
            .find(|c| {
                c.variant == Variant::PatternInt8 && c.check == CompareCheckKind::BrokenFusions
            })
            .cloned()
            .unwrap()
    };
    let regressed = broken_check(&compare(&fused, &split, 1000.0));
    assert_eq!(regressed.status, CheckStatus::Failed, "{regressed:?}");
    assert!(
        regressed
            .message
            .contains("new: StemConvBNReLUMaxPool[Conv_9, MaxPool_12, Relu_11]"),
        "{regressed:?}"
    );
    assert_eq!(
        broken_check(&compare(&split, &fused, 1000.0)).status,
        CheckStatus::Passed
    );
    // Without matches on one side the check cannot run: skipped, not passed.
    let unchecked = trio_run(&recordings, tmp.path(), QAT);
    assert_eq!(
        broken_check(&compare(&fused, &unchecked, 1000.0)).status,
        CheckStatus::Skipped
    );
}

/// bench-results/baselines/trex-resnet18-a100.report.json is the trio report above (pattern =
/// qat-residual-qgap), committed as the example CI baseline. Regenerate it with
/// `TRTQ_REPORT_SAMPLES=DIR cargo test --test report` and copy DIR/trio.report.json over it.
#[test]
fn committed_trex_baseline_is_the_recordings_report_and_passes_the_gate() {
    let Some(recordings) = support::recordings_dir() else {
        return;
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("bench-results/baselines/trex-resnet18-a100.report.json");
    let baseline = RunReport::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let tmp = tempfile::tempdir().unwrap();
    let current = trio_run(&recordings, tmp.path(), QGAP);
    let mut expected = current.clone();
    expected.trtq_version = baseline.trtq_version.clone();
    assert_eq!(
        baseline, expected,
        "regenerate the baseline (see this test's doc)"
    );
    assert!(compare(&baseline, &current, 5.0).passed());
    let slower = trio_run(&recordings, tmp.path(), QAT_RESIDUAL);
    assert!(!compare(&baseline, &slower, 5.0).passed());
}

fn accuracy(sqnr_db: f64) -> Accuracy {
    Accuracy {
        reference: "FP32 model, CPU executor".into(),
        samples: 64,
        sqnr_db,
        cosine: 0.9991,
        max_abs_error: 0.231,
        top1_agreement: Some(0.984),
    }
}

/// A CPU-only run: no engine, Q/DQ counts and accuracy from the ONNX models.
fn cpu_only_run() -> RunReport {
    let mut run = RunReport::new("models/demo.onnx", 1, Variant::PatternInt8);
    run.warnings
        .push("calibrated on synthetic data: scales are only good for latency work".into());
    let variant = |v: Variant, qdq: usize, acc: Option<Accuracy>| VariantReport {
        qdq_nodes: Some(qdq),
        accuracy: acc,
        ..VariantReport::not_built(v, NO_TENSORRT)
    };
    run.variants = vec![
        variant(Variant::Fp16, 0, None),
        variant(Variant::UniformInt8, 96, Some(accuracy(31.5))),
        variant(Variant::PatternInt8, 42, Some(accuracy(33.25))),
    ];
    // The FP16 model's accuracy, and the pattern model's with FP16 float regions (compare.fp16).
    run.variants[0].accuracy = Some(accuracy(61.4));
    run.variants[2].accuracy_fp16 = Some(accuracy(33.1));
    run
}

#[test]
fn cpu_only_report_marks_every_engine_column_not_built_and_keeps_the_rest() {
    let run = cpu_only_run();
    let md = to_markdown(&run);
    for label in ["FP16", "uniform INT8", "pattern INT8"] {
        let latency = table_row(&md, "Latency", label);
        assert!(
            latency[1..].iter().all(|c| *c == "not built: no TensorRT"),
            "{latency:?}"
        );
        let structure = table_row(&md, "Structure", label);
        assert!(
            structure[2..]
                .iter()
                .all(|c| *c == "not built: no TensorRT"),
            "{structure:?}"
        );
    }
    assert_eq!(table_row(&md, "Structure", "uniform INT8")[1], "96");
    assert_eq!(table_row(&md, "Structure", "pattern INT8")[1], "42");
    assert_eq!(
        table_row(&md, "Accuracy vs FP32", "pattern INT8"),
        [
            "pattern INT8",
            "33.25",
            "33.10",
            "0.99910",
            "0.2310",
            "98.4%",
            "64",
            "—"
        ]
    );
    let fp16 = table_row(&md, "Accuracy vs FP32", "FP16");
    assert_eq!(
        fp16[1..3],
        ["61.40", "—"],
        "an FP16 model has no FP16 float-regions variant"
    );
    assert_eq!(table_row(&md, "Accuracy vs FP32", "uniform INT8")[2], "—");
    assert!(md.contains("**Result: passed**"));
    assert!(md.contains("- calibrated on synthetic data"));
    assert!(md.contains("- pattern INT8: engine not built: no TensorRT"));

    let svg = to_svg(&run).unwrap();
    if let Ok(dir) = std::env::var("TRTQ_REPORT_SAMPLES") {
        std::fs::write(Path::new(&dir).join("cpu-only.svg"), &svg).unwrap();
        std::fs::write(Path::new(&dir).join("cpu-only.md"), &md).unwrap();
    }
    assert!(svg.contains("latency: not built: no TensorRT"), "{svg}");
    assert!(svg.contains("reformat time: not built: no TensorRT"));
    for bar_label in ["\n0\n", "\n96\n", "\n42\n"] {
        assert!(svg.contains(bar_label), "no bar label {bar_label:?}");
    }

    // JUnit: engine builds and verify gates skipped with the reason, accuracy gate skipped (unset).
    let xml = to_junit(&run);
    assert_eq!(junit_counts(&xml), (9, 0, 9), "{xml}");
    assert!(xml.contains("<skipped message=\"not built: no TensorRT\"/>"));

    // The accuracy gate judges the product only.
    let mut gated = run.clone();
    gated.min_sqnr_db = Some(32.0);
    assert!(gated.passed(), "{:?}", gated.gate_failures());
    gated.min_sqnr_db = Some(34.0);
    assert_eq!(
        gated.gate_failures(),
        ["pattern INT8: min_sqnr_db: SQNR 33.25 dB is below 34 dB"]
    );
    assert_eq!(junit_counts(&to_junit(&gated)), (9, 1, 8));
}

#[test]
fn comparison_fails_on_an_sqnr_drop_beyond_the_tolerance_and_skips_unbuilt_engines() {
    let baseline = cpu_only_run();
    let mut current = cpu_only_run();
    let outcome = compare(&baseline, &current, 5.0);
    assert!(outcome.passed());
    assert!(
        outcome
            .checks
            .iter()
            .filter(|c| c.check == CompareCheckKind::Latency)
            .all(|c| c.status == CheckStatus::Skipped)
    );
    current.variants[2].accuracy = Some(accuracy(33.25 - 0.4));
    assert!(
        compare(&baseline, &current, 5.0).passed(),
        "0.4 dB is within tolerance"
    );
    current.variants[2].accuracy = Some(accuracy(33.25 - 0.6));
    let failed: Vec<_> = compare(&baseline, &current, 5.0)
        .failures()
        .map(|c| (c.variant, c.check))
        .collect();
    assert_eq!(failed, [(Variant::PatternInt8, CompareCheckKind::Accuracy)]);
}

#[test]
fn report_json_of_another_schema_version_is_refused_with_what_to_do() {
    let mut value: Value = serde_json::from_str(&cpu_only_run().to_json().unwrap()).unwrap();
    value["schema_version"] = 2.into();
    let err = RunReport::from_json(&value.to_string(), Path::new("old/report.json")).unwrap_err();
    assert!(matches!(err, ReportError::SchemaVersion { .. }));
    let text = err.to_string();
    assert!(
        text.contains("old/report.json") && text.contains("schema_version 2"),
        "{text}"
    );
    assert!(text.contains("regenerate the baseline"), "{text}");
    let err = RunReport::from_json("[{\"count\": 1}]", Path::new("p.json")).unwrap_err();
    assert!(matches!(err, ReportError::NotAReport { .. }), "{err}");
    assert!(
        err.to_string().contains("p.json: not a trtq report.json"),
        "{err}"
    );
}

#[test]
fn exact_outputs_round_trip_as_null_sqnr_and_compare_equal() {
    let mut run = cpu_only_run();
    run.variants[0].accuracy = Some(accuracy(f64::INFINITY));
    let text = run.to_json().unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    assert!(json["variants"][0]["accuracy"]["sqnr_db"].is_null());
    let back = RunReport::from_json(&text, Path::new("report.json")).unwrap();
    assert_eq!(back, run);
    assert!(compare(&run, &back, 5.0).passed());
    let mut worse = run.clone();
    worse.variants[0].accuracy = Some(accuracy(80.0));
    let failed: Vec<_> = compare(&run, &worse, 5.0)
        .failures()
        .map(|c| (c.variant, c.check))
        .collect();
    assert_eq!(failed, [(Variant::Fp16, CompareCheckKind::Accuracy)]);
}
