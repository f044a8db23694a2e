//! The fine-grid histogram: the one calibration statistic every backend fills and merges.
//!
//! Owns the fill rule that the CPU and CUDA paths both implement bit for bit, the exact regrid
//! and merge, its serde form (runs of non-empty bins), and the one-time conversion into the
//! 2048-bin [`Histogram`] the methods read. It does not track the abs-max (the [`MaxCollector`]
//! does, exactly), does not choose amaxes (the methods do), and is not what calib.json stores
//! (the 2048-bin views are: every method reads only those, and they are 8× smaller).
//!
//! [`MaxCollector`]: super::MaxCollector
//!
//! # The rule
//!
//! [`FINE_BINS`] = 16384 `u64` bins of |x|, each `2^e` wide, where the integer `e` (the grid
//! exponent) lies in [[`MIN_EXPONENT`], [`MAX_EXPONENT`]]. A finite value `x` goes to bin
//! `⌊|x| · 2^-e⌋`, computed as one f32 multiplication by `2^-e` and a truncating conversion.
//! NaN and ±Inf are counted apart and never binned. For each batch:
//! 1. `m` = the batch's largest finite |x|; `e_needed` = [`exponent_for`]`(m)`, the smallest `e`
//!    in the range with `⌊m · 2^-e⌋ < FINE_BINS` (so `m · 2^-e` lies in `[2^13, 2^14)`, the top
//!    half of the grid, unless clamped at [`MIN_EXPONENT`]);
//! 2. the grid becomes `e' = max(e, e_needed)`; when it grows by `k`, bin `i` merges into bin
//!    `i >> k` ([`FineHistogram::regrid`]);
//! 3. the batch's values are binned at `e'`.
//!
//! # Why the multiplication is exact
//!
//! `2^-e` is a normal f32 for every allowed `e` (`-e` in `[-114, 127]`), and multiplying by a
//! power of two only shifts the exponent, so the product is exact unless it leaves the normal
//! range. It cannot overflow: binning happens at `e ≥ e_needed(m)`, so `|x| · 2^-e < 2^14`. When
//! it underflows into the subnormals (a tiny |x| on a wide grid) the rounded product is still
//! below `2^-126 < 1`, and so is the exact one: both truncate to bin 0. A subnormal |x| times
//! `2^-e ≥ 1` is exact (the result has at least the input's precision). So the f32 computation
//! gives exactly `⌊|x| / 2^e⌋`, on any IEEE-754 hardware, with or without fused multiply-add.
//!
//! # Why the result does not depend on order or split
//!
//! Claim: after any sequence of batches (and any merges of histograms built from parts of the
//! data), the histogram equals the one computed directly at the final exponent
//! `E = max(MIN_EXPONENT, max over batches of e_needed)` = `exponent_for(M)` with `M` the global
//! abs-max (`exponent_for` is monotone, so the max of the batches' exponents is the exponent of the
//! max).
//! - Regridding is exact: for `a ≥ 0` and `w = 2^e`, `⌊⌊a / w⌋ / 2^k⌋ = ⌊a / (2^k w)⌋` (integer
//!   division of a floor by a positive integer is the floor of the quotient), and `⌊i / 2^k⌋ =
//!   i >> k`. So a value binned at `e` and regridded to `e' ≥ e` lands where binning it at `e'`
//!   would have put it.
//! - By induction over batches, the histogram after each step equals the direct histogram of the
//!   values seen so far at the current exponent; the final exponent is `E` in every order, since
//!   it is a max of the batches' exponents.
//! - A merge regrids both sides to the larger exponent (exact, as above) and adds integer counts
//!   (associative and commutative), so shards, threads and devices combine to the same `E` and
//!   the same counts.
//!
//! The tests check this bit for bit (shuffled batches, other batch splits, merged shards).
//!
//! # The 2048-bin view
//!
//! The methods keep TensorRT's semantics on a 2048-bin histogram over `[0, abs-max]`:
//! [`FineHistogram::to_histogram`] puts each fine bin's count into the 2048-bin bin that
//! contains the fine bin's centre, `(i + ½) · 2^e` (clamped to the top bin), computed in f64
//! (`(2i + 1) · 2^(e + 10) / abs_max` is one correctly rounded division of exact operands, so it
//! is deterministic). A value moves by at most half a fine bin; abs-max lies in the top half of
//! the fine grid, so a fine bin is at most 1/4 of a 2048-bin bin, and every value is counted in
//! the 2048-bin bin it falls in or in a neighbour, only when it lies within 1/8 of a 2048-bin
//! bin of their common edge. (With `e` clamped at [`MIN_EXPONENT`], abs-max is below `2^-114`
//! and every method's amax is raised to the floor anyway.)

