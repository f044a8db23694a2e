//! Fuzz target for the ONNX loader: arbitrary bytes must never panic, and whatever decodes must
//! survive save → load unchanged.
//!
//! 1. `decode_model` on the bytes; 2. the bytes as a model file in a temp folder, through
//! `load_model` (so external data references with arbitrary locations, offsets and lengths are
//! followed or refused); 3. for a decoded model: save inline and load back (must be equal), and
//! save with every initializer in external data and load back (every initializer's bytes must
//! come back).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use trtq::onnx::proto::ModelProto;
use trtq::onnx::{ExternalData, SaveOptions, decode_model, load_model, save_model};

fuzz_target!(|data: &[u8]| {
    // tmpfs when there is one: save_model syncs every file, which on a disk costs more than the
    // whole rest of an execution.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    };
    let Ok(dir) = dir else {
        return;
    };
    let input = dir.path().join("input.onnx");
    if std::fs::write(&input, data).is_ok() {
        // Ok or a typed error; a panic is the bug.
        let _ = load_model(&input);
    }
    let Ok(model) = decode_model(Bytes::copy_from_slice(data)) else {
        return;
    };

    let inline = dir.path().join("inline.onnx");
    let never = SaveOptions {
        external: ExternalData::Never,
        ..SaveOptions::default()
    };
    // Refusals (a tensor still marked EXTERNAL) are fine; a saved model must load back equal.
    if save_model(&model, &inline, &never).is_ok() {
        let loaded = load_model(&inline).expect("a model trtq saved must load");
        assert!(loaded == model, "inline save → load changed the model");
    }

    let external = dir.path().join("external.onnx");
    let always = SaveOptions {
        external: ExternalData::Always,
        threshold_bytes: 0,
        ..SaveOptions::default()
    };
    if save_model(&model, &external, &always).is_ok() {
        let loaded =
            load_model(&external).expect("a model trtq saved with external data must load");
        assert!(
            raw_data_of_initializers(&loaded) == raw_data_of_initializers(&model),
            "external save → load changed initializer bytes"
        );
    }
});

/// The `raw_data` of the main graph's initializers, in order.
fn raw_data_of_initializers(model: &ModelProto) -> Vec<Option<Bytes>> {
    model
        .graph
        .iter()
        .flat_map(|graph| &graph.initializer)
        .map(|tensor| tensor.raw_data.clone())
        .collect()
}
