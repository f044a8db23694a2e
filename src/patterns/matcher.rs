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

use super::index::{FxBuildHasher, GraphIndex, ValueId};
use super::pattern::{Constraint, Form, Link, Pattern, Port, Predicate};
use crate::graph::{Graph, NodeId};
use std::cell::Cell;
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
        bound_nodes(&self.steps)
    }
}

/// The nodes bound in `steps`, in step order.
fn bound_nodes(steps: &[Bound]) -> impl Iterator<Item = NodeId> + '_ {
    steps.iter().filter_map(|b| match b {
        Bound::Node(id, _) => Some(*id),
        _ => None,
    })
}

/// Finds the matches of `patterns` in `g` (indexed as `index`), in topological order of their
/// first node.
pub(crate) fn find_matches(g: &Graph, index: &GraphIndex, patterns: &[Pattern]) -> Vec<Found> {
    let capacity = index.position.len();
    // Op types interned to small integers: steps compare integers, not strings.
    let mut op_ids: HashMap<&str, u32, FxBuildHasher> = HashMap::default();
    let mut by_op: Vec<Vec<NodeId>> = Vec::new();
    let mut node_op = vec![u32::MAX; capacity];
    for &id in &index.order {
        let node = g.node(id);
        if node.is_onnx() {
            let next = op_ids.len() as u32;
            let op = *op_ids.entry(node.op_type.as_str()).or_insert(next);
            if op == next {
                by_op.push(Vec::new());
            }
            by_op[op as usize].push(id);
            node_op[id] = op;
        }
    }
    let mut forms: Vec<(usize, usize)> = patterns
        .iter()
        .enumerate()
        .flat_map(|(p, pat)| (0..pat.forms.len()).map(move |f| (p, f)))
        .collect();
    forms.sort_by_key(|&(p, f)| std::cmp::Reverse(patterns[p].forms[f].steps.len()));

    let predicates = Predicates::new(patterns, capacity);
    let mut claimed = vec![false; capacity];
    let mut found = Vec::new();
    let mut state = Vec::new();
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
        let link_from: Vec<Option<usize>> = form
            .steps
            .iter()
            .map(|st| match st.link {
                Link::Consumer { of, .. } | Link::Producer { of, .. } => form.step(of),
                Link::Anchor => None,
            })
            .collect();
        let mut anchors: Vec<NodeId> = step_ops[0]
            .iter()
            .flat_map(|&op| &by_op[op as usize])
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
                link_from: &link_from,
                node_op: &node_op,
                claimed: &claimed,
                predicates: &predicates,
            };
            if search.run(anchor, &mut state) {
                for id in bound_nodes(&state) {
                    claimed[id] = true;
                }
                found.push(Found {
                    pattern: p,
                    form: f,
                    steps: state.clone(),
                });
            }
        }
    }
    found.sort_by_key(|m| m.nodes().map(|id| index.position[id]).min());
    found
}

/// Predicate results per node, computed once and shared by every try (forms repeat them).
struct Predicates {
    /// Each distinct predicate of the library, by the address of its test.
    tests: Vec<usize>,
    /// `tests.len()` entries per node id: 0 not computed yet, 1 false, 2 true.
    results: Vec<Cell<u8>>,
}

impl Predicates {
    fn new(patterns: &[Pattern], capacity: usize) -> Predicates {
        let mut tests: Vec<usize> = Vec::new();
        let constraints = patterns
            .iter()
            .flat_map(|p| &p.forms)
            .flat_map(|f| &f.steps)
            .flat_map(|s| &s.constraints);
        for c in constraints {
            if let Constraint::Holds(p) = c
                && !tests.contains(&(p.test as usize))
            {
                tests.push(p.test as usize);
            }
        }
        Predicates {
            results: vec![Cell::new(0); tests.len() * capacity],
            tests,
        }
    }

    /// Whether `p` holds for node `id`.
    fn holds(&self, g: &Graph, id: NodeId, p: Predicate) -> bool {
        let Some(k) = self.tests.iter().position(|&t| t == p.test as usize) else {
            return (p.test)(g, g.node(id));
        };
        let Some(known) = self.results.get(id * self.tests.len() + k) else {
            return (p.test)(g, g.node(id));
        };
        match known.get() {
            0 => {
                let result = (p.test)(g, g.node(id));
                known.set(1 + u8::from(result));
                result
            }
            seen => seen == 2,
        }
    }
}

