//! The FP16 float policy on small graphs, normalized as `trtq build` normalizes them: boundary
//! Casts keep graph I/O types, initializers convert (in place or beside the FP32 original),
//! decomposed LayerNorm statistics and out-of-range constants stay FP32, Q/DQ get FP16 scales at
//! opset 19. onnxruntime runs the converted real models in tests/conformance/test_fp16.py.

use std::collections::BTreeMap;
use trtq::graph::normalize::{NormalizeOptions, normalize};
use trtq::graph::shape::ValueType;
use trtq::graph::{Attributes, GraphError, Model, Tensor, attr};
use trtq::onnx::proto::*;
use trtq::quantize::fp16::{Fp16Options, Fp16Report, KeepReason, convert_float_to_fp16};

const FLOAT: i32 = DataType::Float as i32;
const FLOAT16: i32 = DataType::Float16 as i32;
const INT8: i32 = DataType::Int8 as i32;
const INT64: i32 = DataType::Int64 as i32;

fn vi(name: &str, dtype: i32, dims: &[i64]) -> ValueInfoProto {
    ValueType::known(dtype, dims).to_value_info(name)
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        name: Some(format!("{op}_{}", outputs[0])),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn f32_init(name: &str, dims: &[i64], values: Vec<f32>) -> TensorProto {
    let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    Tensor::F32(ndarray::ArrayD::from_shape_vec(shape, values).unwrap()).to_proto(name)
}

fn i8_init(name: &str, dims: &[i64], values: Vec<i8>) -> TensorProto {
    let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    Tensor::I8(ndarray::ArrayD::from_shape_vec(shape, values).unwrap()).to_proto(name)
}

/// A model of these parts, normalized to `opset` (types recorded for every value).
fn normalized(
    opset: i64,
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    initializers: Vec<TensorProto>,
) -> Model {
    let proto = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: nodes,
            input: inputs,
            output: outputs,
            initializer: initializers,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut model = Model::from_proto(proto).unwrap();
    let opts = NormalizeOptions {
        opset,
        input_shapes: BTreeMap::new(),
    };
    normalize(&mut model, &opts, &trtq::fold_evaluator).unwrap();
    model
}

fn convert(model: &Model, opts: &Fp16Options) -> (Model, Fp16Report) {
    convert_float_to_fp16(model, opts).unwrap()
}

fn dtype_of(m: &Model, value: &str) -> i32 {
    let g = &m.graph;
    match g.initializer(value) {
        Some(t) => t.data_type.unwrap(),
        None => {
            ValueType::from_value_info(g.value_info(value).unwrap())
                .unwrap()
                .dtype
        }
    }
}

/// The single node of type `op` reading `value`.
fn reader<'m>(m: &'m Model, value: &str, op: &str) -> &'m trtq::graph::Node {
    let g = &m.graph;
    let found: Vec<_> = g
        .consumers(value)
        .iter()
        .map(|&id| g.node(id))
        .filter(|n| n.op_type == op)
        .collect();
    assert_eq!(found.len(), 1, "{op} readers of {value}: {found:?}");
    found[0]
}

fn by_name<'m>(m: &'m Model, name: &str) -> &'m trtq::graph::Node {
    m.graph.node(
        m.graph
            .find(name)
            .unwrap_or_else(|| panic!("no node {name}")),
    )
}

#[test]
fn graph_inputs_and_outputs_keep_their_types_through_boundary_casts() {
    let m = normalized(
        17,
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![vi("x", FLOAT, &[1, 4])],
        vec![vi("y", FLOAT, &[1, 4])],
        vec![],
    );
    let (h, report) = convert(&m, &Fp16Options::default());
    let g = &h.graph;
    assert_eq!(dtype_of(&h, "x"), FLOAT);
    assert_eq!(dtype_of(&h, "y"), FLOAT);
    let cast_in = reader(&h, "x", "Cast");
    assert_eq!(cast_in.attr_i("to"), Some(FLOAT16 as i64));
    let relu = by_name(&h, "Relu_y");
    assert_eq!(relu.inputs, vec![cast_in.outputs[0].clone()]);
    assert_eq!(dtype_of(&h, &relu.outputs[0]), FLOAT16);
    let cast_out = g.node(g.producer("y").unwrap());
    assert_eq!(cast_out.op_type, "Cast");
    assert_eq!(cast_out.attr_i("to"), Some(FLOAT as i64));
    assert_eq!(cast_out.inputs, relu.outputs);
    assert_eq!((report.fp16_nodes, report.casts), (1, 2));
    // The input model is untouched.
    assert_eq!(m.graph.node_count(), 1);
}

