//! The search: finds non-overlapping matches of a pattern list in a graph.
//!
//! Owns: [`find_matches`] and the per-anchor backtracking over a form's steps.
//! Does not own: what a match means (QDQ points, rewrites: [`super::transform`]) or any pattern.
//!
//! Greedy by priority: forms are tried largest first (then in library order, then form order);
//! each form is tried at every unclaimed anchor in topological order, and a match claims its
//! nodes. Anchors come from an op-type index and each try explores a bounded neighbourhood (a
//! form has a handful of steps, each following one integer edge of the [`GraphIndex`]), so the
//! whole search is linear in the graph size for a fixed library, and deterministic (ties broken
//! by node order).

use super::index::{GraphIndex, ValueId};
use super::pattern::{Constraint, Form, Link, Pattern, Port, Predicate};
use crate::graph::{Graph, NodeId};
use std::cell::RefCell;
use std::collections::HashMap;

/// What a step of a form was bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bound {
    /// Not decided yet.
    Unset,
    /// An optional step that is absent.
    Absent,
    /// A node, and the input slot through which it reads the step it links from (consumer links).
    Node(NodeId, Option<usize>),
}

/// One match: which pattern and form, and what each step was bound to.
#[derive(Clone, Debug)]
pub(crate) struct Found {
    /// Index into the pattern list.
    pub pattern: usize,
    /// Index into the pattern's forms.
    pub form: usize,
    /// One entry per step of the form (never `Unset`).
    pub steps: Vec<Bound>,
}

impl Found {
    /// The matched nodes in step order.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.steps.iter().filter_map(|b| match b {
            Bound::Node(id, _) => Some(*id),
            _ => None,
        })
    }
}

/// Finds the matches of `patterns` in `g` (indexed as `index`), in topological order of their
/// first node.
pub(crate) fn find_matches(g: &Graph, index: &GraphIndex, patterns: &[Pattern]) -> Vec<Found> {
    let capacity = index.position.len();
    // Op types interned to small integers: steps compare integers, not strings.
    let mut by_op: HashMap<&str, Vec<NodeId>> = HashMap::new();
    let mut op_ids: HashMap<&str, u32> = HashMap::new();
    let mut node_op = vec![u32::MAX; capacity];
    for &id in &index.order {
        let node = g.node(id);
        if node.is_onnx() {
            by_op.entry(node.op_type.as_str()).or_default().push(id);
            let next = op_ids.len() as u32;
            node_op[id] = *op_ids.entry(node.op_type.as_str()).or_insert(next);
        }
    }
    let mut forms: Vec<(usize, usize)> = patterns
        .iter()
        .enumerate()
        .flat_map(|(p, pat)| (0..pat.forms.len()).map(move |f| (p, f)))
        .collect();
    forms.sort_by_key(|&(p, f)| std::cmp::Reverse(patterns[p].forms[f].steps.len()));

    let memo = RefCell::new(vec![Vec::new(); capacity]);
    let mut claimed = vec![false; capacity];
    let mut found = Vec::new();
    for (p, f) in forms {
        let form = &patterns[p].forms[f];
        let Some(first) = form.steps.first() else {
            continue;
        };
        let step_ops: Vec<Vec<u32>> = form
            .steps
            .iter()
            .map(|st| {
                st.ops
                    .iter()
                    .filter_map(|op| op_ids.get(op).copied())
                    .collect()
            })
            .collect();
        let mut anchors: Vec<NodeId> = first
            .ops
            .iter()
            .filter_map(|op| by_op.get(op))
            .flatten()
            .copied()
            .collect();
        if first.ops.len() > 1 {
            anchors.sort_by_key(|&id| index.position[id]);
        }
        for anchor in anchors {
            if claimed[anchor] {
                continue;
            }
            let search = Search {
                g,
                index,
                form,
                step_ops: &step_ops,
                node_op: &node_op,
                claimed: &claimed,
                memo: &memo,
            };
            if let Some(steps) = search.run(anchor) {
                let m = Found {
                    pattern: p,
                    form: f,
                    steps,
                };
                for id in m.nodes() {
                    claimed[id] = true;
                }
                found.push(m);
            }
        }
    }
    found.sort_by_key(|m| m.nodes().map(|id| index.position[id]).min());
    found
}

/// One try of one form at one anchor.
struct Search<'a> {
    g: &'a Graph,
    index: &'a GraphIndex,
    form: &'a Form,
    /// Interned op types each step accepts.
    step_ops: &'a [Vec<u32>],
    /// Interned op type of each node (`u32::MAX` outside the default domain).
    node_op: &'a [u32],
    claimed: &'a [bool],
    /// Predicate results per node, by predicate (shared by every try: forms repeat them).
    memo: &'a RefCell<Vec<Vec<(usize, bool)>>>,
}

