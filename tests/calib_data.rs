//! The calibration data loaders end to end: every form of `calibration.data` read through
//! `calib::data::open`, against arrays written by ndarray-npy and numpy, and images written by
//! the `image` crate with hand-computed preprocessing results.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use half::f16;
use ndarray::{Array, ArrayD, Axis, IxDyn};
use ndarray_npy::{NpzWriter, write_npy};
use trtq::calib::data::{self, BatchSource, DataError, ModelInput};
use trtq::config::{ColorOrder, DataSource, Extent, ImageData, InputDtype, Layout};
use trtq::graph::Tensor;
use trtq::graph::shape::{Dim, ValueType};
use trtq::onnx::proto::DataType;

fn input(name: &str, dtype: DataType, dims: &[i64]) -> ModelInput {
    ModelInput {
        name: name.to_owned(),
        dtype,
        dims: dims.to_vec(),
    }
}

/// `[n, 2, 3]` float32 whose values count up from 0.
fn counting(n: usize) -> ArrayD<f32> {
    Array::from_iter((0..n * 6).map(|v| v as f32))
        .into_shape_with_order(IxDyn(&[n, 2, 3]))
        .unwrap()
}

/// Every batch's sample count and the batches of `name` joined along the first axis.
fn drain(source: &mut dyn BatchSource, name: &str) -> (Vec<usize>, ArrayD<f32>) {
    let mut sizes = Vec::new();
    let mut parts = Vec::new();
    while let Some(batch) = source.next_batch().unwrap() {
        let tensor = &batch.inputs[name];
        assert_eq!(tensor.shape()[0], batch.samples);
        sizes.push(batch.samples);
        parts.push(tensor.to_f32_array());
    }
    let views: Vec<_> = parts.iter().map(|part| part.view()).collect();
    (sizes, ndarray::concatenate(Axis(0), &views).unwrap())
}

fn npy(path: &Path) -> DataSource {
    DataSource::Npy {
        path: path.to_path_buf(),
    }
}

/// The error of opening `source`, which must fail.
fn open_err_with(
    source: &DataSource,
    inputs: &[ModelInput],
    batch: usize,
    max: usize,
    skip: usize,
) -> DataError {
    match data::open(source, inputs, batch, max, skip) {
        Ok(_) => panic!("opening {source:?} should fail"),
        Err(error) => error,
    }
}

/// [`open_err_with`] with batches of 4, at most 100 samples, none skipped.
fn open_err(source: &DataSource, inputs: &[ModelInput]) -> DataError {
    open_err_with(source, inputs, 4, 100, 0)
}

#[test]
fn model_inputs_come_from_value_infos_with_a_dynamic_batch_as_minus_one() {
    let dynamic = ValueType::with_dims(
        DataType::Float as i32,
        vec![Dim::Param("batch".into()), Dim::Known(3), Dim::Known(4)],
    );
    assert_eq!(
        ModelInput::from_value_info(&dynamic.to_value_info("x")).unwrap(),
        input("x", DataType::Float, &[-1, 3, 4])
    );
    let unknown_height = ValueType::with_dims(
        DataType::Float as i32,
        vec![Dim::Known(1), Dim::Unknown, Dim::Known(4)],
    );
    let error = ModelInput::from_value_info(&unknown_height.to_value_info("x")).unwrap_err();
    assert!(error.to_string().contains("dimension 1"), "{error}");
    assert!(matches!(
        data::open(&DataSource::Synthetic { seed: 0 }, &[], 1, 1, 0),
        Err(DataError::NoModelInputs)
    ));
}

#[test]
fn npy_streams_batches_in_order_with_a_short_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calib.npy");
    write_npy(&path, &counting(10)).unwrap();
    let x = input("x", DataType::Float, &[-1, 2, 3]);
    let mut source = data::open(&npy(&path), &[x], 4, 100, 0).unwrap();
    assert_eq!(source.total(), Some(10));
    let (sizes, joined) = drain(source.as_mut(), "x");
    assert_eq!(sizes, vec![4, 4, 2]);
    assert_eq!(joined, counting(10));
}

