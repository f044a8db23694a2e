//! The pattern engine and the TensorRT library on real models (demo, light ResNet-50) and on
//! graphs built here for every form the library claims to match; BN folding checked against a
//! direct f64 evaluation.

mod patterns_support;

use patterns_support::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use trtq::graph::{Model, Tensor, attr};
use trtq::patterns::query::GraphQuery;
use trtq::patterns::{MatchesFile, PatternMatch, QdqPoint, find_matches, tensorrt, transform};

fn counts(matches: &[PatternMatch]) -> BTreeMap<&str, usize> {
    let mut c = BTreeMap::new();
    for m in matches {
        *c.entry(m.pattern.as_str()).or_default() += 1;
    }
    c
}

fn patterns_of(m: &Model) -> Vec<PatternMatch> {
    find_matches(m, &tensorrt::library()).expect("matching succeeds")
}

/// The demo model (scripts/make-demo-model.py): stem Conv/BN/Relu/MaxPool, then three residual
/// blocks (conv1-BN-Relu, conv2-BN-Add-Relu; blocks 2 and 3 with a 1×1 Conv-BN downsample on
/// the skip path), GlobalAveragePool, Flatten, Gemm.
/// Expected: 1 stem; per block one ConvBNReLU (conv1) and one ConvBNAddReLU (conv2 takes the
/// Add: it feeds input 0, the main path); 2 ConvBN (the downsamples, whose output is the
/// residual input); GlobalAveragePool → AdaptiveAvgPool; Gemm → Linear. Only Flatten is left.
#[test]
fn demo_model_matches() {
    let Some(model) = demo_model() else { return };
    let result = transform(&model, &tensorrt::library()).unwrap();
    let expected: BTreeMap<&str, usize> = [
        ("StemConvBNReLUMaxPool", 1),
        ("ConvBNReLU", 3),
        ("ConvBNAddReLU", 3),
        ("ConvBN", 2),
        ("AdaptiveAvgPool", 1),
        ("Linear", 1),
    ]
    .into();
    assert_eq!(counts(&result.matches), expected);
    assert_eq!(result.unmatched, vec!["head.flatten".to_string()]);

    let stem = &result.matches[0];
    assert_eq!(stem.pattern, "StemConvBNReLUMaxPool");
    assert_eq!(stem.qdq_points[&QdqPoint::Input], "input");
    assert_eq!(
        stem.nodes_after,
        vec!["stem.conv", "stem.relu", "stem.pool"]
    );
    let block2 = result
        .matches
        .iter()
        .find(|m| m.nodes.contains(&"block2.add".to_string()))
        .unwrap();
    assert_eq!(block2.pattern, "ConvBNAddReLU");
    assert_eq!(block2.nodes[0], "block2.2.conv");
    assert_eq!(
        block2.qdq_points[&QdqPoint::ResidualInput],
        "block2.downsample.bn.out"
    );
    // Every BN was folded; the fused model has 32 - 9 nodes and still validates.
    assert_eq!(count_ops(&result.model, "BatchNormalization"), 0);
    assert_eq!(result.model.graph.node_count(), 32 - 9);
    result.model.graph.validate().unwrap();
    // The replaced weights and the BN parameters are gone, not left unused.
    let g = &result.model.graph;
    let unused: Vec<&String> = g
        .initializers()
        .map(|(name, _)| name)
        .filter(|name| g.consumers(name).is_empty())
        .collect();
    assert!(unused.is_empty(), "{unused:?}");
    assert_eq!(g.initializers().count(), 2 * 9 + 2);
    // The BN output names survive (the folded conv writes them), so QDQ points stay valid.
    assert!(
        result
            .model
            .graph
            .producer("block2.downsample.bn.out")
            .is_some()
    );

    // matches.json round-trips and has the DESIGN.md keys.
    let json = MatchesFile::new(&result, vec![]).to_json().unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["matches"][0]["pattern"], "StemConvBNReLUMaxPool");
    assert_eq!(v["matches"][0]["qdq_points"]["Input"], "input");
    assert_eq!(v["unmatched"][0], "head.flatten");
    assert!(v["tie_groups"].is_array());
}

