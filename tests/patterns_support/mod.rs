//! Shared by tests/patterns.rs and tests/quantize.rs: loading the real models (or saying why
//! they are skipped), the hand-normalization light_resnet50 needs until `normalize` is used,
//! and a small builder for graphs written in Rust.
#![allow(dead_code)] // each test file uses a different part

use ndarray::{ArrayD, IxDyn};
use prost::Message;
use std::path::{Path, PathBuf};
use trtq::graph::attr;
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
    Some(load(&path))
}

fn models_dir() -> PathBuf {
    std::env::var_os("TRTQ_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/models"))
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

/// The onnx wheel's light_resnet50 (Caffe2 export, opset 9), hand-normalized; or `None`
/// with the reason printed (scripts/fetch-models.sh fetches it).
pub fn light_resnet50() -> Option<Model> {
    let mut m = fetched_model("onnx/light/light_resnet50.onnx")?;
    hand_normalize_light_resnet50(&mut m);
    Some(m)
}

/// What `normalize` does to light_resnet50, by hand: its weights are ConstantOfShape nodes
/// (the "light" models drop the real weights), folded here into initializers; the opset is
/// raised to 13 with IR 7 (every op it uses — Conv, BatchNormalization, Relu, Sum, MaxPool, AveragePool,
/// Reshape, Gemm, Softmax on [1, 1000] — means the same there); and the AveragePool input gets
/// its shape, 2048×7×7 (ResNet-50 at 224×224 downsamples by 32), as shape inference would write.
fn hand_normalize_light_resnet50(m: &mut Model) {
    let g = &mut m.graph;
    let folds: Vec<usize> = g
        .node_ids()
        .filter(|&id| g.node(id).op_type == "ConstantOfShape")
        .collect();
    for id in folds {
        let node = g.remove_node(id);
        let shape_name = node.inputs[0].clone();
        let dims = Tensor::from_proto(g.initializer(&shape_name).expect("shape initializer"))
            .unwrap()
            .to_i64_vec()
            .unwrap();
        let fill = node
            .attributes
            .iter()
            .find(|a| a.name.as_deref() == Some("value"))
            .and_then(|a| a.t.as_ref())
            .map(|t| Tensor::from_proto(t).unwrap().to_f32_array())
            .and_then(|a| a.iter().next().copied())
            .unwrap_or(0.0);
        let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
        let value = Tensor::F32(ArrayD::from_elem(IxDyn(&shape), fill));
        g.set_initializer(value.to_proto(&node.outputs[0]), &node.outputs[0]);
        if g.consumers(&shape_name).is_empty() {
            g.remove_initializer(&shape_name);
        }
    }
    let pool = g
        .node_ids()
        .find(|&id| g.node(id).op_type == "AveragePool")
        .expect("light_resnet50 has one AveragePool");
    let pool_input = g.node(pool).inputs[0].clone();
    g.set_value_info(value_info(&pool_input, &[1, 2048, 7, 7]));
    g.validate().expect("hand-normalized graph is valid");
    m.set_opset(13);
    m.rest.ir_version = Some(7); // opset 13 needs IR 7 (initializers need not be graph inputs)
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