use serde::{Deserialize, Serialize};
use std::ops::AddAssign;

use super::error::CalibError;
use super::histogram::{BINS, Histogram};
use super::runs::{self, Runs};

/// Number of fine-grid bins.
pub const FINE_BINS: usize = 16384;

/// `log2(FINE_BINS)`: a grid of exponent `e` spans `[0, 2^(e + 14))`.
const FINE_BITS: i32 = 14;

/// Smallest grid exponent: `2^-e = 2^127` is still a normal f32.
pub const MIN_EXPONENT: i32 = -127;

/// Largest grid exponent needed: every finite f32 is below `2^128 = 2^(114 + 14)`.
pub const MAX_EXPONENT: i32 = 128 - FINE_BITS;

/// The top fine bin's index as the f32 the fill loop clamps to (never reached by a correct
/// exponent; it keeps indexing in bounds by construction).
const TOP_FINE_BIN: f32 = (FINE_BINS - 1) as f32;

/// Private count arrays one fill rotates through (see `fill`).
const FILL_LANES: usize = 4;

/// Values a fill counts before adding its `u32` lanes into the `u64` bins: a lane then holds
/// at most `LANE_FLUSH / FILL_LANES + FILL_LANES` per bin, far below `u32::MAX`.
const LANE_FLUSH: usize = 1 << 30;

/// Values from which a fill uses lanes (below, zeroing them would cost more than they save).
const LANES_FROM: usize = 1 << 16;

/// The smallest grid exponent in [[`MIN_EXPONENT`], [`MAX_EXPONENT`]] whose grid holds
/// `abs_max`: `⌊abs_max · 2^-e⌋ < FINE_BINS`. `abs_max` is a finite |x| (0, negative, NaN or
/// infinite give [`MIN_EXPONENT`] and [`MAX_EXPONENT`] as their sign and size suggest: 0 and
/// NaN need no room, +Inf the most).
pub fn exponent_for(abs_max: f32) -> i32 {
    if abs_max.is_nan() || abs_max <= 0.0 {
        return MIN_EXPONENT;
    }
    if abs_max.is_infinite() {
        return MAX_EXPONENT;
    }
    // ⌊log2 abs_max⌋ from the bits: the unbiased exponent, or for a subnormal the position of
    // its leading mantissa bit.
    let bits = abs_max.to_bits();
    let biased = ((bits >> 23) & 0xff) as i32;
    let log2 = if biased == 0 {
        let mantissa = bits & 0x007f_ffff;
        -149 + (31 - mantissa.leading_zeros() as i32)
    } else {
        biased - 127
    };
    // abs_max < 2^(log2 + 1) ≤ 2^(e + 14) ⇔ e ≥ log2 − 13.
    (log2 + 1 - FINE_BITS).clamp(MIN_EXPONENT, MAX_EXPONENT)
}

/// `2^-exponent` as an f32, exactly (a normal number for every allowed exponent).
pub fn inverse_bin_width(exponent: i32) -> f32 {
    let exponent = exponent.clamp(MIN_EXPONENT, MAX_EXPONENT);
    f32::from_bits(((127 - exponent) as u32) << 23)
}

