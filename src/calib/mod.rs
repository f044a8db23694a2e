//! Calibration statistics: collectors, histograms, the four methods, weight amaxes.
//!
//! Owns turning observed values into amaxes (scale = amax / 127): the [`Collector`] trait and its
//! two-pass protocol (abs-max first, then a 2048-bin histogram over that range, so results never
//! depend on batch order), the [`Histogram`] format shared with the CUDA path and calib.json,
//! the `max`, `percentile`, `entropy` and `mse` methods, tie groups, per-channel weight amaxes,
//! and the degenerate-data policy (finite amax ≥ [`AMAX_FLOOR`], warnings as values).
//! It does not run models (the `exec` backends feed batches), does not load calibration data,
//! and does not write scales into a model (the `quantize` stage does).

mod amax;
mod calibrate;
mod collectors;
pub mod data;
mod error;
mod histogram;
mod methods;
mod npy;
mod weights;

pub use amax::{AMAX_FLOOR, AmaxResult, AmaxWarning};
pub use calibrate::{CalibrateError, CalibrationResult, TensorStats, calibrate};
pub use collectors::{
    Collector, HistogramCollector, MaxCollector, TensorCalibration, calibrate_tensor,
    tie_group_amax,
};
pub use error::CalibError;
pub use histogram::{BINS, Histogram};
pub use methods::{DEFAULT_PERCENTILE, Method, Percentile};
pub use npy::{NpyAmax, amax_of_npy};
pub use weights::per_channel_amax;
