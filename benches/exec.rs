//! CPU executor benches: the convolution layers of a ResNet-50 (plus a MobileNet-style
//! depthwise layer) through `eval_node`, and whole-model runs through `CpuBackend`.
//!
//! Models: light_resnet50 (real ResNet-50 structure, constant weights) from
//! `$TRTQ_ONNX_TEST_DATA/light/`, torchvision's ResNet-50 from
//! `$TRTQ_MODELS/torchvision/resnet50_torchscript.onnx`, and PP-OCRv4 det at 640x640 from
//! `$TRTQ_PPOCR_DET` (else `$TRTQ_MODELS/rapidocr/ch_PP-OCRv4_det_infer.onnx`). A missing model
//! is skipped with a message.
//! Run: `cargo bench --bench exec` (see bench-results/exec.md for the onnxruntime comparison).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;
use trtq::exec::cpu::eval_node;
use trtq::exec::{Backend, CpuBackend, NoObserver, Observer};
use trtq::graph::normalize::{NormalizeOptions, normalize};
use trtq::graph::{Model, Node, Tensor, attr};
use trtq::patterns::{tensorrt, transform};
use trtq::quantize::{QuantConfig, insert_qdq, quantized_activations};

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn tensor(shape: &[usize], seed: u64) -> Tensor {
    let n = shape.iter().product();
    Tensor::F32(
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), values(n, seed)).expect("shape"),
    )
}

/// (name, in channels, out channels, input size, kernel, stride, groups)
const LAYERS: &[(&str, usize, usize, usize, usize, usize, usize)] = &[
    ("stem_7x7_s2_3to64_224", 3, 64, 224, 7, 2, 1),
    ("l1_1x1_64to64_56", 64, 64, 56, 1, 1, 1),
    ("l1_3x3_64to64_56", 64, 64, 56, 3, 1, 1),
    ("l1_1x1_64to256_56", 64, 256, 56, 1, 1, 1),
    ("l2_3x3_s2_128to128_56", 128, 128, 56, 3, 2, 1),
    ("l3_3x3_256to256_14", 256, 256, 14, 3, 1, 1),
    ("l4_1x1_512to2048_7", 512, 2048, 7, 1, 1, 1),
    ("dw_3x3_32_112", 32, 32, 112, 3, 1, 32),
];

fn conv_layers(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv_resnet50_layers");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    for &(name, cin, cout, hw, k, stride, groups) in LAYERS {
        let pad = (k / 2) as i64;
        let node = Node::new(name, "Conv", &["x", "w", "b"], &["y"])
            .with_attr(attr::ints("kernel_shape", &[k as i64, k as i64]))
            .with_attr(attr::ints("strides", &[stride as i64; 2]))
            .with_attr(attr::ints("pads", &[pad; 4]))
            .with_attr(attr::int("group", groups as i64));
        let x = tensor(&[1, cin, hw, hw], 1);
        let w = tensor(&[cout, cin / groups, k, k], 2);
        let b = tensor(&[cout], 3);
        let out = (hw + 2 * pad as usize - k) / stride + 1;
        let flops = 2 * cout * (cin / groups) * k * k * out * out;
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_function(name, |bench| {
            bench.iter(|| eval_node(&node, &[Some(&x), Some(&w), Some(&b)]).expect("conv runs"))
        });
    }
    group.finish();
}

/// A model as `trtq build` calibrates it: loaded, normalized for `shape` (BatchNormalization
/// folded, constants folded), pattern-transformed; plus the tensors calibration observes (the
/// inputs of the QuantizeLinear nodes the pattern placement inserts).
fn as_calibrated(path: &Path, input: &str, shape: &[usize]) -> Option<(Model, Vec<String>)> {
    let mut model = trtq::load(path).ok()?;
    let opts = NormalizeOptions {
        opset: 17,
        input_shapes: BTreeMap::from([(
            input.to_string(),
            shape.iter().map(|&d| d as i64).collect(),
        )]),
    };
    normalize(&mut model, &opts, &trtq::fold_evaluator).ok()?;
    let fused = transform(&model, &tensorrt::library()).ok()?;
    let qdq = insert_qdq(&fused.model, &fused.matches, &QuantConfig::default()).ok()?;
    let observed = quantized_activations(&[&qdq]);
    Some((fused.model, observed))
}

/// Stands in for the calibration collectors: the abs-max of every observed tensor.
struct AbsMax(HashMap<String, f32>);

