//! The pattern strategy: Q/DQ only at the QDQ points of matched patterns.
//!
//! Owns: [`insert_qdq`] — turning matches into a [`QdqPlan`], removing Q/DQ that would be
//! stranded behind ops TensorRT propagates Q/DQ through, and finding tie groups.
//! Does not own: matching (patterns) or writing nodes ([`super::plan`]).
//!
//! Rules (issue 3, item 4):
//! - an `Input`/`ResidualInput`/`KeyInput`/`ValueInput` point makes the match's own nodes read
//!   the dequantized tensor; other consumers keep the float tensor;
//! - an `Output` point makes every consumer outside any match read the dequantized tensor
//!   (consumers inside a match read it only if that match declares the tensor a point itself):
//!   so nothing is ever placed between nodes of one match, nor in front of a LayerNorm;
//! - weights of Conv/ConvTranspose/Gemm/MatMul nodes of a match are quantized per channel
//!   (unless skipped by op type, or depthwise with `quantize_depthwise: false`, in which case
//!   the whole match stays float);
//! - a quantized tensor produced by a chain of ops TensorRT propagates Q/DQ through
//!   ([`propagates_qdq`]) from a tensor that is quantized anyway gets no second pair: the chain
//!   reads the first pair's output and TensorRT moves the DQ forward across it;
//! - inputs and output of Concat and MaxPool form a tie group when any of them is quantized.

use super::plan::{QdqPlan, Use, known_non_float};
use super::{QuantConfig, QuantizeError};
use crate::graph::{Attributes, Graph, Model, NodeId};
use crate::patterns::query::GraphQuery;
use crate::patterns::tensorrt::{TIE_GROUP_OPS, propagates_qdq};
use crate::patterns::{PatternMatch, QdqPoint};
use std::collections::{HashMap, HashSet};

/// Inserts Q/DQ into `model` (the transformed model) at the QDQ points of `matches`.
pub fn insert_qdq(
    model: &Model,
    matches: &[PatternMatch],
    config: &QuantConfig,
) -> Result<Model, QuantizeError> {
    let g = &model.graph;
    let resolved: Vec<Vec<NodeId>> = matches
        .iter()
        .map(|m| {
            m.nodes_after
                .iter()
                .map(|name| {
                    g.find(name).ok_or_else(|| QuantizeError::UnknownNode {
                        pattern: m.pattern.clone(),
                        node: name.clone(),
                    })
                })
                .collect()
        })
        .collect::<Result<_, _>>()?;
    let owner: HashMap<NodeId, usize> = resolved
        .iter()
        .enumerate()
        .flat_map(|(mi, ids)| ids.iter().map(move |&id| (id, mi)))
        .collect();

    let mut plan = QdqPlan::default();
    for (m, ids) in matches.iter().zip(&resolved) {
        if !config.quantize_depthwise && ids.iter().any(|&id| is_depthwise(g, id)) {
            continue;
        }
        for (&point, value) in &m.qdq_points {
            if known_non_float(g, value) {
                continue;
            }
            let readers: Vec<Use> = if point == QdqPoint::Output {
                uses_of(g, value)
                    .into_iter()
                    .filter(|(c, _)| !owner.contains_key(c))
                    .collect()
            } else {
                uses_of(g, value)
                    .into_iter()
                    .filter(|(c, _)| ids.contains(c))
                    .collect()
            };
            for at in readers {
                plan.quantize_activation(value, at);
            }
        }
        for &id in ids {
            plan.quantize_weight_of(g, id, config);
        }
    }
    unstrand(g, &mut plan)?;
    if config.tie_groups {
        plan.tie_groups = find_tie_groups(g, &plan)?;
    }
    plan.apply(model, config)
}

/// Every (consumer, slot) reading `value`.
pub(crate) fn uses_of(g: &Graph, value: &str) -> Vec<Use> {
    g.consumers(value)
        .iter()
        .flat_map(|&c| {
            g.node(c)
                .inputs
                .iter()
                .enumerate()
                .filter(move |(_, v)| *v == value)
                .map(move |(s, _)| (c, s))
        })
        .collect()
}

