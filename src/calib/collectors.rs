//! Collectors: what observes a tensor's values batch by batch and yields its amax.
//!
//! Owns the [`Collector`] trait, the two collectors behind the four methods, and tie groups. It
//! does not run models or read data (the pipeline feeds batches) and knows nothing about tensor
//! names.
//!
//! One pass over the data: a [`MaxCollector`] takes the abs-max (plus min |x| and NaN/Inf
//! counts), which is the `max` method; a [`HistogramCollector`] (for `percentile`, `entropy` and
//! `mse`) keeps such a [`MaxCollector`] and a [`FineHistogram`] whose grid grows with the abs-max
//! seen so far, and at the end reads the method off the 2048-bin view over the exact abs-max.
//! Every statistic is a max, a min or an integer count, and the fine grid's regrid is exact (see
//! `fine`), so any batching, any order and any merge of shards, threads or devices give
//! bit-identical results.
//!
//! Tie groups (tensors that must share one scale, e.g. a Concat's inputs and output):
//! [`tie_group_amax`] merges the members' collectors (max of abs-maxes; histograms on the wider
//! grid) and applies the method once, as if one tensor had seen all the members' values.

use ndarray::{ArrayView, Dimension};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::amax::{AmaxResult, ObservedSummary};
use super::error::CalibError;
use super::fine::FineHistogram;
use super::histogram::Histogram;
use super::methods::Method;

/// Observes a tensor's values batch by batch and yields its amax.
pub trait Collector {
    /// Takes one batch of values (any length; NaN/Inf are counted and ignored).
    fn observe(&mut self, values: &[f32]);

    /// Takes a batch as an ndarray view of any layout.
    fn observe_array<D: Dimension>(&mut self, values: ArrayView<'_, f32, D>) {
        if let Some(slice) = values.as_slice_memory_order() {
            self.observe(slice);
            return;
        }
        const STAGING: usize = 1 << 14;
        let mut staged = Vec::with_capacity(STAGING.min(values.len()));
        for &value in values.iter() {
            staged.push(value);
            if staged.len() == STAGING {
                self.observe(&staged);
                staged.clear();
            }
        }
        if !staged.is_empty() {
            self.observe(&staged);
        }
    }

    /// Adds everything `other` observed (another shard, thread or device), as if this collector
    /// had observed it.
    fn merge(&mut self, other: &Self);

    /// The amax for everything observed so far.
    fn amax(&self) -> Result<AmaxResult, CalibError>;
}

/// The `max` method, and the exact statistics every method keeps: abs-max, min |x|, value counts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaxCollector {
    abs_max: f32,
    abs_min: f32,
    count: u64,
    nan_count: u64,
    inf_count: u64,
}

impl Default for MaxCollector {
    fn default() -> Self {
        Self {
            abs_max: 0.0,
            // Identity of `min` that still serializes (JSON has no infinity).
            abs_min: f32::MAX,
            count: 0,
            nan_count: 0,
            inf_count: 0,
        }
    }
}

/// Independent accumulators per scan step, so the loop vectorizes.
const SCAN_LANES: usize = 16;
/// Values per scan block; keeps the per-lane counters from overflowing.
const SCAN_BLOCK: usize = 1 << 12;
/// Values per parallel task.
const PARALLEL_CHUNK: usize = 1 << 17;

impl MaxCollector {
    /// Assembles statistics computed elsewhere (e.g. a device reduction over one batch):
    /// the largest and smallest finite |x| (`0` and `f32::MAX` when there is none) and the
    /// counts of finite, NaN and ±Inf values.
    pub fn from_parts(
        abs_max: f32,
        abs_min: f32,
        count: u64,
        nan_count: u64,
        inf_count: u64,
    ) -> Self {
        Self {
            abs_max,
            abs_min,
            count,
            nan_count,
            inf_count,
        }
    }

