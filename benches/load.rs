//! Loading a ResNet-50-sized ONNX model: time (criterion) and memory (a child process).
//!
//! The model is generated once into a temp folder: ResNet-50's real layer shapes as a PyTorch
//! export with BatchNormalization folded has them (53 convolutions with bias, the classifier Gemm),
//! 25.6 M float weights, ≈ 102 MB, in 108 initializers, as a valid graph (Conv, Relu, MaxPool, Add,
//! GlobalAveragePool, Flatten, Gemm).
//!
//! Time: `load_model` alone (map + decode: tensor bytes stay on disk until used), and
//! `load_model` plus reading every weight byte once (what a consumer pays to see the data).
//! Memory: this binary re-runs itself with `TRTQ_LOAD_MEMORY=<model>`; the child reads VmHWM and
//! VmRSS (with RssAnon/RssFile) from /proc/self/status before loading, after loading, and after
//! reading every weight, so the figures are the load's own, not the generator's.
//!
//! Run: `nice cargo bench --bench load` (results and the machine's state: bench-results/load.md).

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use criterion::Criterion;
use trtq::onnx::proto::{
    AttributeProto, AttributeType, DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    TensorProto, TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
};
use trtq::onnx::{ExternalData, SaveOptions, load_model, save_model};

/// Environment variable that switches this binary into the memory-measurement child.
const MEMORY_CHILD: &str = "TRTQ_LOAD_MEMORY";

fn main() {
    if let Some(model) = std::env::var_os(MEMORY_CHILD) {
        measure_memory(Path::new(&model));
        return;
    }
    let dir = tempfile::tempdir().expect("temp folder");
    let path = dir.path().join("resnet50.onnx");
    let model = resnet50_sized();
    save_model(
        &model,
        &path,
        &SaveOptions {
            external: ExternalData::Never,
            ..SaveOptions::default()
        },
    )
    .expect("write the generated model");
    drop(model);
    let file_bytes = std::fs::metadata(&path).expect("model file").len();
    println!("generated {} ({file_bytes} bytes)", path.display());

    let child = std::process::Command::new(std::env::current_exe().expect("own path"))
        .env(MEMORY_CHILD, &path)
        .output()
        .expect("run the memory measurement");
    print!("{}", String::from_utf8_lossy(&child.stdout));
    assert!(child.status.success(), "memory measurement failed");

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("load");
    group.sample_size(30);
    group.bench_function("load_model resnet50-sized (map + decode)", |b| {
        b.iter(|| black_box(load_model(&path).expect("load")))
    });
    group.bench_function(
        "trtq::load resnet50-sized (into the IR, graph validated)",
        |b| b.iter(|| black_box(trtq::load(&path).expect("load into the IR"))),
    );
    group.bench_function("load_model resnet50-sized + read every weight", |b| {
        b.iter(|| {
            let model = load_model(&path).expect("load");
            black_box(checksum(&model))
        })
    });
    group.finish();
    criterion.final_summary();
}

/// The child: loads `path` and prints memory figures from /proc/self/status.
fn measure_memory(path: &Path) {
    let file_bytes = std::fs::metadata(path).expect("model file").len() as f64;
    let before = status_kib();
    let start = Instant::now();
    let model = load_model(path).expect("load");
    let load_s = start.elapsed().as_secs_f64();
    let loaded = status_kib();
    let start = Instant::now();
    let ir = trtq::graph::Model::from_proto(model.clone()).expect("IR");
    let ir_s = start.elapsed().as_secs_f64();
    let in_ir = status_kib();
    drop(ir);
    let start = Instant::now();
    let sum = checksum(&model);
    let touch_s = start.elapsed().as_secs_f64();
    let touched = status_kib();
    let ratio = |kib: u64| kib as f64 * 1024.0 / file_bytes;
    println!("memory (child process, file {file_bytes} bytes; checksum {sum}):");
    for (label, s) in [
        ("before load_model", &before),
        ("after load_model", &loaded),
        ("after building the IR", &in_ir),
        ("after reading every weight", &touched),
    ] {
        println!(
            "  {label:<28} VmHWM {:>7} KiB  VmRSS {:>7} KiB  RssAnon {:>7} KiB  RssFile {:>7} KiB",
            s.hwm, s.rss, s.anon, s.file
        );
    }
    println!(
        "  IR from the decoded model: {ir_s:.4} s, peak growth {:.3}x file size",
        ratio(in_ir.hwm.saturating_sub(before.hwm))
    );
    println!(
        "  load_model: {load_s:.4} s, peak growth {:.3}x file size; reading every weight: {touch_s:.4} s, \
         peak growth {:.3}x file size (RssFile is the file's pages, shared with the page cache)",
        ratio(loaded.hwm.saturating_sub(before.hwm)),
        ratio(touched.hwm.saturating_sub(before.hwm))
    );
}

/// Memory figures of this process, in KiB.
struct Status {
    hwm: u64,
    rss: u64,
    anon: u64,
    file: u64,
}

