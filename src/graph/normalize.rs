//! Normalization, the first stage of `trtq build`: concrete input shapes, opset upgrade, shape
//! and dtype inference, constant folding and dead-node elimination.
//!
//! Owns: the forward walk that infers every value's type and, where all inputs of a node are
//! constants (or a `Shape` of a static shape), computes its outputs with the evaluator it is
//! given and replaces the node by initializers; the [`NormalizeReport`] of what changed.
//! Does not own: operator semantics (the evaluator is the executor's kernel entry, passed in so
//! that the IR does not depend on an executor) or per-op shape rules (`shape`).

use super::shape::{ValueType, infer_node};
use super::upgrade::upgrade_opset;
use super::{GraphError, Model, Node, NodeId, Tensor};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Computes a node's outputs from constant inputs (the CPU executor's kernel entry).
pub type Evaluator<'a> = &'a dyn Fn(&Node, &[Option<&Tensor>]) -> Result<Vec<Tensor>, String>;

/// What normalization should do.
#[derive(Clone, Debug)]
pub struct NormalizeOptions {
    /// Target opset of the default domain.
    pub opset: i64,
    /// Concrete shapes for graph inputs, by name (resolve dynamic dims).
    pub input_shapes: BTreeMap<String, Vec<i64>>,
}

/// What normalization changed, for the run summary and `trtq inspect`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NormalizeReport {
    /// Opset before.
    pub from_opset: i64,
    /// Opset after.
    pub to_opset: i64,
    /// Nodes rewritten by the opset upgrade.
    pub upgraded_nodes: usize,
    /// Nodes before normalization.
    pub nodes_before: usize,
    /// Nodes after normalization.
    pub nodes_after: usize,
    /// Nodes replaced by constants, per op type.
    pub folded: BTreeMap<String, usize>,
    /// Nodes removed because nothing reads their outputs, per op type.
    pub dead: BTreeMap<String, usize>,
    /// Values whose type stayed unknown.
    pub unknown_types: Vec<String>,
    /// Constant subgraphs the evaluator could not compute (kept as nodes), with why.
    pub not_folded: Vec<String>,
}

/// Ops never folded: quantization structure is kept as the user wrote it.
const NEVER_FOLD: &[&str] = &[
    "QuantizeLinear",
    "DequantizeLinear",
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
];

/// Initializers up to this many elements are decoded for shape inference (shape-like values).
const SMALL_CONST: usize = 4096;

/// Normalizes `model` in place.
pub fn normalize(
    model: &mut Model,
    opts: &NormalizeOptions,
    eval: Evaluator,
) -> Result<NormalizeReport, GraphError> {
    let mut report = NormalizeReport {
        from_opset: model.opset(),
        to_opset: opts.opset,
        nodes_before: model.graph.node_count(),
        ..Default::default()
    };
    apply_input_shapes(model, &opts.input_shapes)?;
    // Pass 1 (tolerant): types as far as they go, so the upgrade knows ranks.
    let first = propagate(model, None, false)?;
    report.upgraded_nodes = upgrade_opset(model, opts.opset, &|v| first.types.get(v).cloned())?;
    // Pass 2 (strict): types and constants of the upgraded graph.
    let done = propagate(model, Some(eval), true)?;
    report.not_folded = done.not_folded;
    let g = &mut model.graph;
    // Folded nodes become initializers where something still reads their outputs.
    for id in &done.folded {
        let node = g.node(*id).clone();
        *report.folded.entry(node.op_type.clone()).or_default() += 1;
        g.remove_node(*id);
        for o in node.outputs.iter().filter(|o| !o.is_empty()) {
            if let Some(t) = done.consts.get(o) {
                g.set_initializer(t.to_proto(o), o);
                g.remove_value_info(o);
            }
        }
    }
    // Identity passes its input through: readers read the input directly (graph outputs keep
    // their producer so the model's interface does not change).
    let identities: Vec<NodeId> = g
        .node_ids()
        .filter(|&id| g.node(id).op_type == "Identity" && g.node(id).is_onnx())
        .collect();
    for id in identities {
        let n = g.node(id);
        let (Some(input), Some(output)) =
            (n.input(0).map(str::to_string), n.outputs.first().cloned())
        else {
            continue;
        };
        // Graph outputs keep their producer; values read from inside a subgraph keep their name.
        let read_by_name = g
            .consumers(&output)
            .iter()
            .all(|&c| g.node(c).inputs.contains(&output));
        if g.is_output(&output) || !read_by_name {
            continue;
        }
        g.replace_all_uses(&output, &input);
        g.remove_node(id);
        g.remove_value_info(&output);
        *report.dead.entry("Identity".into()).or_default() += 1;
    }
    let kinds: HashMap<String, String> = g
        .node_ids()
        .map(|id| (g.node(id).name.clone(), g.node(id).op_type.clone()))
        .collect();
    for name in g.remove_dead() {
        *report
            .dead
            .entry(kinds.get(&name).cloned().unwrap_or_default())
            .or_default() += 1;
    }
    // Record inferred types of intermediate values and graph outputs.
    let produced: Vec<String> = g
        .node_ids()
        .flat_map(|id| g.node(id).outputs.clone())
        .filter(|o| !o.is_empty())
        .collect();
    for v in produced {
        match done.types.get(&v) {
            Some(t) => g.set_value_info(t.to_value_info(&v)),
            None => report.unknown_types.push(v),
        }
    }
    g.validate()?;
    report.nodes_after = g.node_count();
    Ok(report)
}