/// A fine-grid histogram of |x| (see the module doc for the rule), plus NaN/Inf counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredFineHistogram", into = "StoredFineHistogram")]
pub struct FineHistogram {
    exponent: i32,
    bins: Box<[u64; FINE_BINS]>,
    nan_count: u64,
    inf_count: u64,
}

impl Default for FineHistogram {
    fn default() -> Self {
        Self {
            exponent: MIN_EXPONENT,
            bins: Box::new([0; FINE_BINS]),
            nan_count: 0,
            inf_count: 0,
        }
    }
}

/// The stored form: the exponent and the runs of consecutive non-empty bins, each as
/// `[first bin, [counts…]]` (activations leave most of the fine grid's tail empty).
#[derive(Clone, Serialize, Deserialize)]
struct StoredFineHistogram {
    exponent: i32,
    runs: Runs,
    nan_count: u64,
    inf_count: u64,
}

impl From<FineHistogram> for StoredFineHistogram {
    fn from(histogram: FineHistogram) -> Self {
        Self {
            exponent: histogram.exponent,
            runs: runs::encode(&histogram.bins[..]),
            nan_count: histogram.nan_count,
            inf_count: histogram.inf_count,
        }
    }
}

impl TryFrom<StoredFineHistogram> for FineHistogram {
    type Error = CalibError;

    fn try_from(stored: StoredFineHistogram) -> Result<Self, Self::Error> {
        let bins = runs::decode(&stored.runs, FINE_BINS)?;
        Self::from_parts(stored.exponent, bins, stored.nan_count, stored.inf_count)
    }
}

/// Counts `value` by the fill rule with `inverse_width` = `2^-e`: into its fine bin of `counts`,
/// or, for ±Inf and NaN, into `non_finite` (`[Inf, NaN]`).
#[inline(always)]
fn count<C: AddAssign + From<u8>>(
    counts: &mut [C; FINE_BINS],
    non_finite: &mut [u64; 2],
    value: f32,
    inverse_width: f32,
) {
    let magnitude = value.abs();
    if magnitude.is_finite() {
        // Exact (see the module doc); the clamp never binds at a correct exponent, and the mask
        // (a no-op on [0, FINE_BINS)) lets the compiler drop the bounds check.
        let index = (magnitude * inverse_width).min(TOP_FINE_BIN) as u32 as usize;
        counts[index & (FINE_BINS - 1)] += C::from(1);
    } else {
        non_finite[usize::from(magnitude.is_nan())] += 1;
    }
}

/// Bins `values` by the fill rule with `inverse_width` = `2^-e` into `bins`, returning the
/// NaN and ±Inf counts.
///
/// From [`LANES_FROM`] values on, consecutive values count into [`FILL_LANES`] private `u32`
/// arrays in turn: activations repeat a bin back to back (a ReLU output is half zeros), and
/// with one array each increment waits for the previous store to the same counter. The lanes
/// are added into the `u64` bins after at most [`LANE_FLUSH`] values, long before a `u32`
/// could overflow.
fn fill(bins: &mut [u64; FINE_BINS], values: &[f32], inverse_width: f32) -> (u64, u64) {
    let mut non_finite = [0u64; 2];
    if values.len() < LANES_FROM {
        for &value in values {
            count(bins, &mut non_finite, value, inverse_width);
        }
        return (non_finite[1], non_finite[0]);
    }
    let mut lanes = vec![[0u32; FINE_BINS]; FILL_LANES];
    for piece in values.chunks(LANE_FLUSH) {
        let mut groups = piece.chunks_exact(FILL_LANES);
        for group in &mut groups {
            for (lane, &value) in lanes.iter_mut().zip(group) {
                count(lane, &mut non_finite, value, inverse_width);
            }
        }
        for &value in groups.remainder() {
            count(bins, &mut non_finite, value, inverse_width);
        }
        for lane in &mut lanes {
            for (total, lane_count) in bins.iter_mut().zip(lane.iter_mut()) {
                *total += u64::from(std::mem::take(lane_count));
            }
        }
    }
    (non_finite[1], non_finite[0])
}

