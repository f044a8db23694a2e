//! Calibration statistics: collectors, histograms, the four methods, weight amaxes.
//!
//! Owns turning observed values into amaxes (scale = amax / 127): the [`Collector`] trait and its
//! single pass (exact abs-max plus a [`FineHistogram`] whose power-of-two grid grows by exact
//! merges, so results never depend on batch order or split), the fine-grid rule shared with the
//! CUDA path, the 2048-bin [`Histogram`] view the methods read (and calib.json stores), the `max`,
//! `percentile`, `entropy` and `mse` methods, tie groups, per-channel weight amaxes, and the
//! degenerate-data policy (finite amax ≥ [`AMAX_FLOOR`], warnings as values).
//! It does not run models (the `exec` backends feed batches), does not load calibration data,
//! and does not write scales into a model (the `quantize` stage does).

mod amax;
mod calibrate;
mod collectors;
pub mod data;
mod error;
mod fine;
mod histogram;
mod json_text;
mod methods;
mod npy;
mod runs;
mod weights;

pub use amax::{AMAX_FLOOR, AmaxResult, AmaxWarning};
pub use calibrate::{CalibrateError, CalibrationResult, TensorStats, TieGroupStats, calibrate};
pub use collectors::{
    Collector, HistogramCollector, MaxCollector, TensorCalibration, calibrate_tensor,
    tie_group_amax,
};
pub use error::CalibError;
pub use fine::{
    FINE_BINS, FineHistogram, MAX_EXPONENT, MIN_EXPONENT, exponent_for, inverse_bin_width,
};
pub use histogram::{BINS, Histogram};
pub use methods::{DEFAULT_PERCENTILE, Method, Percentile};
pub use npy::{NpyAmax, amax_of_npy};
pub use weights::per_channel_amax;