/// Sets concrete shapes on graph inputs; a name that is no graph input, a rank mismatch or a
/// conflicting fixed dim is an error.
fn apply_input_shapes(
    model: &mut Model,
    shapes: &BTreeMap<String, Vec<i64>>,
) -> Result<(), GraphError> {
    let g = &mut model.graph;
    for (name, dims) in shapes {
        let bad = |message: String| GraphError::InvalidNode {
            node: format!("graph input '{name}'"),
            op: "inputs".into(),
            message,
        };
        if !g.is_input(name) {
            let inputs: Vec<String> = g
                .inputs
                .iter()
                .filter_map(|i| i.name.clone())
                .filter(|n| g.is_input(n))
                .collect();
            return Err(bad(format!(
                "no such graph input (inputs: {})",
                inputs.join(", ")
            )));
        }
        let vi = g.value_info(name).cloned().unwrap_or_default();
        let old =
            ValueType::from_value_info(&vi).ok_or_else(|| bad("is not a tensor input".into()))?;
        if let Some(old_dims) = &old.shape {
            if old_dims.len() != dims.len() {
                return Err(bad(format!(
                    "config gives rank {} but the model declares rank {}",
                    dims.len(),
                    old_dims.len()
                )));
            }
            for (i, (o, &d)) in old_dims.iter().zip(dims).enumerate() {
                if let Some(k) = o.known().filter(|&k| k != d) {
                    return Err(bad(format!(
                        "config gives dim {i} = {d} but the model fixes it to {k}"
                    )));
                }
            }
        }
        if dims.iter().any(|&d| d <= 0) {
            return Err(bad(format!("config shape {dims:?} has a non-positive dim")));
        }
        let mut new = ValueType::known(old.dtype, dims).to_value_info(name);
        new.doc_string = vi.doc_string.clone();
        new.metadata_props = vi.metadata_props.clone();
        g.set_value_info(new);
    }
    Ok(())
}

struct Propagated {
    types: HashMap<String, ValueType>,
    consts: HashMap<String, Tensor>,
    folded: Vec<NodeId>,
    not_folded: Vec<String>,
}

