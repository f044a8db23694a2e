//! An integer view of a graph for the pattern search: topological order, value ids, each value's
//! producer and readers, and which values are constants or graph inputs/outputs.
//!
//! Owns: [`GraphIndex`], built once per search; afterwards the matcher and the match records
//! follow integer edges only. Building it hashes only the names of node outputs and graph I/O
//! (FxHash-style, [`FxBuildHasher`], into a pre-sized map) and looks each node input up once;
//! initializers are never hashed (a name nothing produces is one), which leaves most of a CNN's
//! names (its weights) out of the map. Also [`FxBuildHasher`], shared with the matcher's op-type
//! map.
//! Does not own: the graph (read only) or the search ([`super::matcher`]).

use crate::graph::{Attributes, Graph, GraphError, NodeId};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// A value's index in a [`GraphIndex`].
pub(crate) type ValueId = u32;

/// Marks an absent entry (omitted input, a value nothing produces, an implicit read's slot).
const NONE: u32 = u32::MAX;

/// The integer view (see the module doc). Node ids are the graph's own. Value ids: one per node
/// output and graph input/output; every other read (an initializer) has an id of its own, so
/// compare inputs with [`GraphIndex::same_input`], not by id.
pub(crate) struct GraphIndex {
    /// Live node ids in the order of [`Graph::topo_order`].
    pub order: Vec<NodeId>,
    /// Each node id's place in `order` (`usize::MAX` for removed ids).
    pub position: Vec<usize>,
    /// Per node id, its range in `input_values` (`input_start[id]..input_start[id + 1]`).
    input_start: Vec<u32>,
    /// Input value of every node, slot by slot (`NONE` for an omitted input).
    input_values: Vec<ValueId>,
    /// Per node id, its range in `output_values`.
    output_start: Vec<u32>,
    /// Output value of every node, slot by slot (`NONE` for an omitted output).
    output_values: Vec<ValueId>,
    /// Per value, its range in `readers` (empty unless a node produces the value).
    reader_start: Vec<u32>,
    /// (consumer node, input slot) per read, by consumer id then slot; slot `NONE` for a read
    /// from inside a subgraph.
    readers: Vec<(u32, u32)>,
    /// Per value, its producer node (`NONE` when none).
    producer: Vec<u32>,
    /// Per value, `CONST` / `GRAPH_INPUT` / `GRAPH_OUTPUT` bits.
    flags: Vec<u8>,
}

const CONST: u8 = 1;
const GRAPH_INPUT: u8 = 2;
const GRAPH_OUTPUT: u8 = 4;