    /// The statistics of one batch (both cores for large batches).
    pub fn of(values: &[f32]) -> Self {
        if values.len() <= 2 * PARALLEL_CHUNK {
            Self::scan(values)
        } else {
            values.par_chunks(PARALLEL_CHUNK).map(Self::scan).reduce(
                Self::default,
                |mut left, right| {
                    left.merge(&right);
                    left
                },
            )
        }
    }

    /// Largest finite |x| observed (0 when none).
    pub fn abs_max(&self) -> f32 {
        self.abs_max
    }

    /// Smallest finite |x| observed (`f32::MAX` when none).
    pub fn abs_min(&self) -> f32 {
        self.abs_min
    }

    /// Finite values observed.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// NaN values observed.
    pub fn nan_count(&self) -> u64 {
        self.nan_count
    }

    /// ±Inf values observed.
    pub fn inf_count(&self) -> u64 {
        self.inf_count
    }

    /// Statistics of one slice, in `SCAN_LANES` independent lanes that the compiler turns into
    /// SIMD (max/min by comparison and select, never `f32::max`, whose NaN rule blocks that).
    fn scan(values: &[f32]) -> Self {
        let mut stats = Self::default();
        for block in values.chunks(SCAN_BLOCK) {
            let mut max = [0f32; SCAN_LANES];
            let mut min = [f32::MAX; SCAN_LANES];
            let mut non_finite = [0u32; SCAN_LANES];
            let mut nan = [0u32; SCAN_LANES];
            let mut observe = |lane: usize, value: f32| {
                let magnitude = value.abs();
                // False for NaN and infinity.
                let finite = magnitude <= f32::MAX;
                let for_max = if finite { magnitude } else { 0.0 };
                let for_min = if finite { magnitude } else { f32::MAX };
                max[lane] = if for_max > max[lane] {
                    for_max
                } else {
                    max[lane]
                };
                min[lane] = if for_min < min[lane] {
                    for_min
                } else {
                    min[lane]
                };
                non_finite[lane] += u32::from(!finite);
                nan[lane] += u32::from(magnitude.is_nan());
            };
            let mut steps = block.chunks_exact(SCAN_LANES);
            for step in &mut steps {
                for (lane, &value) in step.iter().enumerate() {
                    observe(lane, value);
                }
            }
            for (lane, &value) in steps.remainder().iter().enumerate() {
                observe(lane, value);
            }
            let non_finite: u64 = non_finite.iter().map(|&n| u64::from(n)).sum();
            let nan: u64 = nan.iter().map(|&n| u64::from(n)).sum();
            stats.merge(&Self {
                abs_max: max
                    .iter()
                    .fold(0.0, |acc, &m| if m > acc { m } else { acc }),
                abs_min: min
                    .iter()
                    .fold(f32::MAX, |acc, &m| if m < acc { m } else { acc }),
                count: block.len() as u64 - non_finite,
                nan_count: nan,
                inf_count: non_finite - nan,
            });
        }
        stats
    }

    fn summary(&self) -> ObservedSummary {
        ObservedSummary {
            finite: self.count,
            nan: self.nan_count,
            inf: self.inf_count,
            abs_max: self.abs_max,
            constant_magnitude: self.count > 0 && self.abs_min == self.abs_max,
        }
    }
}

impl Collector for MaxCollector {
    fn observe(&mut self, values: &[f32]) {
        self.merge(&Self::of(values));
    }

    fn merge(&mut self, other: &Self) {
        self.abs_max = self.abs_max.max(other.abs_max);
        self.abs_min = self.abs_min.min(other.abs_min);
        self.count += other.count;
        self.nan_count += other.nan_count;
        self.inf_count += other.inf_count;
    }

    fn amax(&self) -> Result<AmaxResult, CalibError> {
        Ok(AmaxResult::from_computed(self.abs_max, self.summary()))
    }
}

/// `percentile`, `entropy` and `mse`: the exact statistics plus a fine-grid histogram, read by
/// the chosen method through the 2048-bin view.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramCollector {
    range: MaxCollector,
    fine: FineHistogram,
    method: Method,
}

