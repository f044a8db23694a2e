//! Patterns as data: a small DAG of op predicates, the QDQ points it declares and its rewrite.
//!
//! Owns: [`Pattern`], [`Form`], [`Step`], [`Link`], [`Constraint`], [`Predicate`], [`Port`],
//! [`QdqPoint`], [`Rewrite`], and the one-line rendering of a form used by the library table.
//! Does not own: the search over a graph ([`super::matcher`]) or any concrete pattern
//! ([`super::tensorrt`]).
//!
//! A form is a list of steps. The first step is the anchor (found through an index by op type);
//! every later step is reached from an earlier one through its [`Link`] (a consumer of its output,
//! or the producer of one of its inputs). An optional step that is absent stands for the step it
//! links from, so `Conv → [BatchNormalization] → Relu` is three steps whose last links to the
//! optional one. The last present step is the group's output node; every other matched node
//! must feed only nodes of the group.

use crate::graph::{Graph, Node};
use serde::{Deserialize, Serialize};

/// Which edge of a fused group gets a Q/DQ pair (weights are handled by the weight config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QdqPoint {
    /// The activation entering the group.
    Input,
    /// The skip-connection input of a residual Add.
    ResidualInput,
    /// The K operand of attention.
    KeyInput,
    /// The V operand of attention.
    ValueInput,
    /// The group's output.
    Output,
}

impl QdqPoint {
    /// The name used in matches.json and the library table (`Input`, `ResidualInput`, ...).
    pub fn name(self) -> &'static str {
        match self {
            QdqPoint::Input => "Input",
            QdqPoint::ResidualInput => "ResidualInput",
            QdqPoint::KeyInput => "KeyInput",
            QdqPoint::ValueInput => "ValueInput",
            QdqPoint::Output => "Output",
        }
    }
}

/// Which tensor of a matched node a QDQ point sits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// Input slot `n` of the node.
    Input(usize),
    /// The input of a two-input node that does not come from the step it links from.
    External,
    /// Output 0 of the node.
    Output,
}

/// How a step is found from the steps before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// The first step: candidates come from the op-type index.
    Anchor,
    /// A node reading output 0 of step `of`, at input `slot` (`None`: at any slot).
    Consumer {
        of: &'static str,
        slot: Option<usize>,
    },
    /// The node producing input `slot` of step `of`.
    Producer { of: &'static str, slot: usize },
}

/// A named test over a node, for attribute and shape conditions (e.g. "kernel covers H×W").
#[derive(Clone, Copy)]
pub struct Predicate {
    /// What the test checks, printed in the library table.
    pub name: &'static str,
    /// The test itself.
    pub test: fn(&Graph, &Node) -> bool,
}

impl std::fmt::Debug for Predicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// A condition a node must meet to take a step.
#[derive(Clone, Copy, Debug)]
pub enum Constraint {
    /// Input `slot` is present and constant.
    ConstInput(usize),
    /// Input `slot` is present and not constant.
    VarInput(usize),
    /// The node has exactly this many (non-omitted) inputs.
    InputCount(usize),
    /// Input `slot` is a graph input (not an initializer).
    GraphInput(usize),
    /// The external input (see [`Port::External`]) is constant.
    ExternalConst,
    /// The external input is not constant.
    ExternalVar,
    /// The external input is output 0 of step `label`.
    ExternalFrom(&'static str),
    /// Input `slot` is the same value as input `other_slot` of step `label`.
    SameInput {
        slot: usize,
        label: &'static str,
        other_slot: usize,
    },
    /// An attribute or shape test.
    Holds(Predicate),
}

/// One node of a form.
#[derive(Clone, Debug)]
pub struct Step {
    /// Name other steps refer to (`conv`, `bn`, `act`, ...).
    pub label: &'static str,
    /// Accepted op types (default ONNX domain).
    pub ops: &'static [&'static str],
    /// How the step is reached.
    pub link: Link,
    /// Whether the step may be absent.
    pub optional: bool,
    /// Further conditions on the node.
    pub constraints: Vec<Constraint>,
    /// QDQ points that sit on this node's edges.
    pub marks: Vec<(QdqPoint, Port)>,
}

