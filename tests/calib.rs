//! Calibration statistics through the public API: order independence, exact shard merges, tie
//! groups, method switching on a stored histogram, and closed-form answers.

use trtq::calib::{
    AMAX_FLOOR, AmaxWarning, BINS, Collector, FineHistogram, HistogramCollector, MaxCollector,
    Method, Percentile, calibrate_tensor, exponent_for, tie_group_amax,
};

/// A small deterministic generator (SplitMix64) so the tests need no extra crate.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Laplace(0, 1) by inverse CDF: heavy tails, so the histogram methods clip.
    fn laplace(&mut self) -> f32 {
        let u = self.unit() - 0.5;
        (-u.signum() * (1.0 - 2.0 * u.abs()).ln()) as f32
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

fn methods() -> Vec<Method> {
    vec![
        Method::Max,
        Method::Percentile(Percentile::new(99.9).unwrap()),
        Method::Entropy,
        Method::Mse,
    ]
}

/// Laplace values cut into batches of uneven sizes.
fn laplace_batches(seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    (0..24)
        .map(|batch| (0..(500 + 137 * batch)).map(|_| rng.laplace()).collect())
        .collect()
}

fn as_slices(batches: &[Vec<f32>]) -> Vec<&[f32]> {
    batches.iter().map(Vec::as_slice).collect()
}

#[test]
fn shuffled_batches_give_bitwise_identical_amax_for_every_method() {
    let batches = laplace_batches(1);
    let mut rng = Rng(99);
    for method in methods() {
        let reference = calibrate_tensor(as_slices(&batches), method).unwrap();
        for _ in 0..5 {
            let mut shuffled = as_slices(&batches);
            rng.shuffle(&mut shuffled);
            let again = calibrate_tensor(shuffled, method).unwrap();
            assert_eq!(
                again.amax.amax.to_bits(),
                reference.amax.amax.to_bits(),
                "{method}"
            );
            assert_eq!(again.fine, reference.fine, "{method}");
            assert_eq!(again.range, reference.range, "{method}");
        }
    }
}

#[test]
fn rebatching_the_same_values_changes_nothing() {
    let batches = laplace_batches(2);
    let all: Vec<f32> = batches.concat();
    let tiny: Vec<&[f32]> = all.chunks(7).collect();
    for method in methods() {
        let whole = calibrate_tensor([all.as_slice()], method).unwrap();
        let pieces = calibrate_tensor(tiny.iter().copied(), method).unwrap();
        assert_eq!(
            whole.amax.amax.to_bits(),
            pieces.amax.amax.to_bits(),
            "{method}"
        );
    }
}

/// Batches whose scales span eight orders of magnitude, so the fine grid grows many times and
/// by different steps depending on the order.
fn multiscale_batches(seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    (0..30)
        .map(|batch| {
            let scale = 10f32.powi(batch % 9 - 4) * 1.37;
            (0..(300 + 71 * batch))
                .map(|_| rng.laplace() * scale)
                .collect()
        })
        .collect()
}

#[test]
fn fine_histogram_equals_the_direct_one_at_the_final_exponent_in_any_order() {
    let batches = multiscale_batches(11);
    let all: Vec<f32> = batches.concat();
    let global = MaxCollector::of(&all);
    let mut direct = FineHistogram::new();
    direct.regrid(exponent_for(global.abs_max()));
    direct.add(&all, global.abs_max());

    let mut rng = Rng(12);
    let mut order = as_slices(&batches);
    for _ in 0..6 {
        rng.shuffle(&mut order);
        let run = calibrate_tensor(order.iter().copied(), Method::Entropy).unwrap();
        assert_eq!(run.fine.as_ref(), Some(&direct));
        assert_eq!(run.range, global);
    }
    // Another split of the same values: one value per batch for the first thousand.
    let (head, tail) = all.split_at(1000);
    let split: Vec<&[f32]> = head.chunks(1).chain([tail]).collect();
    let run = calibrate_tensor(split, Method::Mse).unwrap();
    assert_eq!(run.fine.as_ref(), Some(&direct));
}

#[test]
fn merged_shards_equal_one_collector() {
    let batches = multiscale_batches(3);
    let shards: Vec<&[Vec<f32>]> = vec![&batches[..5], &batches[5..17], &batches[17..]];
    for method in methods() {
        let single = calibrate_tensor(as_slices(&batches), method).unwrap();
        let shard_collectors: Vec<HistogramCollector> = shards
            .iter()
            .map(|shard| {
                let mut collector = HistogramCollector::new(method);
                shard.iter().for_each(|batch| collector.observe(batch));
                collector
            })
            .collect();
        // Merge in two different orders.
        let mut forward = shard_collectors[0].clone();
        shard_collectors[1..]
            .iter()
            .for_each(|other| forward.merge(other));
        let mut backward = shard_collectors[2].clone();
        shard_collectors[..2]
            .iter()
            .rev()
            .for_each(|other| backward.merge(other));
        assert_eq!(forward, backward, "{method}");
        assert_eq!(*forward.range(), single.range, "{method}");
        if single.fine.is_some() {
            assert_eq!(Some(forward.fine()), single.fine.as_ref(), "{method}");
        }
        assert_eq!(
            forward.amax().unwrap().amax.to_bits(),
            single.amax.amax.to_bits(),
            "{method}"
        );
    }
}

#[test]
fn switching_method_reuses_a_stored_histogram() {
    let batches = laplace_batches(4);
    let entropy = calibrate_tensor(as_slices(&batches), Method::Entropy).unwrap();
    let stored = serde_json::to_string(&entropy.fine.unwrap()).unwrap();
    let fine: FineHistogram = serde_json::from_str(&stored).unwrap();
    for method in methods() {
        let direct = calibrate_tensor(as_slices(&batches), method).unwrap();
        let reread = HistogramCollector::from_parts(entropy.range, fine.clone(), method);
        assert_eq!(reread.amax().unwrap(), direct.amax, "{method}");
    }
}

#[test]
fn histogram_methods_clip_laplace_tails_and_max_does_not() {
    let batches = laplace_batches(5);
    let amax = |method| {
        calibrate_tensor(as_slices(&batches), method)
            .unwrap()
            .amax
            .amax
    };
    let max = amax(Method::Max);
    let expected_max = batches
        .iter()
        .flatten()
        .fold(0f32, |acc, &x| acc.max(x.abs()));
    assert_eq!(max, expected_max);
    for method in [
        Method::Entropy,
        Method::Percentile(Percentile::new(99.0).unwrap()),
    ] {
        let clipped = amax(method);
        assert!(
            clipped < 0.8 * max,
            "{method}: {clipped} should clip the Laplace tail (max {max})"
        );
    }
    // Laplace(0,1): P(|x| > t) = e^-t, so the 99th percentile of |x| is ln(100).
    let p99 = amax(Method::Percentile(Percentile::new(99.0).unwrap()));
    assert!(
        (p99 - 100f32.ln()).abs() < 0.1,
        "99th percentile of |Laplace| {p99} vs ln 100"
    );
}

#[test]
fn percentile_of_a_uniform_grid_is_the_percentile_within_one_bin() {
    // |x| takes the values (k + 0.5) / n, k = 0..n, evenly: the p-th percentile is p / 100.
    let n = 1 << 16;
    let values: Vec<f32> = (0..n)
        .map(|k| {
            let magnitude = (k as f32 + 0.5) / n as f32;
            if k % 2 == 0 { magnitude } else { -magnitude }
        })
        .collect();
    let range_max = (n as f32 - 0.5) / n as f32;
    let bin_width = range_max / BINS as f32;
    for percentile in [10.0, 50.0, 90.0, 99.0, 99.99] {
        let method = Method::Percentile(Percentile::new(percentile).unwrap());
        let amax = calibrate_tensor([values.as_slice()], method)
            .unwrap()
            .amax
            .amax;
        let expected = (percentile / 100.0) as f32;
        assert!(
            (amax - expected).abs() <= bin_width,
            "percentile {percentile}: {amax} vs {expected}"
        );
    }
    // Uniform data has no tail to clip: entropy and mse keep (nearly) the whole range.
    for method in [Method::Entropy, Method::Mse] {
        let amax = calibrate_tensor([values.as_slice()], method)
            .unwrap()
            .amax
            .amax;
        assert!(amax > 0.95 * range_max, "{method}: {amax}");
    }
}

#[test]
fn degenerate_tensors_never_give_zero_or_nan_amax() {
    let zeros = vec![0.0f32; 1000];
    let constant = vec![-2.5f32; 1000];
    let nan_only = vec![f32::NAN; 10];
    let empty: Vec<f32> = Vec::new();
    for method in methods() {
        let all_zero = calibrate_tensor([zeros.as_slice()], method).unwrap().amax;
        assert_eq!(all_zero.amax, AMAX_FLOOR, "{method}");
        assert_eq!(all_zero.warnings, vec![AmaxWarning::AllZero], "{method}");

        let constant = calibrate_tensor([constant.as_slice()], method)
            .unwrap()
            .amax;
        assert_eq!(constant.amax, 2.5, "{method}");
        assert_eq!(
            constant.warnings,
            vec![AmaxWarning::ConstantMagnitude { value: 2.5 }]
        );

        let nan = calibrate_tensor([nan_only.as_slice()], method)
            .unwrap()
            .amax;
        assert_eq!(nan.amax, AMAX_FLOOR, "{method}");
        assert_eq!(
            nan.warnings,
            vec![
                AmaxWarning::NonFinite { nan: 10, inf: 0 },
                AmaxWarning::NoFiniteData
            ]
        );

        let nothing = calibrate_tensor([empty.as_slice()], method).unwrap().amax;
        assert_eq!(nothing.amax, AMAX_FLOOR, "{method}");
        assert_eq!(nothing.warnings, vec![AmaxWarning::NoFiniteData]);
    }
}

#[test]
fn nan_in_one_batch_is_ignored_and_reported() {
    let clean = laplace_batches(6);
    let mut dirty = clean.clone();
    dirty[3][10] = f32::NAN;
    dirty[7][0] = f32::NEG_INFINITY;
    // The clean set with the two values removed.
    let mut removed = clean.clone();
    removed[3].remove(10);
    removed[7].remove(0);
    for method in methods() {
        let got = calibrate_tensor(as_slices(&dirty), method).unwrap().amax;
        let expected = calibrate_tensor(as_slices(&removed), method).unwrap().amax;
        assert_eq!(got.amax, expected.amax, "{method}");
        assert_eq!(
            got.warnings,
            vec![AmaxWarning::NonFinite { nan: 1, inf: 1 }]
        );
    }
}

#[test]
fn tie_group_gets_the_amax_of_its_pooled_values() {
    // Two tensors of a Concat tie group with different spreads.
    let narrow = laplace_batches(7);
    let wide: Vec<Vec<f32>> = laplace_batches(8)
        .into_iter()
        .map(|batch| batch.into_iter().map(|x| 3.0 * x).collect())
        .collect();
    let ranges: Vec<MaxCollector> = [&narrow, &wide]
        .iter()
        .map(|tensor| {
            let mut range = MaxCollector::default();
            tensor.iter().for_each(|batch| range.observe(batch));
            range
        })
        .collect();
    assert_eq!(
        tie_group_amax(&ranges).unwrap().amax,
        ranges[0].abs_max().max(ranges[1].abs_max())
    );

    let pooled: Vec<&[f32]> = narrow.iter().chain(&wide).map(Vec::as_slice).collect();
    for method in methods() {
        let members: Vec<HistogramCollector> = [&narrow, &wide]
            .iter()
            .map(|tensor| {
                let mut collector = HistogramCollector::new(method);
                tensor.iter().for_each(|batch| collector.observe(batch));
                collector
            })
            .collect();
        let group = tie_group_amax(&members).unwrap();
        let expected = calibrate_tensor(pooled.iter().copied(), method).unwrap();
        assert_eq!(group, expected.amax, "{method}");
    }
}

/// A `trtq build` config for the bundled demo model, calibrated on 4 synthetic samples.
fn demo_config(folder: &std::path::Path, method: &str) -> std::path::PathBuf {
    let model =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/demo/resnet_tiny.onnx");
    let path = folder.join(format!("{method}.yaml"));
    let text = format!(
        "model: {model:?}\ninputs:\n  input: [1, 3, 32, 32]\ncalibration:\n  data: {{kind: synthetic, seed: 3}}\n  method: {method}\n  max_samples: 4\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn build_demo(
    config: &std::path::Path,
    out: std::path::PathBuf,
    reuse: Option<std::path::PathBuf>,
) -> Result<trtq::calib::CalibrationResult, trtq::Error> {
    let opts = trtq::pipeline::BuildOptions {
        out_dir: Some(out.clone()),
        cpu_only: true,
        reuse_calibration: reuse,
        ..Default::default()
    };
    trtq::pipeline::build(config, &opts)?;
    let text = std::fs::read_to_string(out.join("calib.json")).unwrap();
    Ok(serde_json::from_str(&text).unwrap())
}

#[test]
fn reused_calibration_gives_the_scales_of_a_fresh_run_without_running_the_model() {
    let folder = tempfile::tempdir().unwrap();
    let root = folder.path();
    let entropy = build_demo(&demo_config(root, "entropy"), root.join("entropy"), None).unwrap();
    assert_eq!(entropy.passes, 1);
    // The demo ties a MaxPool's input and output: the group's view is stored with the group.
    let group = entropy
        .tie_groups
        .first()
        .expect("the demo has a tie group");
    assert!(group.histogram.is_some() && group.tensors.len() > 1);
    for member in &group.tensors {
        assert_eq!(entropy.tensors[member].amax.to_bits(), group.amax.to_bits());
    }
    let stored = root.join("entropy/calib.json");

    let max_config = demo_config(root, "max");
    let fresh_max = build_demo(&max_config, root.join("max"), None).unwrap();
    let reused_max = build_demo(&max_config, root.join("reused"), Some(stored.clone())).unwrap();
    assert_eq!(
        reused_max.passes, 0,
        "a reused calibration runs no forward pass"
    );
    assert_eq!(reused_max.method, "max");
    assert!(!fresh_max.tensors.is_empty());
    for (name, fresh) in &fresh_max.tensors {
        let reused = &reused_max.tensors[name];
        assert_eq!(reused.amax.to_bits(), fresh.amax.to_bits(), "{name}");
    }
    // Back to entropy: the stored histograms give the stored amaxes again.
    let reused_entropy = build_demo(
        &demo_config(root, "entropy"),
        root.join("again"),
        Some(stored.clone()),
    )
    .unwrap();
    for (name, first) in &entropy.tensors {
        assert_eq!(
            reused_entropy.tensors[name].amax.to_bits(),
            first.amax.to_bits(),
            "{name}"
        );
    }
    println!(
        "fresh max calibration {:.3} s, reused {:.4} s",
        fresh_max.seconds, reused_max.seconds
    );

    // A calib.json missing one of the model's Q/DQ tensors: exit 2, naming file and tensor.
    let mut partial: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stored).unwrap()).unwrap();
    let tensors = partial["tensors"].as_object_mut().unwrap();
    let dropped = tensors.keys().next().unwrap().clone();
    tensors.remove(&dropped);
    let partial_path = root.join("partial.json");
    std::fs::write(&partial_path, partial.to_string()).unwrap();
    let error = build_demo(&max_config, root.join("partial"), Some(partial_path)).unwrap_err();
    assert_eq!(error.exit_code(), 2, "{error}");
    let message = error.to_string();
    assert!(message.contains("partial.json"), "{message}");
    assert!(message.contains(&format!("'{dropped}'")), "{message}");
    assert!(
        !root.join("partial").exists(),
        "nothing is written on bad input"
    );

    // The model ties tensors the file did not calibrate as one group: exit 2, naming the file.
    let mut ungrouped: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stored).unwrap()).unwrap();
    ungrouped["tie_groups"] = serde_json::json!([]);
    let ungrouped_path = root.join("ungrouped.json");
    std::fs::write(&ungrouped_path, ungrouped.to_string()).unwrap();
    let error = build_demo(
        &demo_config(root, "entropy"),
        root.join("ungrouped"),
        Some(ungrouped_path.clone()),
    )
    .unwrap_err();
    assert_eq!(error.exit_code(), 2, "{error}");
    let message = error.to_string();
    assert!(message.contains("ungrouped.json"), "{message}");
    assert!(message.contains("tie groups changed"), "{message}");
    assert!(message.contains(&group.tensors[0]), "{message}");
    // max needs no stored group view: the members' exact ranges give the group's amax.
    let from_ungrouped = build_demo(
        &max_config,
        root.join("max-ungrouped"),
        Some(ungrouped_path),
    );
    assert_eq!(
        from_ungrouped.unwrap().tensors[&group.tensors[0]]
            .amax
            .to_bits(),
        fresh_max.tensors[&group.tensors[0]].amax.to_bits()
    );

    // A max run keeps no histograms: entropy cannot be re-derived from it.
    let error = build_demo(
        &demo_config(root, "entropy"),
        root.join("from-max"),
        Some(root.join("max/calib.json")),
    )
    .unwrap_err();
    assert_eq!(error.exit_code(), 2, "{error}");
    assert!(
        error.to_string().contains("needs the histograms"),
        "{error}"
    );
}
