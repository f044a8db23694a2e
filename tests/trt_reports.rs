//! The report parser on every real TensorRT recording in ../shared/trt-reports: the counts of
//! PROVENANCE.md, each also counted here independently from the raw JSON.

mod support;

use std::path::Path;

use serde_json::Value;
use trtq::trt::report::{DataType, EngineReport, ReportError, names};
use trtq::verify::{VerifyGates, verify};

/// PROVENANCE.md's counts for one layer-information recording. Three numbers PROVENANCE does not
/// state are the raw counts below (INT8 layers of the two residual variants, kalfazed's conv count:
/// its FC reads Int8 and writes the FP32 network output).
struct Expected {
    file: &'static str,
    layers: usize,
    reformat_copy: usize,
    reformat_qdq: usize,
    reformat_other: usize,
    unfused_qdq: usize,
    int8_layers: usize,
    conv_int8_in_non_int8_out: usize,
}

const DETAILED: &[Expected] = &[
    Expected {
        file: "trex_resnet18_a100_qat.graph.json",
        layers: 37,
        reformat_copy: 2,
        reformat_qdq: 10,
        reformat_other: 0,
        unfused_qdq: 10,
        int8_layers: 21,
        conv_int8_in_non_int8_out: 13,
    },
    Expected {
        file: "trex_resnet18_a100_qat-residual.graph.json",
        layers: 26,
        reformat_copy: 0,
        reformat_qdq: 3,
        reformat_other: 0,
        unfused_qdq: 3,
        int8_layers: 22,
        conv_int8_in_non_int8_out: 2,
    },
    Expected {
        file: "trex_resnet18_a100_qat-residual-qgap.graph.json",
        layers: 24,
        reformat_copy: 0,
        reformat_qdq: 1,
        reformat_other: 0,
        unfused_qdq: 1,
        int8_layers: 22,
        conv_int8_in_non_int8_out: 1,
    },
    Expected {
        file: "trex_mobilenetv2_titanrtx_qat.graph.json",
        layers: 73,
        reformat_copy: 1,
        reformat_qdq: 17,
        reformat_other: 0,
        unfused_qdq: 17,
        int8_layers: 53,
        conv_int8_in_non_int8_out: 17,
    },
    Expected {
        file: "kalfazed_resnet50_rtx3080_trt861_ptq-int8.graph.json",
        layers: 59,
        reformat_copy: 1,
        reformat_qdq: 0,
        reformat_other: 0,
        unfused_qdq: 0,
        int8_layers: 55,
        conv_int8_in_non_int8_out: 1,
    },
    Expected {
        file: "lix19937-dmt-bev-qdq-int8-trt10-sm100.layers.json",
        layers: 1309,
        reformat_copy: 0,
        reformat_qdq: 0,
        reformat_other: 0,
        unfused_qdq: 1,
        int8_layers: 52,
        conv_int8_in_non_int8_out: 0,
    },
    Expected {
        file: "lix19937-aeb-bev-ptq-int8.layers.json",
        layers: 104,
        reformat_copy: 14,
        reformat_qdq: 0,
        reformat_other: 0,
        unfused_qdq: 0,
        int8_layers: 90,
        conv_int8_in_non_int8_out: 0,
    },
    Expected {
        file: "yuanjiechen-trt2023-controlnet-fp16-trt86.layers.json",
        layers: 389,
        reformat_copy: 48,
        reformat_qdq: 0,
        reformat_other: 10,
        unfused_qdq: 0,
        int8_layers: 0,
        conv_int8_in_non_int8_out: 0,
    },
];

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|err| panic!("{file}: {err}"))
}

/// Layer objects of a detailed JSON recording, straight from serde_json.
fn raw_layers(text: &str) -> Vec<Value> {
    let root: Value = serde_json::from_str(text).expect("recording is JSON");
    root["Layers"].as_array().cloned().expect("Layers list")
}

fn raw_dtype(tensor: &Value) -> &str {
    tensor["Format/Datatype"].as_str().unwrap_or("")
}

fn raw_is_int8(tensor: &Value) -> bool {
    raw_dtype(tensor).contains("Int8")
}

