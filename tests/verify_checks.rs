//! The verify checks on real TensorRT recordings (../shared/trt-reports): the TREx ResNet-18 trio as
//! a regression story, the TF32 gemm of a Myelin engine, broken fusions joined from a matches file,
//! the gates, and the JSON contract of DESIGN.md.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use trtq::trt::report::EngineReport;
use trtq::verify::{
    Finding, FindingKind, MatchesFile, Severity, VerifyGates, VerifyOutcome, verify,
};

fn load(dir: &Path, stem: &str, profiled: bool) -> EngineReport {
    let layers = dir.join(format!("{stem}.graph.json"));
    let profile: Option<PathBuf> = profiled.then(|| dir.join(format!("{stem}.profile.json")));
    EngineReport::load(&layers, profile.as_deref(), None)
        .unwrap_or_else(|err| panic!("{stem}: {err}"))
}

fn of_kind(outcome: &VerifyOutcome, kind: FindingKind) -> Vec<&Finding> {
    outcome.findings_of(kind).collect()
}

fn layer_names(findings: &[&Finding]) -> BTreeSet<String> {
    findings.iter().map(|f| f.layers[0].clone()).collect()
}

fn dump(outcome: &VerifyOutcome) -> String {
    serde_json::to_string_pretty(&outcome.to_json()).unwrap()
        + &format!("\ngates: {:?}", outcome.gate_failures)
}

