//! The transform stage: match the library, then apply every rewrite as one patch.
//!
//! Owns: [`transform`] and [`find_matches`] (matching without rewriting, for `inspect`), the
//! resolution of a raw match into a [`PatternMatch`] (names, boundary, QDQ points).
//! Does not own: the search ([`super::matcher`]) or the fold arithmetic ([`super::fold`]).
//!
//! Like a tract patch: every edit is computed against the unchanged input first; only when all
//! of them succeeded are they applied to a copy, so an error never leaves a half-edited model.

use super::fold::{FoldEdit, plan_fold};
use super::index::{GraphIndex, ValueId};
use super::matcher::{self, Bound, Found, port_value};
use super::pattern::{Pattern, Rewrite};
use super::{PatternError, PatternMatch, TransformResult};
use crate::graph::{Graph, Model, NodeId};
use std::collections::{BTreeMap, HashSet};

/// Finds the matches of `patterns` in `model` without rewriting anything (so each match's
/// `nodes_after` equals its `nodes`).
pub fn find_matches(
    model: &Model,
    patterns: &[Pattern],
) -> Result<Vec<PatternMatch>, PatternError> {
    let g = &model.graph;
    let index = GraphIndex::new(g)?;
    let found = matcher::find_matches(g, &index, patterns);
    Ok(found
        .iter()
        .map(|f| describe(g, &index, patterns, f, &HashSet::new()))
        .collect())
}

/// Matches `patterns` on `model` and applies their rewrites (BatchNormalization folding).
pub fn transform(model: &Model, patterns: &[Pattern]) -> Result<TransformResult, PatternError> {
    let g = &model.graph;
    let index = GraphIndex::new(g)?;
    let found = matcher::find_matches(g, &index, patterns);

    let mut folds: Vec<FoldEdit> = Vec::new();
    for f in &found {
        if let Some(edit) = planned_rewrite(g, &patterns[f.pattern], f)? {
            folds.push(edit);
        }
    }
    let removed: HashSet<NodeId> = folds.iter().map(|e| e.bn).collect();
    let matches: Vec<PatternMatch> = found
        .iter()
        .map(|f| describe(g, &index, patterns, f, &removed))
        .collect();
    let covered: HashSet<NodeId> = found.iter().flat_map(Found::nodes).collect();
    let unmatched = index
        .order
        .iter()
        .copied()
        .filter(|id| !covered.contains(id))
        .map(|id| g.node(id).name.clone())
        .collect();

    let mut out = model.clone();
    apply_folds(&mut out.graph, folds)?;
    Ok(TransformResult {
        model: out,
        matches,
        unmatched,
    })
}

/// The fold a match asks for, if its pattern has one and the optional BN step is present.
fn planned_rewrite(
    g: &Graph,
    pattern: &Pattern,
    f: &Found,
) -> Result<Option<FoldEdit>, PatternError> {
    let Some(Rewrite::FoldBatchNorm { layer, bn }) = pattern.rewrite else {
        return Ok(None);
    };
    let form = &pattern.forms[f.form];
    let bound = |label: &str| {
        form.step(label).and_then(|i| match f.steps[i] {
            Bound::Node(id, _) => Some(id),
            _ => None,
        })
    };
    match (bound(layer), bound(bn)) {
        (Some(l), Some(b)) => plan_fold(g, l, b).map(Some),
        _ => Ok(None),
    }
}

/// Applies the folds: drop the BN and the old layer, add the folded layer under the same name,
/// drop the initializers (old weights, BN parameters) nothing reads any more.
fn apply_folds(g: &mut Graph, folds: Vec<FoldEdit>) -> Result<(), PatternError> {
    let mut old_weights = Vec::new();
    for edit in folds {
        for id in [edit.layer, edit.bn] {
            let params = g.node(id).inputs.iter().skip(1).filter(|v| !v.is_empty());
            old_weights.extend(params.cloned());
        }
        let old_output = g
            .node(edit.layer)
            .outputs
            .first()
            .cloned()
            .unwrap_or_default();
        g.remove_node(edit.bn);
        g.remove_node(edit.layer);
        g.remove_value_info(&old_output);
        for (name, t) in edit.initializers {
            g.set_initializer(t, &name);
        }
        g.add_node(edit.new_layer)?;
    }
    for w in old_weights {
        if g.consumers(&w).is_empty() && !g.is_output(&w) && g.initializer(&w).is_some() {
            g.remove_initializer(&w);
        }
    }
    g.validate()?;
    Ok(())
}

/// The record of one match: names before and after the rewrite, boundary, QDQ points.
fn describe(
    g: &Graph,
    index: &GraphIndex,
    patterns: &[Pattern],
    f: &Found,
    removed: &HashSet<NodeId>,
) -> PatternMatch {
    let pattern = &patterns[f.pattern];
    let form = &pattern.forms[f.form];
    let ids: Vec<NodeId> = f.nodes().collect();
    let produced: Vec<ValueId> = ids
        .iter()
        .flat_map(|&id| index.outputs(id).flatten())
        .collect();
    let mut inputs: Vec<String> = Vec::new();
    let mut outputs: Vec<String> = Vec::new();
    let mut seen_inputs: Vec<ValueId> = Vec::new();
    for &id in &ids {
        let node = g.node(id);
        for (v, name) in index.inputs(id).zip(&node.inputs) {
            let Some(v) = v else { continue };
            if !produced.contains(&v) && !index.is_const(v) && !seen_inputs.contains(&v) {
                seen_inputs.push(v);
                inputs.push(name.clone());
            }
        }
        for (v, name) in index.outputs(id).zip(&node.outputs) {
            let Some(v) = v else { continue };
            let leaves =
                index.is_graph_output(v) || index.readers(v).any(|(c, _)| !ids.contains(&c));
            if leaves {
                outputs.push(name.clone());
            }
        }
    }
    let mut qdq_points = BTreeMap::new();
    for (step, bound) in form.steps.iter().zip(&f.steps) {
        if let Bound::Node(id, slot) = *bound {
            for &(point, port) in &step.marks {
                if let Some(v) = port_value(g.node(id), port, slot) {
                    qdq_points.insert(point, v.to_string());
                }
            }
        }
    }
    PatternMatch {
        pattern: pattern.name.to_string(),
        nodes: ids.iter().map(|&id| g.node(id).name.clone()).collect(),
        nodes_after: ids
            .iter()
            .filter(|id| !removed.contains(id))
            .map(|&id| g.node(id).name.clone())
            .collect(),
        inputs,
        outputs,
        qdq_points,
    }
}
