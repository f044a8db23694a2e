//! The CUDA backend against the CPU executor, on a GPU: every op (within 1e-4 relative, TF32
//! off), every model the tests use (outputs and every observed tensor), and the on-device
//! statistics (bit-identical fine histograms and range scalars).
//!
//! These tests need an NVIDIA GPU, a driver, NVRTC and cuBLAS. Without them each test prints
//! why it skips, except where `TRTQ_REQUIRE_GPU=1` (scripts/gpu-check.sh sets it): there a
//! missing GPU fails. Real models are read from `$TRTQ_MODELS` when present.
#![cfg(feature = "cuda")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use trtq::exec::cuda::{CudaBackend, DeviceInfo, probe};
use trtq::exec::{Backend, BatchStats, CpuBackend, NoObserver, Observer, StatsSink};
use trtq::graph::normalize::{NormalizeOptions, normalize};
use trtq::graph::{Model, Node, Tensor, attr};
use trtq::onnx::proto::{
    GraphProto, ModelProto, OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto,
    tensor_shape_proto, type_proto,
};
use trtq::patterns::{tensorrt, transform};

/// Relative tolerance of the parity checks (TF32 is off).
const TOLERANCE: f32 = 1e-4;

/// The GPU, or `None` after saying why the test skips (panics where a GPU is required).
fn gpu_or_skip() -> Option<DeviceInfo> {
    match probe() {
        Ok(info) => {
            eprintln!("GPU: {info}");
            Some(info)
        }
        Err(e) if std::env::var("TRTQ_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("TRTQ_REQUIRE_GPU=1 but {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: no usable GPU: {e}");
            None
        }
    }
}

/// Deterministic values in [-scale, scale).
fn random(shape: &[usize], seed: u64, scale: f32) -> Tensor {
    let mut state = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect();
    Tensor::F32(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), values).unwrap())
}

fn value_info(name: &str, tensor: &Tensor) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(tensor.dtype() as i32),
                shape: Some(TensorShapeProto {
                    dim: tensor
                        .shape()
                        .iter()
                        .map(|&d| tensor_shape_proto::Dimension {
                            value: Some(tensor_shape_proto::dimension::Value::DimValue(d as i64)),
                            denotation: None,
                        })
                        .collect(),
                }),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}

/// A one-node model: `inputs` are graph inputs (fed at run time), `constants` initializers.
fn one_node(node: Node, inputs: &[(&str, Tensor)], constants: &[(&str, Tensor)]) -> Model {
    let mut model = Model::from_proto(ModelProto {
        ir_version: Some(8),
        graph: Some(GraphProto::default()),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        ..Default::default()
    })
    .unwrap();
    for (name, t) in constants {
        model.graph.set_initializer(t.to_proto(name), name);
    }
    model.graph.inputs = inputs.iter().map(|(n, t)| value_info(n, t)).collect();
    model.graph.outputs = node
        .outputs
        .iter()
        .map(|o| ValueInfoProto {
            name: Some(o.clone()),
            ..Default::default()
        })
        .collect();
    model.graph.add_node(node).unwrap();
    model
}

/// Largest |gpu - cpu| relative to the largest |cpu| (exact equality for integer tensors).
fn relative_error(gpu: &Tensor, cpu: &Tensor) -> Result<f32, String> {
    if gpu.shape() != cpu.shape() || gpu.dtype() != cpu.dtype() {
        return Err(format!(
            "GPU {:?} {:?} vs CPU {:?} {:?}",
            gpu.dtype(),
            gpu.shape(),
            cpu.dtype(),
            cpu.shape()
        ));
    }
    match (gpu, cpu) {
        (Tensor::F32(g), Tensor::F32(c)) => {
            let scale = c
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()))
                .max(f32::MIN_POSITIVE);
            let mut worst = 0f32;
            for (a, b) in g.iter().zip(c.iter()) {
                if a.is_nan() != b.is_nan() {
                    return Err(format!("NaN mismatch: GPU {a} vs CPU {b}"));
                }
                if !a.is_nan() {
                    worst = worst.max((a - b).abs() / scale);
                }
            }
            Ok(worst)
        }
        _ if gpu == cpu => Ok(0.0),
        _ => Err("integer outputs differ".into()),
    }
}

/// Named tensors (a run's outputs).
type Named = HashMap<String, Tensor>;