#[test]
fn resnet18_qat_reports_unfused_q_copy_reformats_and_float_outputs_and_fails() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    let report = load(&dir, "trex_resnet18_a100_qat", true);
    let outcome = verify(&report, None, &VerifyGates::default());
    let why = dump(&outcome);

    let unfused = of_kind(&outcome, FindingKind::UnfusedQdq);
    assert_eq!(unfused.len(), 10, "{why}");
    let expected_q: BTreeSet<String> = [2, 15, 40, 65, 101, 126, 162, 187, 223, 250]
        .iter()
        .map(|n| format!("QuantizeLinear_{n}"))
        .collect();
    assert_eq!(layer_names(&unfused), expected_q);
    let info: Vec<_> = unfused
        .iter()
        .filter(|f| f.severity == Severity::Info)
        .collect();
    assert_eq!(info.len(), 1, "only the network-input Q is info: {why}");
    assert_eq!(info[0].layers, ["QuantizeLinear_2"]);
    assert!(
        info[0].message.contains("network input 'input.1'"),
        "{}",
        info[0].message
    );
    assert!(
        unfused
            .iter()
            .filter(|f| f.severity != Severity::Info)
            .all(|f| f.severity == Severity::Error)
    );
    // Unfused Q time, from the profile (PROVENANCE: 0.232 ms).
    let q_ms: f64 = unfused.iter().filter_map(|f| f.time_ms).sum();
    assert!((q_ms - 0.232).abs() < 0.0005, "{q_ms}");

    let reformats = of_kind(&outcome, FindingKind::Reformat);
    assert_eq!(
        layer_names(&reformats),
        BTreeSet::from([
            "Reformatting CopyNode for Output Tensor 0 to MaxPool_12".to_string(),
            "Reformatting CopyNode for Input Tensor 0 to GlobalAveragePool_246".to_string(),
        ])
    );
    assert!(reformats.iter().all(|f| f.severity == Severity::Error));
    let copy_ms: f64 = reformats.iter().filter_map(|f| f.time_ms).sum();
    assert!(
        (copy_ms - 0.046).abs() < 0.0005,
        "PROVENANCE: copy-node reformats 0.046 ms, got {copy_ms}"
    );
    let gap_copy = reformats
        .iter()
        .find(|f| f.layers[0].ends_with("GlobalAveragePool_246"))
        .unwrap();
    assert_eq!(
        gap_copy.layers[1], "GlobalAveragePool_246",
        "attributed to the layer it feeds"
    );
    assert_eq!(gap_copy.nodes, ["GlobalAveragePool_246"]);

    // The 13 convolutions with float outputs (PROVENANCE: "13 conv INT8→float"), read off the
    // recording: every CaskConvolution whose first input is Int8 and whose output is FP16/FP32.
    // The issue's rule: Int8 in and float out is an error when the consumer is quantized (TREx's
    // "Quantized Convolution has float outputs"); a network output is not a quantized consumer.
    // Walking each one's consumers in the recording:
    // - the stem conv (Conv_9) writes FP32 into MaxPool_12, whose output is copied and then
    //   quantized again by the unfused QuantizeLinear_15;
    // - the 7 convs fused with a residual Add (Add_36, 61, 97, 122, 158, 183, 219) write FP16
    //   that the unfused Q of the next block re-quantizes, and that the next block's INT8 conv
    //   reads as its float residual input;
    // - the 3 second convs of a downsampling block (Conv_84, 145, 206) write FP16 that the INT8
    //   downsample conv + Add layer reads as its float residual input;
    // - the last residual conv (Conv_242) writes FP16 that is copied into GlobalAveragePool_246,
    //   whose output the unfused QuantizeLinear_250 re-quantizes for the FC.
    // Those 12 are precision errors. The 13th is the FC (Gemm_257), whose FP32 output goes
    // through a NoOp squeeze to binding '422', the network output: what the model asks for, so
    // it is counted but not an error. (Its Int8 input comes from the unfused QuantizeLinear_250,
    // which is reported as unfused Q/DQ above.)
    let float_out: BTreeSet<String> = report
        .layers()
        .iter()
        .filter(|l| {
            l.is_conv_or_gemm()
                && l.precision().is_some_and(|t| t.is_int8())
                && l.output_precision().is_some_and(|t| t.is_float())
        })
        .map(|l| l.name.clone())
        .collect();
    assert_eq!(float_out.len(), 13);
    assert_eq!(outcome.int8_in_non_int8_out, 13);
    let precision = of_kind(&outcome, FindingKind::Precision);
    assert!(
        precision
            .iter()
            .all(|f| f.severity == Severity::Error && f.message.contains("float outputs")),
        "{why}"
    );
    let flagged = layer_names(&precision);
    assert_eq!(flagged.len(), 12, "{why}");
    assert!(flagged.is_subset(&float_out), "{why}");
    let not_flagged: Vec<&String> = float_out.difference(&flagged).collect();
    assert_eq!(not_flagged.len(), 1);
    assert!(not_flagged[0].starts_with("fc.weight + QuantizeLinear_255 + Gemm_257"));
    assert_eq!(
        report.network_outputs(),
        BTreeSet::from(["422"]),
        "the FC's output reaches the network output"
    );
    for conv in [9, 34, 59, 84, 95, 120, 145, 156, 181, 206, 217, 242] {
        assert!(
            flagged.iter().any(|l| l.contains(&format!("Conv_{conv}"))),
            "Conv_{conv} should be flagged: {why}"
        );
    }

    assert!(!outcome.passed());
    let gates = outcome.gate_failures.join("\n");
    for gate in [
        "fail_on_unfused_qdq",
        "max_reformat_layers",
        "max_reformat_time_pct",
        "fail_on_precision",
    ] {
        assert!(gates.contains(gate), "{gate} should fail: {gates}");
    }
    assert_eq!(outcome.summary.reformat_layers, 12);
    assert_eq!(outcome.summary.unfused_qdq, 10);
    // Reformat share of summed layer time: (0.232 + 0.046) / 1.096.
    let pct = outcome.summary.reformat_time_pct.unwrap();
    assert!((pct - 100.0 * 0.278 / 1.0957).abs() < 0.1, "{pct}");
}

