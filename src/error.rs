//! The library's top-level error and the CLI exit codes it maps to.
//!
//! Owns: [`Error`], which wraps each stage's error with the file it concerns, and
//! [`Error::exit_code`] (0 ok, 1 a check or gate failed, 2 bad input or config, 3 missing
//! environment). Does not own: the stages' own error types.

use crate::graph::GraphError;
use crate::onnx::OnnxError;
use std::path::PathBuf;

/// Exit code: a check or gate failed.
pub const EXIT_CHECK_FAILED: i32 = 1;
/// Exit code: bad input or config.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code: something the run needs is missing from the environment (TensorRT, a GPU, ...).
pub const EXIT_MISSING_ENVIRONMENT: i32 = 3;

/// An error of any trtq stage, with the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading or saving an ONNX file failed (the message names the file).
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// The config file is invalid (the message names file, line and column).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A model's graph is invalid or a pass cannot handle it.
    #[error("{path}: {source}")]
    Graph {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        source: GraphError,
    },
    /// A file other than a model could not be read or written.
    #[error("{path}: cannot {action}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Bad input that is not a model or config file problem (e.g. a CLI argument).
    #[error("{0}")]
    BadInput(String),
    /// Something the run needs is not installed or not reachable.
    #[error("{0}")]
    MissingEnvironment(String),
    /// A check or gate failed.
    #[error("{0}")]
    CheckFailed(String),
}

impl Error {
    /// The CLI exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::MissingEnvironment(_) => EXIT_MISSING_ENVIRONMENT,
            Error::CheckFailed(_) => EXIT_CHECK_FAILED,
            _ => EXIT_BAD_INPUT,
        }
    }

    /// Wraps a graph error with the model file it concerns.
    pub fn graph(path: impl Into<PathBuf>, source: GraphError) -> Error {
        Error::Graph {
            path: path.into(),
            source,
        }
    }

    /// Wraps an I/O error with its file and action.
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            action,
            source,
        }
    }
}
