//! Hot paths of calibration: the single pass's per-value work (abs-max scan, fine-grid fill) and
//! the per-tensor threshold searches.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trtq::calib::{Collector, HistogramCollector, MaxCollector, Method};

/// Deterministic Laplace-like values (inverse CDF over a low-discrepancy sequence).
fn laplace_values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            // Never exactly 0 or ±0.5 (the golden ratio is irrational), so always finite.
            let u = (((i as f64 + 0.5) * 0.618_033_988_749_895) % 1.0) - 0.5;
            (-u.signum() * (1.0 - 2.0 * u.abs()).ln()) as f32
        })
        .collect()
}

fn passes(c: &mut Criterion) {
    let values = laplace_values(1 << 22);
    let mut group = c.benchmark_group("calib_pass");
    group.throughput(Throughput::Elements(values.len() as u64));
    group.bench_function("range_pass_4M", |b| {
        b.iter(|| {
            let mut collector = MaxCollector::default();
            collector.observe(black_box(&values));
            collector
        })
    });
    group.bench_function("histogram_pass_4M", |b| {
        b.iter(|| {
            let mut collector = HistogramCollector::new(Method::Entropy);
            collector.observe(black_box(&values));
            collector
        })
    });
    // A ReLU output: half the values are 0 and land in one bin back to back.
    let relu: Vec<f32> = values.iter().map(|v| v.max(0.0)).collect();
    group.bench_function("histogram_pass_4M_relu", |b| {
        b.iter(|| {
            let mut collector = HistogramCollector::new(Method::Entropy);
            collector.observe(black_box(&relu));
            collector
        })
    });
    group.finish();
}

fn searches(c: &mut Criterion) {
    let values = laplace_values(1 << 20);
    let mut collector = HistogramCollector::new(Method::Entropy);
    collector.observe(&values);
    let histogram = collector.histogram().unwrap();
    let mut group = c.benchmark_group("calib_search");
    for method in [
        Method::Percentile(trtq::calib::Percentile::new(99.99).unwrap()),
        Method::Entropy,
        Method::Mse,
    ] {
        group.bench_function(method.name(), |b| {
            b.iter(|| black_box(&histogram).amax(method))
        });
    }
    group.bench_function("to_2048_bins", |b| {
        b.iter(|| black_box(&collector).histogram().unwrap())
    });
    group.finish();
}

criterion_group!(benches, passes, searches);
criterion_main!(benches);
