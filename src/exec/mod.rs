//! Executors: run a model's graph on concrete tensors, behind one [`Backend`] trait.
//!
//! Owns: the [`Backend`] and [`Observer`] traits, the device-neutral schedule ([`Plan`]: order
//! and the last use of every value), the executor error type ([`ExecError`]) and the CPU
//! implementation ([`cpu`]: [`CpuBackend`] and the per-op kernels, [`cpu::eval_node`], which
//! constant folding reuses).
//! Does not own: calibration statistics (observers are fed by the caller's collectors), shape
//! inference, or opset upgrades (models older than opset 13 are upgraded by normalization).

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
mod plan;
mod stats;

pub use cpu::CpuBackend;
pub use plan::{Plan, Step};
pub use stats::{BatchRange, BatchStats, StatsSink};

use crate::graph::{GraphError, Model, Tensor, TensorError};
use std::collections::HashMap;

/// Why a graph could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The node's operator is outside the supported op set.
    #[error("node '{node}': operator {op} is not supported by the executor")]
    UnsupportedOp { node: String, op: String },
    /// The operator is supported but not in this form (an attribute value, a dtype, a mode).
    #[error("node '{node}' ({op}): {what} is not supported")]
    UnsupportedForm {
        node: String,
        op: String,
        what: String,
    },
    /// The node's inputs or attributes are invalid for its operator.
    #[error("node '{node}' ({op}): {message}")]
    InvalidNode {
        node: String,
        op: String,
        message: String,
    },
    /// `run` was called before `prepare`.
    #[error("the backend has no prepared model: call prepare() first")]
    NotPrepared,
    /// A graph input was not given.
    #[error("graph input '{name}' was not given")]
    MissingInput { name: String },
    /// A given input is not an input of the graph.
    #[error("'{name}' is not an input of the graph (inputs: {expected})")]
    UnknownInput { name: String, expected: String },
    /// A given input's element type or shape contradicts the graph's declaration.
    #[error("graph input '{name}': {message}")]
    InputMismatch { name: String, message: String },
    /// The graph itself is malformed (cycle, undefined value).
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// An initializer could not be decoded.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// The device failed (a driver, kernel launch or cuBLAS error; the message names the call).
    #[error("device error: {0}")]
    Device(String),
}

/// Watches named tensors while a backend runs (calibration collectors, debugging dumps).
pub trait Observer {
    /// True when `value` (a graph input or a node output) should be passed to [`Observer::observe`].
    fn wants(&self, value: &str) -> bool;
    /// Called once per run for every wanted value, as soon as it is computed.
    fn observe(&mut self, value: &str, tensor: &Tensor);
    /// When this observer takes per-batch statistics in place of tensors: its sink. A backend
    /// that can compute [`BatchStats`] where the tensor lives (the GPU) then calls the sink
    /// instead of [`Observer::observe`]; others ignore it. Default: none.
    fn stats_sink(&mut self) -> Option<&mut dyn StatsSink> {
        None
    }
}

/// An observer that wants nothing: for plain inference.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn wants(&self, _value: &str) -> bool {
        false
    }
    fn observe(&mut self, _value: &str, _tensor: &Tensor) {}
}

/// Runs a model's graph on batches of inputs on one device.
///
/// A backend is prepared once per model (weights decoded or uploaded, schedule computed) and then
/// run any number of times; every run calls the observer on every wanted tensor.
pub trait Backend {
    /// Prepares `model` for running, replacing any model prepared before.
    fn prepare(&mut self, model: &Model) -> Result<(), ExecError>;

    /// Runs the prepared model on `inputs` (by graph input name) and returns the graph outputs by
    /// name. Intermediates are freed after their last consumer.
    fn run(
        &mut self,
        inputs: HashMap<String, Tensor>,
        observer: &mut dyn Observer,
    ) -> Result<HashMap<String, Tensor>, ExecError>;
}