impl FineHistogram {
    /// An empty histogram on the finest grid ([`MIN_EXPONENT`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Assembles a histogram filled elsewhere (a device, a stored file), checking its shape.
    /// `bins[i]` counts the finite |x| with `⌊|x| · 2^-exponent⌋ = i`.
    pub fn from_parts(
        exponent: i32,
        bins: Vec<u64>,
        nan_count: u64,
        inf_count: u64,
    ) -> Result<Self, CalibError> {
        if !(MIN_EXPONENT..=MAX_EXPONENT).contains(&exponent) {
            return Err(CalibError::FineExponent {
                exponent,
                min: MIN_EXPONENT,
                max: MAX_EXPONENT,
            });
        }
        let found = bins.len();
        let bins: Box<[u64; FINE_BINS]> =
            bins.into_boxed_slice()
                .try_into()
                .map_err(|_| CalibError::BinCount {
                    found,
                    expected: FINE_BINS,
                })?;
        Ok(Self {
            exponent,
            bins,
            nan_count,
            inf_count,
        })
    }

    /// The grid exponent `e`: each bin is `2^e` wide.
    pub fn exponent(&self) -> i32 {
        self.exponent
    }

    /// The [`FINE_BINS`] bin counts.
    pub fn bins(&self) -> &[u64; FINE_BINS] {
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

    /// Widens the grid to `exponent` (no-op when it is not wider), merging bin `i` into
    /// `i >> k` for a growth of `k`: exact (see the module doc). Exponents above
    /// [`MAX_EXPONENT`] are clamped to it.
    pub fn regrid(&mut self, exponent: i32) {
        let exponent = exponent.min(MAX_EXPONENT);
        if exponent <= self.exponent {
            return;
        }
        // Growing by 14 or more puts every bin into bin 0; capping the shift keeps it defined.
        let shift = (exponent - self.exponent).min(FINE_BITS) as u32;
        let mut bins = Box::new([0u64; FINE_BINS]);
        for (index, &count) in self.bins.iter().enumerate() {
            bins[index >> shift] += count;
        }
        self.bins = bins;
        self.exponent = exponent;
    }

    /// Adds one batch whose largest finite |x| is `batch_abs_max` (from a [`MaxCollector`] scan
    /// of the same values): regrids to fit it, then bins every value. One thread: callers split
    /// large batches into pieces (see [`super::HistogramCollector`]), which changes nothing
    /// (module doc).
    ///
    /// [`MaxCollector`]: super::MaxCollector
    pub fn add(&mut self, values: &[f32], batch_abs_max: f32) {
        self.regrid(exponent_for(batch_abs_max));
        let (nan, inf) = fill(&mut self.bins, values, inverse_bin_width(self.exponent));
        self.nan_count += nan;
        self.inf_count += inf;
    }

    /// The counts of another histogram on the same grid added to these.
    fn add_bins(&mut self, other: &Self) {
        for (total, count) in self.bins.iter_mut().zip(other.bins.iter()) {
            *total += count;
        }
    }

    /// Adds another histogram's counts (another batch, shard, thread or device), regridding
    /// both to the wider grid: exact, in any order.
    pub fn merge(&mut self, other: &Self) {
        self.regrid(other.exponent);
        if other.exponent == self.exponent {
            self.add_bins(other);
        } else {
            let mut other = other.clone();
            other.regrid(self.exponent);
            self.add_bins(&other);
        }
        self.nan_count += other.nan_count;
        self.inf_count += other.inf_count;
    }

    /// The 2048-bin histogram over `[0, abs_max]` the methods read, `abs_max` being the exact
    /// largest finite |x| of the same data: each fine bin's count goes to the 2048-bin bin
    /// holding the fine bin's centre (see the module doc for the rule and its error).
    pub fn to_histogram(&self, abs_max: f32) -> Result<Histogram, CalibError> {
        let mut bins = vec![0u64; BINS];
        let range = f64::from(abs_max);
        // (2i + 1) · 2^(e − 1) · 2048 / abs_max: every factor but the division is exact.
        let half_width_in_bins = 2f64.powi(self.exponent - 1) * BINS as f64;
        for (index, &count) in self.bins.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let target = if range > 0.0 {
                let centre = (2 * index + 1) as f64 * half_width_in_bins / range;
                // `as` saturates; the min keeps centres past abs_max in the top bin.
                (centre as usize).min(BINS - 1)
            } else {
                0
            };
            bins[target] += count;
        }
        Histogram::from_parts(abs_max, bins, self.nan_count, self.inf_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `⌊|x| / 2^e⌋` in f64 (exact for every f32 and allowed e).
    fn direct_bin(value: f32, exponent: i32) -> usize {
        (f64::from(value.abs()) / 2f64.powi(exponent)).floor() as usize
    }

    #[test]
    fn exponent_for_puts_abs_max_in_the_top_half_of_the_grid() {
        for abs_max in [
            1.0f32,
            16383.99,
            16384.0,
            3.7e-3,
            1e-30,
            6.5e4,
            f32::MAX,
            2.5e-41,
        ] {
            let exponent = exponent_for(abs_max);
            let bin = direct_bin(abs_max, exponent);
            assert!(bin < FINE_BINS, "{abs_max}: bin {bin} at e = {exponent}");
            if exponent > MIN_EXPONENT {
                assert!(
                    direct_bin(abs_max, exponent - 1) >= FINE_BINS,
                    "{abs_max}: e = {exponent} is not the smallest"
                );
            }
        }
        assert_eq!(exponent_for(16383.99), 0);
        assert_eq!(exponent_for(16384.0), 1);
        assert_eq!(exponent_for(f32::MAX), MAX_EXPONENT);
        assert_eq!(exponent_for(0.0), MIN_EXPONENT);
        assert_eq!(exponent_for(f32::from_bits(1)), MIN_EXPONENT);
    }

    #[test]
    fn inverse_bin_width_is_the_exact_power_of_two() {
        for exponent in [MIN_EXPONENT, -30, 0, 7, MAX_EXPONENT] {
            let inverse = inverse_bin_width(exponent);
            assert!(inverse.is_normal(), "{exponent}");
            assert_eq!(f64::from(inverse), 2f64.powi(-exponent));
        }
    }

    #[test]
    fn f32_fill_equals_the_exact_floor_at_every_scale() {
        // Normal, subnormal and huge values, each binned at its own exponent and at wider grids
        // (where the product may underflow).
        let values = [
            0.0,
            f32::from_bits(1),
            f32::from_bits(0x0040_0001),
            1.17e-38,
            3.0e-20,
            0.1,
            1.0,
            16383.0,
            1e30,
            f32::MAX,
        ];
        for &value in &values {
            let own = exponent_for(value);
            for exponent in [own, own + 1, own + 40, MAX_EXPONENT] {
                let exponent = exponent.min(MAX_EXPONENT);
                let mut histogram = FineHistogram::new();
                histogram.regrid(exponent);
                histogram.add(&[value], value);
                let expected = direct_bin(value, histogram.exponent());
                assert_eq!(
                    histogram.bins()[expected],
                    1,
                    "{value:e} at e = {}",
                    histogram.exponent()
                );
            }
        }
    }

    #[test]
    fn growing_the_grid_equals_binning_at_the_wider_grid() {
        let small: Vec<f32> = (0..5000).map(|i| (i as f32 * 0.37).sin() * 0.5).collect();
        let large: Vec<f32> = (0..5000).map(|i| (i as f32 * 0.11).cos() * 900.0).collect();
        let mut grown = FineHistogram::new();
        grown.add(&small, 0.5);
        grown.add(&large, 900.0);
        let mut direct = FineHistogram::new();
        direct.regrid(exponent_for(900.0));
        direct.add(&small, 0.5);
        direct.add(&large, 900.0);
        assert_eq!(grown, direct);
        // Merging in either order gives the same.
        let mut a = FineHistogram::new();
        a.add(&small, 0.5);
        let mut b = FineHistogram::new();
        b.add(&large, 900.0);
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, direct);
        assert_eq!(ba, direct);
    }

    #[test]
    fn pieces_binned_at_their_own_abs_max_equal_the_whole_batch() {
        // What HistogramCollector's one-sweep observe relies on: each piece regrids to its own
        // abs-max (the grid grows from piece to piece), the sum is the whole batch binned at once.
        let values: Vec<f32> = (0..300_017)
            .map(|i| ((i as f32) * 0.618_034).sin() * (1.0 + i as f32 / 1000.0))
            .collect();
        let abs_max = |v: &[f32]| v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let mut whole = FineHistogram::new();
        whole.add(&values, abs_max(&values));
        let mut pieces = FineHistogram::new();
        for piece in values.chunks(1000) {
            pieces.add(piece, abs_max(piece));
        }
        assert_eq!(whole, pieces);
        assert_eq!(whole.exponent(), exponent_for(abs_max(&values)));
    }

    #[test]
    fn nan_and_inf_are_counted_not_binned() {
        let mut histogram = FineHistogram::new();
        histogram.add(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.5], 0.5);
        assert_eq!(histogram.count(), 1);
        assert_eq!((histogram.nan_count(), histogram.inf_count()), (1, 2));
    }

