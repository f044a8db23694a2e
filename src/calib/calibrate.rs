//! Calibration of a model: runs batches through an executor backend once, observing the tensors
//! that get a Q/DQ, and turns what it saw into one amax per tensor (tie groups share one).
//!
//! Owns: the single pass over the data, the amax of every method for calib.json, re-deriving
//! amaxes from a stored calib.json without running the model (`--reuse-calibration`), and
//! [`CalibrationResult`]. Does not own: the collectors' math, data loading, or writing scales
//! into a Q/DQ model.
//!
//! calib.json keeps what every method's amax is computed from, and nothing more: per tensor the
//! exact range statistics and the 2048-bin view at its abs-max; per tie group the 2048-bin view
//! of the members' merged fine grids at the group's abs-max (views of different ranges cannot be
//! merged exactly, fine grids can). The fine grids themselves (8× the size) are dropped once the
//! views are taken. So a reused calibration gives bit for bit the amaxes of a fresh one, as long
//! as the model ties the same tensors (checked on reuse).

use super::data::BatchSource;
use super::{
    CalibError, Collector, FineHistogram, Histogram, HistogramCollector, MaxCollector, Method,
    Percentile, exponent_for,
};
use crate::exec::{Backend, BatchStats, ExecError, Observer, StatsSink};
use crate::graph::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Why calibration failed.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    /// Reading the data failed.
    #[error(transparent)]
    Data(#[from] super::data::DataError),
    /// Running the model failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The statistics could not be turned into an amax.
    #[error(transparent)]
    Calib(#[from] CalibError),
    /// An observed tensor was not float32.
    #[error("tensor '{0}' to be calibrated is not float32")]
    NotFloat(String),
    /// The data yielded no sample.
    #[error("the calibration data yielded no sample")]
    NoData,
    /// A stored calibration could not be read.
    #[error("cannot read the stored calibration {}: {source}", path.display())]
    ReadStored {
        /// The calib.json.
        path: PathBuf,
        /// What the file system reported.
        #[source]
        source: std::io::Error,
    },
    /// A stored calibration is not a valid calib.json.
    #[error("{} is not a calib.json written by trtq build: {source}", path.display())]
    ParseStored {
        /// The calib.json.
        path: PathBuf,
        /// What the parser reported.
        #[source]
        source: serde_json::Error,
    },
    /// A stored calibration lacks a tensor the model quantizes.
    #[error(
        "{} has no statistics for tensor '{tensor}' (and {more} more of the model's Q/DQ tensors): \
         it was calibrated for another model or config; re-run calibration without --reuse-calibration",
        path.display()
    )]
    MissingTensor {
        /// The calib.json.
        path: PathBuf,
        /// The first missing tensor (in name order).
        tensor: String,
        /// How many others are missing too.
        more: usize,
    },
    /// The model ties tensors that the stored calibration did not merge as one group, so its
    /// stored group histograms cannot give the group's amax.
    #[error(
        "{}: the tie groups changed since this calibration (the model ties {group}, which it did \
         not calibrate as one group); re-run calibration without --reuse-calibration",
        path.display()
    )]
    TieGroupsChanged {
        /// The calib.json.
        path: PathBuf,
        /// The model's first group not found in the file, its members joined by ", ".
        group: String,
    },
    /// A stored calibration cannot give the method's amaxes (e.g. it kept no histograms).
    #[error("{}: {source}", path.display())]
    Stored {
        /// The calib.json.
        path: PathBuf,
        /// Why.
        #[source]
        source: CalibError,
    },
}

/// What one tensor's calibration recorded (calib.json).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TensorStats {
    /// The amax of the configured method (the group's, for tie-group members).
    pub amax: f32,
    /// The amax every method gives on this tensor alone: max, percentile, entropy, mse.
    pub amax_by_method: BTreeMap<String, f32>,
    /// The exact statistics: abs-max, min |x|, value counts.
    pub range: MaxCollector,
    /// The 2048-bin view over `[0, abs-max]` every histogram method reads (absent for `max`
    /// runs, which fill no histogram).
    pub histogram: Option<Histogram>,
    /// The tie group this tensor belongs to (index into `tie_groups`), if any.
    pub tie_group: Option<usize>,
    /// Warnings about degenerate data, worded for the user.
    pub warnings: Vec<String>,
}

/// What one tie group's calibration recorded (calib.json).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TieGroupStats {
    /// The member tensors.
    pub tensors: Vec<String>,
    /// The amax of the configured method, shared by every member.
    pub amax: f32,
    /// The 2048-bin view of the members' merged fine grids over `[0, the group's abs-max]`
    /// (absent for `max` runs).
    pub histogram: Option<Histogram>,
}