/// light_resnet50 from the onnx 1.23.2 wheel (Caffe2 export: BN unfolded, Sum for the residual
/// add, AveragePool 7×7 instead of GlobalAveragePool). ResNet-50 has 53 convolutions:
/// the stem (Conv-BN-Relu-MaxPool) = 1 match; 16 bottleneck blocks, each with conv a and conv b
/// as Conv-BN-Relu (32 ConvBNReLU) and conv c as Conv-BN-Sum-Relu (16 ConvBNAddReLU); the first
/// block of each of the 4 stages has a Conv-BN downsample (4 ConvBN). 1 + 32 + 16 + 4 = 53.
/// The 7×7 AveragePool covers the whole 7×7 map (AdaptiveAvgPool), the Gemm is the Linear;
/// Reshape and Softmax are all that stays unmatched.
#[test]
fn light_resnet50_matches() {
    let Some(model) = light_resnet50() else {
        return;
    };
    let matches = patterns_of(&model);
    let expected: BTreeMap<&str, usize> = [
        ("StemConvBNReLUMaxPool", 1),
        ("ConvBNReLU", 32),
        ("ConvBNAddReLU", 16),
        ("ConvBN", 4),
        ("AdaptiveAvgPool", 1),
        ("Linear", 1),
    ]
    .into();
    assert_eq!(counts(&matches), expected);
    let covered: usize = matches.iter().map(|m| m.nodes.len()).sum();
    // 53 Conv + 53 BN + 49 Relu + 16 Sum + MaxPool + AveragePool + Gemm = 174 of 176 nodes.
    assert_eq!(covered, 174);
    assert_eq!(model.graph.node_count() - covered, 2);
    // Every residual add has its skip input quantized and the conv→add edge inside the match.
    for m in matches.iter().filter(|m| m.pattern == "ConvBNAddReLU") {
        let residual = &m.qdq_points[&QdqPoint::ResidualInput];
        assert!(!m.nodes.iter().any(|n| {
            model
                .graph
                .find(n)
                .is_some_and(|id| model.graph.node(id).outputs.contains(residual))
        }));
    }
}