#[test]
fn resnet18_qat_residual_reports_three_unfused_qdq_and_fails() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    let outcome = verify(
        &load(&dir, "trex_resnet18_a100_qat-residual", true),
        None,
        &VerifyGates::default(),
    );
    let why = dump(&outcome);
    let unfused = of_kind(&outcome, FindingKind::UnfusedQdq);
    assert_eq!(
        layer_names(&unfused),
        BTreeSet::from(
            [
                "QuantizeLinear_2",
                "DequantizeLinear_291",
                "QuantizeLinear_298"
            ]
            .map(String::from)
        ),
        "{why}"
    );
    let severity = |name: &str| {
        unfused
            .iter()
            .find(|f| f.layers[0] == name)
            .unwrap()
            .severity
    };
    assert_eq!(severity("QuantizeLinear_2"), Severity::Info);
    assert_eq!(severity("DequantizeLinear_291"), Severity::Error);
    assert_eq!(severity("QuantizeLinear_298"), Severity::Error);
    let unfused_ms: f64 = unfused
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .filter_map(|f| f.time_ms)
        .sum();
    let all_ms: f64 = unfused.iter().filter_map(|f| f.time_ms).sum();
    assert!(unfused_ms < all_ms);
    assert!(of_kind(&outcome, FindingKind::Reformat).is_empty());
    // The last block's conv writes FP32 (its residual input was dequantized by the unfused DQ) and
    // the Q before the FC re-quantizes after the pooling.
    let precision = of_kind(&outcome, FindingKind::Precision);
    assert_eq!(precision.len(), 1, "{why}");
    assert!(precision[0].layers[0].contains("Conv_284"));
    assert!(precision[0].message.contains("QuantizeLinear_298"));
    assert!(!outcome.passed());
    assert_eq!(outcome.summary.unfused_qdq, 3);
}

#[test]
fn resnet18_qat_residual_qgap_reports_only_the_input_q_as_info_and_passes() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    let outcome = verify(
        &load(&dir, "trex_resnet18_a100_qat-residual-qgap", true),
        None,
        &VerifyGates::default(),
    );
    let why = dump(&outcome);
    assert_eq!(outcome.findings.len(), 1, "{why}");
    let only = &outcome.findings[0];
    assert_eq!(
        (only.kind, only.severity),
        (FindingKind::UnfusedQdq, Severity::Info)
    );
    assert_eq!(only.layers, ["QuantizeLinear_2"]);
    assert!(
        only.message.contains("--inputIOFormats"),
        "{}",
        only.message
    );
    assert!((only.time_ms.unwrap() - 0.095).abs() < 0.0005);
    assert!(outcome.passed(), "{why}");
    assert_eq!(outcome.summary.reformat_layers, 1);
    assert_eq!(outcome.summary.unfused_qdq, 1);
    assert_eq!(outcome.summary.int8_layers, 22);
}

#[test]
fn myelin_gemm_running_tf32_with_quantized_weights_is_a_precision_finding() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    let file = dir.join("ivit_quant-mlp-softmax-qdq_trt10_myelin.layer_info.txt");
    let outcome = verify(
        &EngineReport::load(&file, None, None).unwrap(),
        None,
        &VerifyGates::default(),
    );
    let why = dump(&outcome);
    let precision = of_kind(&outcome, FindingKind::Precision);
    assert_eq!(precision.len(), 1, "{why}");
    assert_eq!(precision[0].layers, ["/fc2/Gemm_myl0_4"]);
    assert_eq!(precision[0].severity, Severity::Error);
    assert!(
        precision[0].message.contains("TF32"),
        "{}",
        precision[0].message
    );
    assert!(precision[0].nodes.contains(&"/fc2/Gemm".to_string()));
    assert!(!outcome.passed());
    // The kgen Q on the input and the Q/DQ pair on the logits output are I/O conversions.
    let unfused = of_kind(&outcome, FindingKind::UnfusedQdq);
    assert_eq!(unfused.len(), 2, "{why}");
    assert!(unfused.iter().all(|f| f.severity == Severity::Info));
}

