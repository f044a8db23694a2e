//! Opset upgrade: rewrites every op of trtq's op set whose signature or meaning changed between
//! its opset and the target (13..=21), and canonicalizes forms later stages expect.
//!
//! Owns: attribute → input moves (Clip min/max, Squeeze/Unsqueeze/Split/ReduceSum axes and
//! split, Reduce* axes at 18, Pad pads/value, Slice starts/ends/axes, Reshape shape), removal of
//! legacy attributes (`consumed_inputs`, `is_test`, `spatial`), legacy `broadcast`/`axis`
//! broadcasting, Softmax's pre-13 2-D coercion, BatchNormalization's removed outputs,
//! Upsample → Resize, Resize-10 → Resize, Cast's string `to`, Concat's default axis,
//! Dropout → Identity (inference), and Sum of one or two inputs → Identity / Add.
//! An op it cannot upgrade is an error naming the node and op.
//! Does not own: shape inference (it reads ranks that a first inference pass recorded) or folding.

use super::shape::ValueType;
use super::{Attributes, GraphError, Model, Node, NodeId, Tensor, attr};
use crate::onnx::proto::DataType;

/// Lowest and highest opset trtq normalizes to.
pub const TARGET_RANGE: std::ops::RangeInclusive<i64> = 13..=21;