impl HistogramCollector {
    /// An empty collector for `method`.
    pub fn new(method: Method) -> Self {
        Self::from_parts(MaxCollector::default(), FineHistogram::new(), method)
    }

    /// Assembles a collector from statistics gathered elsewhere (a device, a shard);
    /// `range` and `fine` must describe the same values.
    pub fn from_parts(range: MaxCollector, fine: FineHistogram, method: Method) -> Self {
        Self {
            range,
            fine,
            method,
        }
    }

    /// The exact statistics (abs-max, min |x|, counts).
    pub fn range(&self) -> &MaxCollector {
        &self.range
    }

    /// The fine-grid histogram filled so far (what tie groups merge).
    pub fn fine(&self) -> &FineHistogram {
        &self.fine
    }

    /// The 2048-bin view over `[0, abs-max]` that the methods read.
    pub fn histogram(&self) -> Result<Histogram, CalibError> {
        self.fine.to_histogram(self.range.abs_max())
    }

    /// The method `amax` applies.
    pub fn method(&self) -> Method {
        self.method
    }
}

/// Values a histogram sweep scans and then bins while they are still in cache.
const SWEEP_CHUNK: usize = 1 << 19;

/// One step of a histogram sweep: scans `chunk`, bins it at its own abs-max, adds both.
fn sweep_into(range: &mut MaxCollector, fine: &mut FineHistogram, chunk: &[f32]) {
    let stats = MaxCollector::scan(chunk);
    fine.add(chunk, stats.abs_max());
    range.merge(&stats);
}

impl Collector for HistogramCollector {
    /// Scans and bins the batch in one sweep over memory (both cores for large batches): each
    /// chunk is scanned and then binned at its own abs-max while still in cache (scanning the
    /// whole batch first and binning it second read every activation from memory twice). A
    /// chunk is a batch of the fine grid's rule, so this equals binning the whole batch at its
    /// abs-max, bit for bit ([`super::fine`]: the counts do not depend on how values are split).
    fn observe(&mut self, values: &[f32]) {
        if values.len() <= SWEEP_CHUNK {
            sweep_into(&mut self.range, &mut self.fine, values);
            return;
        }
        let empty = || (MaxCollector::default(), FineHistogram::new());
        let sweep = |(mut range, mut fine): (MaxCollector, FineHistogram), chunk: &[f32]| {
            sweep_into(&mut range, &mut fine, chunk);
            (range, fine)
        };
        let (batch, fine) = values.par_chunks(SWEEP_CHUNK).fold(empty, sweep).reduce(
            empty,
            |(mut range, mut fine), (other_range, other_fine)| {
                range.merge(&other_range);
                fine.merge(&other_fine);
                (range, fine)
            },
        );
        self.fine.merge(&fine);
        self.range.merge(&batch);
    }

    fn merge(&mut self, other: &Self) {
        self.range.merge(&other.range);
        self.fine.merge(&other.fine);
    }

    fn amax(&self) -> Result<AmaxResult, CalibError> {
        Ok(self.histogram()?.amax(self.method))
    }
}

/// One amax for a tie group: merges the members' collectors and applies the method once.
pub fn tie_group_amax<C: Collector + Clone>(members: &[C]) -> Result<AmaxResult, CalibError> {
    let (first, rest) = members.split_first().ok_or(CalibError::EmptyTieGroup)?;
    let mut group = first.clone();
    for member in rest {
        group.merge(member);
    }
    group.amax()
}

/// What one pass over a tensor's batches produced.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorCalibration {
    /// The exact statistics.
    pub range: MaxCollector,
    /// The fine-grid histogram; `None` for `max`, which needs none.
    pub fine: Option<FineHistogram>,
    /// The method's amax.
    pub amax: AmaxResult,
}

