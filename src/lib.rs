//! trtq: take an FP32 ONNX model to a TensorRT INT8 engine with Q/DQ placed only where TensorRT
//! can fuse it, and prove the result from the engine's own layer report.
//!
//! Every stage of `trtq build` is a library call first:
//! load ([`onnx`]) → normalize ([`graph`]) → transform ([`patterns`]) → insert_qdq ([`quantize`])
//! → calibrate ([`calib`], on an [`exec`] backend) → export → engine ([`trt`]) → verify
//! ([`verify`]) → report ([`report`]). The YAML schema lives in [`config`].

pub mod artifacts;
pub mod calib;
pub mod config;
pub mod error;
pub mod evaluate;
pub mod exec;
pub mod graph;
pub mod inspect;
pub mod onnx;
pub mod patterns;
pub mod pipeline;
pub mod progress;
pub mod quantize;
pub mod rebatch;
pub mod report;
pub mod trt;
pub mod ui;
pub mod verify;

pub use error::Error;

use std::path::Path;

/// Computes a node's outputs from constant inputs with the CPU kernels (normalization's folding).
pub fn fold_evaluator(
    node: &graph::Node,
    inputs: &[Option<&graph::Tensor>],
) -> Result<Vec<graph::Tensor>, String> {
    exec::cpu::eval_node(node, inputs).map_err(|e| e.to_string())
}

/// Loads an ONNX file (external data included) into the IR, checking the graph.
pub fn load(path: &Path) -> Result<graph::Model, Error> {
    let proto = onnx::load_model(path)?;
    graph::Model::from_proto(proto).map_err(|e| Error::graph(path, e))
}

/// Re-encodes a model file: decode, then encode with the given external-data policy.
/// The output must not be the input (nor one of its external data files).
pub fn convert(input: &Path, output: &Path, opts: &onnx::SaveOptions) -> Result<(), Error> {
    let (proto, files) = onnx::load_model_with_files(input)?;
    let opts = onnx::SaveOptions {
        inputs: files.all(),
        ..opts.clone()
    };
    onnx::save_model(&proto, output, &opts)?;
    Ok(())
}
