//! `matches.json` (DESIGN.md "Artifacts"): the one type that writes it and reads it back.
//!
//! Owns: [`MatchesFile`] (matches, unmatched nodes, tie groups), its JSON text, and
//! [`MatchesError`] for a file that cannot be read. Reading is lenient where the format may grow:
//! unknown fields are ignored and absent lists default to empty, so a file written by an older or
//! newer trtq (or by hand, with only `pattern`, `nodes` and `qdq_points`) still loads.
//! Does not own: finding the matches ([`super::transform`]) or joining them with an engine's
//! layers ([`crate::verify`]).

use super::{PatternMatch, TransformResult};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The content of `matches.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MatchesFile {
    /// The matches.
    #[serde(default)]
    pub matches: Vec<PatternMatch>,
    /// Node names no pattern covers.
    #[serde(default)]
    pub unmatched: Vec<String>,
    /// Groups of tensors that must share one scale (written by Q/DQ insertion).
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
    /// The file for a transform result and the tie groups Q/DQ insertion recorded.
    pub fn new(result: &TransformResult, tie_groups: Vec<Vec<String>>) -> MatchesFile {
        MatchesFile {
            matches: result.matches.clone(),
            unmatched: result.unmatched.clone(),
            tie_groups,
        }
    }

    /// Pretty JSON text.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

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
    use crate::patterns::QdqPoint;

    #[test]
    fn extra_fields_are_ignored_and_missing_lists_default() {
        let text = r#"{"version": 2, "matches": [{"pattern": "ConvBNReLU", "nodes": ["Conv_1", "Relu_2"],
            "qdq_points": {"Input": "x"}, "boundary": {"inputs": ["x"]}}]}"#;
        let file = MatchesFile::parse(text, Path::new("m.json")).unwrap();
        assert_eq!(file.matches[0].nodes, ["Conv_1", "Relu_2"]);
        assert_eq!(file.matches[0].qdq_points[&QdqPoint::Input], "x");
        assert!(file.matches[0].nodes_after.is_empty());
        assert!(file.unmatched.is_empty() && file.tie_groups.is_empty());
    }

    #[test]
    fn a_match_without_pattern_or_an_unknown_qdq_point_names_the_file() {
        for text in [
            r#"{"matches": [{"nodes": []}]}"#,
            r#"{"matches": [{"pattern": "P", "nodes": [], "qdq_points": {"Elsewhere": "x"}}]}"#,
        ] {
            let err = MatchesFile::parse(text, Path::new("m.json")).unwrap_err();
            assert!(err.to_string().contains("m.json"), "{err}");
        }
    }

    #[test]
    fn written_text_reads_back_equal() {
        let file = MatchesFile {
            matches: vec![PatternMatch {
                pattern: "ConvBNAddReLU".into(),
                nodes: vec!["Conv_1".into(), "Add_2".into()],
                nodes_after: vec!["Conv_1".into(), "Add_2".into()],
                inputs: vec!["x".into(), "skip".into()],
                outputs: vec!["y".into()],
                qdq_points: [
                    (QdqPoint::Input, "x".into()),
                    (QdqPoint::ResidualInput, "skip".into()),
                ]
                .into(),
            }],
            unmatched: vec!["Softmax_3".into()],
            tie_groups: vec![vec!["a".into(), "b".into()]],
        };
        let text = file.to_json().unwrap();
        assert_eq!(
            MatchesFile::parse(&text, Path::new("m.json")).unwrap(),
            file
        );
    }
}