#[test]
fn initializers_convert_in_place_or_beside_an_fp32_reader() {
    // w feeds an FP16 Conv and a Mul the caller keeps in FP32; b feeds only the Conv.
    let m = normalized(
        17,
        vec![
            node("Conv", &["x", "w", "b"], &["c"], vec![]),
            node("Mul", &["x", "w"], &["p"], vec![]),
        ],
        vec![vi("x", FLOAT, &[1, 1, 1, 1])],
        vec![vi("c", FLOAT, &[1, 1, 1, 1]), vi("p", FLOAT, &[1, 1, 1, 1])],
        vec![
            f32_init("w", &[1, 1, 1, 1], vec![0.1]),
            f32_init("b", &[1], vec![2.5]),
        ],
    );
    let opts = Fp16Options {
        keep_fp32_nodes: vec!["Mul_p".into()],
        ..Fp16Options::default()
    };
    let (h, report) = convert(&m, &opts);
    assert_eq!(
        dtype_of(&h, "b"),
        FLOAT16,
        "read only by FP16 nodes: converted in place"
    );
    assert_eq!(
        dtype_of(&h, "w"),
        FLOAT,
        "the FP32 Mul still reads the original"
    );
    let conv = by_name(&h, "Conv_c");
    assert_eq!(conv.inputs[1], "w_fp16");
    assert_eq!(dtype_of(&h, "w_fp16"), FLOAT16);
    let w16 = Tensor::from_proto(h.graph.initializer("w_fp16").unwrap()).unwrap();
    assert_eq!(
        w16.to_f32_array().iter().copied().collect::<Vec<_>>(),
        vec![0.099975586]
    );
    assert_eq!(
        by_name(&h, "Mul_p").inputs,
        vec!["x".to_string(), "w".into()]
    );
    assert_eq!(
        (report.converted_initializers, report.copied_initializers),
        (1, 1)
    );
    assert_eq!(report.fp32_nodes.len(), 1);
    assert_eq!(report.fp32_nodes[0].reason, KeepReason::Requested);
}

/// Relu → a LayerNorm decomposed as PyTorch exports it below opset 17, squaring with `square`.
fn decomposed_layer_norm(square: NodeProto) -> Model {
    let nodes = vec![
        node("Relu", &["x"], &["r"], vec![]),
        node(
            "ReduceMean",
            &["r"],
            &["mean"],
            vec![attr::ints("axes", &[-1])],
        ),
        node("Sub", &["r", "mean"], &["d"], vec![]),
        square,
        node(
            "ReduceMean",
            &["sq"],
            &["var"],
            vec![attr::ints("axes", &[-1])],
        ),
        node("Add", &["var", "eps"], &["ve"], vec![]),
        node("Sqrt", &["ve"], &["std"], vec![]),
        node("Div", &["d", "std"], &["norm"], vec![]),
        node("Mul", &["norm", "gamma"], &["scaled"], vec![]),
        node("Add", &["scaled", "beta"], &["y"], vec![]),
    ];
    normalized(
        17,
        nodes,
        vec![vi("x", FLOAT, &[2, 4])],
        vec![vi("y", FLOAT, &[2, 4])],
        vec![
            f32_init("two", &[], vec![2.0]),
            f32_init("eps", &[], vec![1e-12]),
            f32_init("gamma", &[4], vec![1.0; 4]),
            f32_init("beta", &[4], vec![0.0; 4]),
        ],
    )
}

#[test]
fn decomposed_layer_norm_statistics_stay_fp32_behind_one_shared_cast() {
    let m = decomposed_layer_norm(node("Pow", &["d", "two"], &["sq"], vec![]));
    let (h, report) = convert(&m, &Fp16Options::default());
    let kept: Vec<(&str, KeepReason)> = report
        .fp32_nodes
        .iter()
        .map(|k| (k.op.as_str(), k.reason))
        .collect();
    let stats = KeepReason::LayerNormStatistics;
    assert_eq!(
        kept,
        vec![
            ("ReduceMean", stats),
            ("Sub", stats),
            ("Pow", stats),
            ("ReduceMean", stats),
            ("Add", stats),
            ("Sqrt", stats),
            ("Div", stats),
        ]
    );
    assert_eq!(report.fp16_nodes, 3, "Relu and the affine Mul/Add");
    // ReduceMean and Sub read one FP32 copy of the FP16 Relu output.
    let to_fp32 = reader(&h, "r", "Cast");
    assert_eq!(to_fp32.attr_i("to"), Some(FLOAT as i64));
    let r32 = &to_fp32.outputs[0];
    assert_eq!(by_name(&h, "ReduceMean_mean").inputs[0], *r32);
    assert_eq!(by_name(&h, "Sub_d").inputs[0], *r32);
    // eps stays FP32 (1e-12 is zero in FP16); the statistics stay FP32.
    assert_eq!(dtype_of(&h, "eps"), FLOAT);
    for v in ["mean", "d", "sq", "var", "ve", "std", "norm"] {
        assert_eq!(dtype_of(&h, v), FLOAT, "{v}");
    }
    // The normalized value goes back to FP16 for the affine part.
    let mul = by_name(&h, "Mul_scaled");
    assert_eq!(reader(&h, "norm", "Cast").outputs[0], mul.inputs[0]);
    assert_eq!(dtype_of(&h, "gamma"), FLOAT16);
    assert_eq!(dtype_of(&h, "scaled"), FLOAT16);

    // Opting out leaves the whole chain in FP16.
    let all_fp16 = Fp16Options {
        layer_norm_stats_fp32: false,
        ..Fp16Options::default()
    };
    let (_, report) = convert(&m, &all_fp16);
    assert!(report.fp32_nodes.is_empty());
    assert_eq!(report.fp16_nodes, 10);
}

