//! A run's output directory: every artifact is written to a temp file beside its destination
//! and renamed into place, and no artifact may overwrite an input.
//!
//! Owns: [`OutputDir`] (creation, the list of artifacts written). [`write_atomic`] is re-exported
//! from [`crate::onnx`], whose model saves use the same implementation.
//! Does not own: what the artifacts contain.

use crate::graph::Model;
use crate::{Error, onnx};
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically (temp file in the same folder, fsync, rename): the
/// implementation [`crate::onnx`] saves models with.
pub use crate::onnx::write_atomic;

/// The output directory of one run.
pub struct OutputDir {
    path: PathBuf,
    inputs: Vec<PathBuf>,
    written: Vec<String>,
}

impl OutputDir {
    /// Creates (if needed) the directory; `inputs` are files no artifact may replace.
    pub fn create(path: &Path, input: &Path) -> Result<OutputDir, Error> {
        fs::create_dir_all(path).map_err(|e| Error::io(path, "create the output directory", e))?;
        Ok(OutputDir {
            path: path.to_path_buf(),
            inputs: vec![input.to_path_buf()],
            written: Vec::new(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Artifact names written so far.
    pub fn written(&self) -> &[String] {
        &self.written
    }

    fn target(&mut self, name: &str) -> Result<PathBuf, Error> {
        let p = self.path.join(name);
        onnx::ensure_not_input(&p, &self.inputs)?;
        self.written.push(name.to_string());
        Ok(p)
    }

    /// Saves a model (external data only when it must: over protobuf's 2 GiB limit).
    pub fn save_model(&mut self, model: &Model, name: &str) -> Result<PathBuf, Error> {
        let p = self.target(name)?;
        let proto = model.to_proto().map_err(|e| Error::graph(&p, e))?;
        let opts = onnx::SaveOptions {
            inputs: self.inputs.clone(),
            ..Default::default()
        };
        onnx::save_model(&proto, &p, &opts)?;
        Ok(p)
    }

    /// Writes pretty JSON.
    pub fn write_json<T: Serialize>(&mut self, name: &str, value: &T) -> Result<PathBuf, Error> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| Error::BadInput(format!("{name}: {e}")))?;
        self.write_text(name, &(text + "\n"))
    }

    /// Writes a text file.
    pub fn write_text(&mut self, name: &str, text: &str) -> Result<PathBuf, Error> {
        let p = self.target(name)?;
        write_atomic(&p, text.as_bytes())?;
        Ok(p)
    }
}
