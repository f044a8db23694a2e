//! Dense tensors with a dtype: the values that constant folding and the executors compute on.
//!
//! Owns: [`Tensor`] (an ndarray per supported element type) and its conversion from and to
//! ONNX `TensorProto` (raw little-endian bytes or the typed repeated fields).
//! Does not own: external data (resolved by the loader before a tensor reaches here).

use crate::onnx::proto::{DataType, TensorProto};
use half::f16;
use ndarray::{ArrayD, IxDyn};

/// Why a tensor could not be decoded or converted.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    /// The element type is not one trtq computes on.
    #[error("tensor '{name}': element type {dtype} is not supported")]
    UnsupportedType { name: String, dtype: String },
    /// The stored bytes or values do not match the declared shape.
    #[error("tensor '{name}': {len} values stored but shape {dims:?} needs {expected}")]
    SizeMismatch {
        name: String,
        dims: Vec<i64>,
        len: usize,
        expected: usize,
    },
    /// A dimension is negative or the element count overflows.
    #[error("tensor '{name}': invalid shape {dims:?}")]
    BadShape { name: String, dims: Vec<i64> },
    /// The tensor still refers to external data (the loader should have resolved it).
    #[error("tensor '{name}': external data was not loaded")]
    External { name: String },
}

/// A dense tensor of one of the element types trtq computes on.
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    F16(ArrayD<f16>),
    I8(ArrayD<i8>),
    U8(ArrayD<u8>),
    I32(ArrayD<i32>),
    I64(ArrayD<i64>),
    Bool(ArrayD<bool>),
}

/// Applies `$body` to the inner array of any [`Tensor`] variant, binding it to `$a`.
#[macro_export]
macro_rules! tensor_dispatch {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            $crate::graph::Tensor::F32($a) => $body,
            $crate::graph::Tensor::F64($a) => $body,
            $crate::graph::Tensor::F16($a) => $body,
            $crate::graph::Tensor::I8($a) => $body,
            $crate::graph::Tensor::U8($a) => $body,
            $crate::graph::Tensor::I32($a) => $body,
            $crate::graph::Tensor::I64($a) => $body,
            $crate::graph::Tensor::Bool($a) => $body,
        }
    };
}

/// Human name of an ONNX element type number (e.g. `FLOAT`), for messages.
pub fn dtype_name(dtype: i32) -> String {
    DataType::try_from(dtype)
        .map(|d| d.as_str_name().to_string())
        .unwrap_or_else(|_| format!("<{dtype}>"))
}

impl DataType {
    /// The name ONNX uses for this element type (`FLOAT`, `INT64`, ...).
    pub fn as_str_name(&self) -> &'static str {
        match self {
            DataType::Undefined => "UNDEFINED",
            DataType::Float => "FLOAT",
            DataType::Uint8 => "UINT8",
            DataType::Int8 => "INT8",
            DataType::Uint16 => "UINT16",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::String => "STRING",
            DataType::Bool => "BOOL",
            DataType::Float16 => "FLOAT16",
            DataType::Double => "DOUBLE",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Complex64 => "COMPLEX64",
            DataType::Complex128 => "COMPLEX128",
            DataType::Bfloat16 => "BFLOAT16",
            DataType::Float8e4m3fn => "FLOAT8E4M3FN",
            DataType::Float8e4m3fnuz => "FLOAT8E4M3FNUZ",
            DataType::Float8e5m2 => "FLOAT8E5M2",
            DataType::Float8e5m2fnuz => "FLOAT8E5M2FNUZ",
            DataType::Uint4 => "UINT4",
            DataType::Int4 => "INT4",
            DataType::Float4e2m1 => "FLOAT4E2M1",
            DataType::Float8e8m0 => "FLOAT8E8M0",
            DataType::Uint2 => "UINT2",
            DataType::Int2 => "INT2",
            DataType::Float6e2m3 => "FLOAT6E2M3",
            DataType::Float6e3m2 => "FLOAT6E3M2",
        }
    }

    /// Size in bytes of one element, for the fixed-width types trtq stores.
    pub fn byte_size(&self) -> Option<usize> {
        Some(match self {
            DataType::Float | DataType::Int32 | DataType::Uint32 => 4,
            DataType::Double | DataType::Int64 | DataType::Uint64 | DataType::Complex64 => 8,
            DataType::Float16 | DataType::Bfloat16 | DataType::Int16 | DataType::Uint16 => 2,
            DataType::Int8
            | DataType::Uint8
            | DataType::Bool
            | DataType::Float8e4m3fn
            | DataType::Float8e4m3fnuz
            | DataType::Float8e5m2
            | DataType::Float8e5m2fnuz
            | DataType::Float8e8m0 => 1,
            DataType::Complex128 => 16,
            _ => return None,
        })
    }
}

