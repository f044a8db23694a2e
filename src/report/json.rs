//! `report.json`: the [`RunReport`] serialized, and read back (a CI baseline) with its schema version
//! checked before anything else, so a report from an incompatible trtq is named as such instead of
//! failing on some missing field.
//!
//! Owns the JSON encoding and the version check; the fields are [`super::model`]'s.

use std::path::Path;

use serde_json::Value;

use super::ReportError;
use super::model::{RunReport, SCHEMA_VERSION};

impl RunReport {
    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> Result<String, ReportError> {
        serde_json::to_string_pretty(self)
            .map(|text| text + "\n")
            .map_err(|source| ReportError::Encode { source })
    }

    /// Parses a report.json; `path` names it in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<RunReport, ReportError> {
        let parse = |source| ReportError::Parse {
            path: path.to_path_buf(),
            source,
        };
        let value: Value = serde_json::from_str(text).map_err(parse)?;
        let Some(version) = value.get("schema_version") else {
            return Err(ReportError::NotAReport {
                path: path.to_path_buf(),
            });
        };
        if version.as_u64() != Some(u64::from(SCHEMA_VERSION)) {
            return Err(ReportError::SchemaVersion {
                path: path.to_path_buf(),
                found: version.to_string(),
            });
        }
        serde_json::from_value(value).map_err(parse)
    }

    /// Reads a report.json file.
    pub fn load(path: &Path) -> Result<RunReport, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        RunReport::from_json(&text, path)
    }
}