#[test]
fn max_samples_and_skip_select_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calib.npy");
    write_npy(&path, &counting(10)).unwrap();
    let x = input("x", DataType::Float, &[-1, 2, 3]);
    let mut source = data::open(&npy(&path), std::slice::from_ref(&x), 2, 5, 3).unwrap();
    assert_eq!(source.total(), Some(5));
    let (sizes, joined) = drain(source.as_mut(), "x");
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(joined, counting(10).slice_axis(Axis(0), (3..8).into()));
    // Skipping past the end leaves nothing: an error, not an empty run.
    let error = open_err_with(&npy(&path), &[x], 2, 5, 10);
    assert!(
        matches!(
            error,
            DataError::NoSamples {
                available: 10,
                skip: 10,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn a_fixed_batch_dimension_sets_the_batch_and_drops_the_partial_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calib.npy");
    write_npy(&path, &counting(10)).unwrap();
    let x = input("x", DataType::Float, &[4, 2, 3]);
    let mut source = data::open(&npy(&path), &[x], 3, 100, 0).unwrap();
    assert_eq!(source.total(), Some(8));
    let (sizes, joined) = drain(source.as_mut(), "x");
    assert_eq!(sizes, vec![4, 4]);
    assert_eq!(joined, counting(10).slice_axis(Axis(0), (0..8).into()));
    // What the source holds, whatever the batch: the caller learns that 2 were left out.
    let x = input("x", DataType::Float, &[4, 2, 3]);
    let available =
        |max, skip| data::available_samples(&npy(&path), std::slice::from_ref(&x), max, skip);
    assert_eq!(available(100, 0).unwrap(), 10);
    assert_eq!(available(7, 0).unwrap(), 7);
    assert_eq!(available(100, 9).unwrap(), 1);
    let synthetic = data::available_samples(&DataSource::Synthetic { seed: 0 }, &[x], 33, 0);
    assert_eq!(synthetic.unwrap(), 33);
    let wrong = input("x", DataType::Float, &[4, 3, 2]);
    let error = data::available_samples(&npy(&path), &[wrong], 100, 0).unwrap_err();
    assert!(matches!(error, DataError::ShapeMismatch { .. }), "{error}");
}

#[test]
fn mismatches_name_the_file_the_input_and_both_shapes_or_types() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calib.npy");
    write_npy(&path, &counting(10)).unwrap();
    let wrong_shape = input("images", DataType::Float, &[-1, 3, 2]);
    let message = open_err(&npy(&path), &[wrong_shape]).to_string();
    for part in ["calib.npy", "'images'", "[10, 2, 3]", "[-1, 3, 2]"] {
        assert!(message.contains(part), "{message:?} lacks {part}");
    }
    let doubles = dir.path().join("doubles.npy");
    write_npy(&doubles, &counting(10).mapv(f64::from)).unwrap();
    let error = open_err(
        &npy(&doubles),
        &[input("images", DataType::Float, &[-1, 2, 3])],
    );
    assert!(matches!(error, DataError::DtypeMismatch { .. }));
    let message = error.to_string();
    for part in ["doubles.npy", "'images'", "DOUBLE", "FLOAT"] {
        assert!(message.contains(part), "{message:?} lacks {part}");
    }
    // A single-array form for a two-input model.
    let two = [
        input("a", DataType::Float, &[-1, 2, 3]),
        input("b", DataType::Float, &[-1, 2, 3]),
    ];
    assert!(matches!(
        open_err(&npy(&path), &two),
        DataError::SingleInputOnly { .. }
    ));
}

/// Writes a `.npy` by hand with a header of format `version` (1, 2 or 3).
fn write_raw_npy(path: &Path, version: u8, descr: &str, shape: &str, data: &[u8]) {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let prefix = if version == 1 { 10 } else { 12 };
    let padded = (prefix + dict.len() + 1).div_ceil(64) * 64 - prefix;
    let header = format!("{dict:<width$}\n", width = padded - 1);
    let mut bytes = b"\x93NUMPY".to_vec();
    bytes.extend([version, 0]);
    if version == 1 {
        bytes.extend((header.len() as u16).to_le_bytes());
    } else {
        bytes.extend((header.len() as u32).to_le_bytes());
    }
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn npy_header_versions_and_element_types() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0u8..12).collect();
    let path = dir.path().join("v2.npy");
    write_raw_npy(&path, 2, "|u1", "(3, 4)", &bytes);
    let mut source = data::open(
        &npy(&path),
        &[input("u", DataType::Uint8, &[-1, 4])],
        2,
        9,
        1,
    )
    .unwrap();
    let batch = source.next_batch().unwrap().unwrap();
    assert_eq!(
        batch.inputs["u"],
        Tensor::U8(ArrayD::from_shape_vec(IxDyn(&[2, 4]), (4u8..12).collect()).unwrap())
    );
    let ids: Vec<u8> = [-5i64, 7, 1 << 40]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let path = dir.path().join("v3.npy");
    write_raw_npy(&path, 3, "<i8", "(3,)", &ids);
    let mut source = data::open(
        &npy(&path),
        &[input("ids", DataType::Int64, &[-1])],
        8,
        9,
        0,
    )
    .unwrap();
    assert_eq!(
        source.next_batch().unwrap().unwrap().inputs["ids"].to_i64_vec(),
        Some(vec![-5, 7, 1 << 40])
    );
    let halves: Vec<u8> = [0.5f32, -2.0]
        .iter()
        .flat_map(|&v| f16::from_f32(v).to_bits().to_le_bytes())
        .collect();
    let path = dir.path().join("half.npy");
    write_raw_npy(&path, 1, "<f2", "(2, 1)", &halves);
    let mut source = data::open(
        &npy(&path),
        &[input("h", DataType::Float16, &[1, 1])],
        8,
        9,
        0,
    )
    .unwrap();
    let (sizes, joined) = drain(source.as_mut(), "h");
    assert_eq!(sizes, vec![1, 1]);
    assert_eq!(joined.into_raw_vec_and_offset().0, vec![0.5, -2.0]);
}