impl Search<'_> {
    fn run(&self, anchor: NodeId) -> Option<Vec<Bound>> {
        let mut state = vec![Bound::Unset; self.form.steps.len()];
        if !self.accepts(0, anchor, None, &state) {
            return None;
        }
        state[0] = Bound::Node(anchor, None);
        self.extend(1, &mut state).then_some(state)
    }

    /// Binds steps `i..` by backtracking; true when every step is bound and the group is closed.
    fn extend(&self, i: usize, state: &mut Vec<Bound>) -> bool {
        let Some(step) = self.form.steps.get(i) else {
            return self.closed(state);
        };
        for (id, slot) in self.candidates(step.link, state) {
            if self.accepts(i, id, slot, state) {
                state[i] = Bound::Node(id, slot);
                if self.extend(i + 1, state) {
                    return true;
                }
            }
        }
        if step.optional {
            state[i] = Bound::Absent;
            if self.extend(i + 1, state) {
                return true;
            }
        }
        state[i] = Bound::Unset;
        false
    }

    /// The node standing for step `label`: itself, or for an absent optional step the node it
    /// links from.
    fn resolve(&self, label: &str, state: &[Bound]) -> Option<NodeId> {
        let i = self.form.step(label)?;
        match state[i] {
            Bound::Node(id, _) => Some(id),
            Bound::Absent => match self.form.steps[i].link {
                Link::Consumer { of, .. } | Link::Producer { of, .. } => self.resolve(of, state),
                Link::Anchor => None,
            },
            Bound::Unset => None,
        }
    }

    fn candidates(&self, link: Link, state: &[Bound]) -> Vec<(NodeId, Option<usize>)> {
        match link {
            Link::Anchor => Vec::new(),
            Link::Consumer { of, slot } => self
                .resolve(of, state)
                .and_then(|src| self.output0(src))
                .map(|v| {
                    self.index
                        .readers(v)
                        .filter_map(|(c, s)| s.map(|s| (c, s)))
                        .filter(|&(_, s)| slot.is_none_or(|want| want == s))
                        .map(|(c, s)| (c, Some(s)))
                        .collect()
                })
                .unwrap_or_default(),
            Link::Producer { of, slot } => self
                .resolve(of, state)
                .and_then(|src| self.index.input(src, slot))
                .and_then(|v| self.index.producer(v))
                .map(|p| vec![(p, None)])
                .unwrap_or_default(),
        }
    }

    /// The value of node `id`'s first output.
    fn output0(&self, id: NodeId) -> Option<ValueId> {
        self.index.outputs(id).next().flatten()
    }

    /// Whether node `id` can take step `i` (op type, not claimed, not used twice, constraints).
    fn accepts(&self, i: usize, id: NodeId, slot: Option<usize>, state: &[Bound]) -> bool {
        let step = &self.form.steps[i];
        let op = self.node_op.get(id).copied().unwrap_or(u32::MAX);
        if !self.step_ops[i].contains(&op)
            || self.claimed.get(id).copied().unwrap_or(true)
            || state
                .iter()
                .any(|b| matches!(b, Bound::Node(other, _) if *other == id))
        {
            return false;
        }
        let node = self.g.node(id);
        let external = external_slot(node, slot);
        let input = |s: usize| self.index.input(id, s);
        let is_const = |s: usize| input(s).map(|v| self.index.is_const(v));
        step.constraints.iter().all(|c| match *c {
            Constraint::ConstInput(s) => is_const(s) == Some(true),
            Constraint::VarInput(s) => is_const(s) == Some(false),
            Constraint::InputCount(n) => self.index.inputs(id).flatten().count() == n,
            Constraint::GraphInput(s) => input(s).is_some_and(|v| self.index.is_graph_input(v)),
            Constraint::ExternalConst => external.and_then(is_const) == Some(true),
            Constraint::ExternalVar => external.and_then(is_const) == Some(false),
            Constraint::ExternalFrom(label) => {
                let value = external.and_then(input);
                let from = self.resolve(label, state).and_then(|p| self.output0(p));
                value.is_some() && value == from
            }
            Constraint::SameInput {
                slot: s,
                label,
                other_slot,
            } => {
                let other = self
                    .resolve(label, state)
                    .and_then(|o| self.index.input(o, other_slot));
                input(s).is_some() && input(s) == other
            }
            Constraint::Holds(p) => self.holds(id, p),
        })
    }

    /// A predicate's result for a node, computed once.
    fn holds(&self, id: NodeId, p: Predicate) -> bool {
        let key = p.test as usize;
        if let Some(&(_, known)) = self
            .memo
            .borrow()
            .get(id)
            .and_then(|seen| seen.iter().find(|(k, _)| *k == key))
        {
            return known;
        }
        let result = (p.test)(self.g, self.g.node(id));
        if let Some(seen) = self.memo.borrow_mut().get_mut(id) {
            seen.push((key, result));
        }
        result
    }

    /// True when every matched node but the group's output node feeds only matched nodes.
    fn closed(&self, state: &[Bound]) -> bool {
        let nodes: Vec<NodeId> = state
            .iter()
            .filter_map(|b| match b {
                Bound::Node(id, _) => Some(*id),
                _ => None,
            })
            .collect();
        let Some((&last, inner)) = nodes.split_last() else {
            return false;
        };
        debug_assert!(!inner.contains(&last));
        inner.iter().all(|&id| {
            self.index.outputs(id).flatten().all(|v| {
                !self.index.is_graph_output(v)
                    && self.index.readers(v).all(|(c, _)| nodes.contains(&c))
            })
        })
    }
}

/// The input slot of a two-input node that is not `linked`.
pub(crate) fn external_slot(node: &crate::graph::Node, linked: Option<usize>) -> Option<usize> {
    let linked = linked?;
    (0..node.inputs.len().min(2)).find(|&s| s != linked)
}

/// The tensor a QDQ point sits on, for a node bound through input `slot`.
pub(crate) fn port_value(
    node: &crate::graph::Node,
    port: Port,
    slot: Option<usize>,
) -> Option<&str> {
    match port {
        Port::Input(s) => node.input(s),
        Port::External => external_slot(node, slot).and_then(|s| node.input(s)),
        Port::Output => node
            .outputs
            .first()
            .map(String::as_str)
            .filter(|o| !o.is_empty()),
    }
}