/// Calibrates one tensor with `method` in one pass over `batches`.
pub fn calibrate_tensor<'a, I>(batches: I, method: Method) -> Result<TensorCalibration, CalibError>
where
    I: IntoIterator<Item = &'a [f32]>,
{
    if !method.needs_histogram() {
        let mut range = MaxCollector::default();
        batches.into_iter().for_each(|batch| range.observe(batch));
        return Ok(TensorCalibration {
            range,
            fine: None,
            amax: range.amax()?,
        });
    }
    let mut collector = HistogramCollector::new(method);
    batches
        .into_iter()
        .for_each(|batch| collector.observe(batch));
    Ok(TensorCalibration {
        range: collector.range,
        amax: collector.amax()?,
        fine: Some(collector.fine),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calib::amax::{AMAX_FLOOR, AmaxWarning};
    use ndarray::Array2;

    #[test]
    fn max_collector_tracks_abs_max_min_and_non_finite() {
        let mut collector = MaxCollector::default();
        collector.observe(&[-3.0, 0.5, f32::NAN, f32::NEG_INFINITY, 2.0]);
        assert_eq!(collector.abs_max(), 3.0);
        assert_eq!(collector.abs_min(), 0.5);
        assert_eq!(
            (
                collector.count(),
                collector.nan_count(),
                collector.inf_count()
            ),
            (3, 1, 1)
        );
        let result = collector.amax().unwrap();
        assert_eq!(result.amax, 3.0);
        assert_eq!(
            result.warnings,
            vec![AmaxWarning::NonFinite { nan: 1, inf: 1 }]
        );
    }

    #[test]
    fn max_of_only_nan_is_the_floor() {
        let mut collector = MaxCollector::default();
        collector.observe(&[f32::NAN; 10]);
        let result = collector.amax().unwrap();
        assert_eq!(result.amax, AMAX_FLOOR);
        assert!(result.warnings.contains(&AmaxWarning::NoFiniteData));
    }

    #[test]
    fn strided_view_matches_contiguous_slice() {
        let data = Array2::from_shape_fn((300, 70), |(i, j)| (i as f32 - 150.0) * (j as f32));
        let mut strided = MaxCollector::default();
        strided.observe_array(data.t());
        let mut contiguous = MaxCollector::default();
        contiguous.observe(data.as_slice().unwrap());
        assert_eq!(strided, contiguous);
    }

    #[test]
    fn empty_tie_group_is_an_error() {
        assert!(matches!(
            tie_group_amax::<MaxCollector>(&[]),
            Err(CalibError::EmptyTieGroup)
        ));
    }

    #[test]
    fn device_style_parts_merge_like_observed_batches() {
        // A backend that reduces and bins elsewhere hands over per-batch parts.
        let batches: Vec<Vec<f32>> = (0..4)
            .map(|b| {
                (0..3000)
                    .map(|i| ((i * (b + 3)) as f32 * 0.01).sin() * (b + 1) as f32)
                    .collect()
            })
            .collect();
        let mut observed = HistogramCollector::new(Method::Entropy);
        let mut assembled = HistogramCollector::new(Method::Entropy);
        for batch in &batches {
            observed.observe(batch);
            let range = MaxCollector::of(batch);
            let exponent = crate::calib::exponent_for(range.abs_max());
            let mut bins = vec![0u64; crate::calib::FINE_BINS];
            for &value in batch {
                bins[(value.abs() * crate::calib::inverse_bin_width(exponent)) as usize] += 1;
            }
            let fine = FineHistogram::from_parts(exponent, bins, 0, 0).unwrap();
            let stats = MaxCollector::from_parts(
                range.abs_max(),
                range.abs_min(),
                range.count(),
                range.nan_count(),
                range.inf_count(),
            );
            assembled.merge(&HistogramCollector::from_parts(
                stats,
                fine,
                Method::Entropy,
            ));
        }
        assert_eq!(assembled, observed);
        assert_eq!(assembled.amax().unwrap(), observed.amax().unwrap());
    }
}
