//! The IR: a model, its graph of named values, nodes and initializers, with use-def maps.
//!
//! Owns: [`Model`], [`Graph`], [`Node`]; conversion from and to `ModelProto` that keeps every
//! field (what the IR does not interpret rides along in `rest`); node insertion, removal and
//! rewiring that keep the producer/consumer maps consistent; topological order; `validate()`.
//! Values are identified by name, as in ONNX. Every node has a unique, stable name: unnamed or
//! duplicate-named nodes are named `<op_type>_<index>` at import (index = position in the file).
//! Subgraph attributes (If/Loop/Scan bodies) are carried untouched; the outer values they read
//! count as uses of their node.
//! Does not own: shape inference, folding or any rewrite policy.

use super::GraphError;
use super::attr::Attributes;
use crate::onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    ValueInfoProto,
};
use indexmap::IndexMap;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Index of a node in its graph; stable while the node exists.
pub type NodeId = usize;

/// One operator application.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Unique, stable name (later stages and TensorRT layer names refer to it).
    pub name: String,
    /// Operator type, e.g. `Conv`.
    pub op_type: String,
    /// Operator domain; empty for the default ONNX domain.
    pub domain: String,
    /// Input value names; an empty name is an omitted optional input.
    pub inputs: Vec<String>,
    /// Output value names; an empty name is an omitted optional output.
    pub outputs: Vec<String>,
    /// Attributes, kept as ONNX protos (see [`Attributes`] for typed reads).
    pub attributes: Vec<AttributeProto>,
    /// The NodeProto fields the IR does not interpret (doc string, overload, metadata, ...).
    pub rest: NodeProto,
}

impl Attributes for Node {
    fn attr_list(&self) -> &[AttributeProto] {
        &self.attributes
    }
}