/// Walks the graph in topological order inferring types; with an evaluator, also folds.
fn propagate(
    model: &Model,
    eval: Option<Evaluator>,
    strict: bool,
) -> Result<Propagated, GraphError> {
    let g = &model.graph;
    let mut p = Propagated {
        types: HashMap::new(),
        consts: HashMap::new(),
        folded: Vec::new(),
        not_folded: Vec::new(),
    };
    for (name, t) in g.initializers() {
        p.types.insert(
            name.clone(),
            ValueType::known(t.data_type.unwrap_or(0), &t.dims),
        );
    }
    for i in &g.inputs {
        if let (Some(name), Some(t)) = (&i.name, ValueType::from_value_info(i))
            && !p.types.contains_key(name)
        {
            p.types.insert(name.clone(), t);
        }
    }
    let mut unsupported: BTreeSet<String> = BTreeSet::new();
    let mut first_error: Option<GraphError> = None;
    for id in g.topo_order()? {
        let node = g.node(id);
        for v in node.inputs.iter().filter(|v| !v.is_empty()) {
            let small = g.initializer(v).filter(|t| {
                super::tensor::element_count(&t.dims).is_some_and(|n| n <= SMALL_CONST)
            });
            let all_const = eval.is_some()
                && node
                    .inputs
                    .iter()
                    .filter(|i| !i.is_empty())
                    .all(|i| p.consts.contains_key(i) || g.initializer(i).is_some());
            if !p.consts.contains_key(v)
                && let Some(t) = small.or_else(|| g.initializer(v).filter(|_| all_const))
            {
                p.consts.insert(v.clone(), Tensor::from_proto(t)?);
            }
        }
        let in_types: Vec<Option<ValueType>> = node
            .inputs
            .iter()
            .map(|v| p.types.get(v).cloned())
            .collect();
        let in_consts: Vec<Option<&Tensor>> = node.inputs.iter().map(|v| p.consts.get(v)).collect();
        if let Some(eval) = eval
            && let Some(outs) = try_fold(node, &in_types, &in_consts, eval, &mut p.not_folded)
        {
            for (o, t) in node.outputs.iter().zip(outs) {
                if !o.is_empty() {
                    p.types.insert(o.clone(), ValueType::of_tensor(&t));
                    p.consts.insert(o.clone(), t);
                }
            }
            if !node.outputs.iter().any(|o| g.is_output(o)) {
                p.folded.push(id);
            }
            continue;
        }
        match infer_node(node, &in_types, &in_consts) {
            Ok(outs) => {
                for (o, t) in node.outputs.iter().zip(outs) {
                    if !o.is_empty() {
                        p.types.insert(o.clone(), t);
                    }
                }
            }
            Err(GraphError::UnsupportedOp { op, .. }) if strict => {
                unsupported.insert(format!("{op} (node '{}')", node.name));
            }
            Err(e) if strict => {
                first_error.get_or_insert(e);
            }
            Err(_) => {}
        }
    }
    if !unsupported.is_empty() {
        let list: Vec<String> = unsupported.into_iter().collect();
        return Err(GraphError::UnsupportedOp {
            node: "model".into(),
            op: list.join(", "),
            hint: " (outside trtq's op set; see DESIGN.md)".into(),
        });
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(p)
}

/// Folds `node` when it computes from constants only; `None` to keep it as a node.
fn try_fold(
    node: &Node,
    in_types: &[Option<ValueType>],
    in_consts: &[Option<&Tensor>],
    eval: Evaluator,
    not_folded: &mut Vec<String>,
) -> Option<Vec<Tensor>> {
    if !node.is_onnx()
        || NEVER_FOLD.contains(&node.op_type.as_str())
        || node
            .attributes
            .iter()
            .any(|a| a.g.is_some() || !a.graphs.is_empty())
    {
        return None;
    }
    if node.op_type == "Shape" {
        let dims = in_types.first()?.as_ref()?.static_dims()?;
        let r = dims.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let start = clamp(super::Attributes::attr_i_or(node, "start", 0));
        let end = clamp(super::Attributes::attr_i_or(node, "end", r));
        return Some(vec![Tensor::from_i64s(
            dims.get(start..end.max(start)).unwrap_or(&[]).to_vec(),
        )]);
    }
    let all_const = node
        .inputs
        .iter()
        .zip(in_consts)
        .all(|(name, c)| name.is_empty() || c.is_some());
    if !all_const {
        return None;
    }
    match eval(node, in_consts) {
        Ok(outs) if outs.len() >= node.outputs.iter().filter(|o| !o.is_empty()).count() => {
            Some(outs)
        }
        Ok(_) => None,
        Err(e) => {
            not_folded.push(format!("{} ({}): {e}", node.name, node.op_type));
            None
        }
    }
}
