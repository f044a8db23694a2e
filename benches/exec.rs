//! CPU executor benches: the convolution layers of a ResNet-50 (plus a MobileNet-style
//! depthwise layer) through `eval_node`, and whole-model runs through `CpuBackend`.
//!
//! Models: light_resnet50 (real ResNet-50 structure, constant weights) from
//! `$TRTQ_ONNX_TEST_DATA/light/`, and PP-OCRv4 det at 640x640 from `$TRTQ_PPOCR_DET` (path to
//! ch_PP-OCRv4_det_infer.onnx). A missing model is skipped with a message.
//! Run: `cargo bench --bench exec` (see bench-results/exec.md for the onnxruntime comparison).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;
use trtq::exec::cpu::eval_node;
use trtq::exec::{Backend, CpuBackend, NoObserver};
use trtq::graph::{Model, Node, Tensor, attr};
use trtq::onnx::proto::ModelProto;

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

fn load(path: &PathBuf) -> Option<Model> {
    let bytes = std::fs::read(path).ok()?;
    Model::from_proto(ModelProto::decode(bytes.as_slice()).ok()?).ok()
}

/// Folds nodes whose inputs are all initializers (as normalization will), so the timed runs
/// measure the network, not the re-creation of constant weights.
fn fold_constants(model: &mut Model) {
    let graph = &mut model.graph;
    for id in graph.topo_order().expect("acyclic") {
        let node = graph.node(id).clone();
        let inputs: Option<Vec<Tensor>> = node
            .inputs
            .iter()
            .filter(|i| !i.is_empty())
            .map(|i| {
                graph
                    .initializer(i)
                    .and_then(|t| Tensor::from_proto(t).ok())
            })
            .collect();
        let Some(inputs) = inputs else { continue };
        if node.inputs.iter().any(|i| i.is_empty()) {
            continue;
        }
        let args: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
        let Ok(outputs) = eval_node(&node, &args) else {
            continue;
        };
        graph.remove_node(id);
        for (name, t) in node.outputs.iter().zip(outputs) {
            graph.set_initializer(t.to_proto(name), name);
        }
    }
}

fn models(c: &mut Criterion) {
    let mut group = c.benchmark_group("model");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    let light = std::env::var_os("TRTQ_ONNX_TEST_DATA")
        .map(|d| PathBuf::from(d).join("light/light_resnet50.onnx"));
    let det = std::env::var_os("TRTQ_PPOCR_DET").map(PathBuf::from);
    let cases = [
        (
            "light_resnet50_1x3x224x224",
            light,
            "gpu_0/data_0",
            [1usize, 3, 224, 224],
        ),
        ("ppocrv4_det_1x3x640x640", det, "x", [1, 3, 640, 640]),
    ];
    for (name, path, input, shape) in cases {
        let Some(mut model) = path.as_ref().and_then(load) else {
            println!("SKIPPED {name}: model not found (set TRTQ_ONNX_TEST_DATA / TRTQ_PPOCR_DET)");
            continue;
        };
        fold_constants(&mut model);
        let mut backend = CpuBackend::with_model(&model).expect("model prepares");
        let x = tensor(&shape, 7);
        group.bench_function(name, |bench| {
            bench.iter(|| {
                let feed = HashMap::from([(input.to_string(), x.clone())]);
                black_box(backend.run(feed, &mut NoObserver).expect("model runs"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, conv_layers, models);
criterion_main!(benches);
