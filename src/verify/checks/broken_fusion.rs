//! Check (a): pattern matches whose nodes TensorRT did not fuse into one engine layer.
//!
//! A match is broken when no single engine layer holds all of its nodes that appear in the report
//! (names compared loosely: Myelin writes `.` as `_`). Nodes the report does not name (inside a
//! `{ForeignNode[a...b]}` range, or removed by TensorRT) are listed in the message but do not by
//! themselves make a match broken.

use std::collections::BTreeSet;

use super::super::engine_view::EngineView;
use super::super::{Finding, FindingKind, MatchesFile, VerifyGates};
use super::{gated, time_of};
use crate::patterns::PatternMatch;

/// One finding per broken match.
pub(crate) fn check(
    view: &EngineView<'_>,
    matches: &MatchesFile,
    gates: &VerifyGates,
) -> Vec<Finding> {
    matches
        .matches
        .iter()
        .filter_map(|record| finding(view, record, gates))
        .collect()
}

fn finding(view: &EngineView<'_>, record: &PatternMatch, gates: &VerifyGates) -> Option<Finding> {
    let placed: Vec<(&str, &[usize])> = record
        .nodes
        .iter()
        .map(|node| (node.as_str(), view.layers_of_node(node)))
        .filter(|(_, layers)| !layers.is_empty())
        .collect();
    let mut common: Option<BTreeSet<usize>> = None;
    for (_, layers) in &placed {
        let here: BTreeSet<usize> = layers.iter().copied().collect();
        common = Some(match common {
            None => here,
            Some(so_far) => so_far.intersection(&here).copied().collect(),
        });
    }
    if common.is_none_or(|layers| !layers.is_empty()) {
        return None;
    }
    let involved: BTreeSet<usize> = placed
        .iter()
        .flat_map(|(_, layers)| layers.iter().copied())
        .collect();
    let layers: Vec<_> = involved.iter().filter_map(|&i| view.layer(i)).collect();
    let placement: Vec<String> = placed
        .iter()
        .map(|(node, indices)| {
            let names: Vec<_> = indices
                .iter()
                .filter_map(|&i| view.layer(i))
                .map(|l| format!("'{}'", l.name))
                .collect();
            format!("{node} → {}", names.join(", "))
        })
        .collect();
    let missing: Vec<&str> = record
        .nodes
        .iter()
        .map(String::as_str)
        .filter(|node| !placed.iter().any(|(placed_node, _)| placed_node == node))
        .collect();
    let missing_note = if missing.is_empty() {
        String::new()
    } else {
        format!("; not named in the report: {}", missing.join(", "))
    };
    Some(Finding {
        kind: FindingKind::BrokenFusion,
        severity: gated(gates.fail_on_broken_fusion),
        layers: layers.iter().map(|l| l.name.clone()).collect(),
        nodes: record.nodes.clone(),
        pattern: Some(record.pattern.clone()),
        time_ms: time_of(layers.iter().copied()),
        message: format!(
            "{} match split over {} engine layers ({}){missing_note}: TensorRT fuses these nodes into one layer \
             only when the Q/DQ around them sit at the pattern's qdq_points and nothing else reads the \
             intermediate tensors",
            record.pattern,
            layers.len(),
            placement.join("; ")
        ),
    })
}