#[test]
fn mobilenet_flags_what_trex_lint_flags() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    let outcome = verify(
        &load(&dir, "trex_mobilenetv2_titanrtx_qat", true),
        None,
        &VerifyGates::default(),
    );
    let why = dump(&outcome);
    let q2 = outcome
        .findings
        .iter()
        .find(|f| f.layers[0] == "QuantizeLinear_2")
        .expect(&why);
    assert_eq!(
        (q2.kind, q2.severity),
        (FindingKind::UnfusedQdq, Severity::Info)
    );
    let precision = layer_names(&of_kind(&outcome, FindingKind::Precision));
    assert!(
        precision.contains("features.4.conv.2.weight + QuantizeLinear_187 + Conv_191"),
        "{why}"
    );
    assert_eq!(of_kind(&outcome, FindingKind::UnfusedQdq).len(), 17);
    assert!(!outcome.passed());
}

#[test]
fn implicit_int8_and_fp16_engines_have_no_qdq_findings() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    for file in [
        "kalfazed_resnet50_rtx3080_trt861_ptq-int8.graph.json",
        "yuanjiechen-trt2023-controlnet-fp16-trt86.layers.json",
    ] {
        let report = EngineReport::load(&dir.join(file), None, None).unwrap();
        let outcome = verify(&report, None, &VerifyGates::default());
        assert!(
            of_kind(&outcome, FindingKind::UnfusedQdq).is_empty(),
            "{file}"
        );
        assert!(
            of_kind(&outcome, FindingKind::Precision).is_empty(),
            "{file}: {}",
            dump(&outcome)
        );
    }
    // kalfazed's only Reformat converts the FP32 network input to Int8: info, and the engine passes.
    let report = EngineReport::load(
        &dir.join("kalfazed_resnet50_rtx3080_trt861_ptq-int8.graph.json"),
        None,
        None,
    )
    .unwrap();
    let outcome = verify(&report, None, &VerifyGates::default());
    let reformats = of_kind(&outcome, FindingKind::Reformat);
    assert_eq!(reformats.len(), 1);
    assert_eq!(reformats[0].severity, Severity::Info);
    assert!(outcome.passed(), "{}", dump(&outcome));
}

#[test]
fn broken_fusions_are_found_by_joining_matches_with_layers() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    // Node names of the TREx ResNet-18 QAT export, as a pattern engine would list them. In this
    // engine TensorRT fused layer2.0's Add into the downsample conv, not into conv2, and did not
    // fuse the stem's MaxPool (it does in the -residual engine, as one ConvActPool layer).
    let matches = r#"{"matches": [
        {"pattern": "StemConvBNReLUMaxPool", "nodes": ["Conv_9", "Relu_11", "MaxPool_12"], "qdq_points": {"Input": "input.1"}},
        {"pattern": "ConvBNAddReLU", "nodes": ["Conv_34", "Add_36", "Relu_37"], "qdq_points": {"Input": "a", "ResidualInput": "b"}, "extra": 1},
        {"pattern": "ConvBNAddReLU", "nodes": ["Conv_84", "Add_97", "Relu_98"], "qdq_points": {"Input": "c", "ResidualInput": "d"}}
    ], "unmatched": [], "tie_groups": []}"#;
    let matches = MatchesFile::parse(matches, Path::new("matches.json")).unwrap();
    let outcome = verify(
        &load(&dir, "trex_resnet18_a100_qat", true),
        Some(&matches),
        &VerifyGates::default(),
    );
    let broken = of_kind(&outcome, FindingKind::BrokenFusion);
    assert_eq!(broken.len(), 2, "{}", dump(&outcome));
    assert_eq!(outcome.summary.broken_fusions, 2);
    let stem = broken
        .iter()
        .find(|f| f.pattern.as_deref() == Some("StemConvBNReLUMaxPool"))
        .unwrap();
    assert_eq!(
        stem.layers,
        ["conv1.weight + QuantizeLinear_7 + Conv_9", "MaxPool_12"]
    );
    assert!(
        stem.message.contains("Relu_11"),
        "unnamed nodes are listed: {}",
        stem.message
    );
    let add = broken.iter().find(|f| f.nodes[0] == "Conv_84").unwrap();
    assert_eq!(
        add.layers,
        [
            "layer2.0.conv2.weight + QuantizeLinear_82 + Conv_84",
            "layer2.0.downsample.0.weight + QuantizeLinear_93 + Conv_95 + Add_97 + Relu_98"
        ]
    );
    assert_eq!(add.severity, Severity::Error);
    assert!(add.time_ms.unwrap() > 0.0);
    assert!(
        outcome
            .gate_failures
            .iter()
            .any(|g| g.starts_with("fail_on_broken_fusion"))
    );

    let residual = r#"{"matches": [{"pattern": "StemConvBNReLUMaxPool", "nodes": ["Conv_9", "Relu_11", "MaxPool_12"], "qdq_points": {"Input": "input.1"}}]}"#;
    let residual = MatchesFile::parse(residual, Path::new("m.json")).unwrap();
    let outcome = verify(
        &load(&dir, "trex_resnet18_a100_qat-residual", false),
        Some(&residual),
        &VerifyGates::default(),
    );
    assert!(
        of_kind(&outcome, FindingKind::BrokenFusion).is_empty(),
        "the ConvActPool layer holds the whole stem"
    );
}