impl GraphIndex {
    /// Indexes `g`; fails on a cycle (with [`Graph::topo_order`]'s error). `g` must be valid
    /// ([`Graph::validate`], as loading and every pass leave it): a name that no node produces
    /// and that is not a graph input is taken to be an initializer without asking the graph.
    pub fn new(g: &Graph) -> Result<GraphIndex, GraphError> {
        let capacity = g.node_ids().max().map_or(0, |m| m + 1);
        let (mut slots_in, mut slots_out) = (0, 0);
        for id in g.node_ids() {
            let node = g.node(id);
            slots_in += node.inputs.len();
            slots_out += node.outputs.len();
        }
        let hashed = slots_out + g.inputs.len() + g.outputs.len();
        let mut names: HashMap<&str, ValueId, FxBuildHasher> =
            HashMap::with_capacity_and_hasher(hashed, FxBuildHasher::default());
        let mut values = Values::with_capacity(hashed + slots_in);

        // Node outputs: the values the search follows.
        let mut output_start = Vec::with_capacity(capacity + 1);
        let mut output_values = Vec::with_capacity(slots_out);
        output_start.push(0);
        for id in 0..capacity {
            if let Some(node) = g.get(id) {
                let constant =
                    node.op_type == "Constant" && node.is_onnx() && node.attr_t("value").is_some();
                let flags = if constant { CONST } else { 0 };
                for o in node.outputs.iter().map(String::as_str) {
                    output_values.push(if o.is_empty() {
                        NONE
                    } else {
                        *names
                            .entry(o)
                            .or_insert_with(|| values.add(flags, id as u32))
                    });
                }
            }
            output_start.push(output_values.len() as u32);
        }
        // Graph inputs and outputs; one that is also an initializer (a weight listed as a graph
        // input, IR < 4) is a constant, not a graph input.
        for (io, bit) in [(&g.inputs, GRAPH_INPUT), (&g.outputs, GRAPH_OUTPUT)] {
            for name in io.iter().filter_map(|i| i.name.as_deref()) {
                let v = *names.entry(name).or_insert_with(|| {
                    let constant = g.initializer(name).is_some();
                    values.add(if constant { CONST } else { 0 }, NONE)
                });
                let flags = &mut values.flags[v as usize];
                if bit == GRAPH_OUTPUT || *flags & CONST == 0 {
                    *flags |= bit;
                }
            }
        }
        // Node inputs: any other name is an initializer, which the search never follows, so it
        // is not hashed: each such read gets an id of its own (see `same_input`).
        let mut read = |name: &str| match name {
            "" => NONE,
            _ => names
                .get(name)
                .copied()
                .unwrap_or_else(|| values.add(CONST, NONE)),
        };
        let mut input_start = Vec::with_capacity(capacity + 1);
        let mut input_values = Vec::with_capacity(slots_in);
        let mut implicit_reads: Vec<(u32, ValueId)> = Vec::new();
        input_start.push(0);
        for id in 0..capacity {
            if let Some(node) = g.get(id) {
                input_values.extend(node.inputs.iter().map(|i| read(i)));
                for name in g.implicit_inputs(id) {
                    if !node.inputs.contains(name) {
                        implicit_reads.push((id as u32, read(name)));
                    }
                }
            }
            input_start.push(input_values.len() as u32);
        }
        let Values { flags, producer } = values;

        let (reader_start, readers) = reads_by_value(
            &producer,
            &input_start,
            &input_values,
            &implicit_reads,
            capacity,
        );

        let mut index = GraphIndex {
            order: Vec::new(),
            position: vec![usize::MAX; capacity],
            input_start,
            input_values,
            output_start,
            output_values,
            reader_start,
            readers,
            producer,
            flags,
        };
        index.order = if index.ids_are_topological() {
            g.node_ids().collect()
        } else {
            index.topo_order(g, capacity)?
        };
        for (pos, &id) in index.order.iter().enumerate() {
            index.position[id] = pos;
        }
        Ok(index)
    }

    /// True when every read comes after its producer in id order. Then ascending ids are the
    /// order [`GraphIndex::topo_order`] would give (the smallest ready id is always the next
    /// id), found in one pass; ONNX files list nodes this way.
    fn ids_are_topological(&self) -> bool {
        self.producer.iter().enumerate().all(|(v, &p)| {
            let reads = self.reader_start[v] as usize..self.reader_start[v + 1] as usize;
            self.readers[reads].iter().all(|&(c, _)| p < c)
        })
    }

    /// Kahn's algorithm over the integer edges, smallest ready id first: the same order as
    /// [`Graph::topo_order`] (which also gives the error on a cycle).
    fn topo_order(&self, g: &Graph, capacity: usize) -> Result<Vec<NodeId>, GraphError> {
        let mut indegree = vec![0u32; capacity];
        let mut next: Vec<NodeId> = Vec::new();
        let mut live = 0;
        for id in g.node_ids() {
            live += 1;
            self.distinct_consumers(id, &mut next);
            for &c in &next {
                indegree[c] += 1;
            }
        }
        let mut ready: BinaryHeap<Reverse<NodeId>> = g
            .node_ids()
            .filter(|&id| indegree[id] == 0)
            .map(Reverse)
            .collect();
        let mut order = Vec::with_capacity(live);
        while let Some(Reverse(id)) = ready.pop() {
            order.push(id);
            self.distinct_consumers(id, &mut next);
            for &c in &next {
                indegree[c] -= 1;
                if indegree[c] == 0 {
                    ready.push(Reverse(c));
                }
            }
        }
        if order.len() == live {
            Ok(order)
        } else {
            g.topo_order()
        }
    }