#[test]
fn broken_npy_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let x = [input("x", DataType::Float, &[-1, 2])];
    let truncated = dir.path().join("truncated.npy");
    write_raw_npy(&truncated, 1, "<f4", "(4, 2)", &[0u8; 20]);
    assert!(matches!(
        open_err(&npy(&truncated), &x),
        DataError::BadNpy { .. }
    ));
    let garbage = dir.path().join("garbage.npy");
    std::fs::write(&garbage, b"not an array at all").unwrap();
    assert!(matches!(
        open_err(&npy(&garbage), &x),
        DataError::BadNpy { .. }
    ));
    let big_endian = dir.path().join("big.npy");
    write_raw_npy(&big_endian, 1, ">f4", "(1, 2)", &[0u8; 8]);
    assert!(matches!(
        open_err(&npy(&big_endian), &x),
        DataError::UnsupportedNpy { .. }
    ));
    let missing = dir.path().join("missing.npy");
    assert!(matches!(open_err(&npy(&missing), &x), DataError::Io { .. }));
}

fn write_npz(path: &Path, compressed: bool, arrays: &[(&str, ArrayD<f32>)]) {
    let file = std::fs::File::create(path).unwrap();
    let mut npz = if compressed {
        NpzWriter::new_compressed(file)
    } else {
        NpzWriter::new(file)
    };
    for (name, array) in arrays {
        npz.add_array(*name, array).unwrap();
    }
    npz.finish().unwrap();
}

