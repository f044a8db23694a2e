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
    let batch_len = match array.ndim() {
        0 => 1,
        _ => array.len() / array.len_of(Axis(0)).max(1),
    };
    // Standard (C) order, so each batch is one contiguous run of the buffer.
    let (values, _) = array
        .as_standard_layout()
        .into_owned()
        .into_raw_vec_and_offset();
    let batches: Vec<&[f32]> = values.chunks(batch_len.max(1)).collect();
    let calibration = calibrate_tensor(batches.iter().copied(), method)?;
    Ok(NpyAmax {
        amax: calibration.amax.amax,
        bin_width: calibration.range.abs_max() / BINS as f32,
        warnings: calibration.amax.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use ndarray_npy::write_npy;

    #[test]
    fn fortran_order_file_gives_the_same_amax_as_c_order() {
        let folder = tempfile::tempdir().unwrap();
        let c_order = Array2::from_shape_fn((40, 300), |(i, j)| ((i * 300 + j) as f32).sin());
        let fortran = c_order
            .t()
            .as_standard_layout()
            .into_owned()
            .reversed_axes();
        assert!(!fortran.is_standard_layout());
        let (c_path, f_path) = (folder.path().join("c.npy"), folder.path().join("f.npy"));
        write_npy(&c_path, &c_order).unwrap();
        write_npy(&f_path, &fortran).unwrap();
        for method in [Method::Max, Method::Entropy] {
            assert_eq!(
                amax_of_npy(&c_path, method).unwrap(),
                amax_of_npy(&f_path, method).unwrap()
            );
        }
    }

    #[test]
    fn unreadable_and_non_float32_files_name_the_path() {
        let folder = tempfile::tempdir().unwrap();
        let missing = folder.path().join("missing.npy");
        let error = amax_of_npy(&missing, Method::Max).unwrap_err();
        assert!(error.to_string().contains("missing.npy"), "{error}");

        let doubles = folder.path().join("doubles.npy");
        write_npy(&doubles, &Array2::<f64>::zeros((2, 2))).unwrap();
        let error = amax_of_npy(&doubles, Method::Max).unwrap_err();
        assert!(error.to_string().contains("doubles.npy"), "{error}");
        assert!(error.to_string().contains("float32"), "{error}");
    }
}