#[test]
fn every_detailed_recording_gives_the_provenance_counts() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    for expected in DETAILED {
        let text = read(&dir, expected.file);
        let report =
            EngineReport::from_layer_info(&text, Path::new(expected.file)).expect(expected.file);
        let outcome = verify(&report, None, &VerifyGates::default());
        let raw = raw_layers(&text);
        let file = expected.file;

        assert_eq!(
            raw.len(),
            expected.layers,
            "{file}: raw layer count vs PROVENANCE"
        );
        assert_eq!(outcome.summary.layers, expected.layers, "{file}: layers");

        let raw_origin = |origin: &str| {
            raw.iter()
                .filter(|l| l["LayerType"] == "Reformat" && l["Origin"].as_str() == Some(origin))
                .count()
        };
        assert_eq!(
            raw_origin("REFORMAT"),
            expected.reformat_copy,
            "{file}: raw REFORMAT"
        );
        assert_eq!(raw_origin("QDQ"), expected.reformat_qdq, "{file}: raw QDQ");
        let by_origin = &outcome.reformats.by_origin;
        assert_eq!(
            by_origin.get("REFORMAT").copied().unwrap_or(0),
            expected.reformat_copy,
            "{file}: REFORMAT"
        );
        assert_eq!(
            by_origin.get("QDQ").copied().unwrap_or(0),
            expected.reformat_qdq,
            "{file}: QDQ"
        );
        let other: usize = by_origin
            .iter()
            .filter(|(o, _)| *o != "REFORMAT" && *o != "QDQ")
            .map(|(_, n)| n)
            .sum();
        assert_eq!(other, expected.reformat_other, "{file}: other origins");
        assert_eq!(
            outcome.summary.reformat_layers,
            expected.reformat_copy + expected.reformat_qdq + expected.reformat_other,
            "{file}: reformat_layers"
        );

        assert_eq!(
            outcome.summary.unfused_qdq, expected.unfused_qdq,
            "{file}: unfused Q/DQ"
        );

        let raw_int8 = raw
            .iter()
            .filter(|l| l["LayerType"] != "NoOp" && l["Inputs"].get(0).is_some_and(raw_is_int8))
            .count();
        assert_eq!(raw_int8, expected.int8_layers, "{file}: raw INT8 layers");
        assert_eq!(
            outcome.summary.int8_layers, expected.int8_layers,
            "{file}: INT8 layers"
        );

        let raw_conv = raw
            .iter()
            .filter(|l| {
                let kind = l["LayerType"].as_str().unwrap_or("").to_lowercase();
                ["conv", "gemm", "correlation"]
                    .iter()
                    .any(|w| kind.contains(w))
                    && l["Inputs"].get(0).is_some_and(raw_is_int8)
                    && !l["Outputs"].get(0).is_some_and(raw_is_int8)
            })
            .count();
        assert_eq!(
            raw_conv, expected.conv_int8_in_non_int8_out,
            "{file}: raw conv Int8 in, non-Int8 out"
        );
        assert_eq!(
            outcome.int8_in_non_int8_out, expected.conv_int8_in_non_int8_out,
            "{file}: conv Int8 in, non-Int8 out"
        );
    }
}

#[test]
fn every_layer_of_every_detailed_recording_has_a_known_dtype_and_a_mapping() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    for expected in DETAILED {
        let text = read(&dir, expected.file);
        let report = EngineReport::from_layer_info(&text, Path::new(expected.file)).unwrap();
        for layer in report.layers() {
            for tensor in layer.inputs.iter().chain(&layer.outputs) {
                assert!(
                    !matches!(tensor.dtype, DataType::Other(_)),
                    "{}: layer '{}' tensor '{}' has unknown type '{}'",
                    expected.file,
                    layer.name,
                    tensor.name,
                    tensor.format
                );
            }
            let is_sync = matches!(layer.layer_type.as_str(), "wait" | "signal" | "shape_call");
            assert!(
                !layer.nodes.is_empty() || layer.copy_of.is_some() || is_sync,
                "{}: layer '{}' ({}) maps to no ONNX node and no layer",
                expected.file,
                layer.name,
                layer.layer_type
            );
        }
    }
}

#[test]
fn names_only_recordings_are_the_detailed_verbosity_error() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    for (file, names) in [
        (
            "trexbranch_yolo-qdq_orin_trt852_names-only.layer_info.json",
            86,
        ),
        (
            "detr-resnet50_trt10_implicit-int8-forced_names-only.layer_info.json",
            840,
        ),
    ] {
        let err = EngineReport::load(&dir.join(file), None, None).expect_err(file);
        assert!(
            matches!(err, ReportError::NamesOnly { layers, .. } if layers == names),
            "{file}: {err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("--profilingVerbosity=detailed"),
            "{message}"
        );
        assert!(
            message.contains("rebuild with detailed verbosity"),
            "{message}"
        );
        assert!(
            message.contains(file),
            "the error names the file: {message}"
        );
    }
}

