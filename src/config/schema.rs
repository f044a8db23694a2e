//! The sections of the YAML config below the top level, their enums and their defaults.
//!
//! Owns the shape of every section (key names, Rust types, default values) exactly as DESIGN.md's
//! "The config" lists them, plus the keys later stages need. Does not own loading, path
//! resolution or semantic checks (see `config::validate`); calibration data forms live in
//! `config::data`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::data::DataSource;

/// Reads a section whose value may be null (`calibration:` with every key commented out) as
/// its default.
pub(super) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// What the Q/DQ placement must suit (`target`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// TensorRT: INT8, symmetric, 8-bit, per-tensor activations only.
    #[default]
    Tensorrt,
    /// Any runtime that executes ONNX Q/DQ as written: no TensorRT restrictions.
    Generic,
}

/// Which pattern library groups the graph (`patterns`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PatternLibrary {
    /// The TensorRT fusion patterns of DESIGN.md's table.
    #[default]
    Tensorrt,
}

/// Where Q/DQ pairs go (`quantization.strategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Only at the QDQ points of matched patterns.
    #[default]
    Pattern,
    /// On every input of every quantizable op (the comparison baseline).
    Uniform,
}

/// How quantized weights are stored (`quantization.weights_as`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightsAs {
    /// An int8 initializer feeding a DequantizeLinear (4× smaller file).
    #[default]
    Int8,
    /// The float initializer feeding QuantizeLinear → DequantizeLinear.
    QdqFloat,
}

/// Bit width, symmetry and granularity of one kind of tensor (`quantization.activation|weight`).
/// Keys left out of one take that kind's default, so `weight: {n_bits: 8}` stays per-channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TensorQuantSection {
    /// Bits of the quantized integer type.
    pub n_bits: u32,
    /// Zero point fixed at 0.
    pub symmetric: bool,
    /// One scale per output channel instead of one per tensor.
    pub per_channel: bool,
}

impl TensorQuantSection {
    /// Defaults for activations: 8 bits, symmetric, per tensor.
    pub fn activation_default() -> Self {
        Self {
            n_bits: 8,
            symmetric: true,
            per_channel: false,
        }
    }

    /// Defaults for weights: 8 bits, symmetric, per output channel.
    pub fn weight_default() -> Self {
        Self {
            n_bits: 8,
            symmetric: true,
            per_channel: true,
        }
    }
}

/// A [`TensorQuantSection`] as written, before the kind's defaults fill the keys left out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TensorQuantKeys {
    n_bits: Option<u32>,
    symmetric: Option<bool>,
    per_channel: Option<bool>,
}

impl TensorQuantKeys {
    /// Reads the section (null: all left out) and fills it from `defaults`.
    fn read<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
        defaults: TensorQuantSection,
    ) -> Result<TensorQuantSection, D::Error> {
        let Some(keys) = Option::<Self>::deserialize(deserializer)? else {
            return Ok(defaults);
        };
        Ok(TensorQuantSection {
            n_bits: keys.n_bits.unwrap_or(defaults.n_bits),
            symmetric: keys.symmetric.unwrap_or(defaults.symmetric),
            per_channel: keys.per_channel.unwrap_or(defaults.per_channel),
        })
    }
}

fn activation_keys<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<TensorQuantSection, D::Error> {
    TensorQuantKeys::read(deserializer, TensorQuantSection::activation_default())
}

fn weight_keys<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<TensorQuantSection, D::Error> {
    TensorQuantKeys::read(deserializer, TensorQuantSection::weight_default())
}

/// The `quantization` section: placement strategy and number formats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuantizationSection {
    /// Where Q/DQ pairs go.
    pub strategy: Strategy,
    /// Number format of activations.
    #[serde(deserialize_with = "activation_keys")]
    pub activation: TensorQuantSection,
    /// Number format of weights.
    #[serde(deserialize_with = "weight_keys")]
    pub weight: TensorQuantSection,
    /// ONNX op types whose weights stay float.
    pub skip_weight_quant_for: Vec<String>,
    /// Quantize depthwise convolutions (false: leave them in FP16, they are memory-bound).
    pub quantize_depthwise: bool,
    /// How quantized weights are stored.
    pub weights_as: WeightsAs,
    /// Give Concat inputs/output and MaxPool input/output one shared scale.
    pub tie_groups: bool,
}

