//! Calibrating one array stored in an .npy file: the library side of `trtq calib-amax`.
//!
//! Owns treating the array's first axis as batches. It is a test and inspection entry (the
//! conformance suite compares it with scripts/calib_reference.py); reading the file is
//! `calib::data`'s streaming `.npy` reader, so the array is never held whole.

use std::path::Path;

use serde::Serialize;

use super::amax::AmaxWarning;
use super::collectors::{Collector, HistogramCollector, MaxCollector};
use super::data::{self, DataError};
use super::error::CalibError;
use super::histogram::BINS;
use super::methods::Method;
use crate::config::DataSource;
use crate::graph::Tensor;

/// What `trtq calib-amax` prints as JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NpyAmax {
    /// The method's amax.
    pub amax: f32,
    /// The 2048-bin histogram's bin width (`abs-max / 2048`), the tolerance unit of histogram
    /// methods.
    pub bin_width: f32,
    /// Degenerate-data warnings.
    pub warnings: Vec<AmaxWarning>,
}

/// Calibrates the float32 array in `path` with `method` in one pass, one slice of the first
/// axis per batch.
pub fn amax_of_npy(path: &Path, method: Method) -> Result<NpyAmax, CalibError> {
    let read_error = |source: DataError| CalibError::ReadNpy {
        path: path.to_owned(),
        source: Box::new(source),
    };
    let input = data::array_input(path).map_err(read_error)?;
    let source = DataSource::Npy {
        path: path.to_owned(),
    };
    let mut batches = data::open(&source, &[input], 1, usize::MAX, 0).map_err(read_error)?;
    let mut collector = HistogramCollector::new(method);
    while let Some(batch) = batches.next_batch().map_err(read_error)? {
        for tensor in batch.inputs.values() {
            if let Tensor::F32(values) = tensor {
                collector.observe_array(values.view());
            }
        }
    }
    let range = collector.range();
    let amax = match method {
        Method::Max => MaxCollector::amax(range)?,
        _ => collector.amax()?,
    };
    Ok(NpyAmax {
        amax: amax.amax,
        bin_width: range.abs_max() / BINS as f32,
        warnings: amax.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use ndarray_npy::write_npy;

    #[test]
    fn batches_along_the_first_axis_give_the_amax_of_all_values() {
        let folder = tempfile::tempdir().unwrap();
        let values = Array2::from_shape_fn((40, 300), |(i, j)| ((i * 300 + j) as f32).sin() * 3.0);
        let path = folder.path().join("c.npy");
        write_npy(&path, &values).unwrap();
        let max = values.iter().fold(0f32, |acc, &v| acc.max(v.abs()));
        let got = amax_of_npy(&path, Method::Max).unwrap();
        assert_eq!(got.amax, max);
        assert_eq!(got.bin_width, max / BINS as f32);
        let entropy = amax_of_npy(&path, Method::Entropy).unwrap();
        assert!(entropy.amax > 0.0 && entropy.amax <= max);
    }

    #[test]
    fn fortran_order_file_is_a_clear_error() {
        let folder = tempfile::tempdir().unwrap();
        let fortran = Array2::from_shape_fn((300, 40), |(i, j)| (i + j) as f32)
            .reversed_axes()
            .as_standard_layout()
            .into_owned()
            .reversed_axes();
        assert!(!fortran.is_standard_layout());
        let path = folder.path().join("f.npy");
        write_npy(&path, &fortran).unwrap();
        let error = amax_of_npy(&path, Method::Max).unwrap_err();
        assert!(error.to_string().contains("ascontiguousarray"), "{error}");
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
