//! Node attributes: typed reads of `AttributeProto` and constructors for new ones.
//!
//! Owns: the little API every stage uses to read `axis`, `pads`, `value`, ... from a node.
//! Does not own: attribute semantics per op (shape inference and the executors interpret them).

use crate::onnx::proto::{AttributeProto, AttributeType, TensorProto};

/// Makes an INT attribute.
pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

/// Makes an INTS attribute.
pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// Makes a FLOAT attribute.
pub fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

/// Makes a STRING attribute.
pub fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

/// Makes a TENSOR attribute.
pub fn tensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Tensor as i32),
        t: Some(t),
        ..Default::default()
    }
}

/// Typed reads over a node's attribute list.
pub trait Attributes {
    /// The attribute list.
    fn attr_list(&self) -> &[AttributeProto];

    /// The attribute named `name`, if present.
    fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.attr_list()
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }
    /// An INT attribute.
    fn attr_i(&self, name: &str) -> Option<i64> {
        self.attr(name).and_then(|a| a.i)
    }
    /// An INT attribute or a default.
    fn attr_i_or(&self, name: &str, default: i64) -> i64 {
        self.attr_i(name).unwrap_or(default)
    }
    /// A FLOAT attribute.
    fn attr_f(&self, name: &str) -> Option<f32> {
        self.attr(name).and_then(|a| a.f)
    }
    /// A FLOAT attribute or a default.
    fn attr_f_or(&self, name: &str, default: f32) -> f32 {
        self.attr_f(name).unwrap_or(default)
    }
    /// An INTS attribute (`None` when absent).
    fn attr_ints(&self, name: &str) -> Option<&[i64]> {
        self.attr(name).map(|a| a.ints.as_slice())
    }
    /// A FLOATS attribute (`None` when absent).
    fn attr_floats(&self, name: &str) -> Option<&[f32]> {
        self.attr(name).map(|a| a.floats.as_slice())
    }
    /// A STRING attribute, as UTF-8 (lossy).
    fn attr_s(&self, name: &str) -> Option<String> {
        self.attr(name)
            .and_then(|a| a.s.as_deref())
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }
    /// A TENSOR attribute.
    fn attr_t(&self, name: &str) -> Option<&TensorProto> {
        self.attr(name).and_then(|a| a.t.as_ref())
    }
}