/// The outputs of `model` on the GPU and on the CPU.
fn run_both(
    gpu: &mut CudaBackend,
    model: &Model,
    inputs: &[(&str, Tensor)],
) -> Result<(Named, Named), String> {
    let feed = || -> HashMap<String, Tensor> {
        inputs
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect()
    };
    let mut cpu = CpuBackend::with_model(model).map_err(|e| e.to_string())?;
    let want = cpu
        .run(feed(), &mut NoObserver)
        .map_err(|e| format!("CPU: {e}"))?;
    gpu.prepare(model).map_err(|e| e.to_string())?;
    let got = gpu
        .run(feed(), &mut NoObserver)
        .map_err(|e| format!("GPU: {e}"))?;
    Ok((got, want))
}

/// (label, node, run-time inputs, constants); a label saying "runs on the CPU" expects the
/// fallback, every other case must run on kernels only.
type Case = (
    &'static str,
    Node,
    Vec<(&'static str, Tensor)>,
    Vec<(&'static str, Tensor)>,
);

/// A 1-D float32 tensor.
fn floats(values: &[f32]) -> Tensor {
    Tensor::F32(
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[values.len()]), values.to_vec()).unwrap(),
    )
}

fn op_cases() -> Vec<Case> {
    let x4 = || random(&[2, 8, 9, 11], 1, 3.0);
    let unary = |op: &'static str| -> Case {
        (
            op,
            Node::new(op, op, &["x"], &["y"]),
            vec![("x", x4())],
            vec![],
        )
    };
    let positive = |op: &'static str| -> Case {
        let x = match random(&[2, 8, 9, 11], 2, 1.0) {
            Tensor::F32(a) => Tensor::F32(a.mapv(|v| v.abs() + 0.05)),
            other => other,
        };
        (
            op,
            Node::new(op, op, &["x"], &["y"]),
            vec![("x", x)],
            vec![],
        )
    };
    let scalar = |v: f32| Tensor::F32(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[]), v));
    let mut cases: Vec<Case> = [
        "Relu",
        "Sigmoid",
        "Tanh",
        "HardSwish",
        "Erf",
        "Exp",
        "Neg",
        "Abs",
        "Gelu",
        "Floor",
        "Ceil",
        "Sin",
        "Cos",
        "Round",
        "Softsign",
        "Softplus",
        "Identity",
    ]
    .into_iter()
    .map(unary)
    .collect();
    cases.extend(["Sqrt", "Log", "Reciprocal"].map(positive));
    cases.extend([
        (
            "LeakyRelu",
            Node::new("LeakyRelu", "LeakyRelu", &["x"], &["y"])
                .with_attr(attr::float("alpha", 0.1)),
            vec![("x", x4())],
            vec![],
        ),
        (
            "Elu",
            Node::new("Elu", "Elu", &["x"], &["y"]).with_attr(attr::float("alpha", 0.7)),
            vec![("x", x4())],
            vec![],
        ),
        (
            "HardSigmoid",
            Node::new("HardSigmoid", "HardSigmoid", &["x"], &["y"])
                .with_attr(attr::float("alpha", 0.25))
                .with_attr(attr::float("beta", 0.4)),
            vec![("x", x4())],
            vec![],
        ),
        (
            "Gelu tanh",
            Node::new("Gelu", "Gelu", &["x"], &["y"])
                .with_attr(attr::string("approximate", "tanh")),
            vec![("x", x4())],
            vec![],
        ),
        (
            "Clip (inputs)",
            Node::new("Clip", "Clip", &["x", "lo", "hi"], &["y"]),
            vec![("x", x4())],
            vec![("lo", scalar(-0.5)), ("hi", scalar(1.5))],
        ),
    ]);
    for op in ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"] {
        let b = match op {
            "Div" | "Pow" => match random(&[8, 1, 11], 3, 1.0) {
                Tensor::F32(a) => Tensor::F32(a.mapv(|v| v.abs() + 0.5)),
                other => other,
            },
            _ => random(&[8, 1, 11], 3, 2.0),
        };
        let a = if op == "Pow" {
            match x4() {
                Tensor::F32(a) => Tensor::F32(a.mapv(f32::abs)),
                other => other,
            }
        } else {
            x4()
        };
        cases.push((
            op,
            Node::new(op, op, &["a", "b"], &["y"]),
            vec![("a", a.clone())],
            vec![("b", b)],
        ));
        let same = random(&[2, 8, 9, 11], 4, 2.0);
        let same = if op == "Div" || op == "Pow" {
            match same {
                Tensor::F32(s) => Tensor::F32(s.mapv(|v| v.abs() + 0.5)),
                other => other,
            }
        } else {
            same
        };
        cases.push((
            op,
            Node::new(op, op, &["a", "b"], &["y"]),
            vec![("a", a), ("b", same)],
            vec![],
        ));
    }
    cases.extend([
        (
            "PRelu",
            Node::new("PRelu", "PRelu", &["x", "s"], &["y"]),
            vec![("x", x4())],
            vec![("s", random(&[8, 1, 1], 5, 0.5))],
        ),
        (
            "Conv 3x3 pad 1 stride 2 bias",
            Node::new("Conv", "Conv", &["x", "w", "b"], &["y"])
                .with_attr(attr::ints("pads", &[1, 1, 1, 1]))
                .with_attr(attr::ints("strides", &[2, 2])),
            vec![("x", x4())],
            vec![
                ("w", random(&[16, 8, 3, 3], 6, 0.3)),
                ("b", random(&[16], 7, 0.5)),
            ],
        ),
        (
            "Conv 1x1",
            Node::new("Conv", "Conv", &["x", "w"], &["y"]),
            vec![("x", x4())],
            vec![("w", random(&[12, 8, 1, 1], 8, 0.3))],
        ),
        (
            "Conv depthwise dilated SAME_UPPER",
            Node::new("Conv", "Conv", &["x", "w", "b"], &["y"])
                .with_attr(attr::int("group", 8))
                .with_attr(attr::ints("dilations", &[2, 2]))
                .with_attr(attr::string("auto_pad", "SAME_UPPER")),
            vec![("x", x4())],
            vec![
                ("w", random(&[8, 1, 3, 3], 9, 0.3)),
                ("b", random(&[8], 10, 0.5)),
            ],
        ),
        (
            "Conv grouped asymmetric pads",
            Node::new("Conv", "Conv", &["x", "w"], &["y"])
                .with_attr(attr::int("group", 2))
                .with_attr(attr::ints("pads", &[0, 1, 2, 0])),
            vec![("x", x4())],
            vec![("w", random(&[6, 4, 3, 2], 11, 0.3))],
        ),
        (
            "Gemm transB bias",
            Node::new("Gemm", "Gemm", &["a", "b", "c"], &["y"]).with_attr(attr::int("transB", 1)),
            vec![("a", random(&[5, 64], 12, 1.0))],
            vec![
                ("b", random(&[33, 64], 13, 0.2)),
                ("c", random(&[33], 14, 1.0)),
            ],
        ),
        (
            "Gemm transA",
            Node::new("Gemm", "Gemm", &["a", "b"], &["y"]).with_attr(attr::int("transA", 1)),
            vec![("a", random(&[64, 5], 15, 1.0))],
            vec![("b", random(&[64, 7], 16, 0.2))],
        ),
        (
            "MatMul weights",
            Node::new("MatMul", "MatMul", &["a", "b"], &["y"]),
            vec![("a", random(&[2, 3, 5, 16], 17, 1.0))],
            vec![("b", random(&[16, 9], 18, 0.3))],
        ),
        (
            "MatMul batched (attention)",
            Node::new("MatMul", "MatMul", &["a", "b"], &["y"]),
            vec![
                ("a", random(&[2, 4, 6, 16], 19, 1.0)),
                ("b", random(&[2, 4, 16, 6], 20, 1.0)),
            ],
            vec![],
        ),
        (
            "MaxPool 3x3 s2 pad 1",
            Node::new("MaxPool", "MaxPool", &["x"], &["y"])
                .with_attr(attr::ints("kernel_shape", &[3, 3]))
                .with_attr(attr::ints("strides", &[2, 2]))
                .with_attr(attr::ints("pads", &[1, 1, 1, 1])),
            vec![("x", x4())],
            vec![],
        ),
        (
            "AveragePool ceil count_include_pad",
            Node::new("AveragePool", "AveragePool", &["x"], &["y"])
                .with_attr(attr::ints("kernel_shape", &[3, 2]))
                .with_attr(attr::ints("strides", &[2, 2]))
                .with_attr(attr::ints("pads", &[1, 0, 1, 1]))
                .with_attr(attr::int("ceil_mode", 1))
                .with_attr(attr::int("count_include_pad", 1)),
            vec![("x", x4())],
            vec![],
        ),
        (
            "AveragePool",
            Node::new("AveragePool", "AveragePool", &["x"], &["y"])
                .with_attr(attr::ints("kernel_shape", &[2, 2]))
                .with_attr(attr::ints("pads", &[1, 1, 0, 0])),
            vec![("x", x4())],
            vec![],
        ),
        (
            "GlobalAveragePool",
            Node::new("GlobalAveragePool", "GlobalAveragePool", &["x"], &["y"]),
            vec![("x", x4())],
            vec![],
        ),
        (
            "GlobalMaxPool",
            Node::new("GlobalMaxPool", "GlobalMaxPool", &["x"], &["y"]),
            vec![("x", x4())],
            vec![],
        ),
        (
            "Softmax last axis",
            Node::new("Softmax", "Softmax", &["x"], &["y"]),
            vec![("x", x4())],
            vec![],
        ),
        (
            "LogSoftmax axis 1",
            Node::new("LogSoftmax", "LogSoftmax", &["x"], &["y"]).with_attr(attr::int("axis", 1)),
            vec![("x", x4())],
            vec![],
        ),
        (
            "BatchNormalization",
            Node::new(
                "BatchNormalization",
                "BatchNormalization",
                &["x", "s", "b", "m", "v"],
                &["y"],
            ),
            vec![("x", x4())],
            vec![
                ("s", random(&[8], 29, 1.0)),
                ("b", random(&[8], 30, 1.0)),
                ("m", random(&[8], 31, 1.0)),
                ("v", floats(&[0.5, 1.0, 1.5, 2.0, 0.25, 0.75, 1.25, 3.0])),
            ],
        ),
        (
            "LayerNormalization",
            Node::new(
                "LayerNormalization",
                "LayerNormalization",
                &["x", "s", "b"],
                &["y"],
            ),
            vec![("x", random(&[2, 7, 48], 21, 2.0))],
            vec![("s", random(&[48], 22, 1.0)), ("b", random(&[48], 23, 1.0))],
        ),
        (
            "ReduceMean axes 2,3 keepdims",
            Node::new("ReduceMean", "ReduceMean", &["x", "axes"], &["y"]),
            vec![("x", x4())],
            vec![("axes", Tensor::from_i64s(vec![2, 3]))],
        ),
        (
            "ReduceSum axis 1",
            Node::new("ReduceSum", "ReduceSum", &["x", "axes"], &["y"])
                .with_attr(attr::int("keepdims", 0)),
            vec![("x", x4())],
            vec![("axes", Tensor::from_i64s(vec![1]))],
        ),
        (
            "ReduceMax all",
            Node::new("ReduceMax", "ReduceMax", &["x"], &["y"]),
            vec![("x", x4())],
            vec![],
        ),
        (
            "Transpose",
            Node::new("Transpose", "Transpose", &["x"], &["y"])
                .with_attr(attr::ints("perm", &[0, 2, 3, 1])),
            vec![("x", x4())],
            vec![],
        ),
        (
            "Concat axis 1",
            Node::new("Concat", "Concat", &["a", "b"], &["y"]).with_attr(attr::int("axis", 1)),
            vec![("a", x4()), ("b", random(&[2, 3, 9, 11], 24, 1.0))],
            vec![],
        ),
        (
            "Slice steps and negative bounds",
            Node::new("Slice", "Slice", &["x", "s", "e", "a", "p"], &["y"]),
            vec![("x", x4())],
            vec![
                ("s", Tensor::from_i64s(vec![1, -1, 0])),
                ("e", Tensor::from_i64s(vec![i64::MAX, 0, 9])),
                ("a", Tensor::from_i64s(vec![1, 3, 2])),
                ("p", Tensor::from_i64s(vec![2, -3, 4])),
            ],
        ),
        (
            "Reshape",
            Node::new("Reshape", "Reshape", &["x", "s"], &["y"]),
            vec![("x", x4())],
            vec![("s", Tensor::from_i64s(vec![0, -1, 11]))],
        ),
        (
            "Shape start 1",
            Node::new("Shape", "Shape", &["x"], &["y"]).with_attr(attr::int("start", 1)),
            vec![("x", x4())],
            vec![],
        ),
        (
            "Flatten",
            Node::new("Flatten", "Flatten", &["x"], &["y"]),
            vec![("x", x4())],
            vec![],
        ),
        (
            "Unsqueeze",
            Node::new("Unsqueeze", "Unsqueeze", &["x", "a"], &["y"]),
            vec![("x", x4())],
            vec![("a", Tensor::from_i64s(vec![0, -1]))],
        ),
        (
            "QuantizeLinear per tensor",
            Node::new("QuantizeLinear", "QuantizeLinear", &["x", "s", "z"], &["y"]),
            vec![("x", x4())],
            vec![
                ("s", scalar(0.02)),
                (
                    "z",
                    Tensor::I8(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[]), 0i8)),
                ),
            ],
        ),
        (
            "DequantizeLinear per axis",
            Node::new("DequantizeLinear", "DequantizeLinear", &["q", "s"], &["y"])
                .with_attr(attr::int("axis", 0)),
            vec![(
                "q",
                Tensor::I8(ndarray::ArrayD::from_shape_fn(
                    ndarray::IxDyn(&[4, 5]),
                    |i| i[0] as i8 * 37 - i[1] as i8 * 11,
                )),
            )],
            vec![("s", random(&[4], 25, 0.1))],
        ),
        (
            "Resize nearest x2",
            Node::new("Resize", "Resize", &["x", "", "scales"], &["y"])
                .with_attr(attr::string("mode", "nearest")),
            vec![("x", x4())],
            vec![("scales", floats(&[1.0, 1.0, 2.0, 2.0]))],
        ),
        (
            "Resize linear to sizes, align_corners",
            Node::new("Resize", "Resize", &["x", "", "", "sizes"], &["y"])
                .with_attr(attr::string("mode", "linear"))
                .with_attr(attr::string(
                    "coordinate_transformation_mode",
                    "align_corners",
                )),
            vec![("x", x4())],
            vec![("sizes", Tensor::from_i64s(vec![2, 8, 20, 15]))],
        ),
        (
            "Resize linear 0.6, half_pixel",
            Node::new("Resize", "Resize", &["x", "", "scales"], &["y"])
                .with_attr(attr::string("mode", "linear")),
            vec![("x", x4())],
            vec![("scales", floats(&[1.0, 1.0, 0.6, 1.5]))],
        ),
        (
            "ConvTranspose 2x2 s2 bias",
            Node::new("ConvTranspose", "ConvTranspose", &["x", "w", "b"], &["y"])
                .with_attr(attr::ints("strides", &[2, 2])),
            vec![("x", x4())],
            vec![
                ("w", random(&[8, 5, 2, 2], 26, 0.3)),
                ("b", random(&[5], 27, 0.5)),
            ],
        ),
        (
            "ConvTranspose 3x3 s2 pads groups output_padding",
            Node::new("ConvTranspose", "ConvTranspose", &["x", "w"], &["y"])
                .with_attr(attr::ints("strides", &[2, 2]))
                .with_attr(attr::ints("pads", &[1, 1, 1, 1]))
                .with_attr(attr::ints("output_padding", &[1, 0]))
                .with_attr(attr::int("group", 2)),
            vec![("x", x4())],
            vec![("w", random(&[8, 3, 3, 3], 28, 0.3))],
        ),
        (
            "Resize cubic (runs on the CPU)",
            Node::new("Resize", "Resize", &["x", "", "scales"], &["y"])
                .with_attr(attr::string("mode", "cubic")),
            vec![("x", x4())],
            vec![("scales", floats(&[1.0, 1.0, 2.0, 2.0]))],
        ),
    ]);
    cases
}

