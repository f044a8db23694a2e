//! Matching speed: the TensorRT library over graphs of stacked residual blocks of 1k, 10k and
//! 100k nodes (issue 3: < 50 ms at 10k nodes, growing linearly). Figures and the command are in
//! bench-results/matching.md.

#[path = "../tests/patterns_support/mod.rs"]
mod patterns_support;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use patterns_support::Builder;
use std::hint::black_box;
use trtq::graph::Model;
use trtq::patterns::{find_matches, tensorrt};

/// A ResNet-like stack: per block Conv-BN-Relu, Conv-BN, Add(skip), Relu (7 nodes), 1×1 convs
/// on 4 channels so the graph is all structure and little data.
fn stacked_blocks(nodes: usize) -> Model {
    let mut b = Builder::new();
    let mut x = b.input("x", &[1, 4, 8, 8]);
    for i in 0..nodes / 7 {
        let c1 = b.conv(&format!("b{i}.c1"), &x, 4, 4, 1);
        let n1 = b.bn(&format!("b{i}.bn1"), &c1, 4);
        let r1 = b.node("Relu", &format!("b{i}.r1"), &[&n1], vec![]);
        let c2 = b.conv(&format!("b{i}.c2"), &r1, 4, 4, 1);
        let n2 = b.bn(&format!("b{i}.bn2"), &c2, 4);
        let add = b.node("Add", &format!("b{i}.add"), &[&n2, &x], vec![]);
        x = b.node("Relu", &format!("b{i}.r2"), &[&add], vec![]);
    }
    b.output(&x);
    b.build()
}

fn matching(c: &mut Criterion) {
    let library = tensorrt::library();
    let models: Vec<Model> = [1_000, 10_000, 100_000]
        .into_iter()
        .map(stacked_blocks)
        .collect();
    let mut group = c.benchmark_group("find_matches");
    group.sample_size(10);
    for model in &models {
        let n = model.graph.node_count();
        assert_eq!(find_matches(model, &library).unwrap().len(), 2 * (n / 7));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), model, |bench, m| {
            bench.iter(|| find_matches(black_box(m), &library).unwrap())
        });
    }
    group.finish();

    // Controls for the growth of the per-node cost. `no_patterns`: the same call with an empty
    // library, i.e. building the graph index alone (one name lookup per edge). `read_names`:
    // no hashing and no search, just reading every byte of every name the index reads once
    // (node inputs and outputs, initializers); its per-node cost can only grow with the
    // working set, through cache and TLB misses.
    let mut group = c.benchmark_group("controls");
    group.sample_size(10);
    for model in &models {
        let n = model.graph.node_count();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("no_patterns", n), model, |bench, m| {
            bench.iter(|| find_matches(black_box(m), &[]).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("read_names", n), model, |bench, m| {
            bench.iter(|| name_bytes(black_box(m)))
        });
    }
    group.finish();
}

/// The sum of every byte of every node input/output and initializer name.
fn name_bytes(model: &Model) -> u64 {
    let g = &model.graph;
    let sum = |name: &str| name.bytes().map(u64::from).sum::<u64>();
    let nodes: u64 = g
        .node_ids()
        .map(|id| g.node(id))
        .flat_map(|node| node.inputs.iter().chain(&node.outputs))
        .map(|name| sum(name))
        .sum();
    nodes + g.initializers().map(|(name, _)| sum(name)).sum::<u64>()
}

criterion_group!(benches, matching);
criterion_main!(benches);
