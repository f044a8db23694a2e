//! The pattern engine: which node groups TensorRT fuses, and where each group wants its Q/DQ.
//!
//! Owns: patterns as data ([`Pattern`], [`Form`], [`Step`], ...), the matcher and the integer
//! graph index it runs on, the transform stage ([`transform`]: match, then apply every rewrite as
//! one patch), BatchNormalization folding, the [`PatternMatch`] records and their `matches.json`
//! form ([`MatchesFile`]: written by the pipeline, read back by verify), and the TensorRT library
//! ([`tensorrt`]).
//! Does not own: inserting Q/DQ ([`crate::quantize`]), calibration, or anything about engines.

mod fold;
mod index;
mod matcher;
mod matches_file;
mod pattern;
pub mod query;
pub mod tensorrt;
mod transform;

pub use fold::{bn_is_foldable, layer_is_foldable};
pub use matches_file::{MatchesError, MatchesFile};
pub use pattern::{Constraint, Form, Link, Pattern, Port, Predicate, QdqPoint, Rewrite, Step};
pub use transform::{find_matches, transform};

use crate::graph::{GraphError, Model};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why the transform stage failed.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    /// The graph is malformed (cycle, undefined value, ...), or a patch left it so.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A BatchNormalization could not be folded into the node before it.
    #[error("cannot fold BatchNormalization into node '{node}' ({op}): {message}")]
    Fold {
        node: String,
        op: String,
        message: String,
    },
}

/// One fused group found in the model (one entry of matches.json's `matches`; reading, only
/// `pattern` and `nodes` are required).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatternMatch {
    /// The pattern's name, e.g. `ConvBNAddReLU`.
    pub pattern: String,
    /// Matched node names in the model given to [`transform`] (step order).
    pub nodes: Vec<String>,
    /// The same group's node names after the rewrite (e.g. without the folded BN).
    #[serde(default)]
    pub nodes_after: Vec<String>,
    /// Non-constant values the group reads from outside.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Values the group produces for the outside (graph outputs included).
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Each QDQ point of the pattern resolved to a tensor name.
    #[serde(default)]
    pub qdq_points: BTreeMap<QdqPoint, String>,
}

/// The transform stage's result: the rewritten model and what matched.
#[derive(Clone, Debug)]
pub struct TransformResult {
    /// The model with every rewrite applied (BN folded).
    pub model: Model,
    /// The matches, in topological order of their first node.
    pub matches: Vec<PatternMatch>,
    /// Names of the input model's nodes no pattern covers, in topological order.
    pub unmatched: Vec<String>,
}