    /// The nodes reading any output of `id`, each once, ascending, into `out`.
    fn distinct_consumers(&self, id: NodeId, out: &mut Vec<NodeId>) {
        out.clear();
        for v in self.outputs(id).flatten() {
            out.extend(self.readers(v).map(|(c, _)| c));
        }
        out.sort_unstable();
        out.dedup();
    }

    /// The input values of node `id`, slot by slot (`None` for an omitted input).
    pub fn inputs(&self, id: NodeId) -> impl ExactSizeIterator<Item = Option<ValueId>> + '_ {
        let range = self.input_start[id] as usize..self.input_start[id + 1] as usize;
        self.input_values[range].iter().map(|&v| some(v))
    }

    /// The value read at input `slot` of node `id`.
    pub fn input(&self, id: NodeId, slot: usize) -> Option<ValueId> {
        self.inputs(id).nth(slot).flatten()
    }

    /// The output values of node `id`, slot by slot (`None` for an omitted output).
    pub fn outputs(&self, id: NodeId) -> impl Iterator<Item = Option<ValueId>> + '_ {
        let range = self.output_start[id] as usize..self.output_start[id + 1] as usize;
        self.output_values[range].iter().map(|&v| some(v))
    }

    /// The node producing `v`.
    pub fn producer(&self, v: ValueId) -> Option<NodeId> {
        some(self.producer[v as usize]).map(|p| p as NodeId)
    }

    /// The reads of `v` when a node produces it (none for graph inputs and initializers, which
    /// the search never follows), by consumer id then slot: (consumer, input slot), slot `None`
    /// for a read from inside a subgraph.
    pub fn readers(&self, v: ValueId) -> impl Iterator<Item = (NodeId, Option<usize>)> + '_ {
        let v = v as usize;
        let reads = self.reader_start[v] as usize..self.reader_start[v + 1] as usize;
        self.readers[reads]
            .iter()
            .map(|&(c, s)| (c as NodeId, some(s).map(|s| s as usize)))
    }

    /// True when `v` is an initializer or the output of a `Constant` node.
    pub fn is_const(&self, v: ValueId) -> bool {
        self.flags[v as usize] & CONST != 0
    }

    /// True when `v` is a graph input that is not an initializer.
    pub fn is_graph_input(&self, v: ValueId) -> bool {
        self.flags[v as usize] & GRAPH_INPUT != 0
    }

    /// True when `v` is a graph output.
    pub fn is_graph_output(&self, v: ValueId) -> bool {
        self.flags[v as usize] & GRAPH_OUTPUT != 0
    }

    /// True when input `a.1` of node `a.0` and input `b.1` of node `b.0` are present and read
    /// the same value. Initializers get one id per read, so two of those compare by name.
    pub fn same_input(&self, g: &Graph, a: (NodeId, usize), b: (NodeId, usize)) -> bool {
        match (self.input(a.0, a.1), self.input(b.0, b.1)) {
            (Some(x), Some(y)) if x == y => true,
            (Some(x), Some(y)) if self.is_const(x) && self.is_const(y) => {
                let name = |(id, slot): (NodeId, usize)| g.get(id).and_then(|n| n.input(slot));
                name(a) == name(b)
            }
            _ => false,
        }
    }
}

/// Per value id, its flags and producer, as ids are handed out.
struct Values {
    flags: Vec<u8>,
    producer: Vec<u32>,
}

impl Values {
    fn with_capacity(values: usize) -> Values {
        Values {
            flags: Vec::with_capacity(values),
            producer: Vec::with_capacity(values),
        }
    }

    /// A new value id with these flags and producer (`NONE` for none).
    fn add(&mut self, flags: u8, producer: u32) -> ValueId {
        self.flags.push(flags);
        self.producer.push(producer);
        (self.flags.len() - 1) as ValueId
    }
}