/// torchvision exports (both exporters), normalized. ResNet-50 has the same structure as the
/// Caffe2 one (1 stem, 32 ConvBNReLU, 16 ConvBNAddReLU, 4 ConvBN downsamples, the pool, the
/// Linear; only Flatten/Reshape left). MobileNetV2: 17 inverted residuals, 10 with a skip
/// (ConvBNAddReLU: the projection conv takes the Add), 35 Conv-BN-ReLU6, 7 projections without a
/// skip (ConvBN). EfficientNet-B0: 16 SE blocks add 16 AdaptiveAvgPool (and leave their gating
/// Mul uncovered). ConvNeXt-T: depthwise 7×7 convs (ConvBN), LayerNorm, pointwise Linear→Gelu
/// (LinearReLU) and Linear; layer scale Mul, the residual Add and the NCHW↔NHWC Transposes stay
/// uncovered. ViT-B/16: every one of the 12 blocks yields one ScaledDotProductAttention and one
/// MHAInProjection (the fused QKV projection), LayerNorm ×2, MLP Linear→Gelu and Linear, the
/// out-projection Linear; the √scale Mul on Q and K and the reshapes stay outside.
#[test]
fn torchvision_exports_match() {
    let resnet50: &[(&str, usize)] = &[
        ("AdaptiveAvgPool", 1),
        ("ConvBN", 4),
        ("ConvBNAddReLU", 16),
        ("ConvBNReLU", 32),
        ("Linear", 1),
        ("StemConvBNReLUMaxPool", 1),
    ];
    let mobilenet_v2: &[(&str, usize)] = &[
        ("AdaptiveAvgPool", 1),
        ("ConvBN", 7),
        ("ConvBNAddReLU", 10),
        ("ConvBNReLU", 35),
        ("Linear", 1),
    ];
    let efficientnet_b0: &[(&str, usize)] = &[
        ("AdaptiveAvgPool", 17),
        ("ConvBN", 7),
        ("ConvBNAddReLU", 9),
        ("ConvBNReLU", 65),
        ("Linear", 1),
    ];
    let convnext_tiny: &[(&str, usize)] = &[
        ("AdaptiveAvgPool", 1),
        ("ConvBN", 22),
        ("LayerNorm", 23),
        ("Linear", 19),
        ("LinearReLU", 18),
    ];
    let vit_b_16: &[(&str, usize)] = &[
        ("ConvBN", 1),
        ("LayerNorm", 25),
        ("Linear", 25),
        ("LinearReLU", 12),
        ("MHAInProjection", 12),
        ("ScaledDotProductAttention", 12),
    ];
    // (export, expected matches per pattern, op types no pattern covers)
    type Case<'a> = (&'a str, &'a [(&'a str, usize)], &'a [&'a str]);
    let cases: &[Case] = &[
        ("resnet50_torchscript", resnet50, &["Flatten"]),
        ("resnet50_dynamo", resnet50, &["Reshape"]),
        ("mobilenet_v2_torchscript", mobilenet_v2, &["Flatten"]),
        ("mobilenet_v2_dynamo", mobilenet_v2, &["Reshape"]),
        (
            "efficientnet_b0_torchscript",
            efficientnet_b0,
            &["Flatten", "Mul"],
        ),
        (
            "efficientnet_b0_dynamo",
            efficientnet_b0,
            &["Mul", "Reshape"],
        ),
        (
            "convnext_tiny_torchscript",
            convnext_tiny,
            &["Add", "Flatten", "Mul", "Transpose"],
        ),
        (
            "convnext_tiny_dynamo",
            convnext_tiny,
            &["Add", "Gather", "Mul", "Reshape", "Transpose"],
        ),
        (
            "vit_b_16_torchscript",
            vit_b_16,
            &[
                "Add",
                "Concat",
                "Gather",
                "Mul",
                "Reshape",
                "Squeeze",
                "Transpose",
                "Unsqueeze",
            ],
        ),
        (
            "vit_b_16_dynamo",
            vit_b_16,
            &[
                "Add",
                "Concat",
                "Gather",
                "Mul",
                "Reshape",
                "Squeeze",
                "Transpose",
                "Unsqueeze",
            ],
        ),
    ];
    for &(name, expected, uncovered_ops) in cases {
        let Some(model) = torchvision_model(name) else {
            continue;
        };
        let matches = patterns_of(&model);
        let want: BTreeMap<&str, usize> = expected.iter().copied().collect();
        assert_eq!(counts(&matches), want, "{name}");
        let g = &model.graph;
        let covered: HashSet<&str> = matches
            .iter()
            .flat_map(|m| m.nodes.iter().map(String::as_str))
            .collect();
        let uncovered: BTreeSet<&str> = g
            .node_ids()
            .map(|id| g.node(id))
            .filter(|n| !covered.contains(n.name.as_str()))
            .map(|n| n.op_type.as_str())
            .collect();
        assert_eq!(uncovered, uncovered_ops.iter().copied().collect(), "{name}");
    }
}

/// Matching is deterministic and never overlaps: running twice gives the same matches, and no
/// node is in two of them.
#[test]
fn matches_are_deterministic_and_disjoint() {
    let Some(model) = demo_model() else { return };
    let a = patterns_of(&model);
    let b = patterns_of(&model);
    assert_eq!(a, b);
    let mut seen = std::collections::HashSet::new();
    for m in &a {
        for n in &m.nodes {
            assert!(seen.insert(n.clone()), "{n} is in two matches");
        }
    }
}

/// x → Conv → [BN] → <activation tail> → output: the single pattern expected to cover it all.
fn conv_then(tail: impl FnOnce(&mut Builder, &str) -> String, with_bn: bool) -> Model {
    let mut b = Builder::new();
    let x = b.input("x", &[1, 4, 8, 8]);
    let c = b.conv("conv", &x, 4, 4, 3);
    let pre = if with_bn { b.bn("bn", &c, 4) } else { c };
    let out = tail(&mut b, &pre);
    b.output(&out);
    b.build()
}

fn single_match(m: &Model) -> PatternMatch {
    let matches = patterns_of(m);
    assert_eq!(matches.len(), 1, "{matches:?}");
    assert_eq!(
        matches[0].nodes.len(),
        m.graph.node_count(),
        "the match covers every node: {matches:?}"
    );
    matches.into_iter().next().unwrap()
}

