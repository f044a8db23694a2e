//! Tensor data types as TensorRT writes them in a layer report.
//!
//! Owns the mapping from TensorRT's format strings ("Row major linear FP32", "Thirty-two wide channel
//! vectorized row major Int8 format", "Channel major FP16 format where channel % 8 == 0") and the bare
//! Myelin/TensorRT 11 names ("Half", "Int8", "Float") to one [`DataType`]. It does not interpret
//! memory layouts beyond keeping the original string.

use serde::Serialize;

/// Element type of a tensor in an engine layer, independent of TensorRT version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// 32-bit float (TensorRT "FP32", "Float").
    Float,
    /// 16-bit float (TensorRT "FP16", "Half").
    Half,
    /// bfloat16.
    BFloat16,
    /// 8-bit float (E4M3).
    Fp8,
    /// Signed 8-bit integer (INT8 quantized data).
    Int8,
    /// Unsigned 8-bit integer.
    UInt8,
    /// Signed 4-bit integer.
    Int4,
    /// 32-bit integer.
    Int32,
    /// 64-bit integer.
    Int64,
    /// Boolean.
    Bool,
    /// A type word trtq does not know; the original string is kept.
    Other(String),
}

impl DataType {
    /// Reads the data type out of a TensorRT format/datatype string (long or bare form).
    pub fn from_trt(text: &str) -> DataType {
        text.split(|c: char| !c.is_ascii_alphanumeric())
            .find_map(Self::from_word)
            .unwrap_or_else(|| DataType::Other(text.trim().to_string()))
    }

    fn from_word(word: &str) -> Option<DataType> {
        let found = match word.to_ascii_lowercase().as_str() {
            "fp32" | "float" | "float32" => DataType::Float,
            "fp16" | "half" | "float16" => DataType::Half,
            "bf16" | "bfloat16" => DataType::BFloat16,
            "fp8" | "e4m3" | "float8" => DataType::Fp8,
            "int8" => DataType::Int8,
            "uint8" => DataType::UInt8,
            "int4" => DataType::Int4,
            "int32" => DataType::Int32,
            "int64" => DataType::Int64,
            "bool" => DataType::Bool,
            _ => return None,
        };
        Some(found)
    }

    /// True for INT8 (the quantized type whose presence marks an INT8 layer).
    pub fn is_int8(&self) -> bool {
        matches!(self, DataType::Int8)
    }

    /// True for floating-point types (FP32, FP16, BF16; not FP8, which is a quantized type).
    pub fn is_float(&self) -> bool {
        matches!(self, DataType::Float | DataType::Half | DataType::BFloat16)
    }

    /// Short display name ("FP32", "FP16", "Int8", ...).
    pub fn short_name(&self) -> &str {
        match self {
            DataType::Float => "FP32",
            DataType::Half => "FP16",
            DataType::BFloat16 => "BF16",
            DataType::Fp8 => "FP8",
            DataType::Int8 => "Int8",
            DataType::UInt8 => "UInt8",
            DataType::Int4 => "Int4",
            DataType::Int32 => "Int32",
            DataType::Int64 => "Int64",
            DataType::Bool => "Bool",
            DataType::Other(text) => text,
        }
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.short_name())
    }
}

#[cfg(test)]
mod tests {
    use super::DataType;

    #[test]
    fn long_format_strings_name_their_dtype() {
        let cases = [
            ("Row major linear FP32", DataType::Float),
            (
                "Channel major FP16 format where channel % 8 == 0",
                DataType::Half,
            ),
            (
                "Thirty-two wide channel vectorized row major Int8 format",
                DataType::Int8,
            ),
            (
                "Four wide channel vectorized row major Int8 format",
                DataType::Int8,
            ),
            ("Row major linear BOOL", DataType::Bool),
            ("Row major linear Int32", DataType::Int32),
            ("Half", DataType::Half),
            ("Int8", DataType::Int8),
            ("Float", DataType::Float),
        ];
        for (text, expected) in cases {
            assert_eq!(DataType::from_trt(text), expected, "{text}");
        }
    }

    #[test]
    fn unknown_word_is_kept_verbatim() {
        assert_eq!(
            DataType::from_trt("Row major linear Mystery"),
            DataType::Other("Row major linear Mystery".into())
        );
    }
}
