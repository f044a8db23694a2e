//! Loading and saving ONNX models, with external data.
//!
//! Owns: reading a model file (memory-mapped, zero-copy), following and refusing external data
//! references, and writing models atomically with external data when needed. Loaded models keep
//! no trace of external storage (every tensor's bytes are in `raw_data`); [`ModelFiles`] records
//! which files were read, and [`ModelFiles::save_options`] saves a model back the same way.
//! Does not own: the wire schema ([`crate::onnx::proto`]) nor graph semantics ([`crate::graph`]).

mod error;
mod external;
mod load;
mod save;
mod tensors;

pub use error::{ExternalDataProblem, OnnxError};
pub use load::{ModelFiles, decode_model, load_model, load_model_with_files};
pub use save::{
    DEFAULT_EXTERNAL_THRESHOLD_BYTES, ExternalData, PROTOBUF_LIMIT_BYTES, SaveOptions,
    ensure_not_input, save_model, write_atomic,
};