#[test]
fn every_fusable_activation_form_is_one_conv_group() {
    type Tail = fn(&mut Builder, &str) -> String;
    let tails: Vec<(&str, Tail)> = vec![
        ("Relu", |b, x| b.node("Relu", "act", &[x], vec![])),
        ("ReLU6", |b, x| {
            let lo = b.scalar("lo", 0.0);
            let hi = b.scalar("hi", 6.0);
            b.node("Clip", "act", &[x, &lo, &hi], vec![])
        }),
        ("LeakyRelu", |b, x| {
            b.node("LeakyRelu", "act", &[x], vec![attr::float("alpha", 0.1)])
        }),
        ("HardSwish op", |b, x| {
            b.node("HardSwish", "act", &[x], vec![])
        }),
        ("Gelu op", |b, x| b.node("Gelu", "act", &[x], vec![])),
        ("SiLU", |b, x| {
            let s = b.node("Sigmoid", "sig", &[x], vec![]);
            b.node("Mul", "act", &[x, &s], vec![])
        }),
        ("HardSwish x*HardSigmoid", |b, x| {
            let s = b.node("HardSigmoid", "hsig", &[x], vec![]);
            b.node("Mul", "act", &[&s, x], vec![])
        }),
        ("HardSwish x*relu6(x+3)/6", |b, x| {
            let three = b.scalar("three", 3.0);
            let lo = b.scalar("lo", 0.0);
            let hi = b.scalar("hi", 6.0);
            let six = b.scalar("six", 6.0);
            let a = b.node("Add", "plus3", &[x, &three], vec![]);
            let c = b.node("Clip", "relu6", &[&a, &lo, &hi], vec![]);
            let m = b.node("Mul", "times", &[x, &c], vec![]);
            b.node("Div", "act", &[&m, &six], vec![])
        }),
        ("Gelu Erf chain", |b, x| {
            let sqrt2 = b.scalar("sqrt2", std::f32::consts::SQRT_2);
            let one = b.scalar("one", 1.0);
            let half = b.scalar("half", 0.5);
            let d = b.node("Div", "div", &[x, &sqrt2], vec![]);
            let e = b.node("Erf", "erf", &[&d], vec![]);
            let a = b.node("Add", "plus1", &[&e, &one], vec![]);
            let m = b.node("Mul", "times", &[x, &a], vec![]);
            b.node("Mul", "act", &[&m, &half], vec![])
        }),
    ];
    for (name, tail) in tails {
        for with_bn in [true, false] {
            let m = conv_then(tail, with_bn);
            let found = single_match(&m);
            assert_eq!(found.pattern, "ConvBNReLU", "{name} (bn: {with_bn})");
            assert_eq!(found.qdq_points[&QdqPoint::Input], "x", "{name}");
            assert_eq!(found.outputs, vec!["act".to_string()], "{name}");
        }
    }
}

/// An inner edge read from outside breaks the group: if the conv output also feeds a graph
/// output, Conv→Relu cannot be one kernel, so Relu is not fused.
#[test]
fn inner_edge_read_outside_blocks_the_fusion() {
    let mut b = Builder::new();
    let x = b.input("x", &[1, 4, 8, 8]);
    let c = b.conv("conv", &x, 4, 4, 3);
    let r = b.node("Relu", "relu", &[&c], vec![]);
    b.output(&r);
    b.output(&c);
    let matches = patterns_of(&b.build());
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0].pattern, "ConvBN");
    assert_eq!(matches[0].nodes, vec!["conv"]);
}

#[test]
fn conv_transpose_and_depthwise_match() {
    let mut b = Builder::new();
    let x = b.input("x", &[1, 4, 8, 8]);
    let w = b.weight("dw.w", &[4, 1, 3, 3], 0.0);
    let dw = b.node(
        "Conv",
        "dw",
        &[&x, &w],
        vec![attr::int("group", 4), attr::ints("pads", &[1, 1, 1, 1])],
    );
    let r = b.node("Relu", "relu", &[&dw], vec![]);
    let wt = b.weight("up.w", &[4, 2, 2, 2], 0.0);
    let up = b.node(
        "ConvTranspose",
        "up",
        &[&r, &wt],
        vec![attr::ints("strides", &[2, 2])],
    );
    let bn = b.bn("up.bn", &up, 2);
    b.output(&bn);
    let matches = patterns_of(&b.build());
    assert_eq!(counts(&matches), [("ConvBN", 1), ("ConvBNReLU", 1)].into());
    assert_eq!(matches[1].nodes, vec!["up", "up.bn"]);
}

