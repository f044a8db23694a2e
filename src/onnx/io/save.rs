//! Saving ONNX models, with external data when the protobuf limit requires or the caller asks.
//!
//! Owns: [`save_model`], [`SaveOptions`], [`ExternalData`], [`ensure_not_input`], and
//! [`write_atomic`], the one atomic file write of the crate (run artifacts use it too). Every file
//! is written to a temp file in the destination folder, synced, then renamed over the destination,
//! so a failed save leaves the previous file intact and never truncates a file another process has
//! mapped. External data goes into one file, `<model file name>.data` beside the model (e.g.
//! `model.onnx.data`), written before the model that refers to it. As onnx's own
//! `convert_model_to_external_data` does, only initializers (of every graph, subgraphs included)
//! whose data is in `raw_data` move out; tensors in node attributes stay inline. Tensors of 1 MiB
//! or more start at a 4096-byte boundary so that readers can map them. Does not own: choosing the
//! output path (the caller's), nor reading (see `load`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message;

use super::error::OnnxError;
use super::tensors::{Holder, SparsePart, for_each_tensor_mut};
use crate::onnx::proto::{DataLocation, ModelProto, StringStringEntryProto};

/// The largest encoded model protobuf can parse: 2 GiB − 1 bytes (`INT_MAX`).
pub const PROTOBUF_LIMIT_BYTES: u64 = i32::MAX as u64;

/// ONNX's convention for the smallest tensor worth moving to external data (1 KiB).
pub const DEFAULT_EXTERNAL_THRESHOLD_BYTES: u64 = 1024;

/// Tensors at least this large start at a page boundary in the external data file.
const PAGE_ALIGN_FROM_BYTES: u64 = 1 << 20;

/// The page size external data offsets of large tensors are aligned to.
const PAGE_BYTES: u64 = 4096;

/// Whether initializers go to an external data file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExternalData {
    /// Only when the model would otherwise exceed [`SaveOptions::size_limit_bytes`].
    #[default]
    Auto,
    /// Always (every initializer of at least [`SaveOptions::threshold_bytes`]).
    Always,
    /// Never; a model over the limit is an error.
    Never,
}

/// How [`save_model`] writes a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaveOptions {
    /// Whether initializers go to `<model file name>.data`.
    pub external: ExternalData,
    /// Initializers with at least this many bytes of `raw_data` move out when external data is
    /// used. Keep it at the default unless there is a reason: onnxruntime's and onnx's shape
    /// inference cannot read small shape tensors (e.g. Reshape's or Slice's inputs) from external
    /// data, and with a threshold of 0 onnxruntime refuses such models.
    pub threshold_bytes: u64,
    /// The encoded size above which [`ExternalData::Auto`] moves tensors out and which no saved
    /// model may exceed. Default and maximum: [`PROTOBUF_LIMIT_BYTES`]; lower it only in tests.
    pub size_limit_bytes: u64,
    /// Files that must not be written over, typically [`ModelFiles::all`](super::ModelFiles::all)
    /// of the loaded model; a save that would write one is refused before anything is written.
    pub inputs: Vec<PathBuf>,
}

impl Default for SaveOptions {
    fn default() -> Self {
        Self {
            external: ExternalData::Auto,
            threshold_bytes: DEFAULT_EXTERNAL_THRESHOLD_BYTES,
            size_limit_bytes: PROTOBUF_LIMIT_BYTES,
            inputs: Vec::new(),
        }
    }
}

/// Writes `model` to `path` (and, if external data is used, `<file name>.data` beside it).
///
/// The model is not changed; tensors in external data are written from their `raw_data`.
/// Refused: a path that is one of `opts.inputs`, a tensor still marked EXTERNAL (its data was
/// never loaded), and a model over the size limit that external data cannot bring under it.
pub fn save_model(model: &ModelProto, path: &Path, opts: &SaveOptions) -> Result<(), OnnxError> {
    let bad_path = |reason| OnnxError::BadOutputPath {
        path: path.to_path_buf(),
        reason,
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| bad_path("it has no file name"))?;
    // The data file's name is written into the model as a string: it must be valid UTF-8.
    let file_name = file_name
        .to_str()
        .ok_or_else(|| bad_path("its file name is not valid UTF-8"))?;
    let data_name = format!("{file_name}.data");
    let data_path = path.with_file_name(&data_name);
    ensure_not_input(path, &opts.inputs)?;

    // Cloning is cheap: raw_data is reference-counted `Bytes`.
    let mut model = model.clone();
    refuse_unresolved_external(&mut model, path)?;
    let limit = opts.size_limit_bytes.min(PROTOBUF_LIMIT_BYTES);
    let externalize = match opts.external {
        ExternalData::Always => true,
        ExternalData::Never => false,
        ExternalData::Auto => model.encoded_len() as u64 > limit,
    };
    let data_file = if externalize {
        ensure_not_input(&data_path, &opts.inputs)?;
        move_initializers_out(&mut model, &data_path, &data_name, opts.threshold_bytes)?
    } else {
        None
    };
    let size_bytes = model.encoded_len() as u64;
    if size_bytes > limit {
        return Err(OnnxError::TooLarge {
            path: path.to_path_buf(),
            size_bytes,
            limit_bytes: limit,
            hint: match opts.external {
                ExternalData::Never => {
                    "save with ExternalData::Auto or Always to move weights to a .data file"
                }
                _ => {
                    "even with every initializer of at least threshold_bytes in external data (tensors in node attributes, e.g. Constant nodes, and in typed fields such as float_data stay inline); lower threshold_bytes or turn large Constant nodes into initializers"
                }
            },
        });
    }
    let mut model_file = TempFile::create(path)?;
    model_file.write_all(&model.encode_to_vec())?;
    if let Some(data_file) = data_file {
        data_file.persist()?;
    }
    model_file.persist()
}