#[test]
fn npz_streams_every_input_from_stored_and_deflated_archives() {
    let dir = tempfile::tempdir().unwrap();
    let images = counting(7);
    let masks = counting(7).mapv(|v| -v);
    let inputs = [
        input("images", DataType::Float, &[-1, 2, 3]),
        input("masks", DataType::Float, &[-1, 2, 3]),
    ];
    for compressed in [false, true] {
        let path = dir.path().join(format!("calib-{compressed}.npz"));
        write_npz(
            &path,
            compressed,
            &[
                ("masks", masks.clone()),
                ("labels", counting(2)),
                ("images", images.clone()),
            ],
        );
        let source = DataSource::Npz { path };
        let mut batches = data::open(&source, &inputs, 3, 100, 2).unwrap();
        assert_eq!(batches.total(), Some(5));
        let mut got: HashMap<&str, Vec<ArrayD<f32>>> = HashMap::new();
        let mut sizes = Vec::new();
        while let Some(batch) = batches.next_batch().unwrap() {
            sizes.push(batch.samples);
            for name in ["images", "masks"] {
                got.entry(name)
                    .or_default()
                    .push(batch.inputs[name].to_f32_array());
            }
        }
        assert_eq!(sizes, vec![3, 2]);
        for (name, expected) in [("images", &images), ("masks", &masks)] {
            let views: Vec<_> = got[name].iter().map(|a| a.view()).collect();
            let joined = ndarray::concatenate(Axis(0), &views).unwrap();
            assert_eq!(
                joined,
                expected.slice_axis(Axis(0), (2..7).into()),
                "{name}, compressed {compressed}"
            );
        }
    }
}

#[test]
fn npz_mismatches_are_reported_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calib.npz");
    write_npz(
        &path,
        false,
        &[("images", counting(7)), ("masks", counting(5))],
    );
    let source = DataSource::Npz { path };
    let missing = open_err(&source, &[input("tokens", DataType::Float, &[-1, 2, 3])]);
    let message = missing.to_string();
    assert!(matches!(missing, DataError::MissingArray { .. }));
    assert!(
        message.contains("'tokens'") && message.contains("images, masks"),
        "{message}"
    );
    let counts = open_err(
        &source,
        &[
            input("images", DataType::Float, &[-1, 2, 3]),
            input("masks", DataType::Float, &[-1, 2, 3]),
        ],
    );
    assert!(
        matches!(
            counts,
            DataError::SampleCountMismatch {
                first_count: 7,
                other_count: 5,
                ..
            }
        ),
        "{counts}"
    );
    let shape = open_err(&source, &[input("images", DataType::Float, &[-1, 6])]);
    assert!(shape.to_string().contains("images.npy"), "{shape}");
}

#[test]
fn npy_dir_reads_files_in_name_order_across_file_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let all = counting(6);
    // b.npy: one sample without a batch axis; a.npy: two samples; c.npy: three samples.
    write_npy(
        dir.path().join("a.npy"),
        &all.slice_axis(Axis(0), (0..2).into()).to_owned(),
    )
    .unwrap();
    write_npy(
        dir.path().join("b.npy"),
        &all.index_axis(Axis(0), 2).to_owned(),
    )
    .unwrap();
    write_npy(
        dir.path().join("c.npy"),
        &all.slice_axis(Axis(0), (3..6).into()).to_owned(),
    )
    .unwrap();
    std::fs::write(dir.path().join("README.txt"), "not data").unwrap();
    let source = DataSource::NpyDir {
        path: dir.path().to_path_buf(),
    };
    let x = [input("x", DataType::Float, &[-1, 2, 3])];
    let mut batches = data::open(&source, &x, 4, 100, 0).unwrap();
    assert_eq!(batches.total(), Some(6));
    let (sizes, joined) = drain(batches.as_mut(), "x");
    assert_eq!(sizes, vec![4, 2]);
    assert_eq!(joined, all);
    // Skipping 3 passes over a.npy and b.npy without reading them.
    let mut batches = data::open(&source, &x, 2, 2, 3).unwrap();
    let (sizes, joined) = drain(batches.as_mut(), "x");
    assert_eq!(sizes, vec![2]);
    assert_eq!(joined, all.slice_axis(Axis(0), (3..5).into()));
    // One file of the wrong shape fails the whole folder, naming that file.
    write_npy(
        dir.path().join("d.npy"),
        &counting(1).into_shape_with_order(IxDyn(&[3, 2])).unwrap(),
    )
    .unwrap();
    let message = open_err(&source, &x).to_string();
    assert!(
        message.contains("d.npy") && message.contains("[3, 2]"),
        "{message}"
    );
}

