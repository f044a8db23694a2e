//! The graph IR and the normalization stage.
//!
//! Owns: the in-memory model ([`Model`], [`Graph`], [`Node`]), dense tensors ([`Tensor`]),
//! attribute access, and the passes of `normalize` (opset upgrade, shape inference, constant
//! folding, dead-node elimination).
//! Does not own: ONNX bytes on disk ([`crate::onnx`]) or quantization policy.

pub mod attr;
mod ir;
pub mod normalize;
pub mod shape;
pub mod tensor;
pub mod upgrade;

pub use attr::Attributes;
pub use ir::{Graph, Model, Node, NodeId};
pub use tensor::{Tensor, TensorError};

/// What is wrong with a graph, or why a pass could not handle it.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The ModelProto has no graph.
    #[error("the model has no graph")]
    MissingGraph,
    /// The graph has a cycle through these nodes.
    #[error("the graph has a cycle through node(s) {}", .nodes.join(", "))]
    Cycle { nodes: Vec<String> },
    /// A node (or a graph output) reads a value nothing defines.
    #[error("{node} reads '{value}', which no node, input or initializer defines")]
    UndefinedValue { node: String, value: String },
    /// A value is defined twice.
    #[error("value '{value}' is defined twice ({what})")]
    DuplicateDefinition { value: String, what: String },
    /// A graph output name appears twice.
    #[error("graph output '{name}' is listed twice")]
    DuplicateOutput { name: String },
    /// Two nodes share a name (or a new node has none).
    #[error("node name '{name}' is empty or already used")]
    DuplicateNodeName { name: String },
    /// An operator outside the supported set.
    #[error("node '{node}': operator {op} is not supported{hint}")]
    UnsupportedOp {
        node: String,
        op: String,
        hint: String,
    },
    /// A node's inputs or attributes are invalid for its operator.
    #[error("node '{node}' ({op}): {message}")]
    InvalidNode {
        node: String,
        op: String,
        message: String,
    },
    /// A tensor could not be decoded.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}