#[test]
fn myelin_names_match_onnx_names_loosely() {
    // Myelin reports `layers.5` as `layers_5`; a layer without Metadata is matched by its name.
    let text = r#"{"Layers": [
        {"Name": "/enc/layers_5/fc/MatMul_myl3_1", "LayerType": "gemm", "Inputs": [{"Name": "x", "Format/Datatype": "Half"}], "Outputs": [{"Name": "y", "Format/Datatype": "Half"}]},
        {"Name": "/enc/layers_5/act/Relu_myl3_2", "LayerType": "kgen", "Inputs": [{"Name": "y", "Format/Datatype": "Half"}], "Outputs": [{"Name": "z", "Format/Datatype": "Half"}]}
    ], "Bindings": ["x", "z"]}"#;
    let report = EngineReport::from_layer_info(text, Path::new("t.json")).unwrap();
    let matches = r#"{"matches": [{"pattern": "LinearReLU", "nodes": ["/enc/layers.5/fc/MatMul", "/enc/layers.5/act/Relu"], "qdq_points": {}}]}"#;
    let matches = MatchesFile::parse(matches, Path::new("m.json")).unwrap();
    let outcome = verify(&report, Some(&matches), &VerifyGates::default());
    let broken = of_kind(&outcome, FindingKind::BrokenFusion);
    assert_eq!(broken.len(), 1);
    assert_eq!(
        broken[0].layers,
        [
            "/enc/layers_5/fc/MatMul_myl3_1",
            "/enc/layers_5/act/Relu_myl3_2"
        ]
    );
}

#[test]
fn gates_switched_off_turn_errors_into_warnings_and_pass() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    let lenient = VerifyGates {
        fail_on_broken_fusion: false,
        fail_on_unfused_qdq: false,
        max_reformat_layers: 100,
        max_reformat_time_pct: 100.0,
        fail_on_precision: false,
    };
    let outcome = verify(&load(&dir, "trex_resnet18_a100_qat", true), None, &lenient);
    assert!(outcome.passed(), "{:?}", outcome.gate_failures);
    assert!(
        outcome
            .findings
            .iter()
            .all(|f| f.severity != Severity::Error)
    );
    assert_eq!(
        outcome
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count(),
        9 + 2 + 12
    );

    // Only the count gate: 11 reformats outside the network I/O against a limit of 11 and 10.
    let count_only = |max| VerifyGates {
        max_reformat_layers: max,
        ..lenient.clone()
    };
    assert!(
        verify(
            &load(&dir, "trex_resnet18_a100_qat", false),
            None,
            &count_only(11)
        )
        .passed()
    );
    assert!(
        !verify(
            &load(&dir, "trex_resnet18_a100_qat", false),
            None,
            &count_only(10)
        )
        .passed()
    );
}