    #[test]
    fn json_stores_runs_and_round_trips() {
        let mut histogram = FineHistogram::new();
        histogram.add(&[0.1, 0.1, 0.2, 7.0, -7.0, f32::NAN], 7.0);
        let json = serde_json::to_value(&histogram).unwrap();
        assert_eq!(json["runs"].as_array().unwrap().len(), 3, "{json}");
        assert_eq!(
            serde_json::from_value::<FineHistogram>(json).unwrap(),
            histogram
        );
    }

    #[test]
    fn stored_histogram_out_of_range_is_rejected() {
        let run_past_end =
            r#"{"exponent": 0, "runs": [[16383, [1, 2]]], "nan_count": 0, "inf_count": 0}"#;
        let error = serde_json::from_str::<FineHistogram>(run_past_end).unwrap_err();
        assert!(error.to_string().contains("16383"), "{error}");
        let bad_exponent = r#"{"exponent": 500, "runs": [], "nan_count": 0, "inf_count": 0}"#;
        let error = serde_json::from_str::<FineHistogram>(bad_exponent).unwrap_err();
        assert!(error.to_string().contains("500"), "{error}");
    }

    #[test]
    fn coarse_view_moves_no_value_by_more_than_an_eighth_of_a_bin() {
        // Values spread over [0, abs_max]: each lands in the 2048-bin bin of its own value, or a
        // neighbour when within 1/8 bin of the edge.
        let abs_max = 5.3f32;
        let values: Vec<f32> = (0..20_000)
            .map(|i| (i as f32 * 0.7093).sin().abs() * abs_max)
            .chain([abs_max])
            .collect();
        let mut fine = FineHistogram::new();
        fine.add(&values, abs_max);
        let coarse = fine.to_histogram(abs_max).unwrap();
        assert_eq!(coarse.count(), values.len() as u64);
        let width = f64::from(abs_max) / BINS as f64;
        let mut direct = vec![0i64; BINS];
        for &v in &values {
            let position = f64::from(v) / width;
            let bin = (position as usize).min(BINS - 1);
            direct[bin] += 1;
        }
        // Every difference between the views is a value within 1/8 bin of an edge.
        let near_edge = values
            .iter()
            .filter(|&&v| {
                let position = f64::from(v) / width;
                let edge = position.round();
                (position - edge).abs() <= 0.125 && edge > 0.0 && edge < BINS as f64
            })
            .count() as i64;
        let moved: i64 = coarse
            .bins()
            .iter()
            .zip(&direct)
            .map(|(&c, &d)| (c as i64 - d).abs())
            .sum::<i64>()
            / 2;
        assert!(
            moved <= near_edge,
            "moved {moved}, near an edge {near_edge}"
        );
    }
}
