//! Calibration of a model: runs batches through an executor backend, observing the tensors that
//! get a Q/DQ, and turns what it saw into one amax per tensor (tie groups share one).
//!
//! Owns: the two passes over the data (pass 1 abs-max ranges; pass 2, for histogram methods,
//! 2048-bin histograms over the pass-1 range — the group's merged range for tie-group members),
//! the amax of every method for calib.json (so switching method re-uses the histograms), and
//! [`CalibrationResult`]. Does not own: the collectors' math, data loading, or writing scales
//! into a Q/DQ model.

use super::data::BatchSource;
use super::{Collector, Histogram, HistogramCollector, MaxCollector, Method, Percentile};
use crate::exec::{Backend, ExecError, Observer};
use crate::graph::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
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
    Calib(#[from] super::CalibError),
    /// An observed tensor was not float32.
    #[error("tensor '{0}' to be calibrated is not float32")]
    NotFloat(String),
    /// The data yielded no sample.
    #[error("the calibration data yielded no sample")]
    NoData,
}

/// What one tensor's calibration recorded (calib.json).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TensorStats {
    /// The amax of the configured method (the group's, for tie-group members).
    pub amax: f32,
    /// The amax every method gives on this tensor alone: max, percentile, entropy, mse.
    pub amax_by_method: BTreeMap<String, f32>,
    /// Pass-1 statistics.
    pub range: MaxCollector,
    /// The pass-2 histogram (absent for `max` runs).
    pub histogram: Option<Histogram>,
    /// The tie group this tensor belongs to (index into `tie_groups`), if any.
    pub tie_group: Option<usize>,
    /// Warnings about degenerate data, worded for the user.
    pub warnings: Vec<String>,
}

/// The result of calibrating a model (written as calib.json).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CalibrationResult {
    /// The method whose amax became the scales.
    pub method: String,
    /// Samples seen per pass.
    pub samples: usize,
    /// Forward passes made over the data (1 for `max`, else 2).
    pub passes: usize,
    /// Samples per executor run: the largest batch of a pass (only the last may be shorter).
    #[serde(default)]
    pub batch_size: usize,
    /// Executor runs per pass.
    #[serde(default)]
    pub batches: usize,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Per tensor statistics.
    pub tensors: BTreeMap<String, TensorStats>,
    /// Tie groups as given.
    pub tie_groups: Vec<Vec<String>>,
}

impl CalibrationResult {
    /// tensor → amax of the configured method.
    pub fn amax_map(&self) -> HashMap<String, f32> {
        self.tensors
            .iter()
            .map(|(k, v)| (k.clone(), v.amax))
            .collect()
    }

    /// Re-derives every amax for another method from the stored histograms, without re-running
    /// the model. Fails when the stored result has no histograms and `method` needs them.
    pub fn with_method(&self, method: Method) -> Result<CalibrationResult, super::CalibError> {
        let mut out = self.clone();
        out.method = method.name().to_string();
        let group_amax = group_amaxes(
            &self.tensors,
            &self.tie_groups,
            method,
            |t| t.histogram.clone(),
            |t| t.range,
        )?;
        for t in out.tensors.values_mut() {
            t.amax = match t.tie_group {
                Some(g) => group_amax[g],
                None => single_amax(&t.range, t.histogram.as_ref(), method)?,
            };
        }
        Ok(out)
    }
}

struct Stage<C> {
    collectors: HashMap<String, C>,
    error: Option<String>,
}

impl<C: Collector> Observer for Stage<C> {
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
}

/// What one pass over the data ran.
#[derive(Clone, Copy, Default)]
struct PassCount {
    samples: usize,
    batches: usize,
    largest_batch: usize,
}

/// Runs every batch of `data` through `backend`, feeding `stage`; returns what it ran.
fn pass<C: Collector>(
    backend: &mut dyn Backend,
    data: &mut dyn BatchSource,
    stage: &mut Stage<C>,
    progress: &dyn Fn(usize),
) -> Result<PassCount, CalibrateError> {
    let mut count = PassCount::default();
    while let Some(batch) = data.next_batch()? {
        backend.run(batch.inputs, stage)?;
        count.samples += batch.samples;
        count.batches += 1;
        count.largest_batch = count.largest_batch.max(batch.samples);
        progress(count.samples);
        if let Some(name) = stage.error.take() {
            return Err(CalibrateError::NotFloat(name));
        }
    }
    Ok(count)
}