#[test]
fn gates_read_from_the_config_keys_with_defaults() {
    let gates: VerifyGates =
        serde_json::from_str(r#"{"max_reformat_layers": 3, "min_sqnr_db": null}"#)
            .expect("unknown keys are ignored");
    assert_eq!(gates.max_reformat_layers, 3);
    assert!(gates.fail_on_broken_fusion && gates.fail_on_unfused_qdq && gates.fail_on_precision);
    assert_eq!(gates.max_reformat_time_pct, 1.0);
}

#[test]
fn verify_json_has_exactly_the_design_shape() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    let outcome = verify(
        &load(&dir, "trex_resnet18_a100_qat-residual", true),
        None,
        &VerifyGates::default(),
    );
    let json = outcome.to_json();
    let keys = |v: &Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        keys(&json),
        BTreeSet::from(["findings".to_string(), "summary".to_string()])
    );
    assert_eq!(
        keys(&json["summary"]),
        [
            "broken_fusions",
            "int8_layers",
            "layers",
            "reformat_layers",
            "reformat_time_pct",
            "unfused_qdq"
        ]
        .map(String::from)
        .into()
    );
    assert_eq!(json["summary"]["layers"], 26);
    assert_eq!(json["summary"]["unfused_qdq"], 3);
    assert!(json["summary"]["reformat_time_pct"].as_f64().unwrap() > 0.0);
    for finding in json["findings"].as_array().unwrap() {
        assert_eq!(
            keys(finding),
            [
                "kind", "layers", "message", "nodes", "pattern", "severity", "time_ms"
            ]
            .map(String::from)
            .into()
        );
        assert!(
            ["broken_fusion", "unfused_qdq", "reformat", "precision"]
                .contains(&finding["kind"].as_str().unwrap())
        );
        assert!(["error", "warning", "info"].contains(&finding["severity"].as_str().unwrap()));
    }
    let unprofiled = verify(
        &load(&dir, "trex_resnet18_a100_qat-residual", false),
        None,
        &VerifyGates::default(),
    );
    assert!(unprofiled.to_json()["summary"]["reformat_time_pct"].is_null());
    assert!(unprofiled.notes.iter().any(|n| n.contains("no profile")));
    assert!(
        unprofiled
            .notes
            .iter()
            .any(|n| n.contains("no matches file"))
    );
}

#[test]
fn text_form_lists_findings_summary_and_verdict() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    let qgap = verify(
        &load(&dir, "trex_resnet18_a100_qat-residual-qgap", true),
        None,
        &VerifyGates::default(),
    )
    .to_text();
    assert!(
        qgap.contains("info    unfused_qdq   QuantizeLinear_2\n"),
        "{qgap}"
    );
    assert!(qgap.contains("layers 24, INT8 22, reformat 1"), "{qgap}");
    assert!(qgap.trim_end().ends_with("verify: PASSED"), "{qgap}");
    let qat = verify(
        &load(&dir, "trex_resnet18_a100_qat", true),
        None,
        &VerifyGates::default(),
    )
    .to_text();
    assert!(
        qat.contains("reformats by origin: QDQ 10, REFORMAT 2; dtype-changing 11, layout-only 1"),
        "{qat}"
    );
    assert!(
        qat.trim_end().ends_with("verify: FAILED (4 gates)"),
        "{qat}"
    );
}

