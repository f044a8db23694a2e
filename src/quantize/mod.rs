//! Q/DQ insertion: where QuantizeLinear/DequantizeLinear pairs go, and the weights' INT8 form.
//!
//! Owns: [`QuantConfig`] and [`TensorQuantConfig`], the two placement strategies — the pattern
//! strategy ([`insert_qdq`], Q/DQ only at the QDQ points of matched patterns) and the uniform
//! baseline ([`uniform::insert_qdq_uniform`], Q/DQ on every input of NVIDIA's INT8 op list) —
//! the shared plan they both apply (so only placement differs), per-channel weight
//! quantization, tie groups, and writing calibrated scales ([`set_activation_scales`]).
//! Does not own: finding patterns ([`crate::patterns`]) or computing activation ranges
//! ([`crate::calib`]).
//!
//! Conventions (DESIGN.md, "Q/DQ conventions for TensorRT"): INT8, symmetric, zero point 0;
//! activations per tensor, weights per output channel; one QuantizeLinear per quantized tensor,
//! shared by all its quantized consumers; nodes named `<tensor>_QuantizeLinear` and
//! `<tensor>_DequantizeLinear`, their outputs `<node>_Output`, the scale `<tensor>_scale` and
//! zero point `<tensor>_zero_point`. Activation scales are placeholders (1.0) until calibration
//! calls [`set_activation_scales`]; the model's metadata key [`SCALES_KEY`] says which.

pub mod fp16;
mod insert;
mod plan;
mod scales;
pub mod uniform;
mod weights;

pub use insert::insert_qdq;
pub use scales::{SCALES_KEY, TIE_GROUPS_KEY, set_activation_scales, tie_groups};
pub use weights::{QuantizedWeight, quantize_weight};

use crate::config::{QuantizationSection, TensorQuantSection};
use crate::graph::{GraphError, Model};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub use crate::config::WeightsAs;

/// Why Q/DQ insertion (or writing scales) failed.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// A setting the target cannot build.
    #[error("quantization.{key}: {message}")]
    Unsupported { key: String, message: String },
    /// Per-channel DequantizeLinear needs opset 13.
    #[error(
        "the model imports opset {opset}; Q/DQ with per-channel weights needs opset >= 13 (normalize the model first: `opset: 17` in the config)"
    )]
    OpsetTooOld { opset: i64 },
    /// A match refers to a node the model does not have.
    #[error(
        "match '{pattern}' names node '{node}', which is not in the model (was it transformed by another run?)"
    )]
    UnknownNode { pattern: String, node: String },
    /// A weight cannot be quantized.
    #[error("weight '{tensor}' of node '{node}': {message}")]
    Weight {
        tensor: String,
        node: String,
        message: String,
    },
    /// A calibrated range is not usable as a scale.
    #[error("tensor '{tensor}': amax {amax} is not a positive finite number, so it gives no scale")]
    BadAmax { tensor: String, amax: f32 },
    /// The graph is malformed, or an edit left it so.
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// How one kind of tensor (activations or weights) is quantized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TensorQuantConfig {
    /// Bits per value (TensorRT INT8: 8).
    pub n_bits: u32,
    /// Zero point fixed at 0.
    pub symmetric: bool,
    /// One scale per output channel instead of one per tensor.
    pub per_channel: bool,
}

impl Default for TensorQuantConfig {
    fn default() -> Self {
        TensorQuantConfig {
            n_bits: 8,
            symmetric: true,
            per_channel: false,
        }
    }
}

/// What to quantize and how (the `quantization` section of the config, minus the strategy).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuantConfig {
    /// Activations: per tensor.
    pub activation: TensorQuantConfig,
    /// Weights: per output channel by default.
    pub weight: TensorQuantConfig,
    /// Op types whose weights stay float.
    pub skip_weight_quant_for: Vec<String>,
    /// Quantize depthwise convolutions (false: leave them in FP16, they are memory-bound).
    pub quantize_depthwise: bool,
    /// Weight storage.
    pub weights_as: WeightsAs,
    /// Record tie groups (Concat inputs/output, MaxPool input/output share one scale).
    pub tie_groups: bool,
}

impl Default for QuantConfig {
    fn default() -> Self {
        QuantConfig {
            activation: TensorQuantConfig::default(),
            weight: TensorQuantConfig {
                per_channel: true,
                ..TensorQuantConfig::default()
            },
            skip_weight_quant_for: vec!["LayerNormalization".into()],
            quantize_depthwise: true,
            weights_as: WeightsAs::Int8,
            tie_groups: true,
        }
    }
}

impl From<TensorQuantSection> for TensorQuantConfig {
    fn from(s: TensorQuantSection) -> Self {
        TensorQuantConfig {
            n_bits: s.n_bits,
            symmetric: s.symmetric,
            per_channel: s.per_channel,
        }
    }
}

impl From<&QuantizationSection> for QuantConfig {
    /// The config file's `quantization` section (its `strategy` picks [`insert_qdq`] or
    /// [`uniform::insert_qdq_uniform`]; the rest is this).
    fn from(s: &QuantizationSection) -> Self {
        QuantConfig {
            activation: s.activation.into(),
            weight: s.weight.into(),
            skip_weight_quant_for: s.skip_weight_quant_for.clone(),
            quantize_depthwise: s.quantize_depthwise,
            weights_as: s.weights_as,
            tie_groups: s.tie_groups,
        }
    }
}

impl QuantConfig {
    /// Rejects settings TensorRT cannot build, saying why.
    pub fn validate_for_tensorrt(&self) -> Result<(), QuantizeError> {
        let unsupported = |key: &str, message: &str| {
            Err(QuantizeError::Unsupported {
                key: key.into(),
                message: message.into(),
            })
        };
        for (kind, c) in [("activation", &self.activation), ("weight", &self.weight)] {
            if c.n_bits != 8 {
                return unsupported(
                    &format!("{kind}.n_bits"),
                    &format!(
                        "{} bits: TensorRT's explicit quantization of this kind is INT8 only (n_bits: 8)",
                        c.n_bits
                    ),
                );
            }
            if !c.symmetric {
                return unsupported(
                    &format!("{kind}.symmetric"),
                    "TensorRT accepts only symmetric INT8 (zero point 0); set symmetric: true",
                );
            }
        }
        if self.activation.per_channel {
            return unsupported(
                "activation.per_channel",
                "TensorRT quantizes activations per tensor; set per_channel: false",
            );
        }
        Ok(())
    }
}

/// Activation tensors that a QuantizeLinear reads in any of `models` (not initializers, not
/// requantizations of a DequantizeLinear output), sorted: the tensors calibration observes.
pub fn quantized_activations(models: &[&Model]) -> Vec<String> {
    let mut set = BTreeSet::new();
    for m in models {
        let g = &m.graph;
        for id in g.node_ids() {
            let n = g.node(id);
            if n.op_type == "QuantizeLinear"
                && let Some(v) = n.input(0)
                && g.initializer(v).is_none()
                && g.producer(v)
                    .is_none_or(|p| g.node(p).op_type != "DequantizeLinear")
            {
                set.insert(v.to_string());
            }
        }
    }
    set.into_iter().collect()
}
