//! The YAML config: defaults, the reference and demo configs, path resolution, and the error
//! message (file:line:col, what, hint) for each kind of bad input.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use trtq::config::{
    BatchSize, CalibMethod, ColorOrder, Config, ConfigError, DataSource, Device, Extent, ImageData,
    InputDtype, Layout, ReportFormat, Strategy, Target, Typing, WeightsAs,
};

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

/// Parses `text` as if it were the file `dir/test.yaml`.
fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(text, Path::new("dir/test.yaml"))
}

/// The Display of the error `text` gives (the test fails if it parses).
fn error_of(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("expected an error for {text:?}, got {config:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn minimal_config_takes_every_default_of_design_md() {
    let config = parse("model: m.onnx\ninputs: {input: [1, 3, 32, 32]}\n").unwrap();
    assert_eq!(config.model, Path::new("dir/m.onnx"));
    assert_eq!(config.output_dir, Path::new("dir/build/test"));
    assert_eq!(config.inputs["input"], vec![1, 3, 32, 32]);
    assert_eq!(config.opset, 17);
    assert_eq!(config.target, Target::Tensorrt);
    let q = &config.quantization;
    assert_eq!(q.strategy, Strategy::Pattern);
    assert_eq!(
        (
            q.activation.n_bits,
            q.activation.symmetric,
            q.activation.per_channel
        ),
        (8, true, false)
    );
    assert_eq!(
        (q.weight.n_bits, q.weight.symmetric, q.weight.per_channel),
        (8, true, true)
    );
    assert_eq!(
        q.skip_weight_quant_for,
        vec!["LayerNormalization".to_owned()]
    );
    assert!(q.quantize_depthwise && q.tie_groups);
    assert_eq!(q.weights_as, WeightsAs::Int8);
    let c = &config.calibration;
    assert_eq!(c.data, DataSource::Synthetic { seed: 0 });
    assert!(config.calibration_is_synthetic());
    assert_eq!(c.method, CalibMethod::Entropy);
    assert_eq!(c.percentile, 99.99);
    assert_eq!(c.batch_size, BatchSize::Auto);
    assert_eq!(c.max_samples, 512);
    assert_eq!(c.device, Device::Auto);
    assert_eq!(config.evaluation, None);
    let t = &config.tensorrt;
    assert_eq!(t.trtexec, Path::new("trtexec"));
    assert_eq!(t.typing, Typing::StronglyTyped);
    assert_eq!(t.workspace_mib, 4096);
    assert!(t.extra_args.is_empty());
    let v = &config.verify;
    assert!(v.fail_on_broken_fusion && v.fail_on_unfused_qdq);
    assert_eq!(
        (
            v.max_reformat_layers,
            v.max_reformat_time_pct,
            v.min_sqnr_db
        ),
        (0, 1.0, None)
    );
    assert!(config.compare.uniform && config.compare.fp16);
    assert_eq!(
        config.report.formats,
        [
            ReportFormat::Markdown,
            ReportFormat::Json,
            ReportFormat::Svg,
            ReportFormat::Junit
        ]
    );
    assert_eq!(
        (
            config.report.baseline.as_ref(),
            config.report.max_latency_regression_pct
        ),
        (None, 5.0)
    );

    // The same as building the defaults in code, once paths are anchored the same way.
    let mut expected = Config::default_with_model("dir/m.onnx");
    expected.output_dir = PathBuf::from("dir/build/test");
    expected
        .inputs
        .insert("input".to_owned(), vec![1, 3, 32, 32]);
    assert_eq!(config, expected);
}

#[test]
fn a_section_with_every_key_commented_out_takes_its_defaults() {
    let config = parse(
        "model: m.onnx\ncalibration:\n  # method: max\n  data:\nverify:\nevaluation: {data: }\n",
    )
    .unwrap();
    assert_eq!(
        config.evaluation.unwrap().data,
        DataSource::Synthetic { seed: 1 }
    );
    assert_eq!(
        config.calibration,
        Config::default_with_model("m.onnx").calibration
    );
    assert_eq!(config.verify, Config::default_with_model("m.onnx").verify);
}

#[test]
fn a_partial_section_keeps_the_defaults_of_the_keys_left_out() {
    let config = parse(
        "model: m.onnx\nquantization:\n  weight: {n_bits: 8}\n  activation: {per_channel: \
         false}\ncalibration: {method: max}\n",
    )
    .unwrap();
    let q = &config.quantization;
    assert!(
        q.weight.per_channel,
        "weights stay per-channel when only n_bits is given"
    );
    assert!(q.weight.symmetric && q.activation.symmetric);
    assert_eq!((q.activation.n_bits, q.activation.per_channel), (8, false));
    assert_eq!(q.skip_weight_quant_for, ["LayerNormalization"]);
    assert_eq!(config.calibration.method, CalibMethod::Max);
    assert_eq!(
        (
            config.calibration.percentile,
            config.calibration.max_samples
        ),
        (99.99, 512)
    );
    let evaluation = parse("model: m.onnx\nevaluation: {max_samples: 8}\n")
        .unwrap()
        .evaluation;
    let evaluation = evaluation.unwrap();
    assert_eq!(evaluation.data, DataSource::Synthetic { seed: 1 });
    assert_eq!(evaluation.max_samples, 8);
}

/// Every key path of a JSON value (`a.b.c`); the data forms of calibration and evaluation share
/// one namespace (`*.data.key`), list items are not descended into.
fn key_paths(value: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let serde_json::Value::Object(map) = value {
        for (key, child) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            let path = path
                .replace("calibration.data", "*.data")
                .replace("evaluation.data", "*.data");
            key_paths(child, &path, out);
            out.insert(path);
        }
    }
}

