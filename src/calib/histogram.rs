//! The 2048-bin histogram the methods read: |x| over `[0, abs-max]`, plus NaN/Inf counts.
//!
//! Owns turning a histogram into an amax for any method (so switching method re-uses it) and the
//! degenerate cases of that (constant magnitude, all zero). It is not filled value by value: the
//! calibration statistic is the fine grid ([`FineHistogram`]), which is converted into this view
//! once, at the end, with the exact abs-max as `range_max` (see `fine` for the rule and its error
//! of at most 1/8 bin). 2048 bins and thresholds in bin units are what TensorRT's calibrators
//! and pytorch-quantization's methods use. It is also what calib.json stores per tensor and per
//! tie group (as runs of non-empty bins, validated on load), since the methods need nothing else.
//!
//! [`FineHistogram`]: super::FineHistogram

use super::amax::{AmaxResult, ObservedSummary};
use super::error::CalibError;
use super::methods::{self, Method};
use super::runs::{self, Runs};
use serde::{Deserialize, Serialize};

/// Number of histogram bins (TensorRT's entropy calibrator uses 2048).
pub const BINS: usize = 2048;

/// A 2048-bin histogram of |x| over `[0, range_max]`, plus NaN/Inf counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredHistogram", into = "StoredHistogram")]
pub struct Histogram {
    range_max: f32,
    bins: Box<[u64; BINS]>,
    nan_count: u64,
    inf_count: u64,
}

/// The stored form: the range, the bin count (checked on load, so a file from a build with
/// another count is refused) and the runs of consecutive non-empty bins.
#[derive(Clone, Serialize, Deserialize)]
struct StoredHistogram {
    range_max: f32,
    bins: usize,
    runs: Runs,
    nan_count: u64,
    inf_count: u64,
}

impl From<Histogram> for StoredHistogram {
    fn from(histogram: Histogram) -> Self {
        Self {
            range_max: histogram.range_max,
            bins: BINS,
            runs: runs::encode(&histogram.bins[..]),
            nan_count: histogram.nan_count,
            inf_count: histogram.inf_count,
        }
    }
}

impl TryFrom<StoredHistogram> for Histogram {
    type Error = CalibError;

    fn try_from(stored: StoredHistogram) -> Result<Self, Self::Error> {
        if stored.bins != BINS {
            return Err(CalibError::BinCount {
                found: stored.bins,
                expected: BINS,
            });
        }
        let bins = runs::decode(&stored.runs, BINS)?;
        Self::from_parts(stored.range_max, bins, stored.nan_count, stored.inf_count)
    }
}

impl Histogram {
    /// Assembles a histogram from its counts (the fine grid's conversion), checking its shape.
    pub fn from_parts(
        range_max: f32,
        bins: Vec<u64>,
        nan_count: u64,
        inf_count: u64,
    ) -> Result<Self, CalibError> {
        if !(range_max.is_finite() && range_max >= 0.0) {
            return Err(CalibError::InvalidRange { range_max });
        }
        let found = bins.len();
        let bins: Box<[u64; BINS]> =
            bins.into_boxed_slice()
                .try_into()
                .map_err(|_| CalibError::BinCount {
                    found,
                    expected: BINS,
                })?;
        Ok(Self {
            range_max,
            bins,
            nan_count,
            inf_count,
        })
    }

    /// The upper end of the binned range (the abs-max of the data).
    pub fn range_max(&self) -> f32 {
        self.range_max
    }

    /// Width of one bin: `range_max / 2048`.
    pub fn bin_width(&self) -> f32 {
        self.range_max / BINS as f32
    }

    /// The 2048 bin counts.
    pub fn bins(&self) -> &[u64; BINS] {
        &self.bins
    }

    /// Finite values binned.
    pub fn count(&self) -> u64 {
        self.bins.iter().sum()
    }

    /// NaN values seen (not binned).
    pub fn nan_count(&self) -> u64 {
        self.nan_count
    }

    /// ±Inf values seen (not binned).
    pub fn inf_count(&self) -> u64 {
        self.inf_count
    }