/// Q → DQ on the input of a Conv whose int8 weight goes through DQ, at opset 13.
fn qdq_conv(input_scale: f32, weight_scales: [f32; 2]) -> Model {
    normalized(
        13,
        vec![
            node("QuantizeLinear", &["x", "sx", "zx"], &["xq"], vec![]),
            node("DequantizeLinear", &["xq", "sx", "zx"], &["xd"], vec![]),
            node(
                "DequantizeLinear",
                &["wq", "sw", "zw"],
                &["wd"],
                vec![attr::int("axis", 0)],
            ),
            node("Conv", &["xd", "wd", "b"], &["y"], vec![]),
        ],
        vec![vi("x", FLOAT, &[1, 1, 3, 3])],
        vec![vi("y", FLOAT, &[1, 2, 3, 3])],
        vec![
            f32_init("sx", &[], vec![input_scale]),
            i8_init("zx", &[], vec![0]),
            i8_init("wq", &[2, 1, 1, 1], vec![50, -100]),
            f32_init("sw", &[2], weight_scales.to_vec()),
            i8_init("zw", &[2], vec![0, 0]),
            f32_init("b", &[2], vec![0.5, -0.5]),
        ],
    )
}

#[test]
fn qdq_gets_fp16_scales_at_opset_19_with_no_cast_between_dq_and_conv() {
    let m = qdq_conv(0.02, [0.01, 0.005]);
    let (h, report) = convert(&m, &Fp16Options::default());
    assert_eq!(report.opset_upgraded_from, Some(13));
    assert_eq!(h.opset(), 19);
    assert!(report.fp32_nodes.is_empty(), "{:?}", report.fp32_nodes);
    for scale in ["sx", "sw"] {
        assert_eq!(dtype_of(&h, scale), FLOAT16, "{scale}");
    }
    for (zero_point, dtype) in [("zx", INT8), ("zw", INT8), ("wq", INT8)] {
        assert_eq!(dtype_of(&h, zero_point), dtype);
    }
    let conv = by_name(&h, "Conv_y");
    assert_eq!(conv.inputs, vec!["xd".to_string(), "wd".into(), "b".into()]);
    for v in ["xd", "wd", "b"] {
        assert_eq!(dtype_of(&h, v), FLOAT16, "{v}");
    }
    // The Q reads the FP16 copy of the graph input; only the two boundary Casts exist.
    let q = by_name(&h, "QuantizeLinear_xq");
    assert_eq!(dtype_of(&h, &q.inputs[0]), FLOAT16);
    assert_eq!(report.casts, 2);
}

#[test]
fn qdq_whose_scale_fp16_cannot_hold_stays_fp32_between_casts() {
    // 1e-6 is subnormal in FP16 (below 2^-14): the weight DQ keeps its FP32 scale.
    let m = qdq_conv(0.02, [1e-6, 0.005]);
    let (h, report) = convert(&m, &Fp16Options::default());
    assert_eq!(report.fp32_nodes.len(), 1);
    assert_eq!(report.fp32_nodes[0].node, "DequantizeLinear_wd");
    assert_eq!(
        report.fp32_nodes[0].reason,
        KeepReason::QdqScaleOutOfFp16Range
    );
    assert_eq!(dtype_of(&h, "sw"), FLOAT);
    assert_eq!(dtype_of(&h, "wd"), FLOAT);
    let cast = reader(&h, "wd", "Cast");
    assert_eq!(cast.attr_i("to"), Some(FLOAT16 as i64));
    assert_eq!(by_name(&h, "Conv_y").inputs[1], cast.outputs[0]);
}