/// The result of calibrating a model (written as calib.json).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CalibrationResult {
    /// The method whose amax became the scales.
    pub method: String,
    /// Samples observed.
    pub samples: usize,
    /// Forward passes made over the data: 1, or 0 when re-derived from a stored calibration.
    pub passes: usize,
    /// Samples per executor run: the largest batch of the pass (only the last may be shorter);
    /// 0 when re-derived from a stored calibration.
    #[serde(default)]
    pub batch_size: usize,
    /// Executor runs made (0 when re-derived from a stored calibration).
    #[serde(default)]
    pub batches: usize,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Per tensor statistics.
    pub tensors: BTreeMap<String, TensorStats>,
    /// The tie groups of the calibrated tensors (those with at least two members).
    pub tie_groups: Vec<TieGroupStats>,
}

/// One tensor's statistics before any amax is chosen.
struct Observed {
    range: MaxCollector,
    view: Option<Histogram>,
}

/// One tie group's members and merged 2048-bin view before its amax is chosen.
struct ObservedGroup {
    tensors: Vec<String>,
    view: Option<Histogram>,
}

impl CalibrationResult {
    /// The calib.json text: objects one key per line, arrays (histogram runs) on one line.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        super::json_text::to_string(self)
    }

    /// tensor → amax of the configured method.
    pub fn amax_map(&self) -> HashMap<String, f32> {
        self.tensors
            .iter()
            .map(|(k, v)| (k.clone(), v.amax))
            .collect()
    }

    /// Re-derives every amax for another method from the stored statistics, without running
    /// the model. Fails when the result kept no histograms (a `max` run) and `method` needs them.
    pub fn with_method(&self, method: Method) -> Result<CalibrationResult, CalibError> {
        let start = Instant::now();
        let observed = self
            .tensors
            .iter()
            .map(|(name, stats)| (name.clone(), stats.observed()))
            .collect();
        let groups = self
            .tie_groups
            .iter()
            .map(|g| ObservedGroup {
                tensors: g.tensors.clone(),
                view: g.histogram.clone(),
            })
            .collect();
        let mut result = assemble(observed, groups, method, self.samples, 0)?;
        result.seconds = start.elapsed().as_secs_f64();
        Ok(result)
    }

    /// Reads the calib.json at `path` and re-derives the amaxes of `tensors` (grouped by
    /// `tie_groups`, as in [`calibrate`]) with `method`, without running the model
    /// (`trtq build --reuse-calibration`). Errors name the file and, when the stored tensors do
    /// not cover `tensors`, the first missing one; a histogram method also needs every group
    /// of `tie_groups` (restricted to `tensors`) stored as a group, whose merged view it reads.
    pub fn reuse(
        path: &Path,
        tensors: &[String],
        tie_groups: &[Vec<String>],
        method: Method,
    ) -> Result<CalibrationResult, CalibrateError> {
        let start = Instant::now();
        let text = std::fs::read_to_string(path).map_err(|source| CalibrateError::ReadStored {
            path: path.to_owned(),
            source,
        })?;
        let stored: CalibrationResult =
            serde_json::from_str(&text).map_err(|source| CalibrateError::ParseStored {
                path: path.to_owned(),
                source,
            })?;
        let mut missing: Vec<&String> = tensors
            .iter()
            .filter(|t| !stored.tensors.contains_key(*t))
            .collect();
        missing.sort();
        if let Some(first) = missing.first() {
            return Err(CalibrateError::MissingTensor {
                path: path.to_owned(),
                tensor: (*first).clone(),
                more: missing.len() - 1,
            });
        }
        let observed = tensors
            .iter()
            .filter_map(|t| Some((t.clone(), stored.tensors.get(t)?.observed())))
            .collect();
        let groups = groups_of(tensors, tie_groups)
            .into_iter()
            .map(|members| {
                let view = match stored_group(&stored, &members) {
                    Some(group) => group.histogram.clone(),
                    // max needs no stored view: the members' ranges merge exactly.
                    None if !method.needs_histogram() => None,
                    None => {
                        return Err(CalibrateError::TieGroupsChanged {
                            path: path.to_owned(),
                            group: members.join(", "),
                        });
                    }
                };
                Ok(ObservedGroup {
                    tensors: members,
                    view,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut result =
            assemble(observed, groups, method, stored.samples, 0).map_err(|source| {
                CalibrateError::Stored {
                    path: path.to_owned(),
                    source,
                }
            })?;
        result.seconds = start.elapsed().as_secs_f64();
        Ok(result)
    }
}

impl TensorStats {
    fn observed(&self) -> Observed {
        Observed {
            range: self.range,
            view: self.histogram.clone(),
        }
    }
}

/// The group `stored` keeps of exactly `members` (in any order), if any.
fn stored_group<'a>(
    stored: &'a CalibrationResult,
    members: &[String],
) -> Option<&'a TieGroupStats> {
    let mut wanted: Vec<&String> = members.iter().collect();
    wanted.sort();
    stored.tie_groups.iter().find(|g| {
        let mut have: Vec<&String> = g.tensors.iter().collect();
        have.sort();
        have == wanted
    })
}

struct Stage<C> {
    collectors: HashMap<String, C>,
    error: Option<String>,
    /// The first device statistics that could not be taken (reported after the batch).
    stats_error: Option<CalibError>,
}

/// A collector that also takes a backend's per-batch statistics in place of the values (the
/// CUDA backend computes them on the device by the same fine-grid rule, so the collector ends up
/// bit-identical to one fed the values).
trait TakesBatchStats: Collector {
    /// Whether the backend must bin a histogram (not for `max`).
    const HISTOGRAM: bool;
    /// The grid exponent for a batch whose finite abs-max is `batch_abs_max`: the grid the
    /// collector would regrid to before binning the batch itself.
    fn exponent(&self, batch_abs_max: f32) -> i32;
    /// Adds one batch's statistics.
    fn take(&mut self, stats: BatchStats) -> Result<(), CalibError>;
}

/// The range statistics of a batch as a [`MaxCollector`].
fn range_of(stats: &BatchStats) -> MaxCollector {
    let r = &stats.range;
    MaxCollector::from_parts(r.abs_max, r.abs_min, r.finite, r.nan, r.inf)
}

impl TakesBatchStats for MaxCollector {
    const HISTOGRAM: bool = false;
    fn exponent(&self, batch_abs_max: f32) -> i32 {
        exponent_for(batch_abs_max)
    }
    fn take(&mut self, stats: BatchStats) -> Result<(), CalibError> {
        self.merge(&range_of(&stats));
        Ok(())
    }
}

impl TakesBatchStats for HistogramCollector {
    const HISTOGRAM: bool = true;
    fn exponent(&self, batch_abs_max: f32) -> i32 {
        self.fine().exponent().max(exponent_for(batch_abs_max))
    }
    fn take(&mut self, stats: BatchStats) -> Result<(), CalibError> {
        let range = range_of(&stats);
        let (nan, inf) = (stats.range.nan, stats.range.inf);
        let fine = FineHistogram::from_parts(stats.exponent, stats.bins, nan, inf)?;
        self.merge(&HistogramCollector::from_parts(range, fine, self.method()));
        Ok(())
    }
}

impl<C: TakesBatchStats> StatsSink for Stage<C> {
    fn wants_histogram(&self, _value: &str) -> bool {
        C::HISTOGRAM
    }
    fn exponent(&self, value: &str, batch_abs_max: f32) -> i32 {
        self.collectors
            .get(value)
            .map_or(exponent_for(batch_abs_max), |c| c.exponent(batch_abs_max))
    }
    fn observe_stats(&mut self, value: &str, stats: BatchStats) {
        if let Some(c) = self.collectors.get_mut(value)
            && let Err(e) = c.take(stats)
        {
            self.stats_error.get_or_insert(e);
        }
    }
}

impl<C: TakesBatchStats> Observer for Stage<C> {
    fn wants(&self, value: &str) -> bool {
        self.collectors.contains_key(value)
    }
    fn observe(&mut self, value: &str, tensor: &Tensor) {
        match (self.collectors.get_mut(value), tensor) {
            (Some(c), Tensor::F32(a)) => c.observe_array(a.view()),
            (Some(_), _) => {
                self.error.get_or_insert_with(|| value.to_string());
            }
            (None, _) => {}
        }
    }
    fn stats_sink(&mut self) -> Option<&mut dyn StatsSink> {
        Some(self)
    }
}

/// What one pass over the data ran.
#[derive(Clone, Copy, Default)]
struct PassCount {
    samples: usize,
    batches: usize,
    largest_batch: usize,
}

/// Runs every batch of `data` through `backend`, feeding a collector per tensor; returns the
/// collectors and what it ran.
fn pass<C: TakesBatchStats>(
    backend: &mut dyn Backend,
    data: &mut dyn BatchSource,
    tensors: &[String],
    new_collector: impl Fn() -> C,
    progress: &dyn Fn(usize),
) -> Result<(HashMap<String, C>, PassCount), CalibrateError> {
    let mut stage = Stage {
        collectors: tensors
            .iter()
            .map(|t| (t.clone(), new_collector()))
            .collect(),
        error: None,
        stats_error: None,
    };
    let mut count = PassCount::default();
    while let Some(batch) = data.next_batch()? {
        backend.run(batch.inputs, &mut stage)?;
        count.samples += batch.samples;
        count.batches += 1;
        count.largest_batch = count.largest_batch.max(batch.samples);
        progress(count.samples);
        if let Some(name) = stage.error.take() {
            return Err(CalibrateError::NotFloat(name));
        }
        if let Some(error) = stage.stats_error.take() {
            return Err(CalibrateError::Calib(error));
        }
    }
    if count.samples == 0 {
        return Err(CalibrateError::NoData);
    }
    Ok((stage.collectors, count))
}

/// The tie groups restricted to `tensors`, dropping those left with fewer than two members.
fn groups_of(tensors: &[String], tie_groups: &[Vec<String>]) -> Vec<Vec<String>> {
    tie_groups
        .iter()
        .map(|g| {
            g.iter()
                .filter(|t| tensors.contains(t))
                .cloned()
                .collect::<Vec<_>>()
        })
        .filter(|g| g.len() > 1)
        .collect()
}

/// Calibrates `tensors` of the model prepared in `backend` in one pass over `data`; `progress`
/// is called with the samples done so far.
pub fn calibrate(
    backend: &mut dyn Backend,
    data: &mut dyn BatchSource,
    tensors: &[String],
    tie_groups: &[Vec<String>],
    method: Method,
    progress: &dyn Fn(usize),
) -> Result<CalibrationResult, CalibrateError> {
    let start = Instant::now();
    let groups = groups_of(tensors, tie_groups);
    let (observed, group_views, count) = if method.needs_histogram() {
        let (collectors, count) = pass(
            backend,
            data,
            tensors,
            || HistogramCollector::new(method),
            progress,
        )?;
        // The groups' views come from the merged fine grids, before those are dropped.
        let group_views = groups
            .iter()
            .map(|g| merged_view(g.iter().filter_map(|t| collectors.get(t))).map(Some))
            .collect::<Result<Vec<_>, CalibError>>()?;
        let observed = collectors
            .into_iter()
            .map(|(name, c)| {
                let observed = Observed {
                    range: *c.range(),
                    view: Some(c.histogram()?),
                };
                Ok((name, observed))
            })
            .collect::<Result<_, CalibError>>()?;
        (observed, group_views, count)
    } else {
        let (collectors, count) = pass(backend, data, tensors, MaxCollector::default, progress)?;
        let observed = collectors
            .into_iter()
            .map(|(name, range)| (name, Observed { range, view: None }))
            .collect();
        (observed, vec![None; groups.len()], count)
    };
    let groups = groups
        .into_iter()
        .zip(group_views)
        .map(|(tensors, view)| ObservedGroup { tensors, view })
        .collect();
    let mut result = assemble(observed, groups, method, count.samples, 1)?;
    result.batch_size = count.largest_batch;
    result.batches = count.batches;
    result.seconds = start.elapsed().as_secs_f64();
    Ok(result)
}

/// The 2048-bin view of a tie group's members merged (exact: fine grids merge by regridding),
/// over `[0, the group's abs-max]`.
fn merged_view<'a>(
    mut members: impl Iterator<Item = &'a HistogramCollector>,
) -> Result<Histogram, CalibError> {
    let mut merged = members.next().ok_or(CalibError::EmptyTieGroup)?.clone();
    for member in members {
        merged.merge(member);
    }
    merged.histogram()
}