/// The reads of every produced value as one flat list (counting sort by value), each value's
/// reads by consumer id then slot, a subgraph's read (slot `NONE`) where its node has no
/// explicit one: (start of each value's range, the reads).
fn reads_by_value(
    producer: &[u32],
    input_start: &[u32],
    input_values: &[ValueId],
    implicit_reads: &[(u32, ValueId)],
    capacity: usize,
) -> (Vec<u32>, Vec<(u32, u32)>) {
    let produced = |v: ValueId| v != NONE && producer[v as usize] != NONE;
    let mut start = vec![0u32; producer.len() + 1];
    let explicit = input_values.iter().copied();
    for v in explicit.chain(implicit_reads.iter().map(|&(_, v)| v)) {
        if produced(v) {
            start[v as usize + 1] += 1;
        }
    }
    for v in 1..start.len() {
        start[v] += start[v - 1];
    }
    let mut fill = start.clone();
    let mut readers = vec![(NONE, NONE); start.last().copied().unwrap_or(0) as usize];
    let mut implicit = implicit_reads.iter().peekable();
    for id in 0..capacity {
        let slots = input_start[id] as usize..input_start[id + 1] as usize;
        let explicit = input_values[slots].iter().enumerate();
        let reads = explicit.map(|(s, &v)| (s as u32, v));
        let subgraph = std::iter::from_fn(|| implicit.next_if(|&&(c, _)| c as usize == id));
        for (slot, v) in reads.chain(subgraph.map(|&(_, v)| (NONE, v))) {
            if produced(v) {
                let at = &mut fill[v as usize];
                readers[*at as usize] = (id as u32, slot);
                *at += 1;
            }
        }
    }
    (start, readers)
}

/// A fast non-cryptographic hasher (FxHash's rotate-xor-multiply over 8-byte words). Value
/// names come from the model file; a crafted file could at worst slow the search down.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

/// The multiplier: 2^64 divided by the golden ratio, an odd constant with well-spread bits.
const FX_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let (words, rest) = bytes.as_chunks::<8>();
        for &word in words {
            self.add(u64::from_le_bytes(word));
        }
        if !rest.is_empty() {
            let mut tail = [0u8; 8];
            tail.iter_mut().zip(rest).for_each(|(t, &b)| *t = b);
            tail[7] = rest.len() as u8;
            self.add(u64::from_le_bytes(tail));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        // The multiply leaves the entropy in the high bits; hash tables index by the low ones.
        self.hash.rotate_left(26)
    }
}

/// [`FxHasher`] as a map's `BuildHasher`.
pub(crate) type FxBuildHasher = BuildHasherDefault<FxHasher>;

