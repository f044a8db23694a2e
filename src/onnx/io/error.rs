//! The errors of ONNX loading and saving.
//!
//! Owns: [`OnnxError`] and [`ExternalDataProblem`], worded so that a user knows which file and
//! which tensor is wrong and what to change. Does not own: deciding when to raise them.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while loading, decoding or saving an ONNX model.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The operating system refused a read or write.
    #[error("{path}: cannot {action}: {source}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// What was being done, e.g. "read the model".
        action: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// The bytes are not a valid protobuf `ModelProto`.
    #[error(
        "{path}: not an ONNX model (the protobuf does not decode: {source}); is the file truncated or of another format?"
    )]
    Decode {
        /// The model file (`(in-memory bytes)` for [`decode_model`](super::decode_model)).
        path: PathBuf,
        /// prost's description of the first malformed field.
        source: prost::DecodeError,
    },
    /// The bytes decode as protobuf but lack what every ONNX model has.
    #[error(
        "{path}: not an ONNX model: it has no {missing} (is the file truncated or of another format?)"
    )]
    NotAModel {
        /// The model file (`(in-memory bytes)` for [`decode_model`](super::decode_model)).
        path: PathBuf,
        /// The missing part: `ir_version`, `graph` or `opset_import`.
        missing: &'static str,
    },
    /// A tensor's external data reference cannot be followed.
    #[error(
        "{model}: {tensor} keeps its data in external file '{location}', which is refused: {problem}"
    )]
    ExternalData {
        /// The model file holding the reference.
        model: PathBuf,
        /// Which tensor, and where in the model it sits.
        tensor: String,
        /// The `location` entry as written in the model.
        location: String,
        /// What is wrong with it (boxed to keep `OnnxError` small).
        problem: Box<ExternalDataProblem>,
    },
    /// A tensor to be saved still refers to external data that was never loaded.
    #[error(
        "{path}: cannot save {tensor}: its data is still in external file '{location}' (data_location EXTERNAL); load the model with load_model so that its data is read in"
    )]
    UnresolvedExternal {
        /// The output model file.
        path: PathBuf,
        /// Which tensor, and where in the model it sits.
        tensor: String,
        /// The `location` entry it refers to.
        location: String,
    },
    /// The model cannot be written within protobuf's 2 GiB limit with the chosen options.
    #[error(
        "{path}: the model encodes to {size_bytes} bytes, over the {limit_bytes}-byte protobuf limit; {hint}"
    )]
    TooLarge {
        /// The output model file.
        path: PathBuf,
        /// Encoded size of the model (after moving tensors out, if any were moved).
        size_bytes: u64,
        /// The limit it exceeds.
        limit_bytes: u64,
        /// What to change.
        hint: &'static str,
    },
    /// Saving would write over a file the model was read from.
    #[error("refusing to write {output}: it is the input file {input}; choose another output path")]
    WouldOverwriteInput {
        /// The file that would be written.
        output: PathBuf,
        /// The input file it coincides with.
        input: PathBuf,
    },
    /// The output path cannot name a model file.
    #[error("{path}: cannot save a model there: {reason}")]
    BadOutputPath {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Why an external data reference (`data_location: EXTERNAL`) is refused.
#[derive(Debug, thiserror::Error)]
pub enum ExternalDataProblem {
    /// `external_data` has no (or an empty) `location` entry.
    #[error("external_data has no 'location' entry")]
    NoLocation,
    /// The location is an absolute path.
    #[error("the location is absolute; ONNX requires a path relative to the model's folder")]
    Absolute,
    /// The location contains a `..` component.
    #[error("the location contains '..'; external data must stay inside the model's folder")]
    ParentDir,
    /// The location resolves, through symbolic links, outside the model's folder.
    #[error("it resolves to {resolved}, outside the model's folder {folder}")]
    Escapes {
        /// The location with every symbolic link followed.
        resolved: PathBuf,
        /// The model's folder, with every symbolic link followed.
        folder: PathBuf,
    },
    /// The file does not exist.
    #[error("{path} does not exist")]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The file exists but cannot be opened or mapped.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The resolved location.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// `offset` or `length` is not a non-negative decimal integer.
    #[error("its '{key}' entry is '{value}', not a non-negative decimal integer")]
    BadNumber {
        /// `offset` or `length`.
        key: &'static str,
        /// The value as written.
        value: String,
    },
    /// `offset` (+ `length`) lies beyond the end of the file.
    #[error(
        "bytes {offset}..{end} lie beyond the end of {path} ({file_len} bytes); the data file is truncated or belongs to another model"
    )]
    OutOfRange {
        /// The resolved location.
        path: PathBuf,
        /// The `offset` entry.
        offset: u64,
        /// `offset + length` (saturating); without a length, the larger of `offset` and the file's size.
        end: u64,
        /// The file's size.
        file_len: u64,
    },
}