#[test]
fn reference_config_parses_and_documents_every_field() {
    let path = configs_dir().join("reference.yaml");
    let reference = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&path).unwrap();
    let tree: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let mut documented = BTreeSet::new();
    key_paths(&tree, "", &mut documented);

    // Every field of every section and of every data form, as the code serializes it.
    let mut fields = BTreeSet::new();
    let mut with_every_form = vec![Config::default_with_model("m.onnx"), reference.clone()];
    for data in [
        DataSource::Npy {
            path: "a.npy".into(),
        },
        DataSource::Npz {
            path: "a.npz".into(),
        },
        DataSource::NpyDir { path: "d".into() },
        DataSource::Images(ImageData::with_path("d")),
        DataSource::Synthetic { seed: 3 },
    ] {
        let mut config = Config::default_with_model("m.onnx");
        config.calibration.data = data;
        with_every_form.push(config);
    }
    for config in &with_every_form {
        key_paths(&serde_json::to_value(config).unwrap(), "", &mut fields);
    }
    let undocumented: Vec<_> = fields.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "fields missing from configs/reference.yaml: {undocumented:?}"
    );
    assert!(
        fields.len() > 60,
        "only {} fields found: is the walk broken?",
        fields.len()
    );

    // Its values are the defaults it states, except the example model, inputs and evaluation.
    let mut expected = Config::default_with_model(configs_dir().join("models/resnet50.onnx"));
    expected.output_dir = configs_dir().join("build/reference");
    expected
        .inputs
        .insert("input".to_owned(), vec![1, 3, 224, 224]);
    expected.evaluation = reference.evaluation.clone();
    assert_eq!(reference, expected);
    let evaluation = reference.evaluation.as_ref().unwrap();
    assert_eq!(evaluation.max_samples, 64);
    let DataSource::Images(images) = &evaluation.data else {
        panic!("{:?}", evaluation.data)
    };
    assert_eq!(images.path, configs_dir().join("calib/heldout/"));
    assert_eq!(
        (images.resize, images.crop),
        (Some(Extent::Side(256)), Some(Extent::Side(224)))
    );
    assert_eq!(
        (images.mean, images.std),
        ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    );
    assert_eq!(images.scale, ImageData::DEFAULT_SCALE);
    assert_eq!(
        (images.color, images.layout, images.dtype),
        (ColorOrder::Rgb, Layout::Nchw, InputDtype::Float32)
    );
}

