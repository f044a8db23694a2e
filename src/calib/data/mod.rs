//! Calibration and evaluation data: every form of `calibration.data` streamed as batches of model
//! inputs.
//!
//! Owns: the [`BatchSource`] trait, [`open`] (which checks a source against the model's inputs
//! before anything runs), batching (batch size, `max_samples`, `skip` for the evaluation split),
//! and the readers of each form, one submodule each: `.npy` (`npy`), `.npz` (`npz`), a folder
//! of `.npy` (`npy_dir`), a folder of images (`images`) and seeded random data (`synthetic`).
//! Does not own: how a source is written in the config ([`crate::config::DataSource`]) nor what
//! is done with the batches (the collectors and executors).
//!
//! Every reader keeps buffers of one batch: memory does not grow with the number of samples.
//!
//! Batch size: when every model input has a dynamic first dimension (given as `-1` in
//! [`ModelInput::dims`]) batches hold `batch_size` samples and the last one may be shorter.
//! When the model fixes its batch dimension to `B`, every batch holds exactly `B` samples
//! (`batch_size` is then ignored: a model with a fixed batch cannot run a shorter one) and the
//! trailing samples that do not fill a whole batch are left out; [`BatchSource::total`] counts
//! only the samples that are yielded, and [`available_samples`] how many the source holds, so a
//! caller can say how many were left out. `trtq build` re-specializes the model to the
//! configured `batch_size` (see [`crate::rebatch`]), so its batches are fixed at that size.

mod images;
mod npy;
mod npy_dir;
mod npz;
mod synthetic;

pub use npy::array_input;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::DataSource;
use crate::graph::Tensor;
use crate::graph::shape::ValueType;
use crate::onnx::proto::{DataType, ValueInfoProto};

/// Why data could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A `.npy` file (or `.npz` entry) is not valid `.npy` data.
    #[error("{}: not a valid .npy array: {reason}", path.display())]
    BadNpy { path: PathBuf, reason: String },
    /// A `.npy` array uses a feature trtq does not read.
    #[error("{}: {what} is not supported; {hint}", path.display())]
    UnsupportedNpy {
        path: PathBuf,
        what: String,
        hint: &'static str,
    },
    /// A `.npz` archive could not be read.
    #[error("{}: not a readable .npz archive: {source}", path.display())]
    Zip {
        path: PathBuf,
        source: zip::result::ZipError,
    },
    /// A `.npz` archive has no array for a model input.
    #[error("{}: no array named '{input}' for model input '{input}' (arrays: {})", path.display(), .available.join(", "))]
    MissingArray {
        path: PathBuf,
        input: String,
        available: Vec<String>,
    },
    /// An array's shape does not fit the model input.
    #[error(
        "{}: array for model input '{input}' has shape {found:?}, but the model expects {expected:?} \
         per batch (samples along the first axis; -1 is any size)",
        path.display()
    )]
    ShapeMismatch {
        path: PathBuf,
        input: String,
        expected: Vec<i64>,
        found: Vec<usize>,
    },
    /// An array's element type does not match the model input.
    #[error(
        "{}: data for model input '{input}' is {found}, but the model expects {expected}; convert it \
         (numpy: `.astype(...)`) or change the model",
        path.display()
    )]
    DtypeMismatch {
        path: PathBuf,
        input: String,
        expected: String,
        found: String,
    },
    /// The arrays of several inputs hold different numbers of samples.
    #[error("{}: input '{first}' has {first_count} samples but '{other}' has {other_count}", path.display())]
    SampleCountMismatch {
        path: PathBuf,
        first: String,
        first_count: usize,
        other: String,
        other_count: usize,
    },
    /// The form feeds one input, but the model has several.
    #[error(
        "`kind: {kind}` feeds a single input, but the model has {} ({}); use `kind: npz` \
         (input name → array)",
        .inputs.len(), .inputs.join(", ")
    )]
    SingleInputOnly {
        kind: &'static str,
        inputs: Vec<String>,
    },
    /// The model has no input to feed.
    #[error("the model has no inputs to feed data to")]
    NoModelInputs,
    /// A model input cannot be fed by this loader.
    #[error("model input '{input}': {reason}")]
    BadModelInput { input: String, reason: String },
    /// Nothing is left to read.
    #[error(
        "{source_name}: no samples to read ({available} available, {skip} skipped, batches of {batch})"
    )]
    NoSamples {
        source_name: String,
        available: usize,
        skip: usize,
        batch: usize,
    },
    /// An image could not be decoded.
    #[error("{}: {source}", path.display())]
    Image {
        path: PathBuf,
        source: image::ImageError,
    },
    /// An image does not come out at the model's input size after resizing and cropping.
    #[error(
        "{}: a {width}×{height} image becomes {out_width}×{out_height} after resize/crop, but model \
         input '{input}' takes {model_width}×{model_height}; set `resize` and `crop` to produce that size",
        path.display()
    )]
    ImageGeometry {
        path: PathBuf,
        input: String,
        width: u32,
        height: u32,
        out_width: u32,
        out_height: u32,
        model_width: u32,
        model_height: u32,
    },
}