/// Linear forms: Gemm; MatMul with constant B plus bias Add (then Relu: LinearReLU); and a
/// MatMul whose B is an activation is not a Linear.
#[test]
fn linear_forms() {
    let mut b = Builder::new();
    let x = b.input("x", &[2, 8]);
    let w1 = b.weight("fc1.w", &[8, 16], 0.0);
    let b1 = b.weight("fc1.b", &[16], 0.0);
    let h = b.node("MatMul", "fc1", &[&x, &w1], vec![]);
    let h = b.node("Add", "fc1.bias", &[&h, &b1], vec![]);
    let h = b.node("Relu", "fc1.relu", &[&h], vec![]);
    let w2 = b.weight("fc2.w", &[4, 16], 0.0);
    let y = b.node("Gemm", "fc2", &[&h, &w2], vec![attr::int("transB", 1)]);
    b.output(&y);
    let u = b.input("u", &[2, 3]);
    let v = b.input("v", &[3, 2]);
    let z = b.node("MatMul", "activations", &[&u, &v], vec![]);
    b.output(&z);
    let matches = patterns_of(&b.build());
    let by_pattern: Vec<(&str, Vec<String>)> = matches
        .iter()
        .map(|m| (m.pattern.as_str(), m.nodes.clone()))
        .collect();
    assert_eq!(
        by_pattern,
        vec![
            (
                "LinearReLU",
                vec!["fc1".into(), "fc1.bias".into(), "fc1.relu".into()]
            ),
            ("Linear", vec!["fc2".into()]),
        ]
    );
}

/// A transformer block as exported: LayerNorm decomposed, Q/K/V projections (MatMul+Add) →
/// Reshape → Transpose, attention MatMul(Q,Kᵀ) → Div → Add(mask) → Softmax → MatMul(·,V),
/// output projection, LayerNormalization op. Expected: one ScaledDotProductAttention with
/// Q, K and V resolved to the tensors the MatMuls read; three MHAInProjection; one Linear
/// (the output projection does not feed attention); two LayerNorm with no QDQ point.
#[test]
fn attention_block() {
    let mut b = Builder::new();
    let x = b.input("x", &[1, 4, 8]);
    let mask = b.input("mask.in", &[1, 1, 4, 4]);
    // decomposed LayerNorm
    let axes = b.tensor("axes", Tensor::from_i64s(vec![-1]));
    let two = b.scalar("two", 2.0);
    let eps = b.scalar("eps", 1e-5);
    let mean = b.node("ReduceMean", "ln.mean", &[&x, &axes], vec![]);
    let d = b.node("Sub", "ln.sub", &[&x, &mean], vec![]);
    let p = b.node("Pow", "ln.pow", &[&d, &two], vec![]);
    let var = b.node("ReduceMean", "ln.var", &[&p, &axes], vec![]);
    let ve = b.node("Add", "ln.eps", &[&var, &eps], vec![]);
    let s = b.node("Sqrt", "ln.sqrt", &[&ve], vec![]);
    let n = b.node("Div", "ln.div", &[&d, &s], vec![]);
    let gamma = b.weight("ln.gamma", &[8], 1.0);
    let beta = b.weight("ln.beta", &[8], 0.0);
    let n = b.node("Mul", "ln.mul", &[&n, &gamma], vec![]);
    let h = b.node("Add", "ln.add", &[&n, &beta], vec![]);
    let shape = b.tensor("heads", Tensor::from_i64s(vec![1, 4, 2, 4]));
    let proj = |b: &mut Builder, name: &str| {
        let w = b.weight(&format!("{name}.w"), &[8, 8], 0.0);
        let bias = b.weight(&format!("{name}.b"), &[8], 0.0);
        let y = b.node("MatMul", name, &[&h, &w], vec![]);
        let y = b.node("Add", &format!("{name}.bias"), &[&y, &bias], vec![]);
        let y = b.node("Reshape", &format!("{name}.reshape"), &[&y, &shape], vec![]);
        b.node(
            "Transpose",
            &format!("{name}.t"),
            &[&y],
            vec![attr::ints("perm", &[0, 2, 1, 3])],
        )
    };
    let q = proj(&mut b, "q");
    let k = proj(&mut b, "k");
    let v = proj(&mut b, "v");
    let kt = b.node(
        "Transpose",
        "kt",
        &[&k],
        vec![attr::ints("perm", &[0, 1, 3, 2])],
    );
    let scale = b.scalar("scale.value", 2.0);
    let sc = b.node("MatMul", "scores", &[&q, &kt], vec![]);
    let sc = b.node("Div", "scale", &[&sc, &scale], vec![]);
    let sc = b.node("Add", "mask", &[&sc, &mask], vec![]);
    let pr = b.node("Softmax", "softmax", &[&sc], vec![attr::int("axis", -1)]);
    let ctx = b.node("MatMul", "context", &[&pr, &v], vec![]);
    let ctx = b.node(
        "Transpose",
        "ctx.t",
        &[&ctx],
        vec![attr::ints("perm", &[0, 2, 1, 3])],
    );
    let flat = b.tensor("flat", Tensor::from_i64s(vec![1, 4, 8]));
    let ctx = b.node("Reshape", "ctx.reshape", &[&ctx, &flat], vec![]);
    let wo = b.weight("o.w", &[8, 8], 0.0);
    let o = b.node("MatMul", "o", &[&ctx, &wo], vec![]);
    let ln_scale = b.weight("ln2.scale", &[8], 1.0);
    let y = b.node("LayerNormalization", "ln2", &[&o, &ln_scale], vec![]);
    b.output(&y);
    let model = b.build();
    let matches = patterns_of(&model);
    assert_eq!(
        counts(&matches),
        [
            ("LayerNorm", 2),
            ("MHAInProjection", 3),
            ("ScaledDotProductAttention", 1),
            ("Linear", 1)
        ]
        .into()
    );
    let sdpa = matches
        .iter()
        .find(|m| m.pattern == "ScaledDotProductAttention")
        .unwrap();
    assert_eq!(
        sdpa.nodes,
        vec!["scores", "scale", "mask", "softmax", "context"]
    );
    assert_eq!(sdpa.qdq_points[&QdqPoint::Input], "q.t");
    assert_eq!(sdpa.qdq_points[&QdqPoint::KeyInput], "kt");
    assert_eq!(sdpa.qdq_points[&QdqPoint::ValueInput], "v.t");
    let ln = matches.iter().find(|m| m.nodes[0] == "ln.sub").unwrap();
    assert_eq!(ln.nodes.len(), 9);
    assert!(ln.qdq_points.is_empty());
    let mha: Vec<&str> = matches
        .iter()
        .filter(|m| m.pattern == "MHAInProjection")
        .map(|m| m.qdq_points[&QdqPoint::Input].as_str())
        .collect();
    assert_eq!(mha, vec!["ln.add"; 3]);
}