/// Calibrates `tensors` of the model prepared in `backend`. `open_data` opens the data source
/// afresh for each pass; `progress` is called with the samples done in the current pass.
pub fn calibrate(
    backend: &mut dyn Backend,
    open_data: &mut dyn FnMut() -> Result<Box<dyn BatchSource>, super::data::DataError>,
    tensors: &[String],
    tie_groups: &[Vec<String>],
    method: Method,
    progress: &dyn Fn(usize, usize),
) -> Result<CalibrationResult, CalibrateError> {
    let start = Instant::now();
    let groups: Vec<Vec<String>> = tie_groups
        .iter()
        .map(|g| {
            g.iter()
                .filter(|t| tensors.contains(t))
                .cloned()
                .collect::<Vec<_>>()
        })
        .filter(|g: &Vec<String>| g.len() > 1)
        .collect();
    let group_of: HashMap<&str, usize> = groups
        .iter()
        .enumerate()
        .flat_map(|(i, g)| g.iter().map(move |t| (t.as_str(), i)))
        .collect();

    let mut first = Stage {
        collectors: tensors
            .iter()
            .map(|t| (t.clone(), MaxCollector::default()))
            .collect(),
        error: None,
    };
    let mut data = open_data()?;
    let count = pass(backend, data.as_mut(), &mut first, &|n| progress(1, n))?;
    let samples = count.samples;
    if samples == 0 {
        return Err(CalibrateError::NoData);
    }
    let ranges = first.collectors;
    // A tie group's members are binned over the group's merged range so their histograms merge.
    let group_range: Vec<MaxCollector> = groups
        .iter()
        .map(|g| {
            let mut r = MaxCollector::default();
            for t in g {
                r.merge(&ranges[t]);
            }
            r
        })
        .collect();
    let binning_range = |t: &str| group_of.get(t).map_or(ranges[t], |&g| group_range[g]);

    // Pass 2 (histogram methods): calib.json keeps the histograms so any method can be re-derived.
    let (histograms, passes) = if method.needs_histogram_pass() {
        let mut second = Stage {
            collectors: tensors
                .iter()
                .map(|t| {
                    Ok((
                        t.clone(),
                        HistogramCollector::new(&binning_range(t), method)?,
                    ))
                })
                .collect::<Result<_, super::CalibError>>()?,
            error: None,
        };
        let mut data = open_data()?;
        pass(backend, data.as_mut(), &mut second, &|n| progress(2, n))?;
        (Some(second.collectors), 2)
    } else {
        (None, 1)
    };

    let hist_of = |t: &str| histograms.as_ref().map(|h| h[t].histogram().clone());
    let mut stats: BTreeMap<String, TensorStats> = BTreeMap::new();
    for t in tensors {
        let range = ranges[t];
        let histogram = hist_of(t);
        let mut warnings = Vec::new();
        let mut amax_by_method = BTreeMap::new();
        let max = MaxCollector::amax(&range)?;
        warnings.extend(max.warnings.iter().map(|w| w.to_string()));
        amax_by_method.insert("max".to_string(), max.amax);
        if let Some(h) = &histogram {
            for m in [
                Method::Percentile(Percentile::new(super::DEFAULT_PERCENTILE)?),
                Method::Entropy,
                Method::Mse,
            ] {
                let key = match m {
                    Method::Percentile(p) => format!("percentile_{}", p.value()),
                    other => other.name().to_string(),
                };
                amax_by_method.insert(key, h.amax(m).amax);
            }
        }
        let own = single_amax(&range, histogram.as_ref(), method)?;
        stats.insert(
            t.clone(),
            TensorStats {
                amax: own,
                amax_by_method,
                range,
                histogram,
                tie_group: group_of.get(t.as_str()).copied(),
                warnings,
            },
        );
    }
    let group_amax = group_amaxes(
        &stats,
        &groups,
        method,
        |s| s.histogram.clone(),
        |s| s.range,
    )?;
    for s in stats.values_mut() {
        if let Some(g) = s.tie_group {
            s.amax = group_amax[g];
        }
    }
    Ok(CalibrationResult {
        method: method.name().to_string(),
        samples,
        passes,
        batch_size: count.largest_batch,
        batches: count.batches,
        seconds: start.elapsed().as_secs_f64(),
        tensors: stats,
        tie_groups: groups,
    })
}

/// The amax of one tensor by `method` from its pass-1 range and (for histogram methods) its histogram.
fn single_amax(
    range: &MaxCollector,
    histogram: Option<&Histogram>,
    method: Method,
) -> Result<f32, super::CalibError> {
    Ok(match (method, histogram) {
        (Method::Max, _) => range.amax()?.amax,
        (m, Some(h)) => h.amax(m).amax,
        (m, None) => {
            return Err(super::CalibError::NeedsHistogram {
                method: m.name().to_string(),
            });
        }
    })
}

/// One amax per tie group: max of the members' abs-max, or the method on the merged histogram.
fn group_amaxes<T>(
    stats: &BTreeMap<String, T>,
    groups: &[Vec<String>],
    method: Method,
    histogram: impl Fn(&T) -> Option<Histogram>,
    range: impl Fn(&T) -> MaxCollector,
) -> Result<Vec<f32>, super::CalibError> {
    groups
        .iter()
        .map(|g| {
            let members: Vec<&T> = g.iter().filter_map(|t| stats.get(t)).collect();
            let mut merged_range = MaxCollector::default();
            for m in &members {
                merged_range.merge(&range(m));
            }
            let mut merged: Option<Histogram> = None;
            for m in &members {
                match (merged.as_mut(), histogram(m)) {
                    (None, h) => merged = h,
                    (Some(acc), Some(h)) => acc.try_merge(&h)?,
                    (Some(_), None) => {}
                }
            }
            single_amax(&merged_range, merged.as_ref(), method)
        })
        .collect()
}