/// A convolution with one input channel per group (and more than one group).
pub(crate) fn is_depthwise(g: &Graph, id: NodeId) -> bool {
    let n = g.node(id);
    n.op_type == "Conv"
        && n.attr_i_or("group", 1) > 1
        && n.input(1)
            .and_then(|w| g.const_tensor(w))
            .is_some_and(|t| t.dims.get(1) == Some(&1))
}

/// Drops the Q/DQ of tensors whose value comes, through ops that propagate Q/DQ, from tensors
/// that are quantized anyway; the chain then reads the earlier pair's output.
fn unstrand(g: &Graph, plan: &mut QdqPlan) -> Result<(), QuantizeError> {
    let position: HashMap<NodeId, usize> = g
        .topo_order()?
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, i))
        .collect();
    let mut candidates: Vec<(usize, String)> = plan
        .activations
        .keys()
        .filter_map(|v| Some((*position.get(&g.producer(v)?)?, v.clone())))
        .collect();
    candidates.sort();
    for (_, value) in candidates {
        let planned = plan.activations.get(&value).map_or(0, Vec::len);
        if g.is_output(&value) || planned != uses_of(g, &value).len() {
            continue; // someone reads the float tensor: it keeps its own pair
        }
        if let Some(reads) = quantized_source(g, plan, &value) {
            plan.activations.shift_remove(&value);
            for (source, at) in reads {
                plan.quantize_activation(&source, at);
            }
        }
    }
    Ok(())
}

/// When `value` is produced by a propagating op whose data inputs are all quantized (directly,
/// or through a chain of single-consumer propagating ops), the uses that should read them.
fn quantized_source(g: &Graph, plan: &QdqPlan, value: &str) -> Option<Vec<(String, Use)>> {
    let producer = g.producer(value)?;
    let node = g.node(producer);
    if !propagates_qdq(node) {
        return None;
    }
    let data_slots: Vec<usize> = if node.op_type == "Concat" {
        (0..node.inputs.len())
            .filter(|&s| node.input(s).is_some_and(|v| !g.is_const(v)))
            .collect()
    } else {
        vec![0]
    };
    let mut reads = Vec::new();
    for s in data_slots {
        let input = node.input(s)?;
        if plan.activations.contains_key(input) {
            reads.push((input.to_string(), (producer, s)));
        } else if node.op_type != "Concat" && !g.is_output(input) && uses_of(g, input).len() == 1 {
            reads.extend(quantized_source(g, plan, input)?);
        } else {
            return None;
        }
    }
    Some(reads)
}

/// Tie groups: inputs and output of each Concat/MaxPool with a quantized member, merged when
/// they share a tensor (union-find, so linear in the number of such ops); members in order of
/// first appearance (topological), groups in order of their first member.
fn find_tie_groups(g: &Graph, plan: &QdqPlan) -> Result<Vec<Vec<String>>, QuantizeError> {
    let reads_dq: HashSet<NodeId> = plan
        .activations
        .values()
        .flatten()
        .map(|&(id, _)| id)
        .collect();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    let mut parent: Vec<usize> = Vec::new();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for id in g.topo_order()? {
        let n = g.node(id);
        if !n.is_onnx() || !TIE_GROUP_OPS.contains(&n.op_type.as_str()) {
            continue;
        }
        let members: Vec<&String> = n
            .inputs
            .iter()
            .filter(|v| !v.is_empty() && !g.is_const(v))
            .chain(n.outputs.first())
            .collect();
        let quantized =
            reads_dq.contains(&id) || members.iter().any(|v| plan.activations.contains_key(*v));
        if !quantized {
            continue;
        }
        let ids: Vec<usize> = members
            .iter()
            .map(|v| {
                *index.entry((*v).clone()).or_insert_with(|| {
                    names.push((*v).clone());
                    parent.push(parent.len());
                    parent.len() - 1
                })
            })
            .collect();
        for pair in ids.windows(2) {
            let (a, b) = (root(&mut parent, pair[0]), root(&mut parent, pair[1]));
            parent[a.max(b)] = a.min(b);
        }
    }
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut group_of_root: HashMap<usize, usize> = HashMap::new();
    for (i, name) in names.into_iter().enumerate() {
        let r = root(&mut parent, i);
        let gi = *group_of_root.entry(r).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[gi].push(name);
    }
    groups.retain(|grp| grp.len() > 1);
    Ok(groups)
}