impl Node {
    /// A node of the default domain with no attributes.
    pub fn new(name: impl Into<String>, op_type: &str, inputs: &[&str], outputs: &[&str]) -> Node {
        Node {
            name: name.into(),
            op_type: op_type.into(),
            domain: String::new(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            attributes: Vec::new(),
            rest: NodeProto::default(),
        }
    }

    /// Adds (or replaces) an attribute; builder style.
    pub fn with_attr(mut self, a: AttributeProto) -> Node {
        self.set_attr(a);
        self
    }

    /// Adds or replaces the attribute of the same name.
    pub fn set_attr(&mut self, a: AttributeProto) {
        match self.attributes.iter_mut().find(|x| x.name == a.name) {
            Some(slot) => *slot = a,
            None => self.attributes.push(a),
        }
    }

    /// Removes an attribute by name, returning it.
    pub fn remove_attr(&mut self, name: &str) -> Option<AttributeProto> {
        let i = self
            .attributes
            .iter()
            .position(|a| a.name.as_deref() == Some(name))?;
        Some(self.attributes.remove(i))
    }

    /// The `i`-th input name, if present and not omitted.
    pub fn input(&self, i: usize) -> Option<&str> {
        self.inputs
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// True for nodes of the default ONNX domain.
    pub fn is_onnx(&self) -> bool {
        self.domain.is_empty() || self.domain == "ai.onnx"
    }

    fn from_proto(mut p: NodeProto) -> Node {
        Node {
            name: p.name.take().unwrap_or_default(),
            op_type: p.op_type.take().unwrap_or_default(),
            domain: p.domain.clone().unwrap_or_default(),
            inputs: std::mem::take(&mut p.input),
            outputs: std::mem::take(&mut p.output),
            attributes: std::mem::take(&mut p.attribute),
            rest: p,
        }
    }

    fn to_proto(&self) -> NodeProto {
        let mut p = self.rest.clone();
        p.name = Some(self.name.clone());
        p.op_type = Some(self.op_type.clone());
        p.domain =
            (!self.domain.is_empty() || self.rest.domain.is_some()).then(|| self.domain.clone());
        p.input = self.inputs.clone();
        p.output = self.outputs.clone();
        p.attribute = self.attributes.clone();
        p
    }

    /// Outer-scope values read by this node's subgraph attributes.
    fn implicit_inputs(&self) -> Vec<String> {
        let mut found = BTreeSet::new();
        for a in &self.attributes {
            for g in a.g.iter().map(|g| g.as_ref()).chain(a.graphs.iter()) {
                subgraph_free_values(g, &HashSet::new(), &mut found);
            }
        }
        found.into_iter().collect()
    }
}

/// Collects the names a subgraph reads that neither it nor `outer_defined` defines.
fn subgraph_free_values(
    g: &GraphProto,
    outer_defined: &HashSet<String>,
    out: &mut BTreeSet<String>,
) {
    let mut defined: HashSet<String> = outer_defined.clone();
    defined.extend(g.input.iter().filter_map(|v| v.name.clone()));
    defined.extend(g.initializer.iter().filter_map(|t| t.name.clone()));
    defined.extend(
        g.sparse_initializer
            .iter()
            .filter_map(|s| s.values.as_ref()?.name.clone()),
    );
    for n in &g.node {
        for i in n.input.iter().filter(|i| !i.is_empty()) {
            if !defined.contains(i) {
                out.insert(i.clone());
            }
        }
        for a in &n.attribute {
            for sub in a.g.iter().map(|g| g.as_ref()).chain(a.graphs.iter()) {
                let mut inner = BTreeSet::new();
                subgraph_free_values(sub, &defined, &mut inner);
                out.extend(inner);
            }
        }
        defined.extend(n.output.iter().cloned());
    }
    for o in g.output.iter().filter_map(|v| v.name.as_ref()) {
        if !defined.contains(o) {
            out.insert(o.clone());
        }
    }
}

/// A graph: nodes, named values, initializers, inputs and outputs, with use-def maps.
#[derive(Clone, Debug)]
pub struct Graph {
    /// Graph inputs (as in the file: may include initializers for IR < 4 models).
    pub inputs: Vec<ValueInfoProto>,
    /// Graph outputs.
    pub outputs: Vec<ValueInfoProto>,
    nodes: Vec<Option<Node>>,
    initializers: IndexMap<String, TensorProto>,
    value_info: IndexMap<String, ValueInfoProto>,
    producer: HashMap<String, NodeId>,
    consumers: HashMap<String, Vec<NodeId>>,
    implicit: HashMap<NodeId, Vec<String>>,
    names: HashMap<String, NodeId>,
    /// GraphProto fields the IR does not interpret (name, doc string, sparse initializers,
    /// quantization annotations, metadata).
    pub rest: GraphProto,
}

impl Graph {
    /// Builds the IR from a GraphProto and checks it (see [`Graph::validate`]).
    pub fn from_proto(mut p: GraphProto) -> Result<Graph, GraphError> {
        let nodes = std::mem::take(&mut p.node);
        let mut g = Graph {
            inputs: std::mem::take(&mut p.input),
            outputs: std::mem::take(&mut p.output),
            nodes: Vec::with_capacity(nodes.len()),
            initializers: IndexMap::new(),
            value_info: IndexMap::new(),
            producer: HashMap::new(),
            consumers: HashMap::new(),
            implicit: HashMap::new(),
            names: HashMap::new(),
            rest: GraphProto::default(),
        };
        for t in std::mem::take(&mut p.initializer) {
            let name = t.name.clone().unwrap_or_default();
            if g.initializers.insert(name.clone(), t).is_some() {
                return Err(GraphError::DuplicateDefinition {
                    value: name,
                    what: "two initializers".into(),
                });
            }
        }
        for v in std::mem::take(&mut p.value_info) {
            g.value_info.insert(v.name.clone().unwrap_or_default(), v);
        }
        g.rest = p;
        // Deterministic names: keep a node's name when unique, else `<op>_<index>`.
        let mut seen: HashSet<String> = HashSet::new();
        let mut named: Vec<Node> = nodes.into_iter().map(Node::from_proto).collect();
        let original: HashSet<String> = named.iter().map(|n| n.name.clone()).collect();
        for (i, n) in named.iter_mut().enumerate() {
            if n.name.is_empty() || !seen.insert(n.name.clone()) {
                let base = format!("{}_{}", n.op_type, i);
                let mut name = base.clone();
                let mut k = 1;
                while seen.contains(&name) || original.contains(&name) {
                    name = format!("{base}_{k}");
                    k += 1;
                }
                seen.insert(name.clone());
                n.name = name;
            }
        }
        for n in named {
            g.add_node(n)?;
        }
        g.validate()?;
        Ok(g)
    }

    /// Encodes back to a GraphProto, nodes in topological order.
    pub fn to_proto(&self) -> Result<GraphProto, GraphError> {
        let mut p = self.rest.clone();
        p.node = self
            .topo_order()?
            .into_iter()
            .map(|id| self.nodes[id].as_ref().map(Node::to_proto))
            .map(Option::unwrap_or_default)
            .collect();
        p.input = self.inputs.clone();
        p.output = self.outputs.clone();
        p.initializer = self.initializers.values().cloned().collect();
        p.value_info = self.value_info.values().cloned().collect();
        Ok(p)
    }

    // ----- reading -----

    /// The node with this id (panics on a removed id: ids come from this graph).
    pub fn node(&self, id: NodeId) -> &Node {
        self.nodes[id]
            .as_ref()
            .expect("node id refers to a live node")
    }

    /// The node with this id, if it still exists.
    pub fn get(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id).and_then(Option::as_ref)
    }

    /// The id of the node with this name.
    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.names.get(name).copied()
    }