#[test]
fn synthetic_data_is_seeded_uniform_and_independent_of_batching() {
    let inputs = [
        input("x", DataType::Float, &[-1, 2, 3]),
        input("ids", DataType::Int64, &[-1, 4]),
    ];
    let source = DataSource::Synthetic { seed: 42 };
    let mut whole = data::open(&source, &inputs, 5, 10, 0).unwrap();
    assert_eq!(whole.total(), Some(10));
    let (sizes, reference) = drain(whole.as_mut(), "x");
    assert_eq!(sizes, vec![5, 5]);
    assert!(reference.iter().all(|v| (0.0..1.0).contains(v)));
    let mean = reference.mean().unwrap();
    assert!((0.3..0.7).contains(&mean), "mean {mean}");
    let (_, rebatched) = drain(
        data::open(&source, &inputs, 3, 10, 0).unwrap().as_mut(),
        "x",
    );
    assert_eq!(rebatched, reference);
    let (_, skipped) = drain(data::open(&source, &inputs, 4, 6, 4).unwrap().as_mut(), "x");
    assert_eq!(skipped, reference.slice_axis(Axis(0), (4..10).into()));
    let (_, ids) = drain(
        data::open(&source, &inputs, 4, 6, 0).unwrap().as_mut(),
        "ids",
    );
    assert!(ids.iter().all(|&v| v == 0.0));
    let (_, other_seed) = drain(
        data::open(&DataSource::Synthetic { seed: 43 }, &inputs, 5, 10, 0)
            .unwrap()
            .as_mut(),
        "x",
    );
    assert_ne!(other_seed, reference);
}

/// Writes an RGB image whose pixel (x, y) is `pixel(x, y)`.
fn write_image(path: &Path, width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) {
    image::RgbImage::from_fn(width, height, |x, y| image::Rgb(pixel(x, y)))
        .save(path)
        .unwrap();
}

fn images(path: &Path) -> ImageData {
    ImageData::with_path(path)
}

#[test]
fn images_are_cropped_normalized_and_laid_out_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    // A 2-wide, 4-high image: pixel (x, y) = (10x + y, 100 + y, 200 + x).
    write_image(&dir.path().join("a.png"), 2, 4, |x, y| {
        [(10 * x + y) as u8, (100 + y) as u8, (200 + x) as u8]
    });
    let data = ImageData {
        // Shorter side 2 → 2×4 (no resampling); center crop 2×2 takes rows 1 and 2.
        resize: Some(Extent::Side(2)),
        crop: Some(Extent::Side(2)),
        mean: [1.0, 2.0, 3.0],
        std: [2.0, 4.0, 0.5],
        scale: 0.5,
        color: ColorOrder::Bgr,
        ..images(dir.path())
    };
    let nchw = [input("image", DataType::Float, &[-1, 3, 2, 2])];
    let mut source = data::open(&DataSource::Images(data.clone()), &nchw, 8, 8, 0).unwrap();
    let batch = source.next_batch().unwrap().unwrap();
    // Rows y=1,2; channel 0 = blue (200 + x), 1 = green (100 + y), 2 = red (10x + y).
    // B: (0.5·200 − 1)/2 = 49.5, (0.5·201 − 1)/2 = 49.75 (both rows).
    // G: (0.5·101 − 2)/4 = 12.125, (0.5·102 − 2)/4 = 12.25.
    // R: (0.5·1 − 3)/0.5 = −5, (0.5·11 − 3)/0.5 = 5, (0.5·2 − 3)/0.5 = −4, (0.5·12 − 3)/0.5 = 6.
    let expected = vec![
        49.5, 49.75, 49.5, 49.75, //
        12.125, 12.125, 12.25, 12.25, //
        -5.0, 5.0, -4.0, 6.0,
    ];
    assert_eq!(batch.samples, 1);
    assert_eq!(batch.inputs["image"].shape(), &[1, 3, 2, 2]);
    assert_eq!(
        batch.inputs["image"]
            .to_f32_array()
            .into_raw_vec_and_offset()
            .0,
        expected
    );

    let nhwc = ImageData {
        layout: Layout::Nhwc,
        dtype: InputDtype::Float16,
        ..data
    };
    let input_nhwc = [input("image", DataType::Float16, &[1, 2, 2, 3])];
    let mut source = data::open(&DataSource::Images(nhwc), &input_nhwc, 8, 8, 0).unwrap();
    let tensor = source
        .next_batch()
        .unwrap()
        .unwrap()
        .inputs
        .remove("image")
        .unwrap();
    assert!(matches!(tensor, Tensor::F16(_)));
    let values = tensor.to_f32_array().into_raw_vec_and_offset().0;
    // Pixel by pixel (y, x), channels B, G, R; every value is exact in float16.
    let expected_nhwc = vec![
        49.5, 12.125, -5.0, 49.75, 12.125, 5.0, //
        49.5, 12.25, -4.0, 49.75, 12.25, 6.0,
    ];
    assert_eq!(values, expected_nhwc);
}