/// Element count of an ONNX shape, or `None` for a negative dim or overflow.
pub fn element_count(dims: &[i64]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| {
        usize::try_from(d).ok().and_then(|d| acc.checked_mul(d))
    })
}

fn le_values<T, const N: usize>(raw: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    raw.chunks_exact(N)
        .map(|c| {
            let mut b = [0u8; N];
            b.copy_from_slice(c);
            from(b)
        })
        .collect()
}

impl Tensor {
    /// The ONNX element type of this tensor.
    pub fn dtype(&self) -> DataType {
        match self {
            Tensor::F32(_) => DataType::Float,
            Tensor::F64(_) => DataType::Double,
            Tensor::F16(_) => DataType::Float16,
            Tensor::I8(_) => DataType::Int8,
            Tensor::U8(_) => DataType::Uint8,
            Tensor::I32(_) => DataType::Int32,
            Tensor::I64(_) => DataType::Int64,
            Tensor::Bool(_) => DataType::Bool,
        }
    }

    /// The shape (dimensions) of this tensor.
    pub fn shape(&self) -> &[usize] {
        tensor_dispatch!(self, a => a.shape())
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        tensor_dispatch!(self, a => a.len())
    }

    /// True when the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes an ONNX tensor (raw data or typed fields). External data must already be loaded.
    pub fn from_proto(t: &TensorProto) -> Result<Tensor, TensorError> {
        let name = t.name.clone().unwrap_or_default();
        if t.data_location == Some(crate::onnx::proto::DataLocation::External as i32) {
            return Err(TensorError::External { name });
        }
        let dtype = t.data_type.unwrap_or(0);
        let expected = element_count(&t.dims).ok_or_else(|| TensorError::BadShape {
            name: name.clone(),
            dims: t.dims.clone(),
        })?;
        let shape = IxDyn(&t.dims.iter().map(|&d| d as usize).collect::<Vec<_>>());
        let raw = t
            .raw_data
            .as_deref()
            .filter(|r| !r.is_empty() || expected == 0);
        let mismatch = |len: usize| TensorError::SizeMismatch {
            name: name.clone(),
            dims: t.dims.clone(),
            len,
            expected,
        };
        macro_rules! build {
            ($variant:ident, $vals:expr) => {{
                let vals: Vec<_> = $vals;
                let len = vals.len();
                ArrayD::from_shape_vec(shape.clone(), vals)
                    .map(Tensor::$variant)
                    .map_err(|_| mismatch(len))
            }};
        }
        match DataType::try_from(dtype) {
            Ok(DataType::Float) => build!(
                F32,
                match raw {
                    Some(r) => le_values(r, f32::from_le_bytes),
                    None => t.float_data.clone(),
                }
            ),
            Ok(DataType::Double) => build!(
                F64,
                match raw {
                    Some(r) => le_values(r, f64::from_le_bytes),
                    None => t.double_data.clone(),
                }
            ),
            Ok(DataType::Float16) => build!(
                F16,
                match raw {
                    Some(r) => le_values(r, |b: [u8; 2]| f16::from_bits(u16::from_le_bytes(b))),
                    None => t
                        .int32_data
                        .iter()
                        .map(|&v| f16::from_bits(v as u16))
                        .collect::<Vec<f16>>(),
                }
            ),
            Ok(DataType::Int8) => build!(
                I8,
                match raw {
                    Some(r) => r.iter().map(|&b| b as i8).collect::<Vec<i8>>(),
                    None => t.int32_data.iter().map(|&v| v as i8).collect(),
                }
            ),
            Ok(DataType::Uint8) => build!(
                U8,
                match raw {
                    Some(r) => r.to_vec(),
                    None => t.int32_data.iter().map(|&v| v as u8).collect::<Vec<u8>>(),
                }
            ),
            Ok(DataType::Int32) => build!(
                I32,
                match raw {
                    Some(r) => le_values(r, i32::from_le_bytes),
                    None => t.int32_data.clone(),
                }
            ),
            Ok(DataType::Int64) => build!(
                I64,
                match raw {
                    Some(r) => le_values(r, i64::from_le_bytes),
                    None => t.int64_data.clone(),
                }
            ),
            Ok(DataType::Bool) => build!(
                Bool,
                match raw {
                    Some(r) => r.iter().map(|&b| b != 0).collect::<Vec<bool>>(),
                    None => t.int32_data.iter().map(|&v| v != 0).collect(),
                }
            ),
            _ => Err(TensorError::UnsupportedType {
                name,
                dtype: dtype_name(dtype),
            }),
        }
    }

