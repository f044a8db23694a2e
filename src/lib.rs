//! trtq: take an FP32 ONNX model to a TensorRT INT8 engine with Q/DQ placed only where TensorRT
//! can fuse it, and prove the result from the engine's own layer report.
//!
//! Every stage of `trtq build` is a library call first:
//! load ([`onnx`]) → normalize ([`graph`]) → transform ([`patterns`]) → insert_qdq ([`quantize`])
//! → calibrate ([`calib`], on an [`exec`] backend) → export → engine ([`trt`]) → verify
//! ([`verify`]) → report ([`report`]). The YAML schema lives in [`config`].

pub mod calib;
pub mod config;
pub mod exec;
pub mod graph;
pub mod onnx;
pub mod patterns;
pub mod quantize;
pub mod report;
pub mod trt;
pub mod verify;