impl Default for QuantizationSection {
    fn default() -> Self {
        Self {
            strategy: Strategy::Pattern,
            activation: TensorQuantSection::activation_default(),
            weight: TensorQuantSection::weight_default(),
            skip_weight_quant_for: vec!["LayerNormalization".to_owned()],
            quantize_depthwise: true,
            weights_as: WeightsAs::Int8,
            tie_groups: true,
        }
    }
}

/// How an activation's range is chosen from observed data (`calibration.method`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CalibMethod {
    /// Absolute maximum.
    Max,
    /// A percentile of |x| (`calibration.percentile`).
    Percentile,
    /// TensorRT's KL-divergence method.
    #[default]
    Entropy,
    /// The range minimizing quantize-dequantize mean squared error.
    Mse,
}

/// Where calibration runs (`calibration.device`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// The GPU when a driver and a device are present, else the CPU.
    #[default]
    Auto,
    /// The CPU executor.
    Cpu,
    /// The CUDA executor; no usable GPU is an error.
    Cuda,
}

/// Samples per executor run (`calibration.batch_size`): a number, or `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchSize {
    /// Exactly this many samples per batch (at least 1: [`Config::validate`](super::Config::validate)).
    Fixed(usize),
    /// On the GPU the largest batch that fits device memory; on the CPU the model's declared
    /// batch (the CPU kernels already use every core at batch 1; a larger batch only multiplies
    /// the live memory, bench-results/calibration-batch.md).
    Auto,
}

impl BatchSize {
    /// The batch `auto` means on the GPU when the model's memory could not be planned.
    pub const GPU_UNPLANNED: usize = 8;
    /// The default: `auto`.
    pub const DEFAULT: Self = Self::Auto;
}

impl Default for BatchSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Serialize for BatchSize {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Fixed(n) => serializer.serialize_u64(*n as u64),
            Self::Auto => serializer.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for BatchSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BatchSizeVisitor)
    }
}

struct BatchSizeVisitor;

impl serde::de::Visitor<'_> for BatchSizeVisitor {
    type Value = BatchSize;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a positive integer or `auto`")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<BatchSize, E> {
        usize::try_from(v)
            .map(BatchSize::Fixed)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<BatchSize, E> {
        match u64::try_from(v) {
            Ok(unsigned) => self.visit_u64(unsigned),
            Err(_) => Err(E::invalid_value(serde::de::Unexpected::Signed(v), &self)),
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<BatchSize, E> {
        if v == "auto" {
            Ok(BatchSize::Auto)
        } else {
            Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
        }
    }
}

/// The `calibration` section: data, method and how it is run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalibrationSection {
    /// Where the calibration samples come from.
    #[serde(deserialize_with = "null_as_default")]
    pub data: DataSource,
    /// How a range is chosen from the observed values.
    pub method: CalibMethod,
    /// Percentile of |x| for `method: percentile`, in (0, 100].
    pub percentile: f64,
    /// Samples per executor run.
    pub batch_size: BatchSize,
    /// At most this many samples are used.
    pub max_samples: usize,
    /// Where the model runs.
    pub device: Device,
}

impl Default for CalibrationSection {
    fn default() -> Self {
        Self {
            data: DataSource::default(),
            method: CalibMethod::Entropy,
            percentile: 99.99,
            batch_size: BatchSize::default(),
            max_samples: 512,
            device: Device::Auto,
        }
    }
}

/// The `evaluation` section: held-out data for the accuracy report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluationSection {
    /// Where the evaluation samples come from.
    #[serde(deserialize_with = "evaluation_data")]
    pub data: DataSource,
    /// At most this many samples are used.
    pub max_samples: usize,
}

impl EvaluationSection {
    /// Evaluation samples unless given: synthetic, seeded apart from calibration's default.
    pub const DEFAULT_DATA: DataSource = DataSource::Synthetic { seed: 1 };
}

impl Default for EvaluationSection {
    fn default() -> Self {
        Self {
            data: Self::DEFAULT_DATA,
            max_samples: 64,
        }
    }
}