/// Every tensor's amaxes (its own per method, and the configured method's, shared within tie
/// groups) from its statistics; `seconds` is left 0 for the caller.
fn assemble(
    observed: BTreeMap<String, Observed>,
    groups: Vec<ObservedGroup>,
    method: Method,
    samples: usize,
    passes: usize,
) -> Result<CalibrationResult, CalibError> {
    let group_of: HashMap<&str, usize> = groups
        .iter()
        .enumerate()
        .flat_map(|(i, g)| g.tensors.iter().map(move |t| (t.as_str(), i)))
        .collect();
    let group_amax = groups
        .iter()
        .map(|g| {
            let mut ranges = g
                .tensors
                .iter()
                .filter_map(|t| observed.get(t))
                .map(|o| o.range);
            let mut range = ranges.next().ok_or(CalibError::EmptyTieGroup)?;
            for member in ranges {
                range.merge(&member);
            }
            amax_of(&range, g.view.as_ref(), method)
        })
        .collect::<Result<Vec<f32>, CalibError>>()?;
    let percentile = Method::Percentile(Percentile::new(super::DEFAULT_PERCENTILE)?);
    let mut tensors = BTreeMap::new();
    for (name, stats) in observed {
        let max = stats.range.amax()?;
        let warnings = max.warnings.iter().map(|w| w.to_string()).collect();
        let mut amax_by_method = BTreeMap::from([("max".to_string(), max.amax)]);
        if let Some(view) = &stats.view {
            for m in [percentile, Method::Entropy, Method::Mse] {
                let key = match m {
                    Method::Percentile(p) => format!("percentile_{}", p.value()),
                    other => other.name().to_string(),
                };
                amax_by_method.insert(key, view.amax(m).amax);
            }
        }
        let tie_group = group_of.get(name.as_str()).copied();
        let amax = match tie_group {
            Some(g) => group_amax[g],
            None => amax_of(&stats.range, stats.view.as_ref(), method)?,
        };
        tensors.insert(
            name,
            TensorStats {
                amax,
                amax_by_method,
                range: stats.range,
                histogram: stats.view,
                tie_group,
                warnings,
            },
        );
    }
    let tie_groups = groups
        .into_iter()
        .zip(group_amax)
        .map(|(g, amax)| TieGroupStats {
            tensors: g.tensors,
            amax,
            histogram: g.view,
        })
        .collect();
    Ok(CalibrationResult {
        method: method.name().to_string(),
        samples,
        passes,
        batch_size: 0,
        batches: 0,
        seconds: 0.0,
        tensors,
        tie_groups,
    })
}