#[test]
fn trtq_verify_command_exits_by_the_gates_and_prints_the_contract_json() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    let trtq = |args: &[&Path]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_trtq"));
        command
            .arg("verify")
            .arg("--json")
            .arg("--layers")
            .arg(args[0]);
        if let Some(profile) = args.get(1) {
            command.arg("--profile").arg(profile);
        }
        command.output().unwrap()
    };
    let qgap = trtq(&[
        &dir.join("trex_resnet18_a100_qat-residual-qgap.graph.json"),
        &dir.join("trex_resnet18_a100_qat-residual-qgap.profile.json"),
    ]);
    assert_eq!(
        qgap.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&qgap.stderr)
    );
    let json: Value = serde_json::from_slice(&qgap.stdout).unwrap();
    assert_eq!(json["summary"]["layers"], 24);
    assert_eq!(json["findings"][0]["severity"], "info");

    let qat = trtq(&[&dir.join("trex_resnet18_a100_qat.graph.json")]);
    assert_eq!(qat.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&qat.stdout).unwrap();
    assert_eq!(json["summary"]["unfused_qdq"], 10);
    assert!(String::from_utf8_lossy(&qat.stderr).contains("fail_on_unfused_qdq"));

    let names_only =
        trtq(&[&dir.join("trexbranch_yolo-qdq_orin_trt852_names-only.layer_info.json")]);
    assert_eq!(names_only.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&names_only.stderr).contains("rebuild with detailed verbosity")
    );
}

#[test]
fn tensorrt_8_0_scale_layers_with_int8_on_one_side_are_unfused_qdq() {
    // No TensorRT 8.0 recording is available: a minimal report in that schema (a Q and a DQ run as
    // Scale layers between two INT8 convolutions, plus an FP16 Scale that is not a Q/DQ).
    let tensor = |name: &str, dtype: &str| {
        format!(r#"{{"Name": "{name}", "Format/Datatype": "Row major linear {dtype}"}}"#)
    };
    let layer = |name: &str, kind: &str, input: String, output: String| {
        format!(
            r#"{{"Name": "{name}", "LayerType": "{kind}", "Inputs": [{input}], "Outputs": [{output}]}}"#
        )
    };
    let layers = [
        layer(
            "QuantizeLinear_1",
            "Scale",
            tensor("x", "FP32"),
            tensor("xq", "Int8"),
        ),
        layer(
            "Conv_2",
            "CaskConvolution",
            tensor("xq", "Int8"),
            tensor("y", "Int8"),
        ),
        layer(
            "DequantizeLinear_3",
            "Scale",
            tensor("y", "Int8"),
            tensor("yf", "FP16"),
        ),
        layer("Mul_4", "Scale", tensor("yf", "FP16"), tensor("ym", "FP16")),
        layer(
            "QuantizeLinear_5",
            "Scale",
            tensor("ym", "FP16"),
            tensor("yq", "Int8"),
        ),
        layer(
            "Conv_6",
            "CaskConvolution",
            tensor("yq", "Int8"),
            tensor("z", "FP32"),
        ),
    ];
    let text = format!(
        r#"{{"Layers": [{}], "Bindings": ["x", "z"]}}"#,
        layers.join(",")
    );
    let report = EngineReport::from_layer_info(&text, Path::new("trt80.json")).unwrap();
    let outcome = verify(&report, None, &VerifyGates::default());
    let unfused = of_kind(&outcome, FindingKind::UnfusedQdq);
    let severities: Vec<(&str, Severity)> = unfused
        .iter()
        .map(|f| (f.layers[0].as_str(), f.severity))
        .collect();
    assert_eq!(
        severities,
        [
            ("QuantizeLinear_1", Severity::Info),
            ("DequantizeLinear_3", Severity::Error),
            ("QuantizeLinear_5", Severity::Error)
        ]
    );
    assert_eq!(outcome.summary.unfused_qdq, 3);
    assert_eq!(
        outcome.summary.reformat_layers, 0,
        "Scale layers are not Reformat layers"
    );
}
