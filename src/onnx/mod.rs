//! ONNX protobuf: the message types ([`proto`]) and loading/saving models with external data
//! ([`io`], whose items are re-exported here).

pub mod io;
pub mod proto;

pub use io::{
    DEFAULT_EXTERNAL_THRESHOLD_BYTES, ExternalData, ExternalDataProblem, ModelFiles, OnnxError,
    PROTOBUF_LIMIT_BYTES, SaveOptions, decode_model, ensure_not_input, load_model,
    load_model_with_files, save_model, write_atomic,
};