#[test]
fn images_are_resized_and_jpeg_decodes_within_its_loss() {
    let dir = tempfile::tempdir().unwrap();
    // 8×16 (w×h) of one color: resize 4 → 4×8, crop [4, 4].
    write_image(&dir.path().join("a.png"), 8, 16, |_, _| [30, 60, 90]);
    write_image(&dir.path().join("b.jpg"), 16, 8, |_, _| [30, 60, 90]);
    let data = ImageData {
        resize: Some(Extent::Side(4)),
        crop: Some(Extent::HeightWidth(4, 4)),
        scale: 1.0,
        ..images(dir.path())
    };
    let x = [input("x", DataType::Float, &[-1, 3, 4, 4])];
    let mut source = data::open(&DataSource::Images(data), &x, 8, 8, 0).unwrap();
    let batch = source.next_batch().unwrap().unwrap();
    assert_eq!(batch.samples, 2);
    let values = batch.inputs["x"].to_f32_array();
    for (sample, tolerance) in [(0, 1.0), (1, 3.0)] {
        for (channel, level) in [30.0, 60.0, 90.0].into_iter().enumerate() {
            let plane = values
                .index_axis(Axis(0), sample)
                .index_axis(Axis(0), channel)
                .to_owned();
            assert!(
                plane.iter().all(|v| (v - level).abs() <= tolerance),
                "sample {sample} channel {channel}: {plane:?}"
            );
        }
    }
}

#[test]
fn image_geometry_and_input_mismatches_fail_at_open() {
    let dir = tempfile::tempdir().unwrap();
    write_image(&dir.path().join("wide.png"), 9, 6, |_, _| [0, 0, 0]);
    let data = ImageData {
        resize: Some(Extent::Side(4)),
        ..images(dir.path())
    };
    let source = DataSource::Images(data);
    // 9×6 → 6×4 with no crop, but the model takes 4×4.
    let error = open_err(&source, &[input("x", DataType::Float, &[-1, 3, 4, 4])]);
    let message = error.to_string();
    assert!(
        matches!(
            error,
            DataError::ImageGeometry {
                out_width: 6,
                out_height: 4,
                ..
            }
        ),
        "{message}"
    );
    assert!(
        message.contains("wide.png") && message.contains("'x'"),
        "{message}"
    );
    let one_channel = open_err(&source, &[input("x", DataType::Float, &[-1, 1, 4, 6])]);
    assert!(
        matches!(one_channel, DataError::BadModelInput { .. }),
        "{one_channel}"
    );
    let half = open_err(&source, &[input("x", DataType::Float16, &[-1, 3, 4, 6])]);
    assert!(matches!(half, DataError::DtypeMismatch { .. }), "{half}");
    // With `resize` absent every image is scaled to the model's size.
    let fitted = ImageData {
        resize: None,
        ..images(dir.path())
    };
    let mut batches = data::open(
        &DataSource::Images(fitted),
        &[input("x", DataType::Float, &[-1, 3, 5, 5])],
        8,
        8,
        0,
    )
    .unwrap();
    assert_eq!(
        batches.next_batch().unwrap().unwrap().inputs["x"].shape(),
        &[1, 3, 5, 5]
    );
}