#[test]
fn layer_names_of_real_engines_split_into_clean_onnx_names() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    for file in [
        "trexbranch_yolo-qdq_orin_trt852_names-only.layer_info.json",
        "detr-resnet50_trt10_implicit-int8-forced_names-only.layer_info.json",
    ] {
        let root: Value = serde_json::from_str(&read(&dir, file)).unwrap();
        let layer_names: Vec<&str> = root["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut copies = 0;
        for name in &layer_names {
            if let Some(copy) = names::copy_node_of(name) {
                copies += 1;
                if let Some(target) = copy.layer() {
                    assert!(
                        !names::nodes_from_layer_name(target).is_empty(),
                        "{file}: copy target '{target}'"
                    );
                }
                continue;
            }
            for node in names::nodes_from_layer_name(name) {
                for residue in [
                    " + ",
                    " || ",
                    "PWN(",
                    "{ForeignNode[",
                    "_clone_",
                    "(Unnamed Layer",
                ] {
                    assert!(!node.contains(residue), "{file}: '{name}' left '{node}'");
                }
                let myelin_suffix = node.rsplit_once("_myl").is_some_and(|(_, tail)| {
                    tail.split('_')
                        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                });
                assert!(
                    !myelin_suffix,
                    "{file}: '{name}' kept a Myelin suffix in '{node}'"
                );
            }
        }
        let raw_copies = layer_names
            .iter()
            .filter(|n| n.starts_with("Reformatting CopyNode"))
            .count();
        assert_eq!(copies, raw_copies, "{file}");
    }
    // PROVENANCE: detr lists 247 copy nodes; yolo 4.
    let detr: Value = serde_json::from_str(&read(
        &dir,
        "detr-resnet50_trt10_implicit-int8-forced_names-only.layer_info.json",
    ))
    .unwrap();
    let detr_copies = detr["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter_map(names::copy_node_of)
        .count();
    assert_eq!(detr_copies, 247);
    assert_eq!(
        names::nodes_from_layer_name(
            "/model/model/encoder/layers.0/self_attn/k_proj/MatMul + /model/model/encoder/layers.0/self_attn/k_proj/Add || /model/model/encoder/layers.0/self_attn/q_proj/MatMul"
        ),
        [
            "/model/model/encoder/layers.0/self_attn/k_proj/MatMul",
            "/model/model/encoder/layers.0/self_attn/k_proj/Add",
            "/model/model/encoder/layers.0/self_attn/q_proj/MatMul"
        ]
    );
}

#[test]
fn myelin_text_recordings_parse_block_by_block() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    let file = "ivit_simple-mlp-qdq_trt10_myelin.layer_info.txt";
    let text = read(&dir, file);
    let blocks = text.lines().filter(|l| l.starts_with("--- Layer ")).count();
    let report = EngineReport::from_layer_info(&text, Path::new(file)).unwrap();
    assert_eq!(blocks, 6);
    assert_eq!(report.layers().len(), blocks);
    let types: Vec<&str> = report
        .layers()
        .iter()
        .map(|l| l.layer_type.as_str())
        .collect();
    assert_eq!(
        types,
        ["shape_call", "kgen", "gemm", "gemm", "gemm", "kgen"]
    );
    for gemm in report.layers().iter().filter(|l| l.layer_type == "gemm") {
        assert_eq!(gemm.precision(), Some(&DataType::Int8), "{}", gemm.name);
        assert_eq!(
            gemm.output_precision(),
            Some(&DataType::Int8),
            "{}",
            gemm.name
        );
        assert!(
            gemm.nodes.iter().any(|n| n.ends_with("/MatMul")),
            "{:?}",
            gemm.nodes
        );
    }
    let fc1 = &report.layers()[2];
    assert_eq!(
        fc1.nodes,
        [
            "/fc1/MatMul",
            "/input_q/DequantizeLinear",
            "/fc1/DequantizeLinear",
            "/act_q/QuantizeLinear",
            "/fc1/Transpose",
            "/fc1/QuantizeLinear"
        ],
        "the literal \\u001f escapes separate the Metadata items"
    );
    assert_eq!(
        report.network_inputs().into_iter().collect::<Vec<_>>(),
        ["input"]
    );
    let outcome = verify(&report, None, &VerifyGates::default());
    assert_eq!(
        outcome.summary.unfused_qdq, 2,
        "the kgen Q on the input and the kgen DQ on the output"
    );
    assert!(outcome.passed(), "{:?}", outcome.gate_failures);

    let file = "ivit_quant-mlp-softmax-qdq_trt10_myelin.layer_info.txt";
    let report = EngineReport::from_layer_info(&read(&dir, file), Path::new(file)).unwrap();
    assert_eq!(report.layers().len(), 6);
    let fc2 = report
        .layers()
        .iter()
        .find(|l| l.name == "/fc2/Gemm_myl0_4")
        .unwrap();
    assert_eq!(fc2.precision(), Some(&DataType::Float));
    assert!(fc2.tactic.as_deref().unwrap().contains("tf32"));
    assert_eq!(
        fc2.nodes,
        [
            "/fc2/Gemm",
            "/softmax/Mul_6",
            "/fc2/DequantizeLinear",
            "/fc2/QuantizeLinear"
        ]
    );
}

