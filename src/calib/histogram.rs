//! The calibration histogram: 2048 bins of |x| over a fixed range, its fill rule and exact merge.
//!
//! Owns the histogram format that the CPU and CUDA paths both fill and that calib.json stores,
//! and turns a histogram into an amax for any method (so switching method re-uses it). It does
//! not choose the range: that is the first calibration pass (`collectors::MaxCollector`), whose
//! abs-max becomes `range_max`. Because the range is fixed before any value is binned and bin
//! counts are integers, filling is order-independent and merging is exact: the histogram of a
//! data set is the same however it is split into batches, threads, devices or shards.
//! (TensorRT instead grows the range by powers of two as batches arrive, which its docs note
//! makes scales depend on batch order and can leave half the bins empty.)
//!
//! Fill rule, which every implementation must follow bit for bit:
//! `scale = min(2048 / range_max, f32::MAX)` (one f32 division; `scale = 0` when
//! `range_max == 0`), and a finite value `x` goes to bin `trunc(min(|x| * scale, 2047))`, where
//! the product is one rounded f32 multiplication (no fused multiply-add). NaN and ±Inf are
//! counted apart and not binned.
//! Values above `range_max` (only possible if the second pass saw other data) land in the top bin.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::amax::{AmaxResult, ObservedSummary};
use super::error::CalibError;
use super::methods::{self, Method};

/// Number of histogram bins (TensorRT's entropy calibrator uses 2048).
pub const BINS: usize = 2048;

/// The top bin's index as the f32 the fill rule clamps to.
const TOP_BIN: f32 = (BINS - 1) as f32;

/// Values per parallel task when filling; big enough to amortize a task's private bins.
const PARALLEL_CHUNK: usize = 1 << 16;

/// A 2048-bin histogram of |x| over `[0, range_max]`, plus NaN/Inf counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredHistogram", into = "StoredHistogram")]
pub struct Histogram {
    range_max: f32,
    bins: Box<[u64; BINS]>,
    nan_count: u64,
    inf_count: u64,
}

/// The serialized form (calib.json), validated into a [`Histogram`] on load.
#[derive(Clone, Serialize, Deserialize)]
struct StoredHistogram {
    range_max: f32,
    bins: Vec<u64>,
    nan_count: u64,
    inf_count: u64,
}

impl From<Histogram> for StoredHistogram {
    fn from(histogram: Histogram) -> Self {
        Self {
            range_max: histogram.range_max,
            bins: histogram.bins.to_vec(),
            nan_count: histogram.nan_count,
            inf_count: histogram.inf_count,
        }
    }
}

impl TryFrom<StoredHistogram> for Histogram {
    type Error = CalibError;

    fn try_from(stored: StoredHistogram) -> Result<Self, Self::Error> {
        Self::from_parts(
            stored.range_max,
            stored.bins,
            stored.nan_count,
            stored.inf_count,
        )
    }
}

/// Bin counts with their NaN/Inf counts: one parallel task's share of a fill.
struct Counts {
    bins: Box<[u64; BINS]>,
    nan: u64,
    inf: u64,
}

impl Counts {
    fn new() -> Self {
        Self {
            bins: Box::new([0; BINS]),
            nan: 0,
            inf: 0,
        }
    }

    /// Bins `values` by the fill rule with the given `scale`.
    fn add(&mut self, values: &[f32], scale: f32) {
        for &value in values {
            let magnitude = value.abs();
            if magnitude.is_finite() {
                // Never NaN: both factors are finite.
                let index = (magnitude * scale).min(TOP_BIN) as usize;
                self.bins[index] += 1;
            } else if magnitude.is_nan() {
                self.nan += 1;
            } else {
                self.inf += 1;
            }
        }
    }

    fn absorb(&mut self, other: &Self) {
        add_bins(&mut self.bins[..], &other.bins[..]);
        self.nan += other.nan;
        self.inf += other.inf;
    }
}

fn add_bins(into: &mut [u64], from: &[u64]) {
    for (total, count) in into.iter_mut().zip(from) {
        *total += count;
    }
}

impl Histogram {
    /// An empty histogram over `[0, range_max]`; `range_max` is the abs-max from the range pass.
    pub fn new(range_max: f32) -> Result<Self, CalibError> {
        Self::from_parts(range_max, vec![0; BINS], 0, 0)
    }

    /// Assembles a histogram filled elsewhere (the CUDA path, calib.json), checking its shape.
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

    /// The upper end of the binned range (the first pass's abs-max).
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

    /// The f32 factor of the fill rule (see the module doc).
    pub fn scale(&self) -> f32 {
        if self.range_max > 0.0 {
            (BINS as f32 / self.range_max).min(f32::MAX)
        } else {
            0.0
        }
    }

