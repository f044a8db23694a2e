//! Per-iteration timings (`trtexec --exportTimes`): one record per timed inference, reduced to a
//! [`LatencySummary`].
//!
//! Owns the latency statistics trtq reports (median, p90, p99, mean, min, max over `latencyMs`,
//! falling back to `computeMs` when a record has no latency). Percentiles use the nearest-rank
//! method on the sorted samples. It does not attribute time to layers (that is the profile's job).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ReportError;

/// End-to-end latency over the timed iterations, in ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of timed iterations.
    pub iterations: usize,
    /// Mean latency.
    pub mean_ms: f64,
    /// Median latency.
    pub median_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Fastest iteration.
    pub min_ms: f64,
    /// Slowest iteration.
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarizes latency samples; `None` when there are no finite samples.
    pub fn from_samples(samples: &[f64]) -> Option<LatencySummary> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            sorted[index.clamp(1, sorted.len()) - 1]
        };
        let mid = sorted.len() / 2;
        let median = if sorted.len().is_multiple_of(2) {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        } else {
            sorted[mid]
        };
        Some(LatencySummary {
            iterations: sorted.len(),
            mean_ms: sorted.iter().sum::<f64>() / sorted.len() as f64,
            median_ms: median,
            p90_ms: rank(90.0),
            p99_ms: rank(99.0),
            min_ms: sorted[0],
            max_ms: sorted[sorted.len() - 1],
        })
    }
}

/// Parses an exportTimes file; `path` names it in errors.
pub fn parse_times(text: &str, path: &Path) -> Result<LatencySummary, ReportError> {
    let error = |reason: String| ReportError::Times {
        path: path.to_path_buf(),
        reason,
    };
    let root: Value =
        serde_json::from_str(text).map_err(|err| error(format!("not JSON: {err}")))?;
    let Value::Array(records) = root else {
        return Err(error(
            "the top level is not a list of iteration records".into(),
        ));
    };
    let samples: Vec<f64> = records
        .iter()
        .filter_map(|record| {
            record
                .get("latencyMs")
                .or_else(|| record.get("computeMs"))?
                .as_f64()
        })
        .collect();
    LatencySummary::from_samples(&samples)
        .ok_or_else(|| error("no record has \"latencyMs\" or \"computeMs\"".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_and_median() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let summary = LatencySummary::from_samples(&samples).unwrap();
        assert_eq!(summary.median_ms, 50.5);
        assert_eq!(summary.p90_ms, 90.0);
        assert_eq!(summary.p99_ms, 99.0);
        assert_eq!(summary.min_ms, 1.0);
        assert_eq!(summary.max_ms, 100.0);
        assert!(LatencySummary::from_samples(&[f64::NAN]).is_none());
    }

    #[test]
    fn compute_time_is_the_fallback() {
        let summary = parse_times(
            r#"[{"computeMs": 2.0}, {"latencyMs": 4.0, "computeMs": 1.0}]"#,
            Path::new("t"),
        )
        .unwrap();
        assert_eq!(summary.iterations, 2);
        assert_eq!(summary.mean_ms, 3.0);
        assert!(parse_times("[{}]", Path::new("t")).is_err());
    }
}