#[test]
fn a_truncated_text_block_names_the_block() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    let text = read(&dir, "ivit_simple-mlp-qdq_trt10_myelin.layer_info.txt");
    let cut = text.find("--- Layer 3 ---").unwrap() - 20;
    let err = EngineReport::from_layer_info(&text[..cut], Path::new("cut.txt")).unwrap_err();
    assert!(err.to_string().contains("--- Layer 2 ---"), "{err}");
}

#[test]
fn a_tensorrt_11_shaped_copy_of_a_recording_reads_the_same() {
    // TensorRT 11 may write a bare list root and split "Format/Datatype" into "Datatype" and
    // "Format" (+ "Strides"): rewrite a real recording that way and expect the same summary.
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    let file = "trex_resnet18_a100_qat.graph.json";
    let text = read(&dir, file);
    let mut layers = raw_layers(&text);
    for layer in &mut layers {
        for side in ["Inputs", "Outputs"] {
            for tensor in layer[side].as_array_mut().unwrap() {
                let long = tensor
                    .as_object_mut()
                    .unwrap()
                    .remove("Format/Datatype")
                    .unwrap();
                let long = long.as_str().unwrap();
                let word = ["Int8", "FP16", "FP32"]
                    .into_iter()
                    .find(|w| long.contains(w))
                    .unwrap();
                tensor["Datatype"] = Value::from(match word {
                    "FP16" => "Half",
                    "FP32" => "Float",
                    other => other,
                });
                tensor["Format"] = Value::from(long.replace(word, "").trim());
                tensor["Strides"] = Value::from(vec![1, 1, 1, 1]);
            }
        }
    }
    let rewritten = serde_json::to_string(&Value::Array(layers)).unwrap();
    let original = verify(
        &EngineReport::from_layer_info(&text, Path::new(file)).unwrap(),
        None,
        &VerifyGates::default(),
    );
    let report = EngineReport::from_layer_info(&rewritten, Path::new("trt11.json")).unwrap();
    let trt11 = verify(&report, None, &VerifyGates::default());
    assert!(report.bindings().is_empty());
    assert_eq!(trt11.summary, original.summary);
    assert_eq!(trt11.findings.len(), original.findings.len());
}