/// `None` for the `NONE` marker.
fn some(v: u32) -> Option<u32> {
    (v != NONE).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::{
        AttributeProto, AttributeType, GraphProto, NodeProto, TensorProto, ValueInfoProto,
    };
    use std::hash::BuildHasher;

    fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
        NodeProto {
            name: Some(name.into()),
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn value(name: &str) -> ValueInfoProto {
        ValueInfoProto {
            name: Some(name.into()),
            ..Default::default()
        }
    }

    /// Nodes listed out of order, a value read twice by one node, an omitted input, a weight
    /// that is also listed as a graph input (IR < 4 style).
    fn graph() -> Graph {
        let weight = TensorProto {
            name: Some("w".into()),
            data_type: Some(1),
            dims: vec![1],
            float_data: vec![2.0],
            ..Default::default()
        };
        Graph::from_proto(GraphProto {
            node: vec![
                node("mul", "Mul", &["a", "a"], &["m"]),
                node("conv", "Conv", &["x", "w", ""], &["a"]),
                node("add", "Add", &["m", "x"], &["y"]),
            ],
            input: vec![value("x"), value("w")],
            output: vec![value("y")],
            initializer: vec![weight],
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn order_edges_and_flags_agree_with_the_graph() {
        let g = graph();
        let index = GraphIndex::new(&g).unwrap();
        assert!(
            !index.ids_are_topological(),
            "the heap path is the one tested"
        );
        assert_eq!(index.order, g.topo_order().unwrap());
        let id = |name: &str| g.find(name).unwrap();
        let conv = id("conv");
        let [x, w] = [0, 1].map(|s| index.input(conv, s).unwrap());
        assert_eq!(index.input(conv, 2), None);
        assert!(index.is_graph_input(x) && !index.is_const(x));
        assert!(index.is_const(w) && !index.is_graph_input(w));
        let a = index.outputs(conv).next().flatten().unwrap();
        assert_eq!(index.producer(a), Some(conv));
        assert_eq!(
            index.readers(a).collect::<Vec<_>>(),
            [(id("mul"), Some(0)), (id("mul"), Some(1))]
        );
        let readers_of_x: Vec<_> = index.readers(x).collect();
        assert!(
            readers_of_x.is_empty(),
            "graph inputs have no producer entry"
        );
        let y = index.outputs(id("add")).next().flatten().unwrap();
        assert!(index.is_graph_output(y) && index.readers(y).next().is_none());
    }

    /// Listed in order, with an `If` whose branch reads `a` from the outer graph and whose
    /// condition is `c`, and a `Mul` reading `a` after it.
    fn graph_in_order_with_subgraph() -> Graph {
        let branch = GraphProto {
            node: vec![node("inner", "Relu", &["a"], &["r"])],
            output: vec![value("r")],
            ..Default::default()
        };
        let if_node = NodeProto {
            attribute: ["then_branch", "else_branch"]
                .map(|name| AttributeProto {
                    name: Some(name.into()),
                    r#type: Some(AttributeType::Graph as i32),
                    g: Some(Box::new(branch.clone())),
                    ..Default::default()
                })
                .into(),
            ..node("if", "If", &["c"], &["out"])
        };
        Graph::from_proto(GraphProto {
            node: vec![
                node("relu", "Relu", &["x"], &["a"]),
                node("cond", "Greater", &["x", "x"], &["c"]),
                if_node,
                node("mul", "Mul", &["a", "out"], &["y"]),
            ],
            input: vec![value("x")],
            output: vec![value("y")],
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn nodes_listed_in_order_keep_their_order_and_subgraph_reads_are_readers() {
        let g = graph_in_order_with_subgraph();
        let index = GraphIndex::new(&g).unwrap();
        assert!(index.ids_are_topological());
        assert_eq!(index.order, g.topo_order().unwrap());
        let id = |name: &str| g.find(name).unwrap();
        let a = index.outputs(id("relu")).next().flatten().unwrap();
        assert_eq!(
            index.readers(a).collect::<Vec<_>>(),
            [(id("if"), None), (id("mul"), Some(0))],
            "the If reads `a` only inside its branches"
        );
    }

    #[test]
    fn names_differing_only_in_length_or_trailing_zeros_hash_apart() {
        let hash = |name: &str| FxBuildHasher::default().hash_one(name);
        let names = ["a", "a\0", "a\0\0\0\0\0\0\0", "abcdefgh", "abcdefgh\0", ""];
        for (i, x) in names.iter().enumerate() {
            for y in &names[i + 1..] {
                assert_ne!(hash(x), hash(y), "{x:?} vs {y:?}");
            }
        }
    }

    #[test]
    fn reads_of_one_initializer_are_the_same_input() {
        let constant = |name: &str| TensorProto {
            name: Some(name.into()),
            data_type: Some(1),
            dims: vec![1],
            float_data: vec![2.0],
            ..Default::default()
        };
        let g = Graph::from_proto(GraphProto {
            node: vec![
                node("m1", "Mul", &["x", "k"], &["a"]),
                node("m2", "Mul", &["a", "k"], &["b"]),
                node("m3", "Mul", &["b", "j"], &["c"]),
                node("m4", "Mul", &["x", "c"], &["y"]),
            ],
            input: vec![value("x")],
            output: vec![value("y")],
            initializer: vec![constant("k"), constant("j")],
            ..Default::default()
        })
        .unwrap();
        let index = GraphIndex::new(&g).unwrap();
        let id = |name: &str| g.find(name).unwrap();
        let same = |a: (&str, usize), b: (&str, usize)| {
            index.same_input(&g, (id(a.0), a.1), (id(b.0), b.1))
        };
        assert!(same(("m1", 1), ("m2", 1)), "both read k");
        assert!(same(("m1", 0), ("m4", 0)), "both read x");
        assert!(!same(("m2", 1), ("m3", 1)), "k vs j");
        assert!(!same(("m1", 0), ("m2", 0)), "x vs a");
        assert!(!same(("m1", 1), ("m1", 2)), "slot 2 is absent");
        assert!(index.is_const(index.input(id("m3"), 1).unwrap()));
    }
}
