//! Executor conformance against the ONNX backend test data shipped in the `onnx` wheel (1.23.2):
//! the `node/` (when present), `pytorch-converted/`, `pytorch-operator/` and `simple/` cases
//! (model.onnx + test_data_set_*/input_*.pb, output_*.pb), and the `light/` model-zoo
//! structures against their bundled `*_output_0.pb`, within rtol 1e-4 / atol 1e-5.
//!
//! Data location: `$TRTQ_ONNX_TEST_DATA` (the wheel's `onnx/backend/test/data` folder), else
//! `$TRTQ_MODELS/onnx/backend`, else `target/models/onnx/backend` (scripts/fetch-models.sh's layout,
//! with the light models in the sibling `light/`). Without
//! the data the tests print why and pass vacuously. `TRTQ_UPDATE_RESULTS=1` rewrites
//! bench-results/exec-conformance.md with the table.
//!
//! Models older than opset 13 are first normalized to opset 17 as `trtq build` does; a model the
//! upgrade refuses is reported as "needs upgrade". Asserted: every case (light models included)
//! whose ops are all supported passes, and at least one case passes.

use prost::Message;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use trtq::exec::cpu::is_supported;
use trtq::exec::{Backend, CpuBackend, NoObserver};
use trtq::graph::{Model, Tensor};
use trtq::onnx::proto::{ModelProto, TensorProto};

const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-5;

/// The light models: `light/` inside the wheel's data folder, or beside `backend/` in the
/// fetch script's layout.
fn light_dir(root: &Path) -> PathBuf {
    let inside = root.join("light");
    match root.parent() {
        Some(parent) if !inside.is_dir() => parent.join("light"),
        _ => inside,
    }
}

fn data_root() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(p) = std::env::var("TRTQ_ONNX_TEST_DATA") {
        candidates.push(PathBuf::from(p));
    }
    if let Ok(p) = std::env::var("TRTQ_MODELS") {
        candidates.push(Path::new(&p).join("onnx/backend"));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/models/onnx/backend"));
    candidates.into_iter().find(|p| p.join("simple").is_dir())
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Pass,
    Unsupported(String),
    NeedsUpgrade(i64, String),
    Fail(String),
}

impl Outcome {
    fn label(&self, opset: i64) -> String {
        match self {
            Outcome::Pass => format!("pass (opset {opset})"),
            Outcome::Unsupported(op) => format!("op unsupported: {op}"),
            Outcome::NeedsUpgrade(n, why) => format!("needs upgrade (opset {n}): {why}"),
            Outcome::Fail(why) => format!("FAIL: {why}"),
        }
    }
}

fn load_model(path: &Path) -> Result<Model, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let proto = ModelProto::decode(bytes.as_slice()).map_err(|e| format!("decode: {e}"))?;
    Model::from_proto(proto).map_err(|e| format!("IR: {e}"))
}

fn load_tensor(path: &Path) -> Result<Tensor, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let proto = TensorProto::decode(bytes.as_slice()).map_err(|e| format!("decode: {e}"))?;
    Tensor::from_proto(&proto).map_err(|e| e.to_string())
}