/// AdaptiveAvgPool: spatial ReduceMean, and AveragePool only when its window covers H×W (which
/// needs the input shape); a smaller AveragePool is not a global pool.
#[test]
fn average_pool_forms() {
    let mut b = Builder::new();
    let x = b.input("x", &[1, 4, 6, 6]);
    let r = b.node(
        "ReduceMean",
        "rm",
        &[&x],
        vec![attr::ints("axes", &[2, 3]), attr::int("keepdims", 1)],
    );
    let p = b.node(
        "AveragePool",
        "full",
        &[&x],
        vec![attr::ints("kernel_shape", &[6, 6])],
    );
    let s = b.node(
        "AveragePool",
        "part",
        &[&x],
        vec![attr::ints("kernel_shape", &[3, 3])],
    );
    for o in [&r, &p, &s] {
        b.output(o);
    }
    let model = b.opset(13).build();
    let matches = patterns_of(&model);
    let names: Vec<&str> = matches.iter().map(|m| m.nodes[0].as_str()).collect();
    assert_eq!(names, vec!["rm", "full"]);
    assert!(matches.iter().all(|m| m.pattern == "AdaptiveAvgPool"
        && m.qdq_points[&QdqPoint::Input] == "x"
        && m.qdq_points[&QdqPoint::Output] == m.nodes[0]));
}

