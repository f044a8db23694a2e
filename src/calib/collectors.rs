//! Collectors: what observes a tensor's values batch by batch and yields its amax.
//!
//! Owns the [`Collector`] trait, the two collectors behind the four methods, the two-pass
//! protocol that makes results independent of batch order, and tie groups. It does not run
//! models or read data (the pipeline feeds batches) and knows nothing about tensor names.
//!
//! Two passes over the same batches (the price: the model runs twice for histogram methods):
//! 1. a [`MaxCollector`] per tensor takes the abs-max (plus min |x| and NaN/Inf counts): `max`
//!    is done here;
//! 2. for `percentile`, `entropy` and `mse`, a [`HistogramCollector`] per tensor fills a
//!    2048-bin histogram over `[0, abs-max of pass 1]`, and the method reads the histogram.
//!
//! Every statistic is a max, a min or an integer count, so any batching, any order and any
//! merge of shards give bit-identical results.
//!
//! Tie groups (tensors that must share one scale, e.g. a Concat's inputs and output): merge the
//! members' pass-1 collectors into the group's range, build every member's histogram collector
//! from that merged range, then [`tie_group_amax`] merges the members (histograms over one range
//! add exactly; for `max`, the merge is the max of the abs-maxes) and applies the method once.

use ndarray::{ArrayView, Dimension};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::amax::{AmaxResult, ObservedSummary};
use super::error::CalibError;
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

/// Pass-1 statistics and the `max` method: abs-max, min |x|, and value counts.
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
        let batch = if values.len() <= 2 * PARALLEL_CHUNK {
            Self::scan(values)
        } else {
            values.par_chunks(PARALLEL_CHUNK).map(Self::scan).reduce(
                Self::default,
                |mut left, right| {
                    left.merge(&right);
                    left
                },
            )
        };
        self.merge(&batch);
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

/// Pass 2 for `percentile`, `entropy` and `mse`: a histogram over the range pass 1 fixed, read
/// by the chosen method.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramCollector {
    histogram: Histogram,
    method: Method,
    /// The first failed merge (ranges of self and other); reported by `amax`.
    range_mismatch: Option<(f32, f32)>,
}

impl HistogramCollector {
    /// A collector whose histogram covers `[0, range.abs_max()]`.
    pub fn new(range: &MaxCollector, method: Method) -> Result<Self, CalibError> {
        Ok(Self {
            histogram: Histogram::new(range.abs_max())?,
            method,
            range_mismatch: None,
        })
    }

    /// The histogram filled so far (what calib.json stores; any method can re-read it).
    pub fn histogram(&self) -> &Histogram {
        &self.histogram
    }

    /// The method `amax` applies.
    pub fn method(&self) -> Method {
        self.method
    }
}

impl Collector for HistogramCollector {
    fn observe(&mut self, values: &[f32]) {
        self.histogram.add(values);
    }

    /// Histograms over different ranges cannot be merged exactly: the merge is then skipped and
    /// `amax` reports [`CalibError::RangeMismatch`].
    fn merge(&mut self, other: &Self) {
        if self.histogram.try_merge(&other.histogram).is_err() && self.range_mismatch.is_none() {
            self.range_mismatch = Some((self.histogram.range_max(), other.histogram.range_max()));
        }
        if self.range_mismatch.is_none() {
            self.range_mismatch = other.range_mismatch;
        }
    }

    fn amax(&self) -> Result<AmaxResult, CalibError> {
        match self.range_mismatch {
            Some((left, right)) => Err(CalibError::RangeMismatch { left, right }),
            None => Ok(self.histogram.amax(self.method)),
        }
    }
}

/// One amax for a tie group: merges the members' collectors and applies the method once.
/// Histogram members must have been built from the group's merged range (see the module doc).
pub fn tie_group_amax<C: Collector + Clone>(members: &[C]) -> Result<AmaxResult, CalibError> {
    let (first, rest) = members.split_first().ok_or(CalibError::EmptyTieGroup)?;
    let mut group = first.clone();
    for member in rest {
        group.merge(member);
    }
    group.amax()
}

/// Both passes over one tensor's batches, and what they produced.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorCalibration {
    /// Pass-1 statistics.
    pub range: MaxCollector,
    /// Pass-2 histogram; `None` for `max`, which needs no second pass.
    pub histogram: Option<Histogram>,
    /// The method's amax.
    pub amax: AmaxResult,
}

/// Runs both calibration passes of `method` over `batches` (iterated twice when the method
/// needs a histogram).
pub fn calibrate_tensor<'a, I>(batches: I, method: Method) -> Result<TensorCalibration, CalibError>
where
    I: IntoIterator<Item = &'a [f32]> + Clone,
{
    let mut range = MaxCollector::default();
    for batch in batches.clone() {
        range.observe(batch);
    }
    if !method.needs_histogram_pass() {
        return Ok(TensorCalibration {
            range,
            histogram: None,
            amax: range.amax()?,
        });
    }
    let mut collector = HistogramCollector::new(&range, method)?;
    for batch in batches {
        collector.observe(batch);
    }
    let amax = collector.amax()?;
    Ok(TensorCalibration {
        range,
        histogram: Some(collector.histogram),
        amax,
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
    fn tie_group_of_histograms_needs_one_range() {
        let mut a = MaxCollector::default();
        a.observe(&[1.0]);
        let mut b = MaxCollector::default();
        b.observe(&[2.0]);
        let separate = [
            HistogramCollector::new(&a, Method::Entropy).unwrap(),
            HistogramCollector::new(&b, Method::Entropy).unwrap(),
        ];
        assert!(matches!(
            tie_group_amax(&separate),
            Err(CalibError::RangeMismatch { .. })
        ));
        assert!(matches!(
            tie_group_amax::<MaxCollector>(&[]),
            Err(CalibError::EmptyTieGroup)
        ));
    }
}