/// One try of one form at one anchor.
struct Search<'a> {
    g: &'a Graph,
    index: &'a GraphIndex,
    form: &'a Form,
    /// Interned op types each step accepts.
    step_ops: &'a [Vec<u32>],
    /// Per step, the step its link starts from (`None` for the anchor).
    link_from: &'a [Option<usize>],
    /// Interned op type of each node (`u32::MAX` outside the default domain).
    node_op: &'a [u32],
    claimed: &'a [bool],
    predicates: &'a Predicates,
}

impl Search<'_> {
    /// Tries the form at `anchor`; on success `state` holds what each step was bound to.
    fn run(&self, anchor: NodeId, state: &mut Vec<Bound>) -> bool {
        state.clear();
        state.resize(self.form.steps.len(), Bound::Unset);
        self.bind(0, anchor, None, state)
    }

    /// Binds step `i` to node `id` if it accepts it and the later steps can be bound too.
    fn bind(&self, i: usize, id: NodeId, slot: Option<usize>, state: &mut Vec<Bound>) -> bool {
        if !self.accepts(i, id, slot, state) {
            return false;
        }
        state[i] = Bound::Node(id, slot);
        self.extend(i + 1, state)
    }

    /// Binds steps `i..` by backtracking; true when every step is bound and the group is closed.
    fn extend(&self, i: usize, state: &mut Vec<Bound>) -> bool {
        let Some(step) = self.form.steps.get(i) else {
            return self.closed(state);
        };
        let from = self.link_from[i].and_then(|j| self.resolve_step(j, state));
        let bound = match (step.link, from) {
            (Link::Consumer { slot, .. }, Some(src)) => self.output0(src).is_some_and(|v| {
                self.index.readers(v).any(|(c, s)| {
                    s.is_some_and(|s| slot.is_none_or(|want| want == s))
                        && self.bind(i, c, s, state)
                })
            }),
            (Link::Producer { slot, .. }, Some(src)) => self
                .index
                .input(src, slot)
                .and_then(|v| self.index.producer(v))
                .is_some_and(|p| self.bind(i, p, None, state)),
            _ => false,
        };
        if bound {
            return true;
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

    /// The node standing for step `label` (see [`Search::resolve_step`]).
    fn resolve(&self, label: &str, state: &[Bound]) -> Option<NodeId> {
        self.resolve_step(self.form.step(label)?, state)
    }

    /// The node standing for step `i`: itself, or for an absent optional step the node it links
    /// from.
    fn resolve_step(&self, i: usize, state: &[Bound]) -> Option<NodeId> {
        match state[i] {
            Bound::Node(id, _) => Some(id),
            Bound::Absent => self.resolve_step(self.link_from[i]?, state),
            Bound::Unset => None,
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
            || bound_nodes(state).any(|other| other == id)
        {
            return false;
        }
        let external = other_slot(self.index.inputs(id).len(), slot);
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
            } => self
                .resolve(label, state)
                .is_some_and(|o| self.index.same_input(self.g, (id, s), (o, other_slot))),
            Constraint::Holds(p) => self.predicates.holds(self.g, id, p),
        })
    }

    /// True when every matched node but the group's output node feeds only matched nodes.
    fn closed(&self, state: &[Bound]) -> bool {
        let Some(last) = bound_nodes(state).last() else {
            return false;
        };
        let in_group = |c: NodeId| bound_nodes(state).any(|id| id == c);
        bound_nodes(state).filter(|&id| id != last).all(|id| {
            self.index.outputs(id).flatten().all(|v| {
                !self.index.is_graph_output(v) && self.index.readers(v).all(|(c, _)| in_group(c))
            })
        })
    }
}

/// The input slot of a node with `slots` input slots that is not `linked`, among its first two
/// (the external input of a two-input node).
fn other_slot(slots: usize, linked: Option<usize>) -> Option<usize> {
    let linked = linked?;
    (0..slots.min(2)).find(|&s| s != linked)
}

/// The tensor a QDQ point sits on, for a node bound through input `slot`.
pub(crate) fn port_value(
    node: &crate::graph::Node,
    port: Port,
    slot: Option<usize>,
) -> Option<&str> {
    match port {
        Port::Input(s) => node.input(s),
        Port::External => other_slot(node.inputs.len(), slot).and_then(|s| node.input(s)),
        Port::Output => node
            .outputs
            .first()
            .map(String::as_str)
            .filter(|o| !o.is_empty()),
    }
}