#[test]
fn effective_config_round_trips_through_json() {
    let reference = Config::load(&configs_dir().join("reference.yaml")).unwrap();
    let json = serde_json::to_string(&reference).unwrap();
    let back: Config = serde_json::from_str(&json).unwrap();
    assert_eq!(back, reference);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        value["calibration"]["data"],
        serde_json::json!({"kind": "synthetic", "seed": 0})
    );
    assert_eq!(value["evaluation"]["data"]["kind"], "images");
    assert_eq!(value["evaluation"]["data"]["color"], "RGB");
    assert_eq!(value["tensorrt"]["typing"], "strongly-typed");
    assert_eq!(value["quantization"]["weights_as"], "int8");
}

#[test]
fn demo_config_loads_with_synthetic_calibration() {
    let demo = Config::load(&configs_dir().join("demo.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(demo.model, configs_dir().join("demo/resnet_tiny.onnx"));
    assert_eq!(demo.output_dir, configs_dir().join("../build/demo"));
    assert_eq!(demo.inputs["input"], vec![1, 3, 32, 32]);
    assert!(demo.calibration_is_synthetic());
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("configs");
    std::fs::create_dir(&folder).unwrap();
    let file = folder.join("net.yaml");
    let absolute = dir.path().join("elsewhere/model.onnx");
    std::fs::write(
        &file,
        format!(
            "model: {}\ncalibration: {{data: {{kind: npy, path: calib/x.npy}}}}\n\
             evaluation: {{data: {{kind: npz, path: ../held.npz}}}}\n\
             tensorrt: {{trtexec: tools/trtexec, timing_cache: cache/t.cache}}\n\
             report: {{baseline: base/report.json}}\n",
            absolute.display()
        ),
    )
    .unwrap();
    let config = Config::load(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.model, absolute, "absolute paths are kept");
    assert_eq!(
        config.output_dir,
        folder.join("build/net"),
        "default output_dir"
    );
    assert_eq!(
        config.calibration.data.path(),
        Some(folder.join("calib/x.npy").as_path())
    );
    assert!(!config.calibration_is_synthetic());
    let evaluation = config.evaluation.as_ref().unwrap();
    assert_eq!(
        evaluation.data.path(),
        Some(folder.join("../held.npz").as_path())
    );
    assert_eq!(config.tensorrt.trtexec, folder.join("tools/trtexec"));
    assert_eq!(
        config.tensorrt.timing_cache,
        Some(folder.join("cache/t.cache"))
    );
    assert_eq!(
        config.report.baseline,
        Some(folder.join("base/report.json"))
    );

    // A bare command name is looked up on PATH, not next to the config.
    std::fs::write(
        &file,
        "model: m.onnx\noutput_dir: out\ntensorrt: {trtexec: trtexec}\n",
    )
    .unwrap();
    let config = Config::load(&file).unwrap();
    assert_eq!(config.tensorrt.trtexec, Path::new("trtexec"));
    assert_eq!(config.output_dir, folder.join("out"));
}

#[test]
fn unknown_key_names_its_section_position_and_the_closest_valid_key() {
    assert_eq!(
        error_of("model: m.onnx\nquantization:\n  activaton: {n_bits: 8}\n"),
        "dir/test.yaml:3:3: unknown key `activaton` in `quantization` (hint: did you mean \
         `activation`? valid keys here: `strategy`, `activation`, `weight`, \
         `skip_weight_quant_for`, `quantize_depthwise`, `weights_as`, `tie_groups`)"
    );
    assert_eq!(
        error_of("model: m.onnx\nbanana: 1\n"),
        "dir/test.yaml:2:1: unknown key `banana` (hint: valid keys here: `model`, `output_dir`, \
         `inputs`, `opset`, `target`, `patterns`, `quantization`, `calibration`, `evaluation`, \
         `tensorrt`, `verify`, `compare`, `report`)"
    );
    let nested = error_of("model: m.onnx\nquantization: {activation: {nbits: 8}}\n");
    assert_eq!(
        nested,
        "dir/test.yaml:2:29: unknown key `nbits` in `quantization.activation` (hint: did you mean \
         `n_bits`? valid keys here: `n_bits`, `symmetric`, `per_channel`)"
    );
    let in_data = error_of("model: m.onnx\ncalibration:\n  data: {kind: npy, pth: a.npy}\n");
    assert!(
        in_data.starts_with(
            "dir/test.yaml:3:21: unknown key `pth` in `calibration.data` (hint: did you mean `path`?"
        ),
        "{in_data}"
    );
}

#[test]
fn wrong_type_names_the_key_and_what_was_expected() {
    assert_eq!(
        error_of("model: m.onnx\nopset: seventeen\n"),
        "dir/test.yaml:2:8: opset: wrong type: expected a non-negative integer, found `seventeen` \
         (hint: the default is `17`)"
    );
    assert_eq!(
        error_of("model: m.onnx\ninputs:\n  input: [1, -3]\n"),
        "dir/test.yaml:3:14: inputs.input.1: wrong type: expected a non-negative integer, found `-3`"
    );
    assert_eq!(
        error_of("model: m.onnx\ncompare: {fp16: maybe}\n"),
        "dir/test.yaml:2:17: compare.fp16: wrong type: expected true or false, found `maybe` \
         (hint: the default is `true`)"
    );
    assert_eq!(
        error_of("model: m.onnx\nquantization: pattern\n"),
        "dir/test.yaml:2:15: quantization: wrong type: expected a mapping (`key: value` lines or \
         `{key: value}`) (hint: its keys are `activation`, `quantize_depthwise`, \
         `skip_weight_quant_for`, `strategy`, `tie_groups`, `weight`, `weights_as`)"
    );
}

#[test]
fn duplicate_key_is_an_error_at_the_second_occurrence() {
    assert_eq!(
        error_of("model: m.onnx\nopset: 17\nopset: 18\n"),
        "dir/test.yaml:3:1: duplicate key `opset` (hint: each key may appear once in a mapping: keep one)"
    );
}

#[test]
fn missing_model_and_empty_file_say_what_a_config_needs() {
    assert_eq!(
        error_of("opset: 17\n"),
        "dir/test.yaml:1:1: missing key `model` (hint: every config names its ONNX model: \
         `model: path/to/model.onnx`)"
    );
    assert_eq!(
        error_of(""),
        "dir/test.yaml:1:1: the config is empty (hint: a minimal config is `model: path/to/model.onnx`)"
    );
}

#[test]
fn bad_enum_value_lists_the_allowed_values() {
    assert_eq!(
        error_of("model: m.onnx\ncalibration:\n  method: entropi\n"),
        "dir/test.yaml:3:11: calibration.method: unknown value `entropi` (hint: did you mean \
         `entropy`? allowed values: `max`, `percentile`, `entropy`, `mse`)"
    );
    assert_eq!(
        error_of("model: m.onnx\ncalibration:\n  data: {kind: jpg, path: a}\n"),
        "dir/test.yaml:3:16: calibration.data.kind: unknown value `jpg` (hint: allowed values: \
         `npy`, `npz`, `npy_dir`, `images`, `synthetic`)"
    );
    assert_eq!(
        error_of("model: m.onnx\ntensorrt: {typing: strongly_typed}\n"),
        "dir/test.yaml:2:20: tensorrt.typing: unknown value `strongly_typed` (hint: did you mean \
         `strongly-typed`? allowed values: `strongly-typed`, `weak`)"
    );
}

#[test]
fn int8_settings_tensorrt_cannot_build_are_rejected_unless_the_target_is_generic() {
    assert_eq!(
        error_of("model: m.onnx\nquantization:\n  activation: {symmetric: false}\n"),
        "dir/test.yaml:3:27: quantization.activation.symmetric: asymmetric INT8 with `target: \
         tensorrt`: TensorRT cannot build it (it accepts zero point 0 only) (hint: use \
         `symmetric: true`, or set `target: generic` for another runtime)"
    );
    assert!(
        error_of("model: m.onnx\nquantization:\n  weight:\n    symmetric: false\n")
            .starts_with("dir/test.yaml:4:16: quantization.weight.symmetric: asymmetric INT8")
    );
    assert!(
        error_of("model: m.onnx\nquantization: {activation: {n_bits: 4}}\n").starts_with(
            "dir/test.yaml:2:37: quantization.activation.n_bits: 4 bits with `target: tensorrt`"
        )
    );
    assert!(
        error_of("model: m.onnx\nquantization: {weight: {n_bits: 16}}\n").starts_with(
            "dir/test.yaml:2:33: quantization.weight.n_bits: 16 bits with `target: tensorrt`"
        )
    );
    assert!(
        error_of("model: m.onnx\nquantization: {activation: {per_channel: true}}\n")
            .contains("quantization.activation.per_channel: per-channel activations")
    );
    let generic = parse(
        "model: m.onnx\ntarget: generic\nquantization:\n  activation: {symmetric: false}\n  \
         weight: {n_bits: 4}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!generic.quantization.activation.symmetric);
    assert_eq!(generic.quantization.weight.n_bits, 4);
}

#[test]
fn out_of_range_values_point_at_the_value() {
    assert_eq!(
        error_of("model: m.onnx\nopset: 12\n"),
        "dir/test.yaml:2:8: opset: opset 12 is below 13 (hint: per-channel Q/DQ needs opset >= \
         13; the model is upgraded to it)"
    );
    for percentile in ["0", "100.5", "-1"] {
        let message = error_of(&format!(
            "model: m.onnx\ncalibration: {{percentile: {percentile}}}\n"
        ));
        assert!(
            message.starts_with(&format!(
                "dir/test.yaml:2:27: calibration.percentile: {percentile} is outside (0, 100]"
            )),
            "{message}"
        );
    }
    assert!(parse("model: m.onnx\ncalibration: {percentile: 100}\n").is_ok());
    assert!(
        error_of("model: m.onnx\ncalibration:\n  batch_size: 0\n")
            .starts_with("dir/test.yaml:3:15: calibration.batch_size: must be at least 1")
    );
    // `auto` on the CPU means the declared batch (no re-specialization), so it is valid there.
    assert!(parse("model: m.onnx\ncalibration:\n  batch_size: auto\n  device: cpu\n").is_ok());
    assert_eq!(
        error_of("model: m.onnx\ncalibration: {batch_size: big}\n"),
        "dir/test.yaml:2:15: calibration.batch_size: invalid value: expected a positive integer \
         or `auto`, found string \"big\" (hint: the default is `auto`)"
    );
    assert!(
        error_of("model: m.onnx\ncalibration:\n  batch_size: big\n").starts_with(
            "dir/test.yaml:3:3: calibration.batch_size: invalid value: expected a positive integer"
        )
    );
    assert!(
        error_of("model:\n  a: 1\n")
            .starts_with("dir/test.yaml:2:3: model: wrong type: expected a string")
    );
    let auto = parse("model: m.onnx\ncalibration: {batch_size: auto, device: cuda}\n").unwrap();
    assert_eq!(auto.calibration.batch_size, BatchSize::Auto);
    assert!(
        error_of("model: m.onnx\ninputs: {x: [1, 0, 4]}\n")
            .starts_with("dir/test.yaml:2:13: inputs.x: dimension 1 is 0")
    );
    assert!(
        error_of("model: m.onnx\ntensorrt: {builder_optimization_level: 6}\n").starts_with(
            "dir/test.yaml:2:40: tensorrt.builder_optimization_level: 6 is outside 0..=5"
        )
    );
    assert!(
        error_of("model: m.onnx\nverify: {min_sqnr_db: .nan}\n")
            .starts_with("dir/test.yaml:2:23: verify.min_sqnr_db: is not finite")
    );
    assert!(
        error_of("model: m.onnx\nreport: {formats: [json, svg, json]}\n")
            .starts_with("dir/test.yaml:2:31: report.formats.2: repeats a format")
    );
}

#[test]
fn data_keys_must_belong_to_the_kind() {
    assert_eq!(
        error_of("model: m.onnx\ncalibration:\n  data: {kind: npy, path: a.npy, seed: 3}\n"),
        "dir/test.yaml:3:9: in `calibration.data`: `seed` applies only to `kind: synthetic`, not `kind: npy`"
    );
    assert_eq!(
        error_of("model: m.onnx\ncalibration:\n  data: {kind: npz}\n"),
        "dir/test.yaml:3:9: in `calibration.data`: `kind: npz` needs `path` (a file or folder, \
         relative to this config)"
    );
    let block = error_of("model: m.onnx\ncalibration:\n  data:\n    kind: npy\n    seed: 3\n");
    assert!(
        block.starts_with("dir/test.yaml:4:5: in `calibration.data`: `seed` applies only"),
        "{block}"
    );
    assert_eq!(
        error_of("model: m.onnx\ncalibration:\n  data:\n    path: a.npy\n"),
        "dir/test.yaml:4:5: in `calibration.data`: missing key `kind` (hint: add `kind:` to this \
         mapping)"
    );
    assert_eq!(
        error_of("model: m.onnx\ncalibration: {data: [npy]}\n"),
        "dir/test.yaml:2:21: calibration.data: wrong type: expected a mapping (`key: value` lines \
         or `{key: value}`) (hint: the default is `{kind: synthetic, seed: 0}`)"
    );
    assert!(
        error_of("model: m.onnx\ncalibration:\n  data: {kind: images, path: d, resize: [1, 2, 3]}\n")
            .starts_with("dir/test.yaml:3:33: calibration.data.resize: wrong length: expected a positive size N or [height, width]")
    );
    assert!(
        error_of(
            "model: m.onnx\ncalibration:\n  data: {kind: npy_dir, path: d, mean: [0, 0, 0]}\n"
        )
        .contains("`mean` applies only to `kind: images`, not `kind: npy_dir`")
    );
    assert!(
        error_of("model: m.onnx\ncalibration:\n  data: {kind: images, path: d, std: [1, 0, 1]}\n")
            .starts_with("dir/test.yaml:3:38: calibration.data.std: must be positive")
    );
    let images = parse(
        "model: m.onnx\ncalibration:\n  data: {kind: images, path: d, resize: [640, 480], \
         color: BGR, layout: NHWC, dtype: float16, scale: 1}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let DataSource::Images(images) = images.calibration.data else {
        panic!()
    };
    assert_eq!(images.resize, Some(Extent::HeightWidth(640, 480)));
    assert_eq!(images.crop, None);
    assert_eq!(
        (images.color, images.layout, images.dtype),
        (ColorOrder::Bgr, Layout::Nhwc, InputDtype::Float16)
    );
    assert_eq!(
        (images.scale, images.mean, images.std),
        (1.0, [0.0; 3], [1.0; 3])
    );
    let seeded = parse("model: m.onnx\ncalibration: {data: {kind: synthetic, seed: 7}}\n").unwrap();
    assert_eq!(seeded.calibration.data, DataSource::Synthetic { seed: 7 });
}

#[test]
fn unreadable_file_names_the_file() {
    let missing = Path::new("no/such/config.yaml");
    let message = Config::load(missing).unwrap_err().to_string();
    assert!(
        message.starts_with("no/such/config.yaml: cannot read the config: "),
        "{message}"
    );

    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("binary.yaml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x80, b'\n']).unwrap();
    let message = Config::load(&binary).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("{}: ", binary.display())),
        "{message}"
    );
}

/// A tiny deterministic generator (xorshift) for the mutation test.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn bad_yaml_never_panics_and_always_names_the_file() {
    let reference = std::fs::read_to_string(configs_dir().join("reference.yaml")).unwrap();
    let hand_written: Vec<String> = [
        "model: [1\n",
        "model: {a: 1\n",
        "- a\n- b\n",
        "model: m.onnx\n\tinputs: 1\n",
        "model: &a m.onnx\nopset: *b\n",
        "model: m.onnx\n---\nmodel: n.onnx\n",
        "model: m.onnx\nopset: 99999999999999999999999\n",
        "model: m.onnx\ninputs: {x: [1e400]}\n",
        "model: m.onnx\ncalibration: {data: {kind: images, path: d, resize: [1, 2, 3]}}\n",
        "model: m.onnx\ncalibration: {data: {kind: images, path: d, crop: [0, 2]}}\n",
        "model: m.onnx\ncalibration: {data: [npy]}\n",
        "\u{feff}model: m.onnx\nmodel: n.onnx\n",
        &billion_laughs(9),
        &format!(
            "model: m.onnx\ninputs: {}1{}\n",
            "[".repeat(10_000),
            "]".repeat(10_000)
        ),
    ]
    .map(str::to_owned)
    .into();
    for text in &hand_written {
        let outcome = std::panic::catch_unwind(|| parse(text));
        let message = match outcome.unwrap_or_else(|_| panic!("panicked on {text:?}")) {
            Ok(config) => panic!("{text:?} parsed: {config:?}"),
            Err(error) => error.to_string(),
        };
        assert!(message.starts_with("dir/test.yaml"), "{message}");
        assert!(!message.contains('\n'), "one line: {message:?}");
    }
    // Every 5th truncation of the reference config, and 200 single-character mutations of it.
    let boundaries: Vec<usize> = reference.char_indices().map(|(i, _)| i).collect();
    let mut inputs: Vec<String> = Vec::new();
    inputs.extend(
        boundaries
            .iter()
            .step_by(5)
            .map(|&end| reference[..end].to_owned()),
    );
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let specials = [
        ':', '-', '[', ']', '{', '}', '\t', '\n', '&', '*', '!', '"', '\'', '#', ' ',
    ];
    for _ in 0..200 {
        let at = boundaries[(xorshift(&mut state) % boundaries.len() as u64) as usize];
        let with = specials[(xorshift(&mut state) % specials.len() as u64) as usize];
        let mut mutated = reference.clone();
        mutated.replace_range(
            at..at + mutated[at..].chars().next().map_or(0, char::len_utf8),
            &with.to_string(),
        );
        inputs.push(mutated);
    }
    let mut errors = 0;
    for text in &inputs {
        let outcome = std::panic::catch_unwind(|| parse(text));
        if let Err(error) = outcome.unwrap_or_else(|_| panic!("panicked on {text:?}")) {
            errors += 1;
            let message = error.to_string();
            assert!(message.starts_with("dir/test.yaml"), "{message}");
            assert!(!message.contains('\n'), "one line: {message:?}");
        }
    }
    // Deterministic inputs: 438 of the 2226 were errors when this was written (truncations at a
    // line end are often valid YAML); far fewer would mean the mutations stopped reaching the
    // error paths.
    assert!(
        errors >= 300,
        "only {errors} of {} mutations were errors",
        inputs.len()
    );
}

/// `levels` of anchors, each a list of nine aliases of the previous: 9^levels nodes expanded.
fn billion_laughs(levels: usize) -> String {
    let mut text =
        "model: m.onnx\ntensorrt:\n  extra_args:\n    - &l0 [x, x, x, x, x, x, x, x, x]\n"
            .to_owned();
    for level in 1..=levels {
        let previous = format!("*l{}", level - 1);
        text += &format!("    - &l{level} [{}]\n", vec![previous; 9].join(", "));
    }
    text
}