/// Evaluates a 1×1 Conv / ConvTranspose / Gemm (+ optional BN) on `x` in f64, straight from the
/// ONNX definitions, so the fold can be checked without an executor.
fn eval_channels(model: &Model, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let g = &model.graph;
    let f = |name: &str| -> Vec<f64> {
        Tensor::from_proto(g.initializer(name).unwrap())
            .unwrap()
            .to_f32_array()
            .iter()
            .map(|&v| f64::from(v))
            .collect()
    };
    let mut cur: Vec<Vec<f64>> = x.to_vec(); // [sample][channel]
    for id in g.topo_order().unwrap() {
        let n = g.node(id);
        use trtq::graph::Attributes;
        cur = match n.op_type.as_str() {
            "Conv" | "ConvTranspose" | "Gemm" => {
                let w = f(&n.inputs[1]);
                let dims: Vec<usize> = g
                    .initializer(&n.inputs[1])
                    .unwrap()
                    .dims
                    .iter()
                    .map(|&d| d as usize)
                    .collect();
                let bias = n.input(2).map(f);
                let trans_b = n.attr_i_or("transB", 0) == 1;
                let group = n.attr_i_or("group", 1) as usize;
                // (output channels, input channels read per output, weight index of (o, i)).
                let (cout, cin): (usize, usize) = match n.op_type.as_str() {
                    "Conv" => (dims[0], dims[1]),
                    "ConvTranspose" => (dims[1] * group, dims[0] / group),
                    _ if trans_b => (dims[0], dims[1]),
                    _ => (dims[1], dims[0]),
                };
                let (alpha, beta) = if n.op_type == "Gemm" {
                    (
                        f64::from(n.attr_f_or("alpha", 1.0)),
                        f64::from(n.attr_f_or("beta", 1.0)),
                    )
                } else {
                    (1.0, 1.0)
                };
                cur.iter()
                    .map(|xs| {
                        (0..cout)
                            .map(|o| {
                                let dot: f64 = (0..cin)
                                    .map(|i| match n.op_type.as_str() {
                                        "ConvTranspose" => {
                                            let (grp, j) = (o / dims[1], o % dims[1]);
                                            let ic = grp * cin + i;
                                            w[ic * dims[1] + j] * xs[ic]
                                        }
                                        "Conv" => w[o * cin + i] * xs[i],
                                        _ if trans_b => w[o * cin + i] * xs[i],
                                        _ => w[i * cout + o] * xs[i],
                                    })
                                    .sum();
                                alpha * dot + beta * bias.as_ref().map_or(0.0, |b| b[o])
                            })
                            .collect()
                    })
                    .collect()
            }
            "BatchNormalization" => {
                let [s, b, m, v] = [1, 2, 3, 4].map(|i| f(&n.inputs[i]));
                let eps = f64::from(n.attr_f_or("epsilon", 1e-5));
                cur.iter()
                    .map(|xs| {
                        xs.iter()
                            .enumerate()
                            .map(|(c, &x)| s[c] * (x - m[c]) / (v[c] + eps).sqrt() + b[c])
                            .collect()
                    })
                    .collect()
            }
            other => panic!("unexpected {other}"),
        };
    }
    cur
}

/// BN folding is exact: the folded Conv / ConvTranspose / Gemm gives the same outputs as
/// layer + BN (evaluated in f64 from the stored f32 weights) to within f32 rounding.
#[test]
fn batch_norm_folding_is_exact() {
    type Layer = fn(&mut Builder, &str) -> String;
    let layers: Vec<(&str, Layer, [i64; 4])> = vec![
        ("Conv", |b, x| b.conv("layer", x, 4, 6, 1), [1, 4, 1, 1]),
        (
            "ConvTranspose group 2",
            |b, x| {
                let w = b.weight("layer.w", &[4, 3, 1, 1], 0.0);
                let bias = b.weight("layer.b", &[6], 0.2);
                b.node(
                    "ConvTranspose",
                    "layer",
                    &[x, &w, &bias],
                    vec![attr::int("group", 2)],
                )
            },
            [1, 4, 1, 1],
        ),
        (
            "Gemm transB=1",
            |b, x| {
                let w = b.weight("layer.w", &[6, 4], 0.0);
                let bias = b.weight("layer.b", &[6], 0.2);
                b.node(
                    "Gemm",
                    "layer",
                    &[x, &w, &bias],
                    vec![
                        attr::int("transB", 1),
                        attr::float("alpha", 0.5),
                        attr::float("beta", 2.0),
                    ],
                )
            },
            [1, 4, 0, 0],
        ),
        (
            "Gemm transB=0 no bias",
            |b, x| {
                let w = b.weight("layer.w", &[4, 6], 0.0);
                b.node("Gemm", "layer", &[x, &w], vec![])
            },
            [1, 4, 0, 0],
        ),
    ];
    for (name, layer, shape) in layers {
        let mut b = Builder::new();
        let dims: Vec<i64> = shape.iter().copied().filter(|&d| d > 0).collect();
        let x = b.input("x", &dims);
        let y = layer(&mut b, &x);
        let y = b.bn("bn", &y, 6);
        b.output(&y);
        let model = b.build();
        let result = transform(&model, &tensorrt::library()).unwrap();
        assert_eq!(count_ops(&result.model, "BatchNormalization"), 0, "{name}");
        let inputs: Vec<Vec<f64>> = (0..8)
            .map(|s| {
                (0..4)
                    .map(|c| ((s * 4 + c) as f64 * 0.37).cos() * 3.0)
                    .collect()
            })
            .collect();
        let want = eval_channels(&model, &inputs);
        let got = eval_channels(&result.model, &inputs);
        // Relative to the output's magnitude: the folded weights are rounded to f32 once
        // (≈ 6e-8 relative each), so 1e-6 leaves room for sums of a few terms, no more.
        let magnitude = want.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        for (w, g) in want.iter().flatten().zip(got.iter().flatten()) {
            assert!((w - g).abs() <= 1e-6 * magnitude, "{name}: {w} vs {g}");
        }
    }
}