/// Smallest IR version that may import `opset` of the default domain.
pub fn ir_version_for(opset: i64) -> i64 {
    match opset {
        ..=8 => 3,
        9 => 4,
        10 => 5,
        11 => 6,
        12..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

/// Upgrades `model` to `target` in place; `types` gives the known type of a value (for ranks).
/// Returns how many nodes were rewritten.
pub fn upgrade_opset(
    model: &mut Model,
    target: i64,
    types: &dyn Fn(&str) -> Option<ValueType>,
) -> Result<usize, GraphError> {
    let from = model.opset();
    if !TARGET_RANGE.contains(&target) {
        return Err(GraphError::InvalidNode {
            node: "model".into(),
            op: "opset".into(),
            message: format!("target opset {target} is outside the supported range 13..=21"),
        });
    }
    if from > target {
        return Err(GraphError::InvalidNode {
            node: "model".into(),
            op: "opset".into(),
            message: format!(
                "the model's opset {from} is newer than the target {target}; trtq does not downgrade"
            ),
        });
    }
    let mut up = Upgrader {
        model,
        from,
        target,
        types,
        rewritten: 0,
    };
    let ids: Vec<NodeId> = up.model.graph.node_ids().collect();
    for id in ids {
        if up.model.graph.get(id).is_some_and(Node::is_onnx) {
            up.node(id)?;
        }
    }
    let rewritten = up.rewritten;
    model.set_opset(target);
    let ir = model
        .rest
        .ir_version
        .unwrap_or(0)
        .max(ir_version_for(target));
    model.rest.ir_version = Some(ir);
    Ok(rewritten)
}

struct Upgrader<'a> {
    model: &'a mut Model,
    from: i64,
    target: i64,
    types: &'a dyn Fn(&str) -> Option<ValueType>,
    rewritten: usize,
}

impl Upgrader<'_> {
    fn err(&self, node: &Node, message: impl Into<String>) -> GraphError {
        GraphError::InvalidNode {
            node: node.name.clone(),
            op: node.op_type.clone(),
            message: message.into(),
        }
    }

    /// Adds a constant initializer named after `node` and returns its name.
    fn constant(&mut self, node: &Node, what: &str, t: Tensor) -> String {
        let name = self
            .model
            .graph
            .unique_name(&format!("{}_{what}", node.name));
        self.model.graph.set_initializer(t.to_proto(&name), &name);
        name
    }

    /// Replaces node `id` by `new` (same name, same outputs) in one step.
    fn replace(&mut self, id: NodeId, new: Node) -> Result<NodeId, GraphError> {
        self.model.graph.remove_node(id);
        self.rewritten += 1;
        self.model.graph.add_node(new)
    }

    fn rank(&self, value: &str) -> Option<usize> {
        (self.types)(value).and_then(|t| t.rank())
    }

    fn node(&mut self, id: NodeId) -> Result<(), GraphError> {
        let mut n = self.model.graph.node(id).clone();
        let before = n.clone();
        let (from, target) = (self.from, self.target);
        for legacy in ["consumed_inputs", "is_test"] {
            n.remove_attr(legacy);
        }
        match n.op_type.as_str() {
            "BatchNormalization" => {
                if n.remove_attr("spatial").and_then(|a| a.i) == Some(0) {
                    return Err(self.err(
                        &n,
                        "spatial=0 (per-activation statistics) cannot be upgraded",
                    ));
                }
                for extra in n.outputs.iter().skip(1).filter(|o| !o.is_empty()) {
                    if !self.model.graph.consumers(extra).is_empty()
                        || self.model.graph.is_output(extra)
                    {
                        return Err(self.err(&n, format!("training output '{extra}' is used; only inference graphs are supported")));
                    }
                }
                n.outputs.truncate(1);
            }
            "Dropout" => {
                if let Some(mask) = n.outputs.get(1).filter(|m| !m.is_empty())
                    && (!self.model.graph.consumers(mask).is_empty()
                        || self.model.graph.is_output(mask))
                {
                    return Err(self.err(
                        &n,
                        "the Dropout mask output is used; only inference graphs are supported",
                    ));
                }
                n = Node {
                    op_type: "Identity".into(),
                    inputs: n.inputs[..1].to_vec(),
                    outputs: n.outputs[..1].to_vec(),
                    attributes: vec![],
                    ..n
                };
            }
            "Sum" if n.inputs.len() == 1 => n.op_type = "Identity".into(),
            "Sum" if n.inputs.len() == 2 => n.op_type = "Add".into(),
            "PRelu"
                if from < 7
                    && self.rank(&n.inputs[1]) == Some(1)
                    && self.rank(&n.inputs[0]).is_some_and(|r| r > 2) =>
            {
                // PRelu-6 applies a [C] slope along the channel axis.
                self.align_at_axis(&mut n, 1)?
            }
            "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Gemm" if from < 7 => {
                self.legacy_broadcast(&mut n)?
            }
            "Clip" if from < 11 => {
                let dtype = (self.types)(&n.inputs[0]).map_or(DataType::Float as i32, |t| t.dtype);
                let lo = n.remove_attr("min").and_then(|a| a.f);
                let hi = n.remove_attr("max").and_then(|a| a.f);
                let scalar = |v: f32| match dtype {
                    d if d == DataType::Float16 as i32 => {
                        Tensor::F16(ndarray::arr0(half::f16::from_f32(v)).into_dyn())
                    }
                    d if d == DataType::Double as i32 => {
                        Tensor::F64(ndarray::arr0(v as f64).into_dyn())
                    }
                    _ => Tensor::F32(ndarray::arr0(v).into_dyn()),
                };
                let lo = lo
                    .map(|v| self.constant(&n, "min", scalar(v)))
                    .unwrap_or_default();
                let hi = hi.map(|v| self.constant(&n, "max", scalar(v)));
                n.inputs.push(lo);
                if let Some(hi) = hi {
                    n.inputs.push(hi);
                }
            }
            "Squeeze" | "Unsqueeze" if from < 13 => self.attr_to_input(&mut n, "axes", 1)?,
            "ReduceSum" if from < 13 => self.attr_to_input(&mut n, "axes", 1)?,
            "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1" | "ReduceL2"
            | "ReduceSumSquare" | "ReduceLogSum" | "ReduceLogSumExp"
                if from < 18 && target >= 18 =>
            {
                self.attr_to_input(&mut n, "axes", 1)?
            }
            "Split" if from < 13 => self.attr_to_input(&mut n, "split", 1)?,
            "Pad" if from < 11 => {
                self.attr_to_input(&mut n, "pads", 1)?;
                if let Some(v) = n
                    .remove_attr("value")
                    .and_then(|a| a.f)
                    .filter(|v| *v != 0.0)
                {
                    let c = self.constant(&n, "value", Tensor::F32(ndarray::arr0(v).into_dyn()));
                    n.inputs.push(c);
                }
            }
            "Slice" if from < 10 => {
                let starts = n
                    .remove_attr("starts")
                    .map(|a| a.ints)
                    .ok_or_else(|| self.err(&n, "missing 'starts'"))?;
                let ends = n
                    .remove_attr("ends")
                    .map(|a| a.ints)
                    .ok_or_else(|| self.err(&n, "missing 'ends'"))?;
                let axes = n.remove_attr("axes").map(|a| a.ints);
                let s = self.constant(&n, "starts", Tensor::from_i64s(starts));
                let e = self.constant(&n, "ends", Tensor::from_i64s(ends));
                n.inputs.extend([s, e]);
                if let Some(axes) = axes {
                    let a = self.constant(&n, "axes", Tensor::from_i64s(axes));
                    n.inputs.push(a);
                }
            }
            "Reshape" if from < 5 => self.attr_to_input(&mut n, "shape", 1)?,
            "Concat" if from < 4 && n.attr("axis").is_none() => n.set_attr(attr::int("axis", 1)),
            "Cast" if from < 6 => {
                if let Some(name) = n.attr_s("to").filter(|_| n.attr_i("to").is_none()) {
                    let to = cast_name_to_type(&name)
                        .ok_or_else(|| self.err(&n, format!("unknown Cast target '{name}'")))?;
                    n.set_attr(attr::int("to", to as i64));
                }
            }
            "Softmax" | "LogSoftmax" | "Hardmax" if from < 13 => {
                return self.softmax_coercion(id, n);
            }
            "Upsample" => {
                let mode = n.attr_s("mode").unwrap_or_else(|| "nearest".into());
                let scales = match n.attr_floats("scales") {
                    Some(s) => self.constant(
                        &n,
                        "scales",
                        Tensor::F32(ndarray::Array1::from(s.to_vec()).into_dyn()),
                    ),
                    None => n
                        .input(1)
                        .ok_or_else(|| self.err(&n, "no scales"))?
                        .to_string(),
                };
                n = resize_node(n, scales, &mode);
            }
            "Resize" if from < 11 => {
                let mode = n.attr_s("mode").unwrap_or_else(|| "nearest".into());
                let scales = n
                    .input(1)
                    .ok_or_else(|| self.err(&n, "no scales"))?
                    .to_string();
                n = resize_node(n, scales, &mode);
            }
            _ => {}
        }
        if n != before {
            self.replace(id, n)?;
        }
        Ok(())
    }

    /// Moves an INTS attribute to an int64 initializer input at `slot` (absent stays absent).
    fn attr_to_input(&mut self, n: &mut Node, name: &str, slot: usize) -> Result<(), GraphError> {
        if let Some(a) = n.remove_attr(name) {
            let c = self.constant(n, name, Tensor::from_i64s(a.ints));
            if n.inputs.len() > slot {
                return Err(self.err(n, format!("has both a '{name}' attribute and input")));
            }
            n.inputs.resize(slot, String::new());
            n.inputs.push(c);
        }
        Ok(())
    }

    /// Opset < 7 `broadcast=1, axis=k`: B aligns with A at axis k; make it numpy-broadcastable.
    fn legacy_broadcast(&mut self, n: &mut Node) -> Result<(), GraphError> {
        let bcast = n.remove_attr("broadcast").and_then(|a| a.i).unwrap_or(0);
        let axis = n.remove_attr("axis").and_then(|a| a.i);
        if bcast == 0 || n.op_type == "Gemm" {
            return Ok(());
        }
        match axis {
            Some(axis) => self.align_at_axis(n, axis),
            None => Ok(()), // suffix alignment = numpy broadcasting
        }
    }

    /// Makes input 1 broadcast against input 0 starting at `axis` (trailing dims of 1 added).
    fn align_at_axis(&mut self, n: &mut Node, axis: i64) -> Result<(), GraphError> {
        let (Some(ra), Some(rb)) = (self.rank(&n.inputs[0]), self.rank(&n.inputs[1])) else {
            return Err(self.err(
                n,
                "legacy broadcast with 'axis' needs the ranks of both inputs",
            ));
        };
        let axis = if axis < 0 { axis + ra as i64 } else { axis } as usize;
        let trailing = ra
            .checked_sub(axis + rb)
            .ok_or_else(|| self.err(n, "legacy broadcast axis out of range"))?;
        if trailing > 0 {
            let axes: Vec<i64> = (rb..rb + trailing).map(|a| a as i64).collect();
            let axes = self.constant(n, "bcast_axes", Tensor::from_i64s(axes));
            let out = self
                .model
                .graph
                .unique_name(&format!("{}_bcast", n.inputs[1]));
            let un = Node::new(
                self.model
                    .graph
                    .unique_name(&format!("{}_unsqueeze", n.name)),
                "Unsqueeze",
                &[&n.inputs[1], &axes],
                &[&out],
            );
            self.model.graph.add_node(un)?;
            n.inputs[1] = out;
        }
        Ok(())
    }

    /// Softmax before opset 13 coerces its input to 2-D at `axis`; from 13 it works on one axis.
    fn softmax_coercion(&mut self, id: NodeId, mut n: Node) -> Result<(), GraphError> {
        let axis = n.remove_attr("axis").and_then(|a| a.i).unwrap_or(1);
        let rank = self.rank(&n.inputs[0]);
        let last = match rank {
            Some(r) => (if axis < 0 { axis + r as i64 } else { axis }) == r as i64 - 1,
            None => axis == -1,
        };
        if last {
            n.set_attr(attr::int("axis", -1));
            self.replace(id, n)?;
            return Ok(());
        }
        // Flatten(axis) → op(axis=-1) → Reshape(back to Shape(x)).
        let g = &mut self.model.graph;
        let x = n.inputs[0].clone();
        let y = n.outputs[0].clone();
        let flat = g.unique_name(&format!("{x}_flat2d"));
        let inner = g.unique_name(&format!("{y}_2d"));
        let shape = g.unique_name(&format!("{x}_shape"));
        let name = n.name.clone();
        let flatten = Node::new(
            g.unique_name(&format!("{name}_flatten")),
            "Flatten",
            &[&x],
            &[&flat],
        )
        .with_attr(attr::int("axis", axis));
        let shape_node = Node::new(
            g.unique_name(&format!("{name}_shape")),
            "Shape",
            &[&x],
            &[&shape],
        );
        let reshape = Node::new(
            g.unique_name(&format!("{name}_reshape")),
            "Reshape",
            &[&inner, &shape],
            &[&y],
        );
        g.remove_node(id);
        let mut op = n;
        op.inputs = vec![flat];
        op.outputs = vec![inner];
        op.set_attr(attr::int("axis", -1));
        for node in [flatten, shape_node, op, reshape] {
            g.add_node(node)?;
        }
        self.rewritten += 1;
        Ok(())
    }
}

/// Builds the opset-11+ Resize equivalent of Upsample / Resize-10 (asymmetric coordinates).
fn resize_node(n: Node, scales: String, mode: &str) -> Node {
    let mode = if mode == "bilinear" || mode == "linear" {
        "linear"
    } else {
        mode
    };
    let mut r = Node {
        op_type: "Resize".into(),
        inputs: vec![n.inputs[0].clone(), String::new(), scales],
        attributes: vec![],
        ..n
    };
    r.set_attr(attr::string("mode", mode));
    r.set_attr(attr::string("coordinate_transformation_mode", "asymmetric"));
    if mode == "nearest" {
        r.set_attr(attr::string("nearest_mode", "floor"));
    }
    r
}

fn cast_name_to_type(name: &str) -> Option<DataType> {
    Some(match name.to_ascii_uppercase().as_str() {
        "FLOAT" => DataType::Float,
        "FLOAT16" => DataType::Float16,
        "DOUBLE" => DataType::Double,
        "INT8" => DataType::Int8,
        "UINT8" => DataType::Uint8,
        "INT16" => DataType::Int16,
        "INT32" => DataType::Int32,
        "INT64" => DataType::Int64,
        "BOOL" => DataType::Bool,
        _ => return None,
    })
}
