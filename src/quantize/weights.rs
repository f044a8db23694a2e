//! Weight quantization: symmetric INT8 with abs-max scales, per output channel or per tensor.
//!
//! Owns: [`quantize_weight`] and the axis each weighted op quantizes along ([`weight_axis`]).
//! Does not own: where the quantized weight goes in the graph ([`super::plan`]).
//!
//! `scale[c] = max|w[c, ...]| / 127` and `q = round_half_even(w / scale)` clamped to
//! [-127, 127], which is exactly what ONNX QuantizeLinear computes from the same scale, so the
//! INT8-initializer form and the float+Q+DQ form dequantize to identical values. An all-zero
//! channel gets scale 1.0 (any positive scale represents zero exactly; never a zero scale).

use crate::graph::{Attributes, Node, Tensor};
use crate::onnx::proto::TensorProto;
use ndarray::{ArrayD, Axis, IxDyn};

/// A quantized weight: INT8 values and their scales (one per channel along `axis`, or one).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedWeight {
    /// The INT8 values, same shape as the float weight.
    pub values: ArrayD<i8>,
    /// Scales: length of `axis`, or a single scale when per tensor.
    pub scales: Vec<f32>,
    /// The channel axis, `None` for per-tensor.
    pub axis: Option<usize>,
}

/// The axis along which a weighted node's output channels run in its weight (input 1):
/// Conv 0, ConvTranspose 1, Gemm 0 with transB=1 else 1, MatMul the last axis of B.
pub fn weight_axis(node: &Node, rank: usize) -> Option<usize> {
    match node.op_type.as_str() {
        "Conv" => Some(0),
        "ConvTranspose" => Some(1),
        "Gemm" => Some(if node.attr_i_or("transB", 0) != 0 {
            0
        } else {
            1
        }),
        "MatMul" => rank.checked_sub(1),
        _ => None,
    }
    .filter(|&a| a < rank)
}

fn scale_of(amax: f32) -> f32 {
    if amax > 0.0 { amax / 127.0 } else { 1.0 }
}

fn quantize_value(w: f32, scale: f32) -> i8 {
    (w / scale).round_ties_even().clamp(-127.0, 127.0) as i8
}

/// Quantizes a FLOAT weight tensor; `axis` selects per-channel scales.
pub fn quantize_weight(t: &TensorProto, axis: Option<usize>) -> Result<QuantizedWeight, String> {
    let tensor = Tensor::from_proto(t).map_err(|e| e.to_string())?;
    let Some(w) = tensor.as_f32() else {
        return Err(format!(
            "element type {:?} is not FLOAT",
            tensor.dtype().as_str_name()
        ));
    };
    if let Some(bad) = w.iter().find(|v| !v.is_finite()) {
        return Err(format!("holds a non-finite value ({bad})"));
    }
    match axis {
        Some(a) if a < w.ndim() => {
            let scales: Vec<f32> = w
                .axis_iter(Axis(a))
                .map(|ch| scale_of(ch.iter().fold(0.0f32, |m, v| m.max(v.abs()))))
                .collect();
            let mut values = ArrayD::<i8>::zeros(IxDyn(w.shape()));
            for (c, (mut out, ch)) in values
                .axis_iter_mut(Axis(a))
                .zip(w.axis_iter(Axis(a)))
                .enumerate()
            {
                out.zip_mut_with(&ch, |q, &v| *q = quantize_value(v, scales[c]));
            }
            Ok(QuantizedWeight {
                values,
                scales,
                axis: Some(a),
            })
        }
        Some(a) => Err(format!("axis {a} is out of range for rank {}", w.ndim())),
        None => {
            let scale = scale_of(w.iter().fold(0.0f32, |m, v| m.max(v.abs())));
            Ok(QuantizedWeight {
                values: w.mapv(|v| quantize_value(v, scale)),
                scales: vec![scale],
                axis: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_scales_are_channel_abs_max_over_127() {
        let w = Tensor::F32(
            ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0, -2.54, 0.5, 0.0, 0.0, 0.0]).unwrap(),
        );
        let q = quantize_weight(&w.to_proto("w"), Some(0)).unwrap();
        assert_eq!(q.scales, vec![2.54 / 127.0, 1.0]);
        // 1.0 / 0.02 = 50, -2.54 / 0.02 = -127, 0.5 / 0.02 = 25; the zero channel stays 0.
        assert_eq!(
            q.values.iter().copied().collect::<Vec<_>>(),
            vec![50, -127, 25, 0, 0, 0]
        );
        let per_tensor = quantize_weight(&w.to_proto("w"), None).unwrap();
        assert_eq!(per_tensor.scales.len(), 1);
    }

    #[test]
    fn non_finite_weight_is_an_error() {
        let w = Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[2]), vec![1.0, f32::NAN]).unwrap());
        assert!(quantize_weight(&w.to_proto("w"), Some(0)).is_err());
    }
}
