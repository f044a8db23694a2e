//! Visits every `TensorProto` a model holds, wherever ONNX allows one to sit.
//!
//! Owns: the list of those places — graph initializers and sparse initializers, tensors in node
//! attributes (`t`, `tensors`, `sparse_tensor(s)`), graphs nested in attributes (If/Loop/Scan
//! bodies), `training_info` graphs, and function bodies with their attribute defaults — and a
//! description of each place for error messages. Does not own: what is done with a tensor.

use std::fmt;

use crate::onnx::proto::{
    AttributeProto, FunctionProto, GraphProto, ModelProto, NodeProto, SparseTensorProto,
    TensorProto,
};

/// Where a tensor sits in a model; displayed in error messages together with the tensor's name.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TensorSite<'a> {
    /// The graph or function whose body holds the tensor.
    pub scope: Scope<'a>,
    /// What holds the tensor inside that scope.
    pub holder: Holder<'a>,
    /// Which part of a sparse tensor this is, if any.
    pub part: SparsePart,
}

/// A graph or a function body.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Scope<'a> {
    /// A graph (the main graph, a subgraph, or a training graph), by name.
    Graph(&'a str),
    /// A model-local function, by name.
    Function(&'a str),
}

/// What holds a tensor inside a scope.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Holder<'a> {
    /// The graph's `initializer` list.
    Initializer,
    /// The graph's `sparse_initializer` list.
    SparseInitializer,
    /// A node attribute, or (node `None`) a function's attribute default.
    Attribute {
        /// The node's name; `None` for a function's attribute default value.
        node: Option<&'a str>,
        /// The attribute's name.
        attribute: &'a str,
    },
}

/// For tensors inside a `SparseTensorProto`, which of its two tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SparsePart {
    /// A dense tensor, not part of a sparse one.
    Dense,
    /// The sparse tensor's `values`.
    Values,
    /// The sparse tensor's `indices`.
    Indices,
}

impl TensorSite<'_> {
    /// A description such as `initializer 'conv1.weight' of graph 'main'`, for error messages.
    pub(crate) fn describe(&self, tensor: &TensorProto) -> String {
        let name = Quoted(tensor.name.as_deref().unwrap_or(""));
        let part = match self.part {
            SparsePart::Dense => "",
            SparsePart::Values => "values of sparse ",
            SparsePart::Indices => "indices of sparse ",
        };
        let held = match self.holder {
            Holder::Initializer | Holder::SparseInitializer => format!("{part}initializer {name}"),
            Holder::Attribute {
                node: Some(node),
                attribute,
            } => format!(
                "{part}tensor {name} in attribute {} of node {}",
                Quoted(attribute),
                Quoted(node)
            ),
            Holder::Attribute {
                node: None,
                attribute,
            } => format!(
                "{part}tensor {name} in the default of attribute {}",
                Quoted(attribute)
            ),
        };
        match self.scope {
            Scope::Graph(graph) => format!("{held} of graph {}", Quoted(graph)),
            Scope::Function(function) => format!("{held} of function {}", Quoted(function)),
        }
    }
}

/// A name in single quotes, or `(unnamed)` when empty.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(unnamed)")
        } else {
            write!(f, "'{}'", self.0)
        }
    }
}