/// The amax of `method` from exact statistics and (for histogram methods) the 2048-bin view.
fn amax_of(
    range: &MaxCollector,
    view: Option<&Histogram>,
    method: Method,
) -> Result<f32, CalibError> {
    Ok(match (method, view) {
        (Method::Max, _) => range.amax()?.amax,
        (m, Some(view)) => view.amax(m).amax,
        (m, None) => {
            return Err(CalibError::NeedsHistogram {
                method: m.name().to_string(),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calib::{FINE_BINS, inverse_bin_width};
    use crate::exec::BatchRange;

    /// What a device computes for one batch, by the host statement of the rule.
    fn batch_stats(values: &[f32], exponent: i32) -> BatchStats {
        let range = MaxCollector::of(values);
        let finite = values.iter().filter(|v| v.is_finite());
        let mut bins = vec![0u64; FINE_BINS];
        for v in finite.clone() {
            bins[(v.abs() * inverse_bin_width(exponent)) as usize] += 1;
        }
        BatchStats {
            range: BatchRange {
                abs_max: range.abs_max(),
                abs_min: range.abs_min(),
                min: finite.clone().fold(f32::MAX, |m, &v| m.min(v)),
                max: finite.fold(-f32::MAX, |m, &v| m.max(v)),
                finite: range.count(),
                nan: range.nan_count(),
                inf: range.inf_count(),
            },
            exponent,
            bins,
        }
    }

    #[test]
    fn batch_statistics_give_the_collector_fed_the_values() {
        let batches: Vec<Vec<f32>> = vec![
            vec![0.5, -0.25, f32::NAN, 3.0],
            (0..5000).map(|i| (i as f32 * 0.37).sin() * 40.0).collect(),
            vec![f32::INFINITY, 1e-30, -7.5],
        ];
        for method in [Method::Max, Method::Entropy] {
            let mut fed = HistogramCollector::new(method);
            let mut taken = HistogramCollector::new(method);
            let mut fed_max = MaxCollector::default();
            let mut taken_max = MaxCollector::default();
            for batch in &batches {
                fed.observe(batch);
                fed_max.observe(batch);
                let stats = batch_stats(batch, taken.exponent(MaxCollector::of(batch).abs_max()));
                taken.take(stats.clone()).unwrap();
                taken_max.take(stats).unwrap();
            }
            assert_eq!(taken, fed, "{method:?}");
            assert_eq!(taken_max, fed_max);
        }
        let mut collector = HistogramCollector::new(Method::Entropy);
        let mut wrong = batch_stats(&[1.0], 0);
        wrong.bins.truncate(10);
        assert!(
            collector.take(wrong).is_err(),
            "a short histogram is an error, not a panic"
        );
    }
}