/// `evaluation.data`, null read as [`EvaluationSection::DEFAULT_DATA`].
fn evaluation_data<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<DataSource, D::Error> {
    Ok(Option::deserialize(deserializer)?.unwrap_or(EvaluationSection::DEFAULT_DATA))
}

/// How TensorRT decides layer precisions (`tensorrt.typing`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Typing {
    /// INT8 exactly where Q/DQ say so, float regions in the ONNX file's own type.
    #[default]
    StronglyTyped,
    /// The builder picks precisions (`--best`, or `--int8 --fp16`).
    Weak,
}

/// The `tensorrt` section: how engines are built with trtexec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TensorRtSection {
    /// trtexec: a name looked up on PATH, or a path (resolved against the config's folder).
    pub trtexec: PathBuf,
    /// Precision policy of the builds.
    pub typing: Typing,
    /// Builder workspace memory pool in MiB.
    pub workspace_mib: u64,
    /// Builder optimization level 0..=5; `None` leaves trtexec's default.
    pub builder_optimization_level: Option<u8>,
    /// Timing cache file shared by builds; `None` for none.
    pub timing_cache: Option<PathBuf>,
    /// Seconds one trtexec run may take before it is stopped.
    pub timeout_s: u64,
    /// When true, a missing trtexec fails the build (exit 3) instead of a CPU-only run.
    pub required: bool,
    /// Arguments appended to every trtexec command line.
    pub extra_args: Vec<String>,
}

impl Default for TensorRtSection {
    fn default() -> Self {
        Self {
            trtexec: PathBuf::from("trtexec"),
            typing: Typing::StronglyTyped,
            workspace_mib: 4096,
            builder_optimization_level: None,
            timing_cache: None,
            timeout_s: 1800,
            required: false,
            extra_args: Vec::new(),
        }
    }
}

/// The `verify` section: gates over the engine's layer report and the accuracy report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifySection {
    /// Fail when one pattern's nodes end up in more than one engine layer.
    pub fail_on_broken_fusion: bool,
    /// Fail when a Q/DQ stays a standalone layer (network I/O excepted).
    pub fail_on_unfused_qdq: bool,
    /// Fail on a quantized conv/gemm that does not run in INT8 as placed.
    pub fail_on_precision: bool,
    /// Fail when the engine holds more reformat layers than this.
    pub max_reformat_layers: u32,
    /// Fail when reformat layers take more than this share of layer time, in percent.
    pub max_reformat_time_pct: f64,
    /// Fail when a strategy's output SQNR falls below this many dB; `None` for no gate.
    pub min_sqnr_db: Option<f64>,
}

impl Default for VerifySection {
    fn default() -> Self {
        Self {
            fail_on_broken_fusion: true,
            fail_on_unfused_qdq: true,
            fail_on_precision: true,
            max_reformat_layers: 0,
            max_reformat_time_pct: 1.0,
            min_sqnr_db: None,
        }
    }
}

/// The `compare` section: which other variants are built next to the pattern INT8 one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompareSection {
    /// Also build the uniform Q/DQ model and engine.
    pub uniform: bool,
    /// Also build the FP16 engine.
    pub fp16: bool,
}

impl Default for CompareSection {
    fn default() -> Self {
        Self {
            uniform: true,
            fp16: true,
        }
    }
}

/// One output of the report stage (`report.formats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// report.md
    Markdown,
    /// report.json
    Json,
    /// report.svg
    Svg,
    /// junit.xml
    Junit,
}

/// The `report` section: output formats and the CI baseline gate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportSection {
    /// Which report files are written.
    pub formats: Vec<ReportFormat>,
    /// A previous report.json to compare against; `None` for no comparison.
    pub baseline: Option<PathBuf>,
    /// Fail when latency grew by more than this many percent over the baseline.
    pub max_latency_regression_pct: f64,
}

impl Default for ReportSection {
    fn default() -> Self {
        Self {
            formats: vec![
                ReportFormat::Markdown,
                ReportFormat::Json,
                ReportFormat::Svg,
                ReportFormat::Junit,
            ],
            baseline: None,
            max_latency_regression_pct: 5.0,
        }
    }
}