fn status_kib() -> Status {
    let text = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Status {
        hwm: field("VmHWM:"),
        rss: field("VmRSS:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
    }
}

/// Reads every byte of every initializer once (sums them), so each page is faulted in.
fn checksum(model: &ModelProto) -> u64 {
    model
        .graph
        .iter()
        .flat_map(|graph| &graph.initializer)
        .filter_map(|tensor| tensor.raw_data.as_ref())
        .map(|raw| raw.iter().map(|&b| u64::from(b)).sum::<u64>())
        .sum()
}

/// Builds the model: ResNet-50 shapes with BatchNormalization folded into the convolutions.
fn resnet50_sized() -> ModelProto {
    let mut builder = Builder::default();
    let mut x = builder.conv("input", 3, 64, 7, 2);
    x = builder.unary("Relu", &x);
    x = builder.max_pool(&x);
    let mut channels = 64;
    for (stage, (blocks, width)) in [(3, 64), (4, 128), (6, 256), (3, 512)]
        .into_iter()
        .enumerate()
    {
        for block in 0..blocks {
            let stride = if block == 0 && stage > 0 { 2 } else { 1 };
            let out = width * 4;
            let shortcut = if block == 0 {
                builder.conv(&x, channels, out, 1, stride)
            } else {
                x.clone()
            };
            let mut y = builder.conv(&x, channels, width, 1, 1);
            y = builder.unary("Relu", &y);
            y = builder.conv(&y, width, width, 3, stride);
            y = builder.unary("Relu", &y);
            y = builder.conv(&y, width, out, 1, 1);
            let sum = builder.node("Add", &[&y, &shortcut], vec![]);
            x = builder.unary("Relu", &sum);
            channels = out;
        }
    }
    x = builder.unary("GlobalAveragePool", &x);
    x = builder.unary("Flatten", &x);
    let weight = builder.weight(&[1000, 2048]);
    let bias = builder.weight(&[1000]);
    let trans_b = AttributeProto {
        name: Some("transB".to_owned()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(1),
        ..AttributeProto::default()
    };
    let logits = builder.node("Gemm", &[&x, &weight, &bias], vec![trans_b]);
    builder.finish(&logits)
}

/// Accumulates nodes and initializers with generated names and deterministic weights.
#[derive(Default)]
struct Builder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// State of the weight generator (an LCG).
    seed: u32,
}

impl Builder {
    fn weight(&mut self, dims: &[i64]) -> String {
        let count: i64 = dims.iter().product();
        let name = format!("w{}", self.initializers.len());
        let mut raw = Vec::with_capacity(count as usize * 4);
        for _ in 0..count {
            self.seed = self
                .seed
                .wrapping_mul(1_664_525)
                .wrapping_add(1_013_904_223);
            let value = (self.seed >> 9) as f32 / (1u32 << 23) as f32 * 0.02 - 0.01;
            raw.extend_from_slice(&value.to_le_bytes());
        }
        self.initializers.push(TensorProto {
            name: Some(name.clone()),
            dims: dims.to_vec(),
            data_type: Some(DataType::Float as i32),
            raw_data: Some(Bytes::from(raw)),
            ..TensorProto::default()
        });
        name
    }

    fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let name = format!("{op}_{}", self.nodes.len());
        let output = format!("{name}_out");
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: vec![output.clone()],
            name: Some(name),
            op_type: Some(op.to_owned()),
            attribute,
            ..NodeProto::default()
        });
        output
    }

    fn unary(&mut self, op: &str, input: &str) -> String {
        self.node(op, &[input], vec![])
    }

    fn conv(&mut self, input: &str, cin: i64, cout: i64, kernel: i64, stride: i64) -> String {
        let weight = self.weight(&[cout, cin, kernel, kernel]);
        let bias = self.weight(&[cout]);
        let pad = kernel / 2;
        let attributes = vec![
            ints("kernel_shape", &[kernel, kernel]),
            ints("strides", &[stride, stride]),
            ints("pads", &[pad, pad, pad, pad]),
        ];
        self.node("Conv", &[input, &weight, &bias], attributes)
    }

    fn max_pool(&mut self, input: &str) -> String {
        let attributes = vec![
            ints("kernel_shape", &[3, 3]),
            ints("strides", &[2, 2]),
            ints("pads", &[1, 1, 1, 1]),
        ];
        self.node("MaxPool", &[input], attributes)
    }

    fn finish(self, output: &str) -> ModelProto {
        ModelProto {
            ir_version: Some(8),
            producer_name: Some("trtq benches/load.rs".to_owned()),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(17),
            }],
            graph: Some(GraphProto {
                name: Some("resnet50_sized".to_owned()),
                node: self.nodes,
                initializer: self.initializers,
                input: vec![float_value("input", &[1, 3, 224, 224])],
                output: vec![float_value(output, &[1, 1000])],
                ..GraphProto::default()
            }),
            ..ModelProto::default()
        }
    }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::Ints as i32),
        ints: values.to_vec(),
        ..AttributeProto::default()
    }
}

fn float_value(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
            denotation: None,
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_owned()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(trtq::onnx::proto::TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        ..ValueInfoProto::default()
    }
}
