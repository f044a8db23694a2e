//! Reader for `matches.json` (DESIGN.md "Artifacts"): the pattern matches verify joins with the
//! engine's layers by node name.
//!
//! Owns a small serde type that accepts the documented fields and ignores any others, so it keeps
//! working while the pattern engine's output grows. It does not run patterns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One pattern match: the ONNX nodes TensorRT should fuse into one layer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MatchRecord {
    /// Pattern name ("ConvBNAddReLU", ...).
    pub pattern: String,
    /// Node names in model.normalized.onnx.
    pub nodes: Vec<String>,
    /// QDQ point → tensor name ("Input" → "x").
    #[serde(default)]
    pub qdq_points: BTreeMap<String, String>,
}

/// The whole matches.json.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct MatchesFile {
    /// The matches.
    #[serde(default)]
    pub matches: Vec<MatchRecord>,
    /// Nodes no pattern matched.
    #[serde(default)]
    pub unmatched: Vec<String>,
    /// Tensors that must share one scale.
    #[serde(default)]
    pub tie_groups: Vec<Vec<String>>,
}

/// Why a matches file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MatchesError {
    /// The file could not be read.
    #[error("cannot read matches file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a matches.json.
    #[error(
        "{path}: not a matches.json ({{\"matches\": [{{\"pattern\", \"nodes\", \"qdq_points\"}}]}}): {source}"
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON error, with line and column.
        source: serde_json::Error,
    },
}

impl MatchesFile {
    /// Parses matches.json text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<MatchesFile, MatchesError> {
        serde_json::from_str(text).map_err(|source| MatchesError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Loads a matches.json file.
    pub fn load(path: &Path) -> Result<MatchesFile, MatchesError> {
        let text = std::fs::read_to_string(path).map_err(|source| MatchesError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        MatchesFile::parse(&text, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_fields_are_ignored_and_missing_lists_default() {
        let text = r#"{"version": 2, "matches": [{"pattern": "ConvBNReLU", "nodes": ["Conv_1", "Relu_2"],
            "qdq_points": {"Input": "x"}, "boundary": {"inputs": ["x"]}}]}"#;
        let file = MatchesFile::parse(text, Path::new("m.json")).unwrap();
        assert_eq!(file.matches[0].nodes, ["Conv_1", "Relu_2"]);
        assert_eq!(file.matches[0].qdq_points["Input"], "x");
        assert!(file.unmatched.is_empty() && file.tie_groups.is_empty());
        let err =
            MatchesFile::parse(r#"{"matches": [{"nodes": []}]}"#, Path::new("m.json")).unwrap_err();
        assert!(err.to_string().contains("m.json"), "{err}");
    }
}
