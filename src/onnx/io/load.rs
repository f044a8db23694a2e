//! Loading ONNX models: map the file, decode it without copying tensor data, read external data.
//!
//! Owns: [`load_model`], [`load_model_with_files`], [`decode_model`], [`ModelFiles`], and the
//! minimal checks that tell an ONNX model from other protobuf bytes (an `ir_version`, a `graph`,
//! and an `opset_import` from IR version 3 on). The model file is memory-mapped and decoded from
//! [`Bytes`] that own the mapping, so every `raw_data` is a slice of the mapping: nothing is copied
//! and pages are read from disk only when a tensor is used. Does not own: validating the graph
//! (the IR's job), nor following external references (see `external`).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message;

use super::error::OnnxError;
use super::external::ExternalReader;
use super::save::{ExternalData, SaveOptions};
use super::tensors::for_each_tensor_mut;
use crate::onnx::proto::ModelProto;

/// The files a model was read from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelFiles {
    /// The model file, with symbolic links followed.
    pub model: PathBuf,
    /// The external data files its tensors referred to, with symbolic links followed, in
    /// first-use order; empty when every tensor was stored inside the model file.
    pub external: Vec<PathBuf>,
}

impl ModelFiles {
    /// Every file read: the model file, then the external data files.
    pub fn all(&self) -> Vec<PathBuf> {
        std::iter::once(self.model.clone())
            .chain(self.external.iter().cloned())
            .collect()
    }

    /// Options that save a model the way it was stored — with external data if it had any — and
    /// that refuse to write over any of these files.
    pub fn save_options(&self) -> SaveOptions {
        SaveOptions {
            external: if self.external.is_empty() {
                ExternalData::Auto
            } else {
                ExternalData::Always
            },
            inputs: self.all(),
            ..SaveOptions::default()
        }
    }
}

/// Loads the ONNX model at `path`, reading every tensor's external data in.
///
/// On return every tensor holds its bytes in `raw_data` (zero-copy, over memory maps of the model
/// and its data files); tensors read from external data have `data_location` absent (= DEFAULT)
/// and no `external_data` entries. Use
/// [`load_model_with_files`] to learn which files were read.
pub fn load_model(path: &Path) -> Result<ModelProto, OnnxError> {
    load_model_with_files(path).map(|(model, _)| model)
}

/// Like [`load_model`], also returning the files read (to save the model back the same way, and
/// to refuse output paths that would overwrite an input).
pub fn load_model_with_files(path: &Path) -> Result<(ModelProto, ModelFiles), OnnxError> {
    let io_error = |source| OnnxError::Io {
        path: path.to_path_buf(),
        action: "read the model",
        source,
    };
    let bytes = map_file(path).map_err(io_error)?;
    let model_file = path.canonicalize().map_err(io_error)?;
    let mut model = decode_at(bytes, path)?;
    let mut reader = ExternalReader::new(path);
    for_each_tensor_mut(&mut model, &mut |site, tensor| reader.resolve(site, tensor))?;
    let files = ModelFiles {
        model: model_file,
        external: reader.into_files(),
    };
    Ok((model, files))
}

/// Decodes a model from bytes in memory; external data references are left as they are.
///
/// Decoding from [`Bytes`] is zero-copy: every `raw_data` is a slice of `bytes`.
pub fn decode_model(bytes: Bytes) -> Result<ModelProto, OnnxError> {
    decode_at(bytes, Path::new("(in-memory bytes)"))
}

/// Decodes `bytes` and checks that they hold an ONNX model; `path` names them in errors.
fn decode_at(bytes: Bytes, path: &Path) -> Result<ModelProto, OnnxError> {
    let model = ModelProto::decode(bytes).map_err(|source| OnnxError::Decode {
        path: path.to_path_buf(),
        source,
    })?;
    let missing = match &model {
        ModelProto {
            ir_version: None, ..
        } => Some("ir_version"),
        ModelProto { graph: None, .. } => Some("graph"),
        ModelProto {
            ir_version: Some(ir_version),
            opset_import,
            ..
        } if *ir_version >= 3 && opset_import.is_empty() => Some("opset_import"),
        _ => None,
    };
    match missing {
        Some(missing) => Err(OnnxError::NotAModel {
            path: path.to_path_buf(),
            missing,
        }),
        None => Ok(model),
    }
}

/// Maps the regular file at `path` read-only, as [`Bytes`] that own the mapping.
pub(crate) fn map_file(path: &Path) -> io::Result<Bytes> {
    let file = File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    // SAFETY: the mapping is read-only and private to this process. Like every mmap-based loader
    // (onnxruntime's included), we rely on nobody truncating the file while the model is in use;
    // trtq itself never writes into a file it has read (outputs go to a temp file that is then
    // renamed, which leaves a mapped file's data in place).
    let map = unsafe { memmap2::Mmap::map(&file) }?;
    Ok(Bytes::from_owner(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::{GraphProto, OperatorSetIdProto, TensorProto};

    fn model_with_raw_data(raw: &[u8]) -> ModelProto {
        ModelProto {
            ir_version: Some(10),
            opset_import: vec![OperatorSetIdProto {
                domain: None,
                version: Some(17),
            }],
            graph: Some(GraphProto {
                initializer: vec![TensorProto {
                    raw_data: Some(Bytes::copy_from_slice(raw)),
                    ..TensorProto::default()
                }],
                ..GraphProto::default()
            }),
            ..ModelProto::default()
        }
    }

    #[test]
    fn raw_data_points_into_the_decoded_buffer() {
        let encoded = Bytes::from(model_with_raw_data(&[42; 4096]).encode_to_vec());
        let model = decode_model(encoded.clone()).unwrap();
        let raw = model.graph.unwrap().initializer[0]
            .raw_data
            .clone()
            .unwrap();
        let buffer = encoded.as_ptr_range();
        assert!(buffer.contains(&raw.as_ptr()), "raw_data was copied");
        assert_eq!(&raw[..], &[42; 4096][..]);
    }

    #[test]
    fn protobuf_without_the_parts_of_a_model_is_refused() {
        let mut model = model_with_raw_data(&[]);
        model.opset_import.clear();
        let missing = |model: &ModelProto| match decode_model(model.encode_to_vec().into()) {
            Err(OnnxError::NotAModel { missing, .. }) => Some(missing),
            _ => None,
        };
        assert_eq!(missing(&model), Some("opset_import"));
        model.ir_version = Some(2);
        assert_eq!(missing(&model), None, "IR version 2 had no opset_import");
        model.graph = None;
        assert_eq!(missing(&model), Some("graph"));
        model.ir_version = None;
        assert_eq!(missing(&model), Some("ir_version"));
    }
}