/// Writes `bytes` to `path` atomically: a temp file in the same folder, synced, then renamed over
/// `path`. On failure the temp file is removed and `path` is left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OnnxError> {
    let mut file = TempFile::create(path)?;
    file.write_all(bytes)?;
    file.persist()
}

/// Refuses when `output` is (after symbolic and hard links) the same file as one of `inputs`.
///
/// An output that does not exist yet cannot be an input; an input that no longer exists cannot be
/// overwritten.
pub fn ensure_not_input(output: &Path, inputs: &[PathBuf]) -> Result<(), OnnxError> {
    let Ok(output_meta) = fs::metadata(output) else {
        return Ok(());
    };
    for input in inputs {
        if let Ok(input_meta) = fs::metadata(input)
            && same_file(&output_meta, &input_meta, output, input)
        {
            return Err(OnnxError::WouldOverwriteInput {
                output: output.to_path_buf(),
                input: input.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata, _: &Path, _: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[cfg(not(unix))]
fn same_file(_: &fs::Metadata, _: &fs::Metadata, a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// Fails on the first tensor still marked EXTERNAL: its bytes are not in the model to be written.
fn refuse_unresolved_external(model: &mut ModelProto, path: &Path) -> Result<(), OnnxError> {
    for_each_tensor_mut(model, &mut |site, tensor| {
        if tensor.data_location != Some(DataLocation::External as i32) {
            return Ok(());
        }
        let location = tensor
            .external_data
            .iter()
            .find(|entry| entry.key.as_deref() == Some("location"))
            .and_then(|entry| entry.value.clone())
            .unwrap_or_default();
        Err(OnnxError::UnresolvedExternal {
            path: path.to_path_buf(),
            tensor: site.describe(tensor),
            location,
        })
    })
}

/// Moves every initializer with at least `threshold` bytes of `raw_data` into a temp file for
/// `data_path`, pointing the tensors at `location`; `None` when no tensor qualified.
fn move_initializers_out(
    model: &mut ModelProto,
    data_path: &Path,
    location: &str,
    threshold: u64,
) -> Result<Option<TempFile>, OnnxError> {
    let mut data_file: Option<TempFile> = None;
    let mut offset = 0u64;
    for_each_tensor_mut(model, &mut |site, tensor| {
        let is_initializer = matches!(site.holder, Holder::Initializer);
        let Some(raw) = tensor.raw_data.as_ref() else {
            return Ok(());
        };
        let length = raw.len() as u64;
        if !is_initializer || site.part != SparsePart::Dense || length < threshold {
            return Ok(());
        }
        let file = match &mut data_file {
            Some(file) => file,
            None => data_file.insert(TempFile::create(data_path)?),
        };
        if length >= PAGE_ALIGN_FROM_BYTES {
            let aligned = offset.next_multiple_of(PAGE_BYTES);
            // The gap is < PAGE_BYTES, so it fits a usize.
            file.write_all(&vec![0u8; (aligned - offset) as usize])?;
            offset = aligned;
        }
        file.write_all(raw)?;
        tensor.external_data = vec![
            entry("location", location.to_owned()),
            entry("offset", offset.to_string()),
            entry("length", length.to_string()),
        ];
        tensor.data_location = Some(DataLocation::External as i32);
        tensor.raw_data = None;
        offset += length;
        Ok(())
    })?;
    Ok(data_file)
}

fn entry(key: &str, value: String) -> StringStringEntryProto {
    StringStringEntryProto {
        key: Some(key.to_owned()),
        value: Some(value),
    }
}

/// A file being written beside its destination; removed on drop unless [`persist`](Self::persist)ed.
struct TempFile {
    file: io::BufWriter<File>,
    temp: PathBuf,
    destination: PathBuf,
}

/// Makes temp file names unique within this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl TempFile {
    /// Creates a new, empty temp file in `destination`'s folder.
    fn create(destination: &Path) -> Result<Self, OnnxError> {
        let file_name = destination
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        loop {
            let count = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let temp = destination
                .with_file_name(format!(".{file_name}.{}.{count}.tmp", std::process::id()));
            match OpenOptions::new().write(true).create_new(true).open(&temp) {
                Ok(file) => {
                    return Ok(Self {
                        file: io::BufWriter::with_capacity(1 << 20, file),
                        temp,
                        destination: destination.to_path_buf(),
                    });
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(OnnxError::Io {
                        path: temp,
                        action: "create a temp file for the output",
                        source,
                    });
                }
            }
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), OnnxError> {
        self.file.write_all(bytes).map_err(|source| OnnxError::Io {
            path: self.temp.clone(),
            action: "write",
            source,
        })
    }

    /// Flushes and syncs the temp file, then renames it over the destination.
    fn persist(mut self) -> Result<(), OnnxError> {
        let synced = self
            .file
            .flush()
            .and_then(|()| self.file.get_ref().sync_all());
        if let Err(source) = synced {
            return Err(OnnxError::Io {
                path: self.temp.clone(),
                action: "write",
                source,
            });
        }
        fs::rename(&self.temp, &self.destination).map_err(|source| OnnxError::Io {
            path: self.destination.clone(),
            action: "move the finished temp file into place",
            source,
        })?;
        // Renamed: nothing left for drop to remove.
        self.temp = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            // Best effort: the save already failed, and that error is the one to report.
            let _ = fs::remove_file(&self.temp);
        }
    }
}