    /// Encodes as an ONNX tensor named `name`, data in `raw_data` (little-endian).
    pub fn to_proto(&self, name: &str) -> TensorProto {
        let dims = self.shape().iter().map(|&d| d as i64).collect();
        let raw: Vec<u8> = match self {
            Tensor::F32(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Tensor::F64(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Tensor::F16(a) => a.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect(),
            Tensor::I8(a) => a.iter().map(|&v| v as u8).collect(),
            Tensor::U8(a) => a.iter().copied().collect(),
            Tensor::I32(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Tensor::I64(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Tensor::Bool(a) => a.iter().map(|&v| v as u8).collect(),
        };
        TensorProto {
            dims,
            data_type: Some(self.dtype() as i32),
            name: Some(name.to_string()),
            raw_data: Some(raw.into()),
            ..Default::default()
        }
    }

    /// The values as `i64` (for shape-like tensors of any integer type).
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        match self {
            Tensor::I64(a) => Some(a.iter().copied().collect()),
            Tensor::I32(a) => Some(a.iter().map(|&v| v as i64).collect()),
            Tensor::I8(a) => Some(a.iter().map(|&v| v as i64).collect()),
            Tensor::U8(a) => Some(a.iter().map(|&v| v as i64).collect()),
            Tensor::Bool(a) => Some(a.iter().map(|&v| v as i64).collect()),
            _ => None,
        }
    }

    /// The values as `f32` (any numeric type, converted).
    pub fn to_f32_array(&self) -> ArrayD<f32> {
        match self {
            Tensor::F32(a) => a.clone(),
            Tensor::F64(a) => a.mapv(|v| v as f32),
            Tensor::F16(a) => a.mapv(f32::from),
            Tensor::I8(a) => a.mapv(f32::from),
            Tensor::U8(a) => a.mapv(f32::from),
            Tensor::I32(a) => a.mapv(|v| v as f32),
            Tensor::I64(a) => a.mapv(|v| v as f32),
            Tensor::Bool(a) => a.mapv(|v| v as u8 as f32),
        }
    }

    /// The float32 array, when this is an `F32` tensor.
    pub fn as_f32(&self) -> Option<&ArrayD<f32>> {
        match self {
            Tensor::F32(a) => Some(a),
            _ => None,
        }
    }

    /// A scalar-or-1-D `i64` tensor from values.
    pub fn from_i64s(values: Vec<i64>) -> Tensor {
        let n = values.len();
        Tensor::I64(ArrayD::from_shape_vec(IxDyn(&[n]), values).expect("1-D shape matches length"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_round_trip_every_type() {
        let cases = vec![
            Tensor::F32(
                ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1.0, -2.5, 3.0, f32::MAX]).unwrap(),
            ),
            Tensor::F16(
                ArrayD::from_shape_vec(IxDyn(&[2]), vec![f16::from_f32(0.5), f16::MIN]).unwrap(),
            ),
            Tensor::I8(ArrayD::from_shape_vec(IxDyn(&[3]), vec![-128, 0, 127]).unwrap()),
            Tensor::I64(ArrayD::from_shape_vec(IxDyn(&[]), vec![-7]).unwrap()),
            Tensor::Bool(ArrayD::from_shape_vec(IxDyn(&[2]), vec![true, false]).unwrap()),
        ];
        for t in cases {
            let back = Tensor::from_proto(&t.to_proto("x")).unwrap();
            assert_eq!(back, t);
        }
    }

    #[test]
    fn typed_fields_and_size_mismatch() {
        let p = TensorProto {
            dims: vec![2],
            data_type: Some(DataType::Int64 as i32),
            int64_data: vec![4, 5],
            ..Default::default()
        };
        assert_eq!(
            Tensor::from_proto(&p).unwrap().to_i64_vec(),
            Some(vec![4, 5])
        );
        let bad = TensorProto { dims: vec![3], ..p };
        assert!(matches!(
            Tensor::from_proto(&bad),
            Err(TensorError::SizeMismatch { .. })
        ));
        let neg = TensorProto {
            dims: vec![-1],
            data_type: Some(1),
            ..Default::default()
        };
        assert!(matches!(
            Tensor::from_proto(&neg),
            Err(TensorError::BadShape { .. })
        ));
    }
}