/// Calls `visit` on every tensor of `model`, in a fixed order, stopping at the first error.
pub(crate) fn for_each_tensor_mut<E>(
    model: &mut ModelProto,
    visit: &mut impl FnMut(&TensorSite<'_>, &mut TensorProto) -> Result<(), E>,
) -> Result<(), E> {
    if let Some(graph) = model.graph.as_mut() {
        visit_graph(graph, visit)?;
    }
    for info in &mut model.training_info {
        for graph in [info.initialization.as_mut(), info.algorithm.as_mut()]
            .into_iter()
            .flatten()
        {
            visit_graph(graph, visit)?;
        }
    }
    for function in &mut model.functions {
        let FunctionProto {
            name,
            node,
            attribute_proto,
            ..
        } = function;
        let scope = Scope::Function(name.as_deref().unwrap_or(""));
        for attribute in attribute_proto {
            visit_attribute(scope, None, attribute, visit)?;
        }
        visit_nodes(scope, node, visit)?;
    }
    Ok(())
}

fn visit_graph<E>(
    graph: &mut GraphProto,
    visit: &mut impl FnMut(&TensorSite<'_>, &mut TensorProto) -> Result<(), E>,
) -> Result<(), E> {
    let GraphProto {
        name,
        node,
        initializer,
        sparse_initializer,
        ..
    } = graph;
    let scope = Scope::Graph(name.as_deref().unwrap_or(""));
    let site = TensorSite {
        scope,
        holder: Holder::Initializer,
        part: SparsePart::Dense,
    };
    for tensor in initializer {
        visit(&site, tensor)?;
    }
    for sparse in sparse_initializer {
        visit_sparse(scope, Holder::SparseInitializer, sparse, visit)?;
    }
    visit_nodes(scope, node, visit)
}

fn visit_nodes<E>(
    scope: Scope<'_>,
    nodes: &mut [NodeProto],
    visit: &mut impl FnMut(&TensorSite<'_>, &mut TensorProto) -> Result<(), E>,
) -> Result<(), E> {
    for node in nodes {
        let NodeProto {
            name, attribute, ..
        } = node;
        for attribute in attribute {
            visit_attribute(scope, Some(name.as_deref().unwrap_or("")), attribute, visit)?;
        }
    }
    Ok(())
}

fn visit_attribute<E>(
    scope: Scope<'_>,
    node: Option<&str>,
    attribute: &mut AttributeProto,
    visit: &mut impl FnMut(&TensorSite<'_>, &mut TensorProto) -> Result<(), E>,
) -> Result<(), E> {
    let AttributeProto {
        name,
        t,
        tensors,
        sparse_tensor,
        sparse_tensors,
        g,
        graphs,
        ..
    } = attribute;
    let holder = Holder::Attribute {
        node,
        attribute: name.as_deref().unwrap_or(""),
    };
    let site = TensorSite {
        scope,
        holder,
        part: SparsePart::Dense,
    };
    for tensor in t.iter_mut().chain(tensors) {
        visit(&site, tensor)?;
    }
    for sparse in sparse_tensor.iter_mut().chain(sparse_tensors) {
        visit_sparse(scope, holder, sparse, visit)?;
    }
    for graph in g.iter_mut().map(|graph| &mut **graph).chain(graphs) {
        visit_graph(graph, visit)?;
    }
    Ok(())
}

fn visit_sparse<E>(
    scope: Scope<'_>,
    holder: Holder<'_>,
    sparse: &mut SparseTensorProto,
    visit: &mut impl FnMut(&TensorSite<'_>, &mut TensorProto) -> Result<(), E>,
) -> Result<(), E> {
    let parts = [
        (SparsePart::Values, sparse.values.as_mut()),
        (SparsePart::Indices, sparse.indices.as_mut()),
    ];
    for (part, tensor) in parts {
        if let Some(tensor) = tensor {
            visit(
                &TensorSite {
                    scope,
                    holder,
                    part,
                },
                tensor,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::TrainingInfoProto;

    fn tensor(name: &str) -> TensorProto {
        TensorProto {
            name: Some(name.to_owned()),
            ..TensorProto::default()
        }
    }

    fn constant(node: &str, value: &str) -> NodeProto {
        NodeProto {
            name: Some(node.to_owned()),
            attribute: vec![AttributeProto {
                name: Some("value".to_owned()),
                t: Some(tensor(value)),
                ..AttributeProto::default()
            }],
            ..NodeProto::default()
        }
    }

    #[test]
    fn every_place_is_visited_once_and_described() {
        let body = GraphProto {
            name: Some("body".to_owned()),
            initializer: vec![tensor("b_init")],
            node: vec![constant("b_const", "b_value")],
            ..GraphProto::default()
        };
        let sparse = SparseTensorProto {
            values: Some(tensor("s_values")),
            indices: Some(tensor("s_indices")),
            dims: vec![],
        };
        let mut looping = constant("loop", "l_value");
        looping.attribute.push(AttributeProto {
            name: Some("body".to_owned()),
            g: Some(Box::new(body.clone())),
            graphs: vec![body],
            tensors: vec![tensor("l_list")],
            sparse_tensor: Some(sparse.clone()),
            ..AttributeProto::default()
        });
        let mut model = ModelProto {
            graph: Some(GraphProto {
                name: Some("main".to_owned()),
                initializer: vec![tensor("init")],
                sparse_initializer: vec![sparse],
                node: vec![looping],
                ..GraphProto::default()
            }),
            training_info: vec![TrainingInfoProto {
                algorithm: Some(GraphProto {
                    initializer: vec![tensor("t_init")],
                    ..GraphProto::default()
                }),
                ..TrainingInfoProto::default()
            }],
            functions: vec![FunctionProto {
                name: Some("f".to_owned()),
                node: vec![constant("", "f_value")],
                attribute_proto: vec![AttributeProto {
                    name: Some("alpha".to_owned()),
                    t: Some(tensor("f_default")),
                    ..AttributeProto::default()
                }],
                ..FunctionProto::default()
            }],
            ..ModelProto::default()
        };
        let mut seen = Vec::new();
        for_each_tensor_mut::<()>(&mut model, &mut |site, tensor| {
            seen.push(site.describe(tensor));
            Ok(())
        })
        .unwrap();
        let expected = [
            "initializer 'init' of graph 'main'",
            "values of sparse initializer 's_values' of graph 'main'",
            "indices of sparse initializer 's_indices' of graph 'main'",
            "tensor 'l_value' in attribute 'value' of node 'loop' of graph 'main'",
            "tensor 'l_list' in attribute 'body' of node 'loop' of graph 'main'",
            "values of sparse tensor 's_values' in attribute 'body' of node 'loop' of graph 'main'",
            "indices of sparse tensor 's_indices' in attribute 'body' of node 'loop' of graph 'main'",
            "initializer 'b_init' of graph 'body'",
            "tensor 'b_value' in attribute 'value' of node 'b_const' of graph 'body'",
            "initializer 'b_init' of graph 'body'",
            "tensor 'b_value' in attribute 'value' of node 'b_const' of graph 'body'",
            "initializer 't_init' of graph (unnamed)",
            "tensor 'f_default' in the default of attribute 'alpha' of function 'f'",
            "tensor 'f_value' in attribute 'value' of node (unnamed) of function 'f'",
        ];
        assert_eq!(seen, expected);
    }

    #[test]
    fn the_first_error_stops_the_walk() {
        let mut model = ModelProto {
            graph: Some(GraphProto {
                initializer: vec![tensor("a"), tensor("b"), tensor("c")],
                ..GraphProto::default()
            }),
            ..ModelProto::default()
        };
        let mut visited = 0;
        let result = for_each_tensor_mut(&mut model, &mut |_, tensor| {
            visited += 1;
            match tensor.name.as_deref() {
                Some("b") => Err("stop"),
                _ => Ok(()),
            }
        });
        assert_eq!((result, visited), (Err("stop"), 2));
    }
}