/// Largest error beyond tolerance, or why the tensors cannot be compared.
fn compare(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.dtype() != want.dtype() {
        return Err(format!(
            "dtype {:?} vs expected {:?}",
            got.dtype(),
            want.dtype()
        ));
    }
    if got.shape() != want.shape() {
        return Err(format!(
            "shape {:?} vs expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    let as_f64 = |t: &Tensor| -> Vec<f64> {
        match t {
            Tensor::F64(a) => a.iter().copied().collect(),
            Tensor::I64(a) => a.iter().map(|&v| v as f64).collect(),
            other => other.to_f32_array().iter().map(|&v| v as f64).collect(),
        }
    };
    let mut worst: Option<(f64, usize)> = None;
    for (i, (g, w)) in as_f64(got).iter().zip(as_f64(want)).enumerate() {
        if g.is_nan() && w.is_nan() || g == &w {
            continue;
        }
        let err = (g - w).abs();
        // NaN against a number is an error too (the comparison is false).
        let within = err <= ATOL + RTOL * w.abs();
        if !within && worst.is_none_or(|(e, _)| err > e) {
            worst = Some((err, i));
        }
    }
    match worst {
        None => Ok(()),
        Some((err, i)) => Err(format!("max abs error {err:.3e} at element {i}")),
    }
}

fn run_case(model: &Model, inputs: Vec<Tensor>, expected: &[Tensor]) -> Result<(), String> {
    let mut backend = CpuBackend::with_model(model).map_err(|e| e.to_string())?;
    let names = backend.plan().map(|p| p.inputs.clone()).unwrap_or_default();
    if names.len() != inputs.len() {
        return Err(format!(
            "{} inputs given for {} graph inputs",
            inputs.len(),
            names.len()
        ));
    }
    let feed: HashMap<String, Tensor> = names.into_iter().zip(inputs).collect();
    let outputs = backend
        .run(feed, &mut NoObserver)
        .map_err(|e| e.to_string())?;
    for (i, (o, want)) in model.graph.outputs.iter().zip(expected).enumerate() {
        let name = o.name.clone().unwrap_or_default();
        let got = outputs
            .get(&name)
            .ok_or_else(|| format!("output {name} missing"))?;
        compare(got, want).map_err(|e| format!("output {i} ({name}): {e}"))?;
    }
    Ok(())
}

fn sorted_entries(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    // input_10 after input_9: order by the name without its trailing number, then the number
    v.sort_by_key(|p| {
        let n = p
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let stem = n.trim_end_matches(".pb");
        let base = stem
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .to_string();
        let number = stem[base.len()..].parse::<u64>().unwrap_or(0);
        (base, number)
    });
    v
}

fn case_outcome(dir: &Path) -> (i64, Outcome) {
    let model = match load_model(&dir.join("model.onnx")) {
        Ok(m) => m,
        Err(e) => {
            return (
                0,
                Outcome::Unsupported(format!("(model does not load: {e})")),
            );
        }
    };
    let opset = model.opset();
    let model = match upgraded(model) {
        Ok(m) => m,
        Err(trtq::graph::GraphError::UnsupportedOp { op, .. }) => {
            return (opset, Outcome::Unsupported(op));
        }
        Err(e) => return (opset, Outcome::NeedsUpgrade(opset, e.to_string())),
    };
    let graph = &model.graph;
    let mut missing: Vec<String> = graph
        .node_ids()
        .map(|id| graph.node(id))
        .filter(|n| !n.is_onnx() || !is_supported(&n.op_type))
        .map(|n| n.op_type.clone())
        .collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        return (opset, Outcome::Unsupported(missing.join(", ")));
    }
    let mut result = Ok(());
    for set in sorted_entries(dir, "test_data_set_") {
        let load = |prefix: &str| -> Result<Vec<Tensor>, String> {
            sorted_entries(&set, prefix)
                .iter()
                .map(|p| load_tensor(p))
                .collect()
        };
        result = load("input_")
            .and_then(|inputs| Ok((inputs, load("output_")?)))
            .and_then(|(inputs, outputs)| run_case(&model, inputs, &outputs));
        if result.is_err() {
            break;
        }
    }
    let outcome = match result {
        Ok(()) => Outcome::Pass,
        Err(e) => Outcome::Fail(e),
    };
    (opset, outcome)
}

/// Models older than opset 13 are normalized first (upgraded to 17), as `trtq build` does.
fn upgraded(model: Model) -> Result<Model, trtq::graph::GraphError> {
    if model.opset() >= 13 {
        return Ok(model);
    }
    let mut m = model;
    let opts = trtq::graph::normalize::NormalizeOptions {
        opset: 17,
        input_shapes: Default::default(),
    };
    trtq::graph::normalize::normalize(&mut m, &opts, &trtq::fold_evaluator)?;
    Ok(m)
}

/// The light models' input: `arange(n) / n` as float32 (onnx's `generate_dummy_data`).
fn dummy_input(dims: &[usize]) -> Tensor {
    let n: usize = dims.iter().product();
    let values = (0..n).map(|i| (i as f64 / n as f64) as f32).collect();
    Tensor::F32(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(dims), values).expect("shape"))
}