/// numpy's own `.npy` and `.npz` writers (the format's reference implementation), when a Python
/// with numpy is at hand.
#[test]
fn reads_what_numpy_writes() {
    let python = std::env::var_os("TRTQ_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/venv/bin/python"));
    let dir = tempfile::tempdir().unwrap();
    let script = "import numpy as np, sys\n\
        d = sys.argv[1]\n\
        a = np.arange(5 * 6, dtype=np.float32).reshape(5, 2, 3)\n\
        np.save(d + '/a.npy', a)\n\
        np.savez(d + '/a.npz', x=a, y=-a)\n\
        np.savez_compressed(d + '/c.npz', x=a, y=-a)\n";
    let status = Command::new(&python)
        .args(["-c", script])
        .arg(dir.path())
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!(
            "skipped: no Python with numpy at {} (set TRTQ_PYTHON)",
            python.display()
        );
        return;
    }
    let x = input("x", DataType::Float, &[-1, 2, 3]);
    let (_, joined) = drain(
        data::open(
            &npy(&dir.path().join("a.npy")),
            std::slice::from_ref(&x),
            2,
            9,
            0,
        )
        .unwrap()
        .as_mut(),
        "x",
    );
    assert_eq!(joined, counting(5));
    for archive in ["a.npz", "c.npz"] {
        let source = DataSource::Npz {
            path: dir.path().join(archive),
        };
        let y = input("y", DataType::Float, &[-1, 2, 3]);
        let mut batches = data::open(&source, &[x.clone(), y], 2, 9, 1).unwrap();
        let first = batches.next_batch().unwrap().unwrap();
        let expected = counting(5).slice_axis(Axis(0), (1..3).into()).to_owned();
        assert_eq!(first.inputs["x"].to_f32_array(), expected, "{archive}");
        assert_eq!(
            first.inputs["y"].to_f32_array(),
            expected.mapv(|v| -v),
            "{archive}"
        );
    }
}

/// Streaming a 256 MiB `.npy` keeps resident memory flat. Measured in a child process running
/// only this test, so other tests' allocations do not blur the numbers.
#[test]
fn npy_streaming_memory_does_not_grow_with_samples() {
    const CHILD: &str = "TRTQ_CALIB_DATA_MEMORY_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "npy_streaming_memory_does_not_grow_with_samples",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && text.contains("1 passed"),
            "{text}"
        );
        eprintln!(
            "{}",
            text.lines()
                .filter(|l| l.contains("RSS"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        return;
    }
    const SAMPLES: usize = 4096;
    const VALUES: usize = 16 * 1024; // 64 KiB per sample, 256 MiB in all
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.npy");
    {
        use std::io::Write;
        let header_dict =
            format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({SAMPLES}, {VALUES}), }}");
        let padded = (10 + header_dict.len() + 1).div_ceil(64) * 64 - 10;
        let header = format!("{header_dict:<width$}\n", width = padded - 1);
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        file.write_all(b"\x93NUMPY\x01\x00").unwrap();
        file.write_all(&(header.len() as u16).to_le_bytes())
            .unwrap();
        file.write_all(header.as_bytes()).unwrap();
        let sample: Vec<u8> = (0..VALUES).flat_map(|v| (v as f32).to_le_bytes()).collect();
        for _ in 0..SAMPLES {
            file.write_all(&sample).unwrap();
        }
    }
    let before = rss_kib();
    let x = input("x", DataType::Float, &[-1, VALUES as i64]);
    let mut source = data::open(&npy(&path), &[x], 8, SAMPLES, 0).unwrap();
    let mut peak = before;
    let mut samples = 0;
    while let Some(batch) = source.next_batch().unwrap() {
        samples += batch.samples;
        peak = peak.max(rss_kib());
    }
    assert_eq!(samples, SAMPLES);
    let growth_mib = (peak.saturating_sub(before)) / 1024;
    eprintln!(
        "RSS before {} MiB, peak while streaming 256 MiB {} MiB (+{growth_mib} MiB)",
        before / 1024,
        peak / 1024
    );
    assert!(
        growth_mib < 32,
        "resident memory grew by {growth_mib} MiB streaming a 256 MiB file"
    );
}

/// This process's resident set size in KiB.
fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
