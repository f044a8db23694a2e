//! The per-layer profile of an engine (`trtexec --exportProfile`):
//! `[{"count": N}, {"name", "timeMs", "averageMs", "medianMs", "percentage"}, ...]`.
//!
//! Owns reading it, leniently: trtexec writes layer names without JSON escaping, so a name holding a
//! quote or backslash makes the file invalid JSON; such files are read record by record. Joining
//! records to layers is done by [`super::EngineReport::attach_profile`]. Percentages are of summed
//! layer time under profiling, which overstates latency: use [`super::times`] for latency.

use std::path::Path;

use serde_json::Value;

use super::ReportError;

/// One layer's timing record.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRecord {
    /// Layer name (matches the layer-information file).
    pub name: String,
    /// Total time over all profiled iterations (`timeMs`).
    pub total_ms: f64,
    /// Average time per iteration (`averageMs`).
    pub average_ms: f64,
    /// Median time per iteration (`medianMs`), absent in older TensorRT.
    pub median_ms: Option<f64>,
    /// Share of summed layer time, in percent (`percentage`).
    pub percentage: Option<f64>,
}

/// A parsed profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Number of profiled iterations (`count`), when present.
    pub iterations: Option<u64>,
    /// Records in file order (one per engine layer).
    pub records: Vec<ProfileRecord>,
}

impl Profile {
    /// Sum of the per-layer average times, in ms.
    pub fn total_average_ms(&self) -> f64 {
        self.records.iter().map(|r| r.average_ms).sum()
    }
}

/// Parses a profile's text; `path` names it in errors.
pub fn parse_profile(text: &str, path: &Path) -> Result<Profile, ReportError> {
    let profile = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => from_json(items),
        Ok(_) => return Err(profile_error(path, "the top level is not a list")),
        Err(_) => from_raw_text(text),
    };
    if profile.records.is_empty() {
        return Err(profile_error(path, "no {\"name\", \"averageMs\"} records"));
    }
    Ok(profile)
}

fn profile_error(path: &Path, reason: &str) -> ReportError {
    ReportError::Profile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn from_json(items: Vec<Value>) -> Profile {
    let mut iterations = None;
    let mut records = Vec::new();
    for item in items {
        let Value::Object(map) = item else { continue };
        let number = |key: &str| map.get(key).and_then(Value::as_f64);
        if let Some(name) = map.get("name").and_then(Value::as_str) {
            records.push(ProfileRecord {
                name: name.to_string(),
                total_ms: number("timeMs").unwrap_or(0.0),
                average_ms: number("averageMs").unwrap_or(0.0),
                median_ms: number("medianMs"),
                percentage: number("percentage"),
            });
        } else if let Some(count) = map.get("count").and_then(Value::as_u64) {
            iterations = Some(count);
        }
    }
    Profile {
        iterations,
        records,
    }
}

/// Reads records where names were not escaped: a name runs from `"name" : "` to the last quote
/// before the record's `"timeMs"` key.
fn from_raw_text(text: &str) -> Profile {
    const NAME_KEY: &str = "\"name\"";
    let iterations = text
        .find(NAME_KEY)
        .map(|first| &text[..first])
        .and_then(|head| number_after(head, "\"count\""))
        .map(|count| count as u64);
    let starts: Vec<usize> = text.match_indices(NAME_KEY).map(|(at, _)| at).collect();
    let mut records = Vec::new();
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        let record = &text[start + NAME_KEY.len()..end];
        let Some(open) = record.find('"') else {
            continue;
        };
        let Some(time_key) = record.find("\"timeMs\"") else {
            continue;
        };
        let Some(close) = record[..time_key].rfind('"') else {
            continue;
        };
        if close <= open {
            continue;
        }
        let numbers = &record[time_key..];
        records.push(ProfileRecord {
            name: record[open + 1..close].to_string(),
            total_ms: number_after(numbers, "\"timeMs\"").unwrap_or(0.0),
            average_ms: number_after(numbers, "\"averageMs\"").unwrap_or(0.0),
            median_ms: number_after(numbers, "\"medianMs\""),
            percentage: number_after(numbers, "\"percentage\""),
        });
    }
    Profile {
        iterations,
        records,
    }
}

fn number_after(text: &str, key: &str) -> Option<f64> {
    let after = &text[text.find(key)? + key.len()..];
    let after = after.trim_start().strip_prefix(':')?.trim_start();
    let end = after
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(after.len());
    after[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescaped_names_are_read_leniently() {
        let text = "[\n  { \"count\" : 7 }\n, { \"name\" : \"Conv \"a\" \\ b\", \"timeMs\" : 1.4, \"averageMs\" : 0.2, \"medianMs\" : 0.19, \"percentage\" : 50 }\n, { \"name\" : \"Relu\", \"timeMs\" : 1.4, \"averageMs\" : 0.2, \"percentage\" : 50 }\n]";
        assert!(serde_json::from_str::<Value>(text).is_err());
        let profile = parse_profile(text, Path::new("p.json")).unwrap();
        assert_eq!(profile.iterations, Some(7));
        assert_eq!(profile.records.len(), 2);
        assert_eq!(profile.records[0].name, "Conv \"a\" \\ b");
        assert_eq!(profile.records[0].median_ms, Some(0.19));
        assert_eq!(profile.records[1].median_ms, None);
        assert!((profile.total_average_ms() - 0.4).abs() < 1e-12);
    }

    #[test]
    fn a_file_without_records_is_an_error() {
        assert!(parse_profile("[{\"count\": 1}]", Path::new("p.json")).is_err());
        assert!(parse_profile("{}", Path::new("p.json")).is_err());
        assert!(parse_profile("garbage", Path::new("p.json")).is_err());
    }
}
