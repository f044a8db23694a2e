//! An integer view of a graph for the pattern search: topological order, value ids, each value's
//! producer and readers, and which values are constants or graph inputs/outputs.
//!
//! Owns: [`GraphIndex`], built once per search with one name lookup per edge; afterwards the
//! matcher and the match records follow integer edges only, so the work per node stays flat as
//! graphs grow (String-keyed lookups into maps of 100k values are cache misses).
//! Does not own: the graph (read only) or the search ([`super::matcher`]).

use super::query::GraphQuery;
use crate::graph::{Graph, GraphError, NodeId};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// A value's index in a [`GraphIndex`].
pub(crate) type ValueId = u32;

/// Marks an absent entry (omitted input, a value nothing produces, an implicit read's slot).
const NONE: u32 = u32::MAX;

/// The integer view (see the module doc). Node ids are the graph's own.
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
    /// Per entry of `output_values`, its range in `readers`.
    reader_start: Vec<u32>,
    /// (consumer node, input slot) per read; slot `NONE` for a read from inside a subgraph.
    readers: Vec<(u32, u32)>,
    /// Per value, its entry in `output_values` (`NONE` when no node produces it).
    produced_at: Vec<u32>,
    /// Per value, its producer node (`NONE` when none).
    producer: Vec<u32>,
    /// Per value, `CONST` / `GRAPH_INPUT` / `GRAPH_OUTPUT` bits.
    flags: Vec<u8>,
}

const CONST: u8 = 1;
const GRAPH_INPUT: u8 = 2;
const GRAPH_OUTPUT: u8 = 4;

impl GraphIndex {
    /// Indexes `g`; fails on a cycle (with [`Graph::topo_order`]'s error).
    pub fn new(g: &Graph) -> Result<GraphIndex, GraphError> {
        let capacity = g.node_ids().max().map_or(0, |m| m + 1);
        let mut flags: Vec<u8> = Vec::new();
        let mut ids: Interner = Interner::default();
        for (name, _) in g.initializers() {
            let v = ids.get(name, &mut flags);
            flags[v as usize] |= CONST;
        }
        for (io, bit) in [(&g.inputs, GRAPH_INPUT), (&g.outputs, GRAPH_OUTPUT)] {
            for name in io.iter().filter_map(|i| i.name.as_deref()) {
                let v = ids.get(name, &mut flags);
                if bit == GRAPH_OUTPUT || flags[v as usize] & CONST == 0 {
                    flags[v as usize] |= bit;
                }
            }
        }

        let mut output_start = vec![0u32; capacity + 1];
        let mut output_values = Vec::new();
        let mut input_start = vec![0u32; capacity + 1];
        let mut input_values = Vec::new();
        for id in 0..capacity {
            if let Some(node) = g.get(id) {
                for o in &node.outputs {
                    output_values.push(if o.is_empty() {
                        NONE
                    } else {
                        ids.get(o, &mut flags)
                    });
                }
            }
            output_start[id + 1] = output_values.len() as u32;
        }
        for id in 0..capacity {
            if let Some(node) = g.get(id) {
                for i in &node.inputs {
                    input_values.push(if i.is_empty() {
                        NONE
                    } else {
                        ids.get(i, &mut flags)
                    });
                }
            }
            input_start[id + 1] = input_values.len() as u32;
        }

        let mut producer = vec![NONE; flags.len()];
        let mut produced_at = vec![NONE; flags.len()];
        let mut reader_start = Vec::with_capacity(output_values.len() + 1);
        let mut readers = Vec::new();
        reader_start.push(0);
        for id in 0..capacity {
            let Some(node) = g.get(id) else { continue };
            let range = output_start[id] as usize..output_start[id + 1] as usize;
            for (entry, name) in range.zip(&node.outputs) {
                let v = output_values[entry];
                if v != NONE {
                    producer[v as usize] = id as u32;
                    produced_at[v as usize] = entry as u32;
                    if node.op_type == "Constant" && node.is_onnx() && g.is_const(name) {
                        flags[v as usize] |= CONST;
                    }
                    for &c in g.consumers(name) {
                        let slots =
                            &input_values[input_start[c] as usize..input_start[c + 1] as usize];
                        let before = readers.len();
                        readers.extend(
                            (0..slots.len())
                                .filter(|&s| slots[s] == v)
                                .map(|s| (c as u32, s as u32)),
                        );
                        if readers.len() == before {
                            readers.push((c as u32, NONE));
                        }
                    }
                }
                reader_start.push(readers.len() as u32);
            }
        }

        let mut index = GraphIndex {
            order: Vec::new(),
            position: vec![usize::MAX; capacity],
            input_start,
            input_values,
            output_start,
            output_values,
            reader_start,
            readers,
            produced_at,
            producer,
            flags,
        };
        index.order = index.topo_order(g, capacity)?;
        for (pos, &id) in index.order.iter().enumerate() {
            index.position[id] = pos;
        }
        Ok(index)
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
        let outputs = self.output_start[id] as usize..self.output_start[id + 1] as usize;
        for entry in outputs {
            let reads = self.reader_start[entry] as usize..self.reader_start[entry + 1] as usize;
            out.extend(self.readers[reads].iter().map(|&(c, _)| c as NodeId));
        }
        out.sort_unstable();
        out.dedup();
    }

    /// The input values of node `id`, slot by slot (`None` for an omitted input).
    pub fn inputs(&self, id: NodeId) -> impl Iterator<Item = Option<ValueId>> + '_ {
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
    /// the search never follows): (consumer, input slot), slot `None` for a read from inside a
    /// subgraph.
    pub fn readers(&self, v: ValueId) -> impl Iterator<Item = (NodeId, Option<usize>)> + '_ {
        let reads = match some(self.produced_at[v as usize]) {
            Some(entry) => {
                let entry = entry as usize;
                self.reader_start[entry] as usize..self.reader_start[entry + 1] as usize
            }
            None => 0..0,
        };
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
}

/// Value names to ids, in first-seen order; a new value gets a zeroed flags entry.
#[derive(Default)]
struct Interner<'g> {
    ids: HashMap<&'g str, ValueId>,
}

impl<'g> Interner<'g> {
    fn get(&mut self, name: &'g str, flags: &mut Vec<u8>) -> ValueId {
        let next = flags.len() as ValueId;
        *self.ids.entry(name).or_insert_with(|| {
            flags.push(0);
            next
        })
    }
}

/// `None` for the `NONE` marker.
fn some(v: u32) -> Option<u32> {
    (v != NONE).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::{GraphProto, NodeProto, TensorProto, ValueInfoProto};

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
}
