//! The IR's invariants: validation errors, deterministic naming, use-def maps under edits,
//! subgraph outer-scope reads, and ONNX → IR → ONNX keeping every field.

use trtq::graph::{Graph, GraphError, Model, Node, attr};
use trtq::onnx::proto::*;

fn vi(name: &str, dims: &[i64]) -> ValueInfoProto {
    trtq::graph::shape::ValueType::known(DataType::Float as i32, dims).to_value_info(name)
}

fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        name: (!name.is_empty()).then(|| name.to_string()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn graph(nodes: Vec<NodeProto>, outputs: &[&str]) -> GraphProto {
    GraphProto {
        node: nodes,
        name: Some("g".into()),
        input: vec![vi("x", &[1, 4])],
        output: outputs.iter().map(|o| vi(o, &[1, 4])).collect(),
        ..Default::default()
    }
}

#[test]
fn cycle_is_an_error_naming_the_nodes() {
    let g = graph(
        vec![
            node("a", "Relu", &["x2"], &["x1"]),
            node("b", "Relu", &["x1"], &["x2"]),
        ],
        &["x2"],
    );
    match Graph::from_proto(g) {
        Err(GraphError::Cycle { nodes }) => assert_eq!(nodes, vec!["a", "b"]),
        other => panic!("expected a cycle error, got {other:?}"),
    }
}

#[test]
fn undefined_value_and_duplicates_are_errors() {
    let g = graph(vec![node("a", "Relu", &["nope"], &["y"])], &["y"]);
    let e = Graph::from_proto(g).unwrap_err().to_string();
    assert!(e.contains("'a'") || e.contains("a reads"), "{e}");
    assert!(e.contains("nope"), "{e}");

    let g = graph(
        vec![
            node("a", "Relu", &["x"], &["y"]),
            node("b", "Relu", &["x"], &["y"]),
        ],
        &["y"],
    );
    assert!(matches!(
        Graph::from_proto(g),
        Err(GraphError::DuplicateDefinition { .. })
    ));

    let mut g = graph(vec![node("a", "Relu", &["x"], &["y"])], &["y"]);
    g.output.push(vi("y", &[1, 4]));
    assert!(matches!(
        Graph::from_proto(g),
        Err(GraphError::DuplicateOutput { .. })
    ));

    let g = graph(vec![node("a", "Relu", &["x"], &["x"])], &["x"]);
    assert!(matches!(
        Graph::from_proto(g),
        Err(GraphError::DuplicateDefinition { .. })
    ));
}

#[test]
fn unnamed_and_duplicate_names_get_deterministic_unique_names() {
    let nodes = vec![
        node("", "Relu", &["x"], &["a"]),
        node("Relu_2", "Relu", &["a"], &["b"]),
        node("Relu_2", "Sigmoid", &["b"], &["c"]),
        node("", "Relu", &["c"], &["d"]),
    ];
    let g = Graph::from_proto(graph(nodes, &["d"])).unwrap();
    let order: Vec<String> = g
        .topo_order()
        .unwrap()
        .into_iter()
        .map(|id| g.node(id).name.clone())
        .collect();
    // Node 0 → Relu_0; node 2 duplicates "Relu_2" → Sigmoid_2; node 3 → Relu_3.
    assert_eq!(order, vec!["Relu_0", "Relu_2", "Sigmoid_2", "Relu_3"]);
}

#[test]
fn edits_keep_use_def_maps_consistent() {
    let nodes = vec![
        node("a", "Relu", &["x"], &["y"]),
        node("b", "Sigmoid", &["y"], &["z"]),
        node("c", "Tanh", &["y"], &["w"]),
    ];
    let mut g = Graph::from_proto(graph(nodes, &["z", "w"])).unwrap();
    let a = g.find("a").unwrap();
    assert_eq!(g.consumers("y").len(), 2);
    // Insert an Identity after `a` and move every reader of y to it.
    g.add_node(Node::new("id", "Identity", &["y"], &["y2"]))
        .unwrap();
    let readers: Vec<_> = g
        .consumers("y")
        .iter()
        .copied()
        .filter(|&c| g.node(c).name != "id")
        .collect();
    for r in readers {
        g.set_input(r, 0, "y2");
    }
    assert_eq!(g.consumers("y").len(), 1);
    assert_eq!(g.consumers("y2").len(), 2);
    assert_eq!(g.producer("y"), Some(a));
    g.validate().unwrap();
    // Removing the producer of a used value leaves the graph invalid until fixed.
    let removed = g.remove_node(a);
    assert!(matches!(
        g.validate(),
        Err(GraphError::UndefinedValue { .. })
    ));
    g.add_node(removed).unwrap();
    g.validate().unwrap();
    // Dead code: a node nobody reads is removed, with its now-unused initializer.
    g.set_initializer(trtq::graph::Tensor::from_i64s(vec![1]).to_proto("k"), "k");
    g.add_node(Node::new("dead", "Add", &["x", "k"], &["unused"]))
        .unwrap();
    assert_eq!(g.remove_dead(), vec!["dead".to_string()]);
    assert!(g.initializer("k").is_none());
}

#[test]
fn subgraph_reads_of_outer_values_count_as_uses() {
    let body = GraphProto {
        node: vec![node("inner", "Relu", &["outer_y"], &["r"])],
        name: Some("then".into()),
        output: vec![vi("r", &[1, 4])],
        ..Default::default()
    };
    let if_node = NodeProto {
        attribute: vec![
            AttributeProto {
                name: Some("then_branch".into()),
                r#type: Some(AttributeType::Graph as i32),
                g: Some(Box::new(body.clone())),
                ..Default::default()
            },
            AttributeProto {
                name: Some("else_branch".into()),
                r#type: Some(AttributeType::Graph as i32),
                g: Some(Box::new(body)),
                ..Default::default()
            },
        ],
        ..node("if", "If", &["cond"], &["out"])
    };
    let mut gp = graph(
        vec![
            node("a", "Relu", &["x"], &["outer_y"]),
            node("c", "Cast", &["x"], &["cond"]),
            if_node,
        ],
        &["out"],
    );
    gp.node[1].attribute.push(attr::int("to", 9));
    let mut g = Graph::from_proto(gp).unwrap();
    let if_id = g.find("if").unwrap();
    assert!(g.consumers("outer_y").contains(&if_id));
    assert!(
        g.remove_dead().is_empty(),
        "the If keeps `a` alive through its body"
    );
    // The body rides along untouched.
    let back = g.to_proto().unwrap();
    let body = back
        .node
        .iter()
        .find(|n| n.name.as_deref() == Some("if"))
        .unwrap()
        .attribute[0]
        .g
        .as_ref()
        .unwrap();
    assert_eq!(body.node[0].input, vec!["outer_y"]);
}

#[test]
fn model_round_trip_keeps_every_field() {
    let mut n = node("a", "Relu", &["x"], &["y"]);
    n.doc_string = Some("doc".into());
    n.metadata_props.push(StringStringEntryProto {
        key: Some("k".into()),
        value: Some("v".into()),
    });
    n.domain = Some(String::new());
    let mut gp = graph(vec![n], &["y"]);
    gp.doc_string = Some("graph doc".into());
    gp.value_info.push(vi("y", &[1, 4]));
    gp.quantization_annotation.push(TensorAnnotation {
        tensor_name: Some("y".into()),
        ..Default::default()
    });
    let mp = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        producer_name: Some("test".into()),
        graph: Some(gp),
        metadata_props: vec![StringStringEntryProto {
            key: Some("a".into()),
            value: Some("b".into()),
        }],
        functions: vec![FunctionProto {
            name: Some("f".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let m = Model::from_proto(mp.clone()).unwrap();
    assert_eq!(m.opset(), 17);
    assert_eq!(m.to_proto().unwrap(), mp);
}