    /// Live node ids in insertion order (not necessarily topological).
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|_| i))
    }

    /// Number of live nodes.
    pub fn node_count(&self) -> usize {
        self.names.len()
    }

    /// The node producing `value`, if any.
    pub fn producer(&self, value: &str) -> Option<NodeId> {
        self.producer.get(value).copied()
    }

    /// The nodes reading `value` (explicitly or from a subgraph), each once, in id order.
    pub fn consumers(&self, value: &str) -> &[NodeId] {
        self.consumers.get(value).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The outer-scope values node `id` reads from inside its subgraph attributes (empty for a
    /// node without subgraphs), in name order.
    pub fn implicit_inputs(&self, id: NodeId) -> &[String] {
        if self.implicit.is_empty() {
            return &[];
        }
        self.implicit.get(&id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// True when `value` is a graph output.
    pub fn is_output(&self, value: &str) -> bool {
        self.outputs
            .iter()
            .any(|o| o.name.as_deref() == Some(value))
    }

    /// True when `value` is a graph input that is not also an initializer.
    pub fn is_input(&self, value: &str) -> bool {
        !self.initializers.contains_key(value)
            && self.inputs.iter().any(|i| i.name.as_deref() == Some(value))
    }

    /// The initializer named `value`.
    pub fn initializer(&self, value: &str) -> Option<&TensorProto> {
        self.initializers.get(value)
    }

    /// All initializers, in file order.
    pub fn initializers(&self) -> impl Iterator<Item = (&String, &TensorProto)> {
        self.initializers.iter()
    }

    /// Known type information of a value (value_info, graph input/output or initializer).
    pub fn value_info(&self, value: &str) -> Option<&ValueInfoProto> {
        self.value_info.get(value).or_else(|| {
            self.inputs
                .iter()
                .chain(self.outputs.iter())
                .find(|v| v.name.as_deref() == Some(value))
        })
    }

    /// The value_info entries (intermediate values' types), in order.
    pub fn value_infos(&self) -> impl Iterator<Item = &ValueInfoProto> {
        self.value_info.values()
    }

    /// True when `value` is defined somewhere: graph input, initializer or node output.
    pub fn is_defined(&self, value: &str) -> bool {
        self.producer.contains_key(value)
            || self.initializers.contains_key(value)
            || self.inputs.iter().any(|i| i.name.as_deref() == Some(value))
    }

    // ----- editing -----

    /// Adds a node; its name must be unique and its outputs not defined elsewhere.
    pub fn add_node(&mut self, node: Node) -> Result<NodeId, GraphError> {
        if node.name.is_empty() || self.names.contains_key(&node.name) {
            return Err(GraphError::DuplicateNodeName { name: node.name });
        }
        for o in node.outputs.iter().filter(|o| !o.is_empty()) {
            if let Some(&other) = self.producer.get(o) {
                return Err(GraphError::DuplicateDefinition {
                    value: o.clone(),
                    what: format!(
                        "output of both '{}' and '{}'",
                        self.node(other).name,
                        node.name
                    ),
                });
            }
            if self.initializers.contains_key(o)
                || self.inputs.iter().any(|i| i.name.as_deref() == Some(o))
            {
                return Err(GraphError::DuplicateDefinition {
                    value: o.clone(),
                    what: format!("output of '{}' and a graph input or initializer", node.name),
                });
            }
        }
        let id = self.nodes.len();
        let implicit = node.implicit_inputs();
        for o in node.outputs.iter().filter(|o| !o.is_empty()) {
            self.producer.insert(o.clone(), id);
        }
        for v in node
            .inputs
            .iter()
            .chain(implicit.iter())
            .filter(|v| !v.is_empty())
        {
            let list = self.consumers.entry(v.clone()).or_default();
            if list.last() != Some(&id) && !list.contains(&id) {
                list.push(id);
            }
        }
        if !implicit.is_empty() {
            self.implicit.insert(id, implicit);
        }
        self.names.insert(node.name.clone(), id);
        self.nodes.push(Some(node));
        Ok(id)
    }

    /// Removes a node and returns it; values it produced become undefined until redefined.
    pub fn remove_node(&mut self, id: NodeId) -> Node {
        let node = self.nodes[id]
            .take()
            .expect("node id refers to a live node");
        self.names.remove(&node.name);
        for o in node.outputs.iter().filter(|o| !o.is_empty()) {
            if self.producer.get(o) == Some(&id) {
                self.producer.remove(o);
            }
        }
        let implicit = self.implicit.remove(&id).unwrap_or_default();
        for v in node.inputs.iter().chain(implicit.iter()) {
            self.unlink_consumer(v, id);
        }
        node
    }

    fn unlink_consumer(&mut self, value: &str, id: NodeId) {
        if let Some(list) = self.consumers.get_mut(value) {
            list.retain(|&c| c != id);
            if list.is_empty() {
                self.consumers.remove(value);
            }
        }
    }

    /// Makes input `slot` of node `id` read `value` instead.
    pub fn set_input(&mut self, id: NodeId, slot: usize, value: &str) {
        let node = self.nodes[id]
            .as_mut()
            .expect("node id refers to a live node");
        let old = std::mem::replace(&mut node.inputs[slot], value.to_string());
        let still_reads_old =
            node.inputs.contains(&old) || self.implicit.get(&id).is_some_and(|l| l.contains(&old));
        if !still_reads_old {
            self.unlink_consumer(&old, id);
        }
        if !value.is_empty() {
            let list = self.consumers.entry(value.to_string()).or_default();
            if !list.contains(&id) {
                list.push(id);
                list.sort_unstable();
            }
        }
    }

    /// Makes every node that reads `old` read `new` instead (graph outputs are not renamed).
    pub fn replace_all_uses(&mut self, old: &str, new: &str) {
        for id in self.consumers(old).to_vec() {
            let slots: Vec<usize> = self
                .node(id)
                .inputs
                .iter()
                .enumerate()
                .filter(|(_, v)| *v == old)
                .map(|(i, _)| i)
                .collect();
            for s in slots {
                self.set_input(id, s, new);
            }
        }
    }

    /// Replaces the attributes of node `id` (inputs and outputs go through the other methods).
    pub fn attributes_mut(&mut self, id: NodeId) -> &mut Vec<AttributeProto> {
        &mut self.nodes[id]
            .as_mut()
            .expect("node id refers to a live node")
            .attributes
    }

    /// Adds or replaces an initializer.
    pub fn set_initializer(&mut self, mut t: TensorProto, name: &str) {
        t.name = Some(name.to_string());
        self.initializers.insert(name.to_string(), t);
    }

    /// Removes an initializer (and its entry among graph inputs, IR < 4 style).
    pub fn remove_initializer(&mut self, name: &str) -> Option<TensorProto> {
        let t = self.initializers.shift_remove(name)?;
        self.inputs.retain(|i| i.name.as_deref() != Some(name));
        Some(t)
    }

    /// Records (or replaces) the type information of an intermediate value.
    pub fn set_value_info(&mut self, v: ValueInfoProto) {
        let name = v.name.clone().unwrap_or_default();
        if let Some(o) = self
            .outputs
            .iter_mut()
            .find(|o| o.name.as_deref() == Some(name.as_str()))
        {
            *o = v;
        } else if let Some(i) = self
            .inputs
            .iter_mut()
            .find(|i| i.name.as_deref() == Some(name.as_str()))
        {
            *i = v;
        } else {
            self.value_info.insert(name, v);
        }
    }

    /// Forgets the recorded type of a value (e.g. after the value was removed).
    pub fn remove_value_info(&mut self, name: &str) {
        self.value_info.shift_remove(name);
    }

    /// A fresh value or node name derived from `base` that nothing in the graph uses yet.
    pub fn unique_name(&self, base: &str) -> String {
        let taken = |n: &str| {
            self.names.contains_key(n) || self.is_defined(n) || self.consumers.contains_key(n)
        };
        if !taken(base) {
            return base.to_string();
        }
        (1..)
            .map(|k| format!("{base}_{k}"))
            .find(|n| !taken(n))
            .expect("unbounded")
    }

    // ----- whole-graph operations -----

    /// Node ids in a deterministic topological order (ties broken by id, i.e. file order).
    pub fn topo_order(&self) -> Result<Vec<NodeId>, GraphError> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut indegree: HashMap<NodeId, usize> = HashMap::new();
        for id in self.node_ids() {
            indegree.insert(id, self.node_deps(id).len());
        }
        let mut ready: BinaryHeap<Reverse<NodeId>> = indegree
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(id, _)| Reverse(*id))
            .collect();
        let mut order = Vec::with_capacity(indegree.len());
        while let Some(Reverse(id)) = ready.pop() {
            order.push(id);
            let node = self.node(id);
            let mut next: Vec<NodeId> = node
                .outputs
                .iter()
                .filter(|o| !o.is_empty())
                .flat_map(|o| self.consumers(o).iter().copied())
                .collect();
            next.sort_unstable();
            next.dedup();
            for c in next {
                if let Some(d) = indegree.get_mut(&c) {
                    let by = self.node_deps(c).iter().filter(|&&p| p == id).count();
                    *d -= by.min(*d);
                    if *d == 0 {
                        ready.push(Reverse(c));
                    }
                }
            }
        }
        if order.len() != indegree.len() {
            let done: HashSet<NodeId> = order.iter().copied().collect();
            let mut stuck: Vec<String> = self
                .node_ids()
                .filter(|id| !done.contains(id))
                .map(|id| self.node(id).name.clone())
                .collect();
            stuck.truncate(8);
            return Err(GraphError::Cycle { nodes: stuck });
        }
        Ok(order)
    }

    /// Distinct producer nodes of a node's (explicit and implicit) inputs.
    fn node_deps(&self, id: NodeId) -> Vec<NodeId> {
        let node = self.node(id);
        let mut deps: Vec<NodeId> = node
            .inputs
            .iter()
            .chain(self.implicit.get(&id).into_iter().flatten())
            .filter_map(|v| self.producer.get(v).copied())
            .collect();
        deps.sort_unstable();
        deps.dedup();
        deps
    }

    /// Checks the graph: no cycle, every read value defined, no value defined twice,
    /// graph outputs defined and named once.
    pub fn validate(&self) -> Result<(), GraphError> {
        let mut out_names = HashSet::new();
        for o in &self.outputs {
            let name = o.name.clone().unwrap_or_default();
            if !out_names.insert(name.clone()) {
                return Err(GraphError::DuplicateOutput { name });
            }
            if !self.is_defined(&name) {
                return Err(GraphError::UndefinedValue {
                    node: "graph output".into(),
                    value: name,
                });
            }
        }
        let mut in_names = HashSet::new();
        for i in &self.inputs {
            let name = i.name.clone().unwrap_or_default();
            if !in_names.insert(name.clone()) {
                return Err(GraphError::DuplicateDefinition {
                    value: name,
                    what: "two graph inputs".into(),
                });
            }
        }
        for id in self.node_ids() {
            let n = self.node(id);
            for v in n
                .inputs
                .iter()
                .chain(self.implicit.get(&id).into_iter().flatten())
            {
                if !v.is_empty() && !self.is_defined(v) {
                    return Err(GraphError::UndefinedValue {
                        node: n.name.clone(),
                        value: v.clone(),
                    });
                }
            }
        }
        self.topo_order().map(|_| ())
    }

    /// Removes nodes whose outputs reach no graph output, and initializers nothing reads.
    /// Returns the names of the removed nodes.
    pub fn remove_dead(&mut self) -> Vec<String> {
        let mut live: HashSet<NodeId> = HashSet::new();
        let mut stack: Vec<String> = self.outputs.iter().filter_map(|o| o.name.clone()).collect();
        while let Some(v) = stack.pop() {
            if let Some(p) = self.producer(&v)
                && live.insert(p)
            {
                let n = self.node(p);
                stack.extend(n.inputs.iter().filter(|i| !i.is_empty()).cloned());
                stack.extend(self.implicit.get(&p).into_iter().flatten().cloned());
            }
        }
        let dead: Vec<NodeId> = self.node_ids().filter(|id| !live.contains(id)).collect();
        let removed = dead
            .into_iter()
            .map(|id| self.remove_node(id).name)
            .collect();
        let unused: Vec<String> = self
            .initializers
            .keys()
            .filter(|k| !self.consumers.contains_key(*k) && !self.is_output(k))
            .cloned()
            .collect();
        for k in unused {
            self.remove_initializer(&k);
        }
        let live_values: HashSet<String> = self
            .node_ids()
            .flat_map(|id| self.node(id).outputs.clone())
            .collect();
        self.value_info.retain(|k, _| live_values.contains(k));
        removed
    }
}

/// A model: its graph plus every ModelProto field the IR does not interpret.
#[derive(Clone, Debug)]
pub struct Model {
    /// The main graph.
    pub graph: Graph,
    /// The ModelProto without its graph (opset imports, producer, functions, metadata, ...).
    pub rest: ModelProto,
}

impl Model {
    /// Builds and validates the IR of a decoded model.
    pub fn from_proto(mut p: ModelProto) -> Result<Model, GraphError> {
        let g = p.graph.take().ok_or(GraphError::MissingGraph)?;
        Ok(Model {
            graph: Graph::from_proto(g)?,
            rest: p,
        })
    }

    /// Encodes back to a ModelProto.
    pub fn to_proto(&self) -> Result<ModelProto, GraphError> {
        let mut p = self.rest.clone();
        p.graph = Some(self.graph.to_proto()?);
        Ok(p)
    }

    /// The version of the default ONNX domain this model imports (1 when unspecified).
    pub fn opset(&self) -> i64 {
        self.rest
            .opset_import
            .iter()
            .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
            .and_then(|o| o.version)
            .unwrap_or(1)
    }

    /// Sets the default-domain opset import.
    pub fn set_opset(&mut self, version: i64) {
        match self
            .rest
            .opset_import
            .iter_mut()
            .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        {
            Some(o) => o.version = Some(version),
            None => self.rest.opset_import.push(OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(version),
            }),
        }
    }
}