impl Step {
    /// The anchor step.
    pub fn anchor(label: &'static str, ops: &'static [&'static str]) -> Step {
        Step::new(label, ops, Link::Anchor)
    }

    /// A step reading output 0 of `of` at any input slot.
    pub fn after(label: &'static str, ops: &'static [&'static str], of: &'static str) -> Step {
        Step::new(label, ops, Link::Consumer { of, slot: None })
    }

    /// A step reading output 0 of `of` at input `slot`.
    pub fn after_at(
        label: &'static str,
        ops: &'static [&'static str],
        of: &'static str,
        slot: usize,
    ) -> Step {
        Step::new(
            label,
            ops,
            Link::Consumer {
                of,
                slot: Some(slot),
            },
        )
    }

    /// A step producing input `slot` of `of`.
    pub fn before(
        label: &'static str,
        ops: &'static [&'static str],
        of: &'static str,
        slot: usize,
    ) -> Step {
        Step::new(label, ops, Link::Producer { of, slot })
    }

    fn new(label: &'static str, ops: &'static [&'static str], link: Link) -> Step {
        Step {
            label,
            ops,
            link,
            optional: false,
            constraints: Vec::new(),
            marks: Vec::new(),
        }
    }

    /// Makes the step optional.
    pub fn optional(mut self) -> Step {
        self.optional = true;
        self
    }

    /// Adds a constraint.
    pub fn with(mut self, c: Constraint) -> Step {
        self.constraints.push(c);
        self
    }

    /// Adds a QDQ point on one of this node's edges.
    pub fn mark(mut self, point: QdqPoint, port: Port) -> Step {
        self.marks.push((point, port));
        self
    }

    /// The step's ops as `A/B`, constraints in parentheses.
    fn describe(&self) -> String {
        let mut s = self.ops.join("/");
        let notes: Vec<String> = self
            .constraints
            .iter()
            .filter_map(|c| match c {
                Constraint::ConstInput(1) | Constraint::ExternalConst => Some("const".into()),
                Constraint::Holds(p) => Some(p.name.to_string()),
                Constraint::GraphInput(_) => Some("on a graph input".into()),
                Constraint::ExternalFrom(label) => Some(format!("× output of {label}")),
                _ => None,
            })
            .collect();
        if !notes.is_empty() {
            s.push_str(&format!("({})", notes.join(", ")));
        }
        if self.optional { format!("[{s}]") } else { s }
    }
}

/// One ONNX form a pattern matches: steps in order, the first being the anchor.
#[derive(Clone, Debug)]
pub struct Form {
    /// The steps; labels are unique within the form.
    pub steps: Vec<Step>,
}

impl Form {
    /// A form from its steps.
    pub fn new(steps: Vec<Step>) -> Form {
        Form { steps }
    }

    /// The step with this label.
    pub fn step(&self, label: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.label == label)
    }

    /// A one-line rendering, e.g. `Conv → [BatchNormalization] → Relu`.
    pub fn describe(&self) -> String {
        self.steps
            .iter()
            .map(Step::describe)
            .collect::<Vec<_>>()
            .join(" → ")
    }
}

/// A rewrite applied to a match when the transform runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rewrite {
    /// Fold BatchNormalization step `bn` (when present) into the weights and bias of step `layer`
    /// (Conv, ConvTranspose or Gemm).
    FoldBatchNorm {
        layer: &'static str,
        bn: &'static str,
    },
}

/// A named fusion: the forms it matches, its QDQ points and its rewrite.
#[derive(Clone, Debug)]
pub struct Pattern {
    /// Name, e.g. `ConvBNAddReLU` (matches.json and reports use it).
    pub name: &'static str,
    /// Why the pattern places Q/DQ this way (printed in the library table).
    pub rationale: &'static str,
    /// The ONNX forms it matches.
    pub forms: Vec<Form>,
    /// The QDQ points every form marks.
    pub qdq_points: &'static [QdqPoint],
    /// Rewrite applied to each match.
    pub rewrite: Option<Rewrite>,
}
