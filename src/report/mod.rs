//! The report stage: the versioned run report ([`RunReport`], `report.json`), its renderings
//! (`report.md`, `report.svg`, `junit.xml`), and the CI regression gate ([`compare`]) against a
//! committed baseline report.
//!
//! Owns what a report holds and how each format shows it. It does not build engines, run the
//! checks or measure accuracy: the pipeline fills a [`RunReport`] from the results of those stages
//! ([`BuiltEngine::from_engine`] takes an engine's report and its verification) and calls
//! [`write_reports`]. Exit codes are the CLI's.

mod cells;
mod compare;
mod json;
mod junit;
mod markdown;
mod model;
mod svg;

use std::path::{Path, PathBuf};

pub use compare::{
    CheckStatus, CompareCheck, CompareCheckKind, CompareOutcome, MAX_SQNR_DROP_DB, compare,
};
pub use junit::to_junit;
pub use markdown::to_markdown;
pub use model::{
    Accuracy, BuiltEngine, EngineStatus, NO_TENSORRT, RunReport, SCHEMA_VERSION, Variant,
    VariantReport, VerifyRecord, qdq_node_count,
};
pub use svg::to_svg;

use crate::config::ReportFormat;

/// Why a report could not be read or rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A report file could not be read.
    #[error("cannot read report {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A report file is not a trtq report.json.
    #[error("{path}: not a trtq report.json: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON error, with line and column.
        source: serde_json::Error,
    },
    /// JSON without a `schema_version`: not a report.json.
    #[error("{path}: not a trtq report.json (no \"schema_version\" at the top level)")]
    NotAReport {
        /// The file.
        path: PathBuf,
    },
    /// A report.json of another schema version.
    #[error(
        "{path}: report.json schema_version {found}, this trtq reads version {SCHEMA_VERSION}: \
         regenerate the baseline with this trtq (trtq build, then commit the new report.json)"
    )]
    SchemaVersion {
        /// The file.
        path: PathBuf,
        /// The version found, as written.
        found: String,
    },
    /// The report could not be encoded as JSON (a non-string map key; not expected).
    #[error("cannot encode report.json: {source}")]
    Encode {
        /// The serde error.
        source: serde_json::Error,
    },
    /// The chart could not be drawn.
    #[error("cannot draw report.svg: {0}")]
    Chart(String),
}

/// The file name of each report format.
pub fn file_name(format: ReportFormat) -> &'static str {
    match format {
        ReportFormat::Markdown => "report.md",
        ReportFormat::Json => "report.json",
        ReportFormat::Svg => "report.svg",
        ReportFormat::Junit => "junit.xml",
    }
}

/// The text of one report format.
pub fn render(report: &RunReport, format: ReportFormat) -> Result<String, ReportError> {
    match format {
        ReportFormat::Markdown => Ok(to_markdown(report)),
        ReportFormat::Json => report.to_json(),
        ReportFormat::Svg => to_svg(report),
        ReportFormat::Junit => Ok(to_junit(report)),
    }
}

/// Writes the given formats into `dir` (each to a temp file beside it, then renamed) and returns
/// the paths written. Every format is rendered before the first file is written.
pub fn write_reports(
    report: &RunReport,
    formats: &[ReportFormat],
    dir: &Path,
) -> Result<Vec<PathBuf>, crate::Error> {
    let rendered = formats
        .iter()
        .map(|&format| Ok((file_name(format), render(report, format)?)))
        .collect::<Result<Vec<_>, ReportError>>()
        .map_err(|e| crate::Error::BadInput(e.to_string()))?;
    let mut written = Vec::with_capacity(rendered.len());
    for (name, text) in rendered {
        let path = dir.join(name);
        crate::artifacts::write_atomic(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}
