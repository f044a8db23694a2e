//! The YAML config of `trtq build`: schema, defaults, loading, path resolution and validation.
//!
//! Owns [`Config`] (every key of DESIGN.md's "The config", plus the keys later stages need),
//! [`Config::load`] (read, parse, resolve paths against the config file's folder, validate) and
//! errors that point at `file:line:column` with a hint. Does not read models or data, and does
//! not convert sections into the stages' own option types: each stage takes its section.
//!
//! configs/reference.yaml documents every key; a test fails when a field is missing there.

mod data;
mod error;
mod schema;
mod tree;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use data::{ColorOrder, DataSource, Extent, ImageData, InputDtype, Layout};
pub use error::{ConfigError, ConfigProblem, Position};
pub use schema::{
    BatchSize, CalibMethod, CalibrationSection, CompareSection, Device, EvaluationSection,
    PatternLibrary, QuantizationSection, ReportFormat, ReportSection, Strategy, Target,
    TensorQuantSection, TensorRtSection, Typing, VerifySection, WeightsAs,
};
pub use validate::MIN_OPSET;

/// A whole config. Only `model` is required; every other key has a default.
///
/// Serializing it (e.g. to JSON for summary.json) gives the effective config: defaults filled
/// in and paths resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The FP32 ONNX model.
    pub model: PathBuf,
    /// Where the run's artifacts go. In a file, empty or absent means `build/<config file
    /// stem>` next to the config file.
    #[serde(default)]
    pub output_dir: PathBuf,
    /// Concrete shapes for the model's inputs, by input name (resolves dynamic dims).
    #[serde(default, deserialize_with = "schema::null_as_default")]
    pub inputs: BTreeMap<String, Vec<usize>>,
    /// Target opset after normalization (at least [`MIN_OPSET`]).
    #[serde(default = "Config::default_opset")]
    pub opset: u32,
    /// What the Q/DQ placement must suit.
    #[serde(default)]
    pub target: Target,
    /// The pattern library.
    #[serde(default)]
    pub patterns: PatternLibrary,
    /// Placement strategy and number formats.
    #[serde(default, deserialize_with = "schema::null_as_default")]
    pub quantization: QuantizationSection,
    /// Calibration data, method and device.
    #[serde(default, deserialize_with = "schema::null_as_default")]
    pub calibration: CalibrationSection,
    /// Held-out data for the accuracy report; `None`: the report uses calibration samples.
    #[serde(default)]
    pub evaluation: Option<EvaluationSection>,
    /// How engines are built.
    #[serde(default, deserialize_with = "schema::null_as_default")]
    pub tensorrt: TensorRtSection,
    /// Gates over the engine report and accuracy.
    #[serde(default, deserialize_with = "schema::null_as_default")]
    pub verify: VerifySection,
    /// Which comparison variants are built.
    #[serde(default, deserialize_with = "schema::null_as_default")]
    pub compare: CompareSection,
    /// Report outputs and the CI baseline gate.
    #[serde(default, deserialize_with = "schema::null_as_default")]
    pub report: ReportSection,
}

/// How config text is read: duplicate keys are errors (serde-saphyr's default); no source
/// snippets (errors are one line); alias expansion capped at 10k replayed events, far below
/// serde-saphyr's default of a million (a config never needs more, and a billion-laughs file
/// then fails in ~0.1 s instead of seconds); NaN and infinities reach the schema, which judges
/// them with a position.
pub(crate) fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::options! {
        with_snippet: false,
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
    };
    options.alias_limits.max_total_replayed_events = 10_000;
    options
}

impl Config {
    /// The default target opset.
    pub const DEFAULT_OPSET: u32 = 17;

    fn default_opset() -> u32 {
        Self::DEFAULT_OPSET
    }

    /// A config with every key at its default; `output_dir` is `build/<model file stem>`.
    pub fn default_with_model(model: impl Into<PathBuf>) -> Self {
        let model = model.into();
        let stem = model
            .file_stem()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("model"));
        Self {
            output_dir: Path::new("build").join(stem),
            model,
            inputs: BTreeMap::new(),
            opset: Self::DEFAULT_OPSET,
            target: Target::default(),
            patterns: PatternLibrary::default(),
            quantization: QuantizationSection::default(),
            calibration: CalibrationSection::default(),
            evaluation: None,
            tensorrt: TensorRtSection::default(),
            verify: VerifySection::default(),
            compare: CompareSection::default(),
            report: ReportSection::default(),
        }
    }

    /// Reads, parses, resolves and validates the config file at `path`.
    ///
    /// Relative paths in it (model, data paths, output_dir, report.baseline,
    /// tensorrt.timing_cache, and tensorrt.trtexec when it contains a `/`) are taken relative
    /// to the file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, path)
    }

    /// Parses, resolves and validates config `text` as if read from the file at `path` (which
    /// need not exist: it names the file in errors and anchors relative paths).
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let options = yaml_options();
        let mut config: Self = serde_saphyr::from_str_with_options(text, options)
            .map_err(|error| ConfigError::from_yaml(path.to_owned(), text, &error))?;
        config.validate().map_err(|problem| ConfigError::Invalid {
            file: path.to_owned(),
            position: tree::KeyTree::parse(text).and_then(|tree| tree.nearest_value(&problem.key)),
            problem,
        })?;
        config.resolve_paths(path);
        Ok(config)
    }

    /// Checks the values the types admit but the pipeline cannot use (ranges, TensorRT's
    /// INT8 constraints, `batch_size: auto` on the CPU, ...).
    pub fn validate(&self) -> Result<(), ConfigProblem> {
        validate::validate(self)
    }

    /// True when calibration runs on synthetic data: its scales are only good for latency
    /// work, and the pipeline should say so loudly.
    pub fn calibration_is_synthetic(&self) -> bool {
        matches!(self.calibration.data, DataSource::Synthetic { .. })
    }

    /// Makes every relative path relative to the folder of the config file `config_path`, and
    /// fills the default output_dir `build/<config file stem>` there.
    fn resolve_paths(&mut self, config_path: &Path) {
        let folder = config_path.parent().unwrap_or(Path::new(""));
        let anchor = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = folder.join(&*path);
            }
        };
        if self.output_dir.as_os_str().is_empty() {
            let stem = config_path.file_stem().unwrap_or(config_path.as_os_str());
            self.output_dir = Path::new("build").join(stem);
        }
        anchor(&mut self.model);
        anchor(&mut self.output_dir);
        if let Some(path) = self.calibration.data.path_mut() {
            anchor(path);
        }
        if let Some(path) = self.evaluation.as_mut().and_then(|e| e.data.path_mut()) {
            anchor(path);
        }
        if let Some(path) = &mut self.report.baseline {
            anchor(path);
        }
        if let Some(path) = &mut self.tensorrt.timing_cache {
            anchor(path);
        }
        if self.tensorrt.trtexec.to_string_lossy().contains('/') {
            anchor(&mut self.tensorrt.trtexec);
        }
    }
}