#[test]
fn profiles_give_the_provenance_sums_and_join_every_layer() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    // (layers file, profile file, count, records, sum of averageMs, layers joined)
    let cases = [
        (
            "trex_resnet18_a100_qat.graph.json",
            "trex_resnet18_a100_qat.profile.json",
            1,
            37,
            1.096,
        ),
        (
            "trex_resnet18_a100_qat-residual.graph.json",
            "trex_resnet18_a100_qat-residual.profile.json",
            1,
            26,
            0.731,
        ),
        (
            "trex_resnet18_a100_qat-residual-qgap.graph.json",
            "trex_resnet18_a100_qat-residual-qgap.profile.json",
            1,
            24,
            0.673,
        ),
        (
            "trex_mobilenetv2_titanrtx_qat.graph.json",
            "trex_mobilenetv2_titanrtx_qat.profile.json",
            6610,
            73,
            0.470,
        ),
        (
            "kalfazed_resnet50_rtx3080_trt861_ptq-int8.graph.json",
            "kalfazed_resnet50_rtx3080_trt861_ptq-int8.profile.json",
            6402,
            59,
            0.453,
        ),
        (
            "lix19937-dmt-bev-qdq-int8-trt10-sm100.layers.json",
            "lix19937-dmt-bev-qdq-int8-trt10-sm100.profile.json",
            501,
            1309,
            f64::NAN,
        ),
        (
            "lix19937-aeb-bev-ptq-int8.layers.json",
            "lix19937-aeb-bev-ptq-int8.profile.json",
            839,
            104,
            f64::NAN,
        ),
        (
            "yuanjiechen-trt2023-controlnet-fp16-trt86.layers.json",
            "yuanjiechen-trt2023-controlnet-fp16-trt86.profile.json",
            175,
            389,
            f64::NAN,
        ),
    ];
    for (layers, profile, count, records, sum) in cases {
        let report =
            EngineReport::load(&dir.join(layers), Some(&dir.join(profile)), None).expect(profile);
        let parsed = report.profile().unwrap();
        assert_eq!(parsed.iterations, Some(count), "{profile}");
        assert_eq!(parsed.records.len(), records, "{profile}");
        if !sum.is_nan() {
            assert!(
                (parsed.total_average_ms() - sum).abs() < 0.0005,
                "{profile}: {}",
                parsed.total_average_ms()
            );
        }
        let joined = report
            .layers()
            .iter()
            .filter(|l| l.time_ms.is_some())
            .count();
        assert_eq!(joined, records, "{profile}: every layer gets its record");
    }

    // The names-only engines' profiles still parse: PROVENANCE's sums and shares.
    let yolo = trtq::trt::report::profile::parse_profile(
        &read(&dir, "trexbranch_yolo-qdq_orin_trt852.profile.json"),
        Path::new("yolo"),
    )
    .unwrap();
    assert_eq!((yolo.iterations, yolo.records.len()), (Some(11), 86));
    assert!((yolo.total_average_ms() - 403.8).abs() < 0.05);
    let share = |pred: &dyn Fn(&str) -> bool, profile: &trtq::trt::report::Profile| -> f64 {
        profile
            .records
            .iter()
            .filter(|r| pred(&r.name))
            .map(|r| r.average_ms)
            .sum()
    };
    assert!((share(&|n| n.ends_with("QuantizeLinear"), &yolo) - 28.4).abs() < 0.05);
    assert!((share(&|n| n.starts_with("Reformatting CopyNode"), &yolo) - 13.6).abs() < 0.05);
    let detr = trtq::trt::report::profile::parse_profile(
        &read(
            &dir,
            "detr-resnet50_trt10_implicit-int8-forced.profile.json",
        ),
        Path::new("detr"),
    )
    .unwrap();
    assert_eq!((detr.iterations, detr.records.len()), (Some(641), 840));
    assert_eq!(
        detr.records.iter().filter(|r| r.average_ms == 0.0).count(),
        340
    );
    assert!((detr.total_average_ms() - 4.162).abs() < 0.0005);
    assert!((share(&|n| n.starts_with("Reformatting CopyNode"), &detr) - 0.484).abs() < 0.0005);
}

#[test]
fn the_timing_recording_gives_the_provenance_latency() {
    let Some(dir) = support::recordings_dir() else {
        return;
    };
    let text = read(&dir, "trex_tf-resnet50_rtx3090_qat.timing.json");
    let latency = trtq::trt::report::times::parse_times(&text, Path::new("timing")).unwrap();
    let root: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(latency.iterations, root.as_array().unwrap().len());
    assert_eq!(latency.iterations, 1456);
    assert!(
        (latency.median_ms - 2.196).abs() < 0.0005,
        "{}",
        latency.median_ms
    );
    let samples: Vec<f64> = root
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["latencyMs"].as_f64().unwrap())
        .collect();
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    assert!(
        (latency.mean_ms - mean).abs() < 1e-9,
        "{} vs {mean}",
        latency.mean_ms
    );
    assert!(latency.min_ms <= latency.median_ms && latency.median_ms <= latency.p90_ms);
    assert!(latency.p90_ms <= latency.p99_ms && latency.p99_ms <= latency.max_ms);
}