#[test]
fn library_table_is_printed_from_the_code() {
    let md = tensorrt::library_markdown();
    for p in tensorrt::library() {
        assert!(md.contains(&format!("| {} |", p.name)), "{}", p.name);
        assert!(tensorrt::library_text().contains(p.name));
    }
    assert!(md.contains("Conv/ConvTranspose(float constant weights) → [BatchNormalization(inference mode)] → [Mul(const)] → [Add(const)] → Add/Sum → [Relu]"));
    assert!(md.contains("| Input, ResidualInput |"));
    assert!(md.contains("| LayerNorm |") && md.contains("| none |"));
}

/// The Paddle exports fetched by scripts/fetch-models.sh, normalized: every Conv,
/// ConvTranspose, Gemm and constant-weight MatMul is inside a match, and the op types no
/// pattern covers are exactly these (glue: shape ops, the SE gating Mul, Resize, Softmax, the
/// learnable affine after HardSwish in PP-OCRv4, ...).
#[test]
fn paddle_exports_are_covered() {
    for (file, shape, uncovered_ops) in PADDLE_EXPORTS {
        let Some(model) = fetched_model(file).map(|m| normalized(m, &[("x", shape)])) else {
            continue;
        };
        let g = &model.graph;
        let matches = patterns_of(&model);
        let covered: HashSet<&str> = matches
            .iter()
            .flat_map(|m| m.nodes.iter().map(String::as_str))
            .collect();
        let mut uncovered = BTreeSet::new();
        for id in g.node_ids() {
            let n = g.node(id);
            if covered.contains(n.name.as_str()) {
                continue;
            }
            let weighted = matches!(n.op_type.as_str(), "Conv" | "ConvTranspose" | "Gemm")
                || (n.op_type == "MatMul" && g.is_const(&n.inputs[1]));
            assert!(
                !weighted,
                "{file}: {} ({}) is in no match",
                n.name, n.op_type
            );
            uncovered.insert(n.op_type.as_str());
        }
        let want: BTreeSet<&str> = uncovered_ops.iter().copied().collect();
        assert_eq!(uncovered, want, "{file}");
    }
}

/// A BatchNormalization that cannot be folded (negative variance) is an error naming both
/// nodes, not NaN weights.
#[test]
fn unfoldable_batch_norm_is_an_error() {
    let mut b = Builder::new();
    let x = b.input("x", &[1, 2, 4, 4]);
    let c = b.conv("conv", &x, 2, 2, 1);
    let s = b.weight("bn.scale", &[2], 1.0);
    let o = b.weight("bn.bias", &[2], 0.0);
    let m = b.weight("bn.mean", &[2], 0.0);
    let v = b.tensor(
        "bn.var",
        Tensor::F32(
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[2]), vec![1.0, -2.0]).unwrap(),
        ),
    );
    let y = b.node("BatchNormalization", "bn", &[&c, &s, &o, &m, &v], vec![]);
    b.output(&y);
    let err = transform(&b.build(), &tensorrt::library())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'conv'") && err.contains("'bn' channel 1"),
        "{err}"
    );
}