    /// Bins a batch of values (any order, any split: the result is the same).
    pub fn add(&mut self, values: &[f32]) {
        let scale = self.scale();
        let counts = if values.len() <= 2 * PARALLEL_CHUNK {
            let mut counts = Counts::new();
            counts.add(values, scale);
            counts
        } else {
            values
                .par_chunks(PARALLEL_CHUNK)
                .fold(Counts::new, |mut counts, chunk| {
                    counts.add(chunk, scale);
                    counts
                })
                .reduce(Counts::new, |mut left, right| {
                    left.absorb(&right);
                    left
                })
        };
        add_bins(&mut self.bins[..], &counts.bins[..]);
        self.nan_count += counts.nan;
        self.inf_count += counts.inf;
    }

    /// Adds another histogram's counts; both must cover the same range (exact merge).
    pub fn try_merge(&mut self, other: &Self) -> Result<(), CalibError> {
        if self.range_max.to_bits() != other.range_max.to_bits() {
            return Err(CalibError::RangeMismatch {
                left: self.range_max,
                right: other.range_max,
            });
        }
        add_bins(&mut self.bins[..], &other.bins[..]);
        self.nan_count += other.nan_count;
        self.inf_count += other.inf_count;
        Ok(())
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

    #[test]
    fn fill_rule_puts_the_range_max_in_the_top_bin_and_zero_in_bin_0() {
        let mut histogram = Histogram::new(4.0).unwrap();
        histogram.add(&[0.0, -4.0, 4.0, 1.0, -1.0]);
        assert_eq!(histogram.bins()[0], 1);
        assert_eq!(histogram.bins()[BINS - 1], 2);
        // 1.0 * 2048 / 4 = 512 exactly.
        assert_eq!(histogram.bins()[512], 2);
        assert_eq!(histogram.count(), 5);
    }

    #[test]
    fn nan_and_inf_are_counted_not_binned() {
        let mut histogram = Histogram::new(1.0).unwrap();
        histogram.add(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.5]);
        assert_eq!(histogram.count(), 1);
        assert_eq!((histogram.nan_count(), histogram.inf_count()), (1, 2));
    }

    #[test]
    fn parallel_fill_equals_sequential_fill() {
        let values: Vec<f32> = (0..(5 * PARALLEL_CHUNK + 17))
            .map(|i| ((i as f32) * 0.618_034).sin() * 3.0)
            .collect();
        let mut whole = Histogram::new(3.0).unwrap();
        whole.add(&values);
        let mut pieces = Histogram::new(3.0).unwrap();
        for piece in values.chunks(1000) {
            pieces.add(piece);
        }
        assert_eq!(whole, pieces);
    }

    #[test]
    fn merging_different_ranges_is_an_error() {
        let mut left = Histogram::new(1.0).unwrap();
        let right = Histogram::new(2.0).unwrap();
        assert!(matches!(
            left.try_merge(&right),
            Err(CalibError::RangeMismatch { .. })
        ));
    }

    #[test]
    fn stored_histogram_with_wrong_bin_count_is_rejected() {
        let json = r#"{"range_max": 1.0, "bins": [1, 2, 3], "nan_count": 0, "inf_count": 0}"#;
        let error = serde_json::from_str::<Histogram>(json).unwrap_err();
        assert!(error.to_string().contains("3 bins"), "{error}");
    }

    #[test]
    fn histogram_round_trips_through_json() {
        let mut histogram = Histogram::new(2.0).unwrap();
        histogram.add(&[0.1, 0.2, 1.9, f32::NAN]);
        let json = serde_json::to_string(&histogram).unwrap();
        assert_eq!(serde_json::from_str::<Histogram>(&json).unwrap(), histogram);
    }

    #[test]
    fn tiny_range_keeps_zero_in_bin_0() {
        // 2048 / 1e-40 overflows f32; the scale is capped at f32::MAX, so 0 · scale is 0 (not
        // NaN) and 1e-40 · f32::MAX ≈ 0.034 also lands in bin 0. (Such an amax is floored.)
        let mut histogram = Histogram::new(1e-40).unwrap();
        histogram.add(&[0.0, 1e-40]);
        assert_eq!(histogram.bins()[0], 2);
    }

    #[test]
    fn invalid_range_is_rejected() {
        for bad in [f32::NAN, f32::INFINITY, -1.0] {
            assert!(Histogram::new(bad).is_err());
        }
    }

    #[test]
    fn all_zero_histogram_floors_every_method() {
        let mut histogram = Histogram::new(0.0).unwrap();
        histogram.add(&[0.0; 100]);
        for method in [Method::Max, Method::Entropy, Method::Mse] {
            let result = histogram.amax(method);
            assert_eq!(result.amax, AMAX_FLOOR);
            assert_eq!(result.warnings, vec![AmaxWarning::AllZero]);
        }
    }

    #[test]
    fn constant_magnitude_gives_that_magnitude_for_every_method() {
        let mut histogram = Histogram::new(0.75).unwrap();
        histogram.add(&[0.75, -0.75, 0.75]);
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