fn light_outcome(model_path: &Path) -> (i64, Outcome) {
    let model = match load_model(model_path) {
        Ok(m) => m,
        Err(e) => return (0, Outcome::Fail(e)),
    };
    let opset = model.opset();
    let model = match upgraded(model) {
        Ok(m) => m,
        Err(trtq::graph::GraphError::UnsupportedOp { op, .. }) => {
            return (opset, Outcome::Unsupported(op));
        }
        Err(e) => return (opset, Outcome::NeedsUpgrade(opset, e.to_string())),
    };
    let stem = model_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let expected = match load_tensor(&model_path.with_file_name(format!("{stem}_output_0.pb"))) {
        Ok(t) => t,
        Err(e) => return (opset, Outcome::Fail(e)),
    };
    let graph = &model.graph;
    let inputs: Vec<Tensor> = graph
        .inputs
        .iter()
        .filter(|v| v.name.as_deref().is_some_and(|n| graph.is_input(n)))
        .map(|v| {
            use trtq::onnx::proto::tensor_shape_proto::dimension::Value;
            use trtq::onnx::proto::type_proto::Value as T;
            let dims: Vec<usize> = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(T::TensorType(tt)) => tt
                    .shape
                    .iter()
                    .flat_map(|s| s.dim.iter())
                    .map(|d| match d.value {
                        Some(Value::DimValue(x)) if x > 0 => x as usize,
                        _ => 1,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            dummy_input(&dims)
        })
        .collect();
    let outcome = match run_case(&model, inputs, &[expected]) {
        Ok(()) => Outcome::Pass,
        Err(e) => Outcome::Fail(e),
    };
    (opset, outcome)
}

fn write_table(rows: &[(String, String)], absent: &[&str]) {
    let mut md = String::from(
        "# Executor conformance: ONNX backend test data (onnx 1.23.2 wheel)\n\n\
         Generated by `TRTQ_ONNX_TEST_DATA=<site-packages>/onnx/backend/test/data \
         TRTQ_UPDATE_RESULTS=1 cargo test --test exec_conformance -- --nocapture`.\n\
         Tolerance: rtol 1e-4, atol 1e-5. Cases older than opset 13 run unchanged; a failure there \
         is listed as \"needs upgrade\" (normalization upgrades such models before execution).\n\n",
    );
    if !absent.is_empty() {
        md.push_str(&format!(
            "Folders absent from this data: {}.\n\n",
            absent.join(", ")
        ));
    }
    let count = |p: &str| rows.iter().filter(|(_, s)| s.starts_with(p)).count();
    md.push_str(&format!(
        "Summary: {} cases, {} pass, {} op unsupported, {} needs upgrade, {} FAIL.\n\n",
        rows.len(),
        count("pass"),
        count("op unsupported"),
        count("needs upgrade"),
        count("FAIL")
    ));
    md.push_str("| case | result |\n|---|---|\n");
    for (case, status) in rows {
        md.push_str(&format!("| {case} | {} |\n", status.replace('|', "\\|")));
    }
    println!("{md}");
    if std::env::var("TRTQ_UPDATE_RESULTS").is_ok_and(|v| v == "1") {
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-results/exec-conformance.md");
        let tmp = out.with_extension("md.tmp");
        std::fs::create_dir_all(out.parent().expect("has parent")).expect("create bench-results");
        std::fs::write(&tmp, md).expect("write table");
        std::fs::rename(&tmp, &out).expect("rename table");
    }
}

#[test]
fn onnx_backend_test_data() {
    let Some(root) = data_root() else {
        println!(
            "SKIPPED: no ONNX backend test data (set TRTQ_ONNX_TEST_DATA to the onnx wheel's \
             onnx/backend/test/data, or fetch models into target/models)"
        );
        return;
    };
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let subs = [
        "node",
        "pytorch-converted",
        "pytorch-operator",
        "simple",
        "light",
    ];
    let absent: Vec<&str> = subs
        .into_iter()
        .filter(|s| !root.join(s).is_dir())
        .collect();
    for sub in &subs[..4] {
        for dir in sorted_entries(&root.join(sub), "test_") {
            let (opset, outcome) = case_outcome(&dir);
            let name = format!(
                "{sub}/{}",
                dir.file_name().and_then(|n| n.to_str()).unwrap_or("?")
            );
            if matches!(outcome, Outcome::Fail(_)) {
                failures.push(format!("{name}: {}", outcome.label(opset)));
            }
            rows.push((name, outcome.label(opset)));
        }
    }
    let mut light: Vec<PathBuf> = std::fs::read_dir(light_dir(&root))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    light.sort();
    for path in light {
        let (opset, outcome) = light_outcome(&path);
        let name = format!(
            "light/{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("?")
        );
        if matches!(outcome, Outcome::Fail(_)) {
            failures.push(format!("{name}: {}", outcome.label(opset)));
        }
        rows.push((name, outcome.label(opset)));
    }
    write_table(&rows, &absent);
    assert!(
        rows.iter().filter(|(_, s)| s.starts_with("pass")).count() > 0,
        "no case passed: the data folder is probably wrong"
    );
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}

/// Real models against onnxruntime: `$TRTQ_ORT_CASES` holds one folder per model in the backend
/// test layout (model.onnx, test_data_set_0/input_0.pb and output_*.pb written by onnxruntime
/// from a fixed input; bench-results/exec.md shows the script). Every case must pass.
#[test]
fn real_models_match_onnxruntime() {
    let Some(root) = std::env::var_os("TRTQ_ORT_CASES").map(PathBuf::from) else {
        println!("SKIPPED: TRTQ_ORT_CASES is not set (folder of onnxruntime reference cases)");
        return;
    };
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("TRTQ_ORT_CASES is readable")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no case folder under {}", root.display());
    let mut failures = Vec::new();
    let mut md = String::from(
        "# Executor vs onnxruntime reference cases\n\n\
         Cases written by `python tests/exec_ort_cases.py DIR` (single ops with tricky semantics) \
         and `python tests/exec_ort_cases.py DIR name:model.onnx:1x3xHxW ...` (whole models, \
         fixed uniform [0, 1) input, seed 0), onnxruntime 1.32.0 CPU. Checked by \
         `TRTQ_ORT_CASES=DIR TRTQ_UPDATE_RESULTS=1 cargo test --test exec_conformance \
         real_models`. Tolerance: rtol 1e-4, atol 1e-5.\n\n| case | result |\n|---|---|\n",
    );
    for dir in cases {
        let (opset, outcome) = case_outcome(&dir);
        let label = outcome.label(opset);
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        md.push_str(&format!("| {name} | {label} |\n"));
        if !label.starts_with("pass") {
            failures.push(format!("{name}: {label}"));
        }
    }
    println!("{md}");
    if std::env::var("TRTQ_UPDATE_RESULTS").is_ok_and(|v| v == "1") {
        let stem = root.file_name().and_then(|n| n.to_str()).unwrap_or("cases");
        let out = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("bench-results/exec-conformance-ort-{stem}.md"));
        let tmp = out.with_extension("md.tmp");
        std::fs::write(&tmp, md).expect("write table");
        std::fs::rename(&tmp, &out).expect("rename table");
    }
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}
