//! [`Finding`]: one result of a check over an engine report, in the JSON form of DESIGN.md.
//!
//! Owns the finding's fields and their serialized names. It does not decide which findings exist
//! (the checks do) nor whether the build passes (the gates do).

use serde::{Deserialize, Serialize};

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The nodes of one pattern match ended up in more than one engine layer.
    BrokenFusion,
    /// A Q or DQ TensorRT could not fuse (standalone convert kernel).
    UnfusedQdq,
    /// A builder-inserted reformat (copy/convert) layer.
    Reformat,
    /// A quantized conv/gemm that does not run INT8 end to end.
    Precision,
}

/// How much a finding matters: `Error` fails the build (its gate is on), `Warning` is reported but
/// gated off, `Info` is expected behaviour explained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Expected; explained, never fails.
    Info,
    /// Worth a look; its gate is off or not exceeded.
    Warning,
    /// Fails the verification.
    Error,
}

/// One check result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// What the finding is about.
    pub kind: FindingKind,
    /// How much it matters.
    pub severity: Severity,
    /// Engine layer names involved.
    pub layers: Vec<String>,
    /// ONNX node names involved.
    pub nodes: Vec<String>,
    /// The pattern, for broken fusions.
    pub pattern: Option<String>,
    /// Time of the layers involved (profile average per inference), when profiled.
    pub time_ms: Option<f64>,
    /// What happened and what to change.
    pub message: String,
}