impl Observer for AbsMax {
    fn wants(&self, value: &str) -> bool {
        self.0.contains_key(value)
    }
    fn observe(&mut self, value: &str, tensor: &Tensor) {
        if let (Some(m), Some(a)) = (self.0.get_mut(value), tensor.as_f32()) {
            let fold = |m: f32, v: &f32| m.max(v.abs());
            *m = match a.as_slice() {
                Some(values) => values.iter().fold(*m, fold),
                None => a.iter().fold(*m, fold),
            };
        }
    }
}

/// Wants every conv output and ignores it: the executor then fuses no conv epilogue, so
/// `model/<name>_unfused` against `model/<name>` measures what the fusion buys.
struct WantsConvOutputs(BTreeSet<String>);

impl Observer for WantsConvOutputs {
    fn wants(&self, value: &str) -> bool {
        self.0.contains(value)
    }
    fn observe(&mut self, _value: &str, _tensor: &Tensor) {}
}

/// Whole models through `CpuBackend`, prepared as `trtq build` prepares them: `model/` is plain
/// inference at batch 1 (compare with onnxruntime; `_unfused`: without conv epilogue fusion),
/// `calib_pass/` one calibration forward pass
/// at batch 8 with every Q/DQ tensor observed (`trtq build` runs 64 samples as 8 of these).
fn models(c: &mut Criterion) {
    let test_data = std::env::var_os("TRTQ_ONNX_TEST_DATA").map(PathBuf::from);
    let models = std::env::var_os("TRTQ_MODELS").map(PathBuf::from);
    let light = test_data.map(|d| d.join("light/light_resnet50.onnx"));
    let resnet50 = models
        .as_ref()
        .map(|d| d.join("torchvision/resnet50_torchscript.onnx"));
    let det = std::env::var_os("TRTQ_PPOCR_DET")
        .map(PathBuf::from)
        .or_else(|| models.map(|d| d.join("rapidocr/ch_PP-OCRv4_det_infer.onnx")));
    // (group, name, model, input, shape)
    let cases = [
        (
            "model",
            "light_resnet50_1x3x224x224",
            &light,
            "gpu_0/data_0",
            [1usize, 3, 224, 224],
        ),
        (
            "model",
            "resnet50_1x3x224x224",
            &resnet50,
            "input",
            [1, 3, 224, 224],
        ),
        (
            "model",
            "ppocrv4_det_1x3x640x640",
            &det,
            "x",
            [1, 3, 640, 640],
        ),
        (
            "calib_pass",
            "resnet50_8x3x224x224",
            &resnet50,
            "input",
            [8, 3, 224, 224],
        ),
        (
            "calib_pass",
            "ppocrv4_det_8x3x640x640",
            &det,
            "x",
            [8, 3, 640, 640],
        ),
    ];
    for (group_name, name, path, input, shape) in cases {
        let Some((model, observed)) = path
            .as_deref()
            .and_then(|p| as_calibrated(p, input, &shape))
        else {
            println!(
                "SKIPPED {group_name}/{name}: model not found or not preparable \
                 (set TRTQ_ONNX_TEST_DATA, TRTQ_MODELS or TRTQ_PPOCR_DET)"
            );
            continue;
        };
        let mut backend = CpuBackend::with_model(&model).expect("model prepares");
        let x = tensor(&shape, 7);
        let mut group = c.benchmark_group(group_name);
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(10));
        let calibrating = group_name == "calib_pass";
        group.bench_function(name, |bench| {
            bench.iter(|| {
                let feed = HashMap::from([(input.to_string(), x.clone())]);
                let out = if calibrating {
                    let mut observer = AbsMax(observed.iter().map(|v| (v.clone(), 0.0)).collect());
                    backend.run(feed, &mut observer)
                } else {
                    backend.run(feed, &mut NoObserver)
                };
                black_box(out.expect("model runs"))
            })
        });
        if !calibrating {
            let g = &model.graph;
            let mut unfused = WantsConvOutputs(
                g.node_ids()
                    .map(|id| g.node(id))
                    .filter(|n| n.op_type == "Conv")
                    .flat_map(|n| n.outputs.iter().cloned())
                    .collect(),
            );
            group.bench_function(format!("{name}_unfused"), |bench| {
                bench.iter(|| {
                    let feed = HashMap::from([(input.to_string(), x.clone())]);
                    black_box(backend.run(feed, &mut unfused).expect("model runs"))
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, conv_layers, models);
criterion_main!(benches);