impl DataError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
        move |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// One model input as the data must match it: name, element type, and the concrete shape of
/// one batch. `dims[0]` is the batch dimension, `-1` when the model accepts any batch size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInput {
    /// The graph input's name.
    pub name: String,
    /// Element type.
    pub dtype: DataType,
    /// Shape of a batch; `dims[0] == -1` for a dynamic batch, every other dim known.
    pub dims: Vec<i64>,
}

impl ModelInput {
    /// Reads a graph input's declared type; an unknown first dimension becomes `-1` (dynamic
    /// batch), any other unknown dimension is an error (give it in the config's `inputs:`).
    pub fn from_value_info(info: &ValueInfoProto) -> Result<ModelInput, DataError> {
        let name = info.name.clone().unwrap_or_default();
        let bad = |reason: &str| DataError::BadModelInput {
            input: name.clone(),
            reason: reason.to_owned(),
        };
        let value_type = ValueType::from_value_info(info).ok_or_else(|| bad("not a tensor"))?;
        let dtype = DataType::try_from(value_type.dtype)
            .map_err(|_| bad(&format!("unknown element type {}", value_type.dtype)))?;
        let shape = value_type
            .shape
            .ok_or_else(|| bad("its rank is unknown; give its shape in the config's `inputs:`"))?;
        let dims = shape
            .iter()
            .enumerate()
            .map(|(axis, dim)| match dim.known() {
                Some(size) => Ok(size),
                None if axis == 0 => Ok(-1),
                None => Err(bad(&format!(
                    "dimension {axis} is not known; give its shape in the config's `inputs:`"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ModelInput { name, dtype, dims })
    }

    /// The shape of one sample: every dim after the batch dim.
    fn sample_dims(&self) -> Result<Vec<usize>, DataError> {
        let Some((_, rest)) = self.dims.split_first() else {
            return Err(DataError::BadModelInput {
                input: self.name.clone(),
                reason: "a scalar input has no batch dimension to stream samples along".to_owned(),
            });
        };
        rest.iter()
            .map(|&dim| usize::try_from(dim))
            .collect::<Result<_, _>>()
            .map_err(|_| DataError::BadModelInput {
                input: self.name.clone(),
                reason: format!(
                    "shape {:?} has an unknown dimension after the batch dimension",
                    self.dims
                ),
            })
    }
}

/// A batch of model inputs, every tensor holding `samples` samples along its first axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// One tensor per model input, by input name.
    pub inputs: HashMap<String, Tensor>,
    /// Number of samples in this batch.
    pub samples: usize,
}

/// A stream of batches, read one at a time.
pub trait BatchSource: Send {
    /// The next batch, or `None` when the source is exhausted.
    fn next_batch(&mut self) -> Result<Option<Batch>, DataError>;
    /// How many samples the whole stream yields, when known.
    fn total(&self) -> Option<usize>;
}

/// Opens `source` for a model with these `inputs`: checks every array's shape and element type
/// (and every image's size) against the inputs before returning, skips the first `skip`
/// samples, and yields at most `max_samples` samples in batches of `batch_size` (or of the
/// model's fixed batch dimension; see the module docs).
pub fn open(
    source: &DataSource,
    inputs: &[ModelInput],
    batch_size: usize,
    max_samples: usize,
    skip: usize,
) -> Result<Box<dyn BatchSource>, DataError> {
    let batch = BatchShape::of(inputs, batch_size)?;
    let (mut reader, available) = open_reader(source, inputs)?;
    let after_skip = usable_samples(available, max_samples, skip);
    let total = if batch.fixed {
        after_skip - after_skip % batch.size
    } else {
        after_skip
    };
    if total == 0 {
        return Err(DataError::NoSamples {
            source_name: source_name(source),
            available: available.unwrap_or(0),
            skip,
            batch: batch.size,
        });
    }
    reader.skip(skip)?;
    Ok(Box::new(Batches {
        reader,
        batch_size: batch.size,
        remaining: total,
        total,
    }))
}

/// How many samples `source` yields for a model with these `inputs` after skipping `skip`, at
/// most `max_samples`, whatever the batch size (a fixed batch may leave the last few out).
/// Checks the source against the inputs as [`open`] does; the batch dimension is not checked.
pub fn available_samples(
    source: &DataSource,
    inputs: &[ModelInput],
    max_samples: usize,
    skip: usize,
) -> Result<usize, DataError> {
    let (_, available) = open_reader(source, inputs)?;
    Ok(usable_samples(available, max_samples, skip))
}

/// The samples left after `skip`, at most `max_samples` (`available: None` = endless).
fn usable_samples(available: Option<usize>, max_samples: usize, skip: usize) -> usize {
    available.map_or(max_samples, |n| n.saturating_sub(skip).min(max_samples))
}

/// How a source is named in messages.
fn source_name(source: &DataSource) -> String {
    source
        .path()
        .map_or_else(|| "synthetic data".to_owned(), |p| p.display().to_string())
}

/// The reader of `source`'s form, checked against `inputs`, and how many samples it holds
/// (`None` for an endless source).
fn open_reader(
    source: &DataSource,
    inputs: &[ModelInput],
) -> Result<(Box<dyn SampleReader>, Option<usize>), DataError> {
    if inputs.is_empty() {
        return Err(DataError::NoModelInputs);
    }
    Ok(match source {
        DataSource::Npy { path } => {
            let reader = npy::NpySamples::open(path, single_input("npy", inputs)?)?;
            let available = reader.len();
            (Box::new(reader), Some(available))
        }
        DataSource::Npz { path } => {
            let reader = npz::NpzSamples::open(path, inputs)?;
            let available = reader.len();
            (Box::new(reader), Some(available))
        }
        DataSource::NpyDir { path } => {
            let reader = npy_dir::NpyDirSamples::open(path, single_input("npy_dir", inputs)?)?;
            let available = reader.len();
            (Box::new(reader), Some(available))
        }
        DataSource::Images(data) => {
            let reader = images::ImageSamples::open(data, single_input("images", inputs)?)?;
            let available = reader.len();
            (Box::new(reader), Some(available))
        }
        DataSource::Synthetic { seed } => (
            Box::new(synthetic::SyntheticSamples::new(*seed, inputs)?),
            None,
        ),
    })
}

/// The only model input, for forms that feed one input.
fn single_input<'a>(
    kind: &'static str,
    inputs: &'a [ModelInput],
) -> Result<&'a ModelInput, DataError> {
    match inputs {
        [input] => Ok(input),
        _ => Err(DataError::SingleInputOnly {
            kind,
            inputs: inputs.iter().map(|input| input.name.clone()).collect(),
        }),
    }
}

/// Samples per batch, and whether the model fixes that number.
struct BatchShape {
    size: usize,
    fixed: bool,
}

impl BatchShape {
    /// The model's fixed batch dimension (all inputs must agree), else `batch_size`.
    fn of(inputs: &[ModelInput], batch_size: usize) -> Result<BatchShape, DataError> {
        let mut fixed: Option<(&str, usize)> = None;
        for input in inputs {
            let first = input.dims.first().copied();
            match first {
                Some(-1) => {}
                Some(dim) if dim > 0 => {
                    let size = usize::try_from(dim).unwrap_or(usize::MAX);
                    match fixed {
                        Some((other, other_size)) if other_size != size => {
                            return Err(DataError::BadModelInput {
                                input: input.name.clone(),
                                reason: format!(
                                    "its batch dimension is {size} but input '{other}' has {other_size}"
                                ),
                            });
                        }
                        _ => fixed = Some((&input.name, size)),
                    }
                }
                _ => {
                    return Err(DataError::BadModelInput {
                        input: input.name.clone(),
                        reason: format!(
                            "shape {:?} has no usable batch dimension (a positive size or -1 for any)",
                            input.dims
                        ),
                    });
                }
            }
        }
        Ok(match fixed {
            Some((_, size)) => BatchShape { size, fixed: true },
            None => BatchShape {
                size: batch_size.max(1),
                fixed: false,
            },
        })
    }
}

/// A form's reader: samples in order, read a few at a time (internal to the loaders).
trait SampleReader: Send {
    /// Skips the next `count` samples without keeping them.
    fn skip(&mut self, count: usize) -> Result<(), DataError>;
    /// Reads the next `count` samples as one tensor per input, samples along the first axis.
    fn read(&mut self, count: usize) -> Result<HashMap<String, Tensor>, DataError>;
}

/// Cuts a reader's samples into batches.
struct Batches {
    reader: Box<dyn SampleReader>,
    batch_size: usize,
    remaining: usize,
    total: usize,
}

impl BatchSource for Batches {
    fn next_batch(&mut self) -> Result<Option<Batch>, DataError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let samples = self.batch_size.min(self.remaining);
        let inputs = self.reader.read(samples)?;
        self.remaining -= samples;
        Ok(Some(Batch { inputs, samples }))
    }

    fn total(&self) -> Option<usize> {
        Some(self.total)
    }
}

/// Checks an array (of `dtype`, shaped `found`) against `input`; returns how many samples it
/// holds. `found` is `[N, sample...]`, or with `allow_single` also just `sample` (one sample).
fn sample_count(
    path: &Path,
    input: &ModelInput,
    dtype: DataType,
    found: &[usize],
    allow_single: bool,
) -> Result<usize, DataError> {
    if dtype != input.dtype {
        return Err(DataError::DtypeMismatch {
            path: path.to_path_buf(),
            input: input.name.clone(),
            expected: input.dtype.as_str_name().to_owned(),
            found: dtype.as_str_name().to_owned(),
        });
    }
    let sample = input.sample_dims()?;
    match found.split_first() {
        Some((&count, rest)) if rest == sample.as_slice() => Ok(count),
        _ if allow_single && found == sample.as_slice() => Ok(1),
        _ => Err(DataError::ShapeMismatch {
            path: path.to_path_buf(),
            input: input.name.clone(),
            expected: input.dims.clone(),
            found: found.to_vec(),
        }),
    }
}