#[test]
fn a_constant_beyond_fp16_range_keeps_its_reader_fp32() {
    // A running variance of 1e7 (PP-OCRv4 det has such BatchNormalizations).
    let m = normalized(
        17,
        vec![
            node("Relu", &["x"], &["r"], vec![]),
            node(
                "BatchNormalization",
                &["r", "s", "b", "mu", "var"],
                &["y"],
                vec![],
            ),
        ],
        vec![vi("x", FLOAT, &[1, 2, 1, 1])],
        vec![vi("y", FLOAT, &[1, 2, 1, 1])],
        vec![
            f32_init("s", &[2], vec![1.0, 1.0]),
            f32_init("b", &[2], vec![0.0, 0.0]),
            f32_init("mu", &[2], vec![0.0, 0.0]),
            f32_init("var", &[2], vec![1e7, 4.0]),
        ],
    );
    let (h, report) = convert(&m, &Fp16Options::default());
    assert_eq!(report.fp32_nodes.len(), 1);
    assert_eq!(
        report.fp32_nodes[0].reason,
        KeepReason::ConstantOutOfFp16Range
    );
    assert_eq!(dtype_of(&h, "var"), FLOAT);
    assert_eq!(dtype_of(&h, "y"), FLOAT);
    assert_eq!(
        h.graph.node(h.graph.producer("y").unwrap()).op_type,
        "BatchNormalization"
    );
}

#[test]
fn a_cast_to_float_inside_an_fp16_region_casts_to_fp16() {
    let m = normalized(
        17,
        vec![
            node("Cast", &["i"], &["f"], vec![attr::int("to", FLOAT as i64)]),
            node("Add", &["f", "x"], &["y"], vec![]),
        ],
        vec![vi("i", INT64, &[3]), vi("x", FLOAT, &[3])],
        vec![vi("y", FLOAT, &[3])],
        vec![],
    );
    let (h, _) = convert(&m, &Fp16Options::default());
    assert_eq!(by_name(&h, "Cast_f").attr_i("to"), Some(FLOAT16 as i64));
    assert_eq!(dtype_of(&h, "f"), FLOAT16);
    assert_eq!(by_name(&h, "Add_y").inputs[0], "f");
}

#[test]
fn a_value_without_a_recorded_type_is_an_error_naming_it() {
    let proto = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            node: vec![
                node("Relu", &["x"], &["r"], vec![]),
                node("Relu", &["r"], &["y"], vec![]),
            ],
            input: vec![vi("x", FLOAT, &[2])],
            output: vec![vi("y", FLOAT, &[2])],
            ..Default::default()
        }),
        ..Default::default()
    };
    let m = Model::from_proto(proto).unwrap();
    match convert_float_to_fp16(&m, &Fp16Options::default()) {
        Err(GraphError::InvalidNode { node, message, .. }) => {
            assert_eq!(node, "Relu_r");
            assert!(
                message.contains("'r'") && message.contains("normalized"),
                "{message}"
            );
        }
        other => panic!("expected a missing-type error, got {other:?}"),
    }
}

#[test]
fn resize_scales_keep_their_fp32_type_in_an_fp16_resize() {
    let m = normalized(
        17,
        vec![
            node("Relu", &["x"], &["r"], vec![]),
            node("Resize", &["r", "", "scales"], &["y"], vec![]),
        ],
        vec![vi("x", FLOAT, &[1, 1, 2, 2])],
        vec![vi("y", FLOAT, &[1, 1, 4, 4])],
        vec![f32_init("scales", &[4], vec![1.0, 1.0, 2.0, 2.0])],
    );
    let (h, report) = convert(&m, &Fp16Options::default());
    assert_eq!(report.fp16_nodes, 2);
    let resize = by_name(&h, "Resize_y");
    assert_eq!(resize.inputs[0], "r");
    assert_eq!(dtype_of(&h, "r"), FLOAT16);
    assert_eq!(resize.inputs[2], "scales");
    assert_eq!(dtype_of(&h, "scales"), FLOAT);
    assert_eq!(
        report.converted_initializers + report.copied_initializers,
        0
    );
}

#[test]
fn layer_norm_statistics_squared_by_mul_stay_fp32_too() {
    let m = decomposed_layer_norm(node("Mul", &["d", "d"], &["sq"], vec![]));
    let (_, report) = convert(&m, &Fp16Options::default());
    let kept: Vec<&str> = report.fp32_nodes.iter().map(|k| k.op.as_str()).collect();
    assert_eq!(
        kept,
        vec![
            "ReduceMean",
            "Sub",
            "Mul",
            "ReduceMean",
            "Add",
            "Sqrt",
            "Div"
        ]
    );
    let stats = KeepReason::LayerNormStatistics;
    assert!(report.fp32_nodes.iter().all(|k| k.reason == stats));
}
