//! Read-only questions about a graph that patterns and Q/DQ insertion both ask: is this value a
//! constant, what are its bytes, what is its static shape.
//!
//! Owns: [`GraphQuery`], an extension trait over [`Graph`].
//! Does not own: editing, shape inference (the normalize stage writes the value_info read here).

use crate::graph::{Attributes, Graph};
use crate::onnx::proto::{TensorProto, tensor_shape_proto::dimension, type_proto};

/// Constant and shape lookups over a [`Graph`].
pub trait GraphQuery {
    /// The constant value named `value`: an initializer, or the `value` of a `Constant` node.
    fn const_tensor(&self, value: &str) -> Option<&TensorProto>;
    /// True when `value` is a constant (see [`GraphQuery::const_tensor`]).
    fn is_const(&self, value: &str) -> bool {
        self.const_tensor(value).is_some()
    }
    /// The static shape of `value` when every dimension is known (constants, or value_info
    /// written by shape inference).
    fn static_shape(&self, value: &str) -> Option<Vec<i64>>;
}

impl GraphQuery for Graph {
    fn const_tensor(&self, value: &str) -> Option<&TensorProto> {
        if let Some(t) = self.initializer(value) {
            return Some(t);
        }
        let node = self.get(self.producer(value)?)?;
        (node.is_onnx() && node.op_type == "Constant")
            .then(|| node.attr_t("value"))
            .flatten()
    }

    fn static_shape(&self, value: &str) -> Option<Vec<i64>> {
        if let Some(t) = self.const_tensor(value) {
            return Some(t.dims.clone());
        }
        let ty = self.value_info(value)?.r#type.as_ref()?;
        let Some(type_proto::Value::TensorType(tt)) = &ty.value else {
            return None;
        };
        tt.shape
            .as_ref()?
            .dim
            .iter()
            .map(|d| match d.value {
                Some(dimension::Value::DimValue(v)) if v >= 0 => Some(v),
                _ => None,
            })
            .collect()
    }
}
