//! [`VerifyGates`]: which findings fail a verification (the config's `verify:` section).
//!
//! Owns the gate settings and their defaults. It does not compute findings; [`super::verify`] applies
//! the gates when it assigns severities.

use serde::Deserialize;

/// Pass/fail thresholds. Network I/O conversions (a Q on a network input, a DQ or copy on a network
/// output) never count against a gate: TensorRT must convert FP32 I/O unless the I/O formats are INT8.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct VerifyGates {
    /// Fail when a pattern match was split over several engine layers.
    pub fail_on_broken_fusion: bool,
    /// Fail when a Q/DQ stayed a standalone layer.
    pub fail_on_unfused_qdq: bool,
    /// Most Reformat layers allowed (Q/DQ-origin and builder copies alike).
    pub max_reformat_layers: usize,
    /// Most share of summed layer time allowed in Reformat layers, in percent (needs a profile).
    pub max_reformat_time_pct: f64,
    /// Fail when a quantized conv/gemm does not run INT8 in and out.
    pub fail_on_precision: bool,
}

impl Default for VerifyGates {
    fn default() -> Self {
        VerifyGates {
            fail_on_broken_fusion: true,
            fail_on_unfused_qdq: true,
            max_reformat_layers: 0,
            max_reformat_time_pct: 1.0,
            fail_on_precision: true,
        }
    }
}