#[test]
fn every_op_matches_the_cpu_executor() {
    let Some(info) = gpu_or_skip() else {
        return;
    };
    let mut gpu = CudaBackend::new(info, false).unwrap();
    let mut failures = Vec::new();
    for (label, node, inputs, constants) in op_cases() {
        let model = one_node(node, &inputs, &constants);
        match run_both(&mut gpu, &model, &inputs) {
            Ok((got, want)) => {
                for (name, w) in &want {
                    match relative_error(&got[name], w) {
                        Ok(e) if e <= TOLERANCE => eprintln!("{label}: {e:.2e}"),
                        Ok(e) => failures.push(format!("{label}: relative error {e:.2e}")),
                        Err(e) => failures.push(format!("{label}: {e}")),
                    }
                }
            }
            Err(e) => failures.push(format!("{label}: {e}")),
        }
        let on_cpu = gpu.cpu_ops();
        if label.contains("runs on the CPU") {
            if on_cpu.is_empty() {
                failures.push(format!("{label}: expected a CPU fallback"));
            }
        } else if !on_cpu.is_empty() {
            failures.push(format!(
                "{label}: ran on the CPU ({on_cpu:?}): no kernel used"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Input names with their shapes.
type Shapes = Vec<(String, Vec<usize>)>;

/// The repository: `$TRTQ_REPO_ROOT` (the GPU script runs prebuilt test binaries from another
/// checkout path), else the one this test was built in.
fn repo_root() -> PathBuf {
    std::env::var_os("TRTQ_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The models the tests use: the demo, and from $TRTQ_MODELS light_resnet50 and PP-OCRv4 det
/// (at 320×320), with their input shapes.
fn models() -> Vec<(String, PathBuf, Shapes)> {
    let repo = repo_root();
    let mut list = vec![(
        "demo".to_string(),
        repo.join("configs/demo/resnet_tiny.onnx"),
        vec![("input".to_string(), vec![4, 3, 32, 32])],
    )];
    let root = std::env::var_os("TRTQ_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target/models"));
    for (label, relative, input, shape) in [
        (
            "light_resnet50",
            "onnx/light/light_resnet50.onnx",
            "data_0",
            vec![1, 3, 224, 224],
        ),
        (
            "PP-OCRv4 det",
            "rapidocr/ch_PP-OCRv4_det_infer.onnx",
            "x",
            vec![2, 3, 320, 320],
        ),
    ] {
        let path = root.join(relative);
        if path.is_file() {
            list.push((label.to_string(), path, vec![(input.to_string(), shape)]));
        } else {
            eprintln!(
                "SKIPPED {label}: {} is absent (run scripts/fetch-models.sh)",
                path.display()
            );
        }
    }
    list
}

/// The fused FP32 model calibration runs (normalized at `shapes`, then pattern-transformed).
fn fused(path: &Path, shapes: &[(String, Vec<usize>)]) -> Model {
    let mut model = trtq::load(path).unwrap();
    let opts = NormalizeOptions {
        opset: 17,
        input_shapes: shapes
            .iter()
            .map(|(n, s)| (n.clone(), s.iter().map(|&d| d as i64).collect()))
            .collect(),
    };
    normalize(&mut model, &opts, &trtq::fold_evaluator).unwrap();
    transform(&model, &tensorrt::library()).unwrap().model
}

/// Records every float tensor it is shown (downloads on the GPU: no stats sink).
#[derive(Default)]
struct Everything(HashMap<String, Tensor>);

impl Observer for Everything {
    fn wants(&self, _value: &str) -> bool {
        true
    }
    fn observe(&mut self, value: &str, tensor: &Tensor) {
        if matches!(tensor, Tensor::F32(_)) {
            self.0.insert(value.to_string(), tensor.clone());
        }
    }
}

#[test]
fn every_model_matches_the_cpu_executor_at_every_tensor() {
    let Some(info) = gpu_or_skip() else {
        return;
    };
    let mut gpu = CudaBackend::new(info, false).unwrap();
    let mut failures = Vec::new();
    for (label, path, shapes) in models() {
        let model = fused(&path, &shapes);
        let feed: HashMap<String, Tensor> = shapes
            .iter()
            .enumerate()
            .map(|(i, (n, s))| (n.clone(), random(s, 100 + i as u64, 1.0)))
            .collect();
        let mut cpu = CpuBackend::with_model(&model).unwrap();
        let mut cpu_seen = Everything::default();
        let want = cpu.run(feed.clone(), &mut cpu_seen).unwrap();
        gpu.prepare(&model).unwrap();
        let mut gpu_seen = Everything::default();
        let got = gpu.run(feed, &mut gpu_seen).unwrap();
        eprintln!("{label}: ops on the CPU: {:?}", gpu.cpu_ops());
        let mut worst = (0f32, String::new());
        for (name, w) in cpu_seen.0.iter().chain(want.iter()) {
            let g = gpu_seen.0.get(name).or_else(|| got.get(name));
            match g.map(|g| relative_error(g, w)) {
                Some(Ok(e)) if e > worst.0 => worst = (e, name.clone()),
                Some(Ok(_)) => {}
                Some(Err(e)) => failures.push(format!("{label} '{name}': {e}")),
                None => failures.push(format!("{label} '{name}': not observed on the GPU")),
            }
        }
        eprintln!(
            "{label}: worst relative error {:.2e} at '{}'",
            worst.0, worst.1
        );
        if worst.0 > TOLERANCE {
            failures.push(format!(
                "{label}: relative error {:.2e} at '{}'",
                worst.0, worst.1
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Takes device statistics at a fixed grid rule and keeps them.
struct Sink {
    stats: HashMap<String, BatchStats>,
}

/// Smallest e with floor(abs_max · 2^-e) < 16384, at least -100 (the test's own statement of
/// the rule; the kernel must agree with the host computation below bin for bin).
fn exponent_for(abs_max: f32) -> i32 {
    let mut e = -100;
    while (abs_max * f32::from_bits(((127 - e) as u32) << 23)).floor() >= 16384.0 {
        e += 1;
    }
    e
}

impl StatsSink for Sink {
    fn exponent(&self, _value: &str, batch_abs_max: f32) -> i32 {
        exponent_for(batch_abs_max)
    }
    fn observe_stats(&mut self, value: &str, stats: BatchStats) {
        self.stats.insert(value.to_string(), stats);
    }
}

struct StatsObserver(Sink);

impl Observer for StatsObserver {
    fn wants(&self, _value: &str) -> bool {
        true
    }
    fn observe(&mut self, _value: &str, _tensor: &Tensor) {}
    fn stats_sink(&mut self) -> Option<&mut dyn StatsSink> {
        Some(&mut self.0)
    }
}

#[test]
fn device_statistics_equal_the_host_rule_bin_for_bin() {
    let Some(info) = gpu_or_skip() else {
        return;
    };
    let mut gpu = CudaBackend::new(info, false).unwrap();
    // A tensor with NaN, ±Inf, zeros, subnormals and a wide range.
    let mut values: Vec<f32> = match random(&[3, 64, 1000], 42, 50.0) {
        Tensor::F32(a) => a.iter().copied().collect(),
        _ => unreachable!(),
    };
    values[..8].copy_from_slice(&[
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        1e-40,
        -3e-39,
        1e30,
    ]);
    let x = Tensor::F32(
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[3, 64, 1000]), values.clone()).unwrap(),
    );
    let model = one_node(
        Node::new("r", "Relu", &["x"], &["y"]),
        &[("x", x.clone())],
        &[],
    );
    gpu.prepare(&model).unwrap();
    let mut observer = StatsObserver(Sink {
        stats: HashMap::new(),
    });
    let out = gpu
        .run(HashMap::from([("x".to_string(), x)]), &mut observer)
        .unwrap();
    let relu: Vec<f32> = out["y"].as_f32().unwrap().iter().copied().collect();
    for (name, data) in [("x", &values), ("y", &relu)] {
        let stats = &observer.0.stats[name];
        let finite: Vec<f32> = data.iter().copied().filter(|v| v.is_finite()).collect();
        let abs_max = finite.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert_eq!(stats.range.abs_max, abs_max, "{name}");
        assert_eq!(
            stats.range.abs_min,
            finite.iter().fold(f32::MAX, |m, v| m.min(v.abs())),
            "{name}"
        );
        assert_eq!(
            stats.range.min,
            finite.iter().fold(f32::MAX, |m, &v| m.min(v)),
            "{name}"
        );
        assert_eq!(
            stats.range.max,
            finite.iter().fold(-f32::MAX, |m, &v| m.max(v)),
            "{name}"
        );
        assert_eq!(stats.range.finite, finite.len() as u64, "{name}");
        assert_eq!(
            stats.range.nan,
            data.iter().filter(|v| v.is_nan()).count() as u64,
            "{name}"
        );
        assert_eq!(
            stats.range.inf,
            data.iter().filter(|v| v.is_infinite()).count() as u64,
            "{name}"
        );
        assert_eq!(stats.exponent, exponent_for(abs_max));
        let inverse = f32::from_bits(((127 - stats.exponent) as u32) << 23);
        let mut bins = vec![0u64; 16384];
        for v in &finite {
            bins[(v.abs() * inverse) as usize] += 1;
        }
        assert_eq!(
            stats.bins, bins,
            "{name}: fine histogram differs from the host rule"
        );
    }
}

/// Runs without a GPU: every op case and model above is valid for the CPU executor, so a GPU run
/// fails only on a GPU difference, never on a broken case.
#[test]
fn every_case_runs_on_the_cpu_executor() {
    for (label, node, inputs, constants) in op_cases() {
        let model = one_node(node, &inputs, &constants);
        let feed: HashMap<String, Tensor> = inputs
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect();
        let out = CpuBackend::with_model(&model)
            .and_then(|mut cpu| cpu.run(feed, &mut NoObserver))
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(!out.is_empty(), "{label}");
    }
    let (_, path, shapes) = &models()[0];
    let model = fused(path, shapes);
    let feed = shapes
        .iter()
        .map(|(n, s)| (n.clone(), random(s, 100, 1.0)))
        .collect();
    let mut seen = Everything::default();
    CpuBackend::with_model(&model)
        .unwrap()
        .run(feed, &mut seen)
        .unwrap();
    assert!(seen.0.len() > 10, "the demo observes every tensor");
}

/// Calibration on the GPU (statistics computed on the device, through the calibrate Stage's
/// `StatsSink`) gives every tensor's amax of every method within one 2048-bin histogram bin of
/// the CPU path (identical by construction: the same fine-grid rule bit for bit), on every model.
#[test]
fn calibration_on_the_gpu_gives_the_cpu_amaxes() {
    use trtq::calib::data::{ModelInput, open};
    use trtq::calib::{Method, calibrate};
    use trtq::config::DataSource;
    let Some(info) = gpu_or_skip() else {
        return;
    };
    let mut gpu = CudaBackend::new(info, false).unwrap();
    let mut failures = Vec::new();
    for (label, path, shapes) in models() {
        let model = fused(&path, &shapes);
        let graph = &model.graph;
        let inputs: Vec<ModelInput> = graph
            .inputs
            .iter()
            .filter(|i| i.name.as_deref().is_some_and(|n| graph.is_input(n)))
            .map(|i| ModelInput::from_value_info(i).unwrap())
            .collect();
        // Every float32 node output: far more tensors than the Q/DQ points.
        let tensors: Vec<String> = graph
            .node_ids()
            .flat_map(|id| graph.node(id).outputs.clone())
            .filter(|o| {
                graph.value_info(o).is_some_and(|v| {
                    matches!(
                        v.r#type.as_ref().and_then(|t| t.value.as_ref()),
                        Some(type_proto::Value::TensorType(t)) if t.elem_type == Some(1)
                    )
                })
            })
            .collect();
        let batch = shapes[0].1[0];
        for method in [Method::Max, Method::Entropy] {
            let source = DataSource::Synthetic { seed: 3 };
            let data = || open(&source, &inputs, batch, 2 * batch, 0).unwrap();
            let mut cpu = CpuBackend::with_model(&model).unwrap();
            let want =
                calibrate(&mut cpu, data().as_mut(), &tensors, &[], method, &|_| {}).unwrap();
            gpu.prepare(&model).unwrap();
            let got = calibrate(&mut gpu, data().as_mut(), &tensors, &[], method, &|_| {}).unwrap();
            let mut worst = 0f32;
            for (tensor, w) in &want.tensors {
                let bin = w.amax_by_method["max"].max(f32::MIN_POSITIVE) / 2048.0;
                for (name, amax) in &w.amax_by_method {
                    let other = got.tensors[tensor].amax_by_method[name];
                    let off = (other - amax).abs() / bin;
                    worst = worst.max(off);
                    if off > 1.0 {
                        failures.push(format!(
                            "{label} {tensor} {name}: CPU {amax} GPU {other} ({off:.2} bins)"
                        ));
                    }
                }
            }
            eprintln!(
                "{label} {}: {} tensors, worst difference {worst:.3} bins",
                method.name(),
                want.tensors.len()
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
