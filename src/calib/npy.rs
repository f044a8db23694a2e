//! Calibrating one array stored in an .npy file: the library side of `trtq calib-amax`.
//!
//! Owns reading the file and treating its first axis as batches. It is a test and inspection
//! entry (the conformance suite compares it with scripts/calib_reference.py); model calibration
//! data loading is `calib::data`'s job.

use std::path::Path;

use ndarray::{ArrayD, Axis};
use serde::Serialize;

use super::amax::AmaxWarning;
use super::collectors::calibrate_tensor;
use super::error::CalibError;
use super::histogram::BINS;
use super::methods::Method;

/// What `trtq calib-amax` prints as JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NpyAmax {
    /// The method's amax.
    pub amax: f32,
    /// The histogram bin width (`abs-max / 2048`), the tolerance unit of histogram methods.
    pub bin_width: f32,
    /// Degenerate-data warnings.
    pub warnings: Vec<AmaxWarning>,
}

/// Calibrates the float32 array in `path` with `method`, feeding it one slice of the first axis
/// per batch (a 0-d array is one batch).
pub fn amax_of_npy(path: &Path, method: Method) -> Result<NpyAmax, CalibError> {
    let array: ArrayD<f32> = ndarray_npy::read_npy(path).map_err(|source| CalibError::ReadNpy {
        path: path.to_owned(),
        source,
    })?;
    let array = array.as_standard_layout();
    let batches: Vec<&[f32]> = match (array.ndim(), array.as_slice()) {
        (0, Some(all)) => vec![all],
        (_, Some(all)) => {
            let per_batch = array.len() / array.len_of(Axis(0)).max(1);
            all.chunks(per_batch.max(1)).collect()
        }
        // A standard-layout array always has a slice.
        (_, None) => Vec::new(),
    };
    let calibration = calibrate_tensor(batches.iter().copied(), method)?;
    Ok(NpyAmax {
        amax: calibration.amax.amax,
        bin_width: calibration.range.abs_max() / BINS as f32,
        warnings: calibration.amax.warnings,
    })
}