    /// The amax `method` chooses from this histogram. `Max` is `range_max` itself. When every
    /// value lies in the top bin (constant |x|) all methods give `range_max`.
    pub fn amax(&self, method: Method) -> AmaxResult {
        let observed = self.summary();
        let computed = if observed.constant_magnitude || self.range_max == 0.0 {
            self.range_max
        } else {
            let bins = &*self.bins;
            let edge_in_bins = match method {
                Method::Max => BINS as f64,
                Method::Percentile(percentile) => methods::percentile_edge(bins, percentile),
                Method::Entropy => methods::entropy_edge(bins),
                Method::Mse => methods::mse_center(bins),
            };
            (edge_in_bins * f64::from(self.range_max) / BINS as f64) as f32
        };
        AmaxResult::from_computed(computed, observed)
    }

    fn summary(&self) -> ObservedSummary {
        let finite = self.count();
        ObservedSummary {
            finite,
            nan: self.nan_count,
            inf: self.inf_count,
            abs_max: self.range_max,
            constant_magnitude: finite > 0
                && self.range_max > 0.0
                && self.bins.last() == Some(&finite),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calib::amax::{AMAX_FLOOR, AmaxWarning};

    /// A histogram with `count` values in bin `bin` only.
    fn single_bin(range_max: f32, bin: usize, count: u64) -> Histogram {
        let mut bins = vec![0; BINS];
        bins[bin] = count;
        Histogram::from_parts(range_max, bins, 0, 0).unwrap()
    }

    #[test]
    fn wrong_bin_count_is_rejected() {
        let error = Histogram::from_parts(1.0, vec![1, 2, 3], 0, 0).unwrap_err();
        assert!(error.to_string().contains("3 bins"), "{error}");
    }

    #[test]
    fn invalid_range_is_rejected() {
        for bad in [f32::NAN, f32::INFINITY, -1.0] {
            assert!(Histogram::from_parts(bad, vec![0; BINS], 0, 0).is_err());
        }
    }

    #[test]
    fn json_stores_runs_and_round_trips() {
        let mut bins = vec![0; BINS];
        bins[..3].copy_from_slice(&[5, 6, 7]);
        bins[BINS - 1] = 1;
        let histogram = Histogram::from_parts(2.5, bins, 1, 2).unwrap();
        let json = serde_json::to_value(&histogram).unwrap();
        assert_eq!(json["bins"], BINS, "{json}");
        assert_eq!(json["runs"].as_array().unwrap().len(), 2, "{json}");
        assert_eq!(
            serde_json::from_value::<Histogram>(json).unwrap(),
            histogram
        );
    }

    #[test]
    fn stored_histogram_is_validated() {
        let stored = |range: &str, bins: usize, runs: &str| {
            let text = format!(
                r#"{{"range_max": {range}, "bins": {bins}, "runs": {runs}, "nan_count": 0, "inf_count": 0}}"#
            );
            serde_json::from_str::<Histogram>(&text).map_err(|e| e.to_string())
        };
        assert!(stored("1.0", BINS, "[[0, [1]]]").is_ok());
        let wrong_count = stored("1.0", 16384, "[]").unwrap_err();
        assert!(wrong_count.contains("16384 bins"), "{wrong_count}");
        let past_end = stored("1.0", BINS, "[[2047, [1, 1]]]").unwrap_err();
        assert!(past_end.contains("bin 2047"), "{past_end}");
        let negative = stored("-1.0", BINS, "[]").unwrap_err();
        assert!(negative.contains("-1"), "{negative}");
        assert!(stored("1e39", BINS, "[]").is_err(), "an infinite f32 range");
    }

    #[test]
    fn all_zero_histogram_floors_every_method() {
        let histogram = single_bin(0.0, 0, 100);
        for method in [Method::Max, Method::Entropy, Method::Mse] {
            let result = histogram.amax(method);
            assert_eq!(result.amax, AMAX_FLOOR);
            assert_eq!(result.warnings, vec![AmaxWarning::AllZero]);
        }
    }

    #[test]
    fn constant_magnitude_gives_that_magnitude_for_every_method() {
        let histogram = single_bin(0.75, BINS - 1, 3);
        for method in [Method::Max, Method::Entropy, Method::Mse] {
            let result = histogram.amax(method);
            assert_eq!(result.amax, 0.75);
            assert_eq!(
                result.warnings,
                vec![AmaxWarning::ConstantMagnitude { value: 0.75 }]
            );
        }
    }
}
