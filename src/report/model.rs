//! [`RunReport`]: the versioned model of one run's report, the content of `report.json` and the
//! source every other report format is rendered from.
//!
//! Owns the report's fields, their serialized names (a contract: CI jobs read them and
//! `trtq compare` reads old ones back), the per-variant figures derived from an engine's report and
//! its verification, and the run-level verdict (verify gates of the INT8 variants, the accuracy gate,
//! the baseline comparison). It does not parse TensorRT files ([`crate::trt::report`]), run the
//! checks ([`crate::verify`]) or measure accuracy (the calibration stage fills [`Accuracy`]).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::graph::Model;
use crate::trt::report::{EngineReport, LatencySummary};
use crate::verify::{Finding, MatchesFile, Summary, VerifyOutcome};

use super::compare::CompareOutcome;

/// The `schema_version` this trtq writes and reads. Bumped on any incompatible change of the JSON.
pub const SCHEMA_VERSION: u32 = 1;

/// The reason written when the engine stage was skipped because TensorRT is not installed.
pub const NO_TENSORRT: &str = "no TensorRT";

/// QuantizeLinear and DequantizeLinear nodes (default ONNX domain) in a model's main graph: the
/// report's "Q/DQ nodes" figure, available without TensorRT.
pub fn qdq_node_count(model: &Model) -> usize {
    let graph = &model.graph;
    graph
        .node_ids()
        .filter_map(|id| graph.get(id))
        .filter(|node| {
            node.is_onnx() && matches!(node.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear")
        })
        .count()
}

/// Which model an engine was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// The float model, FP16 engine: the speed reference without quantization.
    Fp16,
    /// Q/DQ on every input of every quantizable op (`strategy: uniform`).
    UniformInt8,
    /// Q/DQ at the pattern library's QDQ points (`strategy: pattern`).
    PatternInt8,
}

impl Variant {
    /// All variants in report order.
    pub const ALL: [Variant; 3] = [Variant::Fp16, Variant::UniformInt8, Variant::PatternInt8];

    /// The name shown in reports ("FP16", "uniform INT8", "pattern INT8").
    pub fn label(self) -> &'static str {
        match self {
            Variant::Fp16 => "FP16",
            Variant::UniformInt8 => "uniform INT8",
            Variant::PatternInt8 => "pattern INT8",
        }
    }

    /// The snake_case key used in JSON and JUnit names.
    pub fn key(self) -> &'static str {
        match self {
            Variant::Fp16 => "fp16",
            Variant::UniformInt8 => "uniform_int8",
            Variant::PatternInt8 => "pattern_int8",
        }
    }
}

/// Accuracy of a variant's model against the FP32 model on held-out samples (filled by the
/// calibration stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// What the outputs were compared against (e.g. "FP32 model, CPU executor").
    pub reference: String,
    /// Number of samples evaluated.
    pub samples: usize,
    /// Signal-to-quantization-noise ratio over all outputs, in dB; `null` in JSON when the outputs
    /// are identical (infinite SQNR).
    #[serde(
        serialize_with = "infinite_as_null",
        deserialize_with = "null_as_infinite"
    )]
    pub sqnr_db: f64,
    /// Cosine similarity of the flattened outputs.
    pub cosine: f64,
    /// Largest absolute difference of any output element.
    pub max_abs_error: f64,
    /// Share of samples whose arg-max class matches the reference's, in [0, 1]; `None` when the
    /// model is not a classifier.
    pub top1_agreement: Option<f64>,
}

fn infinite_as_null<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_infinite() && value.is_sign_positive() {
        serializer.serialize_none()
    } else {
        serializer.serialize_f64(*value)
    }
}

fn null_as_infinite<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::INFINITY))
}

/// What the checks found in one built engine, in the JSON form of `trtq verify --json`
/// (`findings`, `summary`) plus the engine's own verdict. Whether that verdict fails the run
/// depends on the variant being the run's product ([`RunReport::product`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyRecord {
    /// No gate failed on this engine.
    pub passed: bool,
    /// The gates that failed, each `"<config key>: why"`.
    pub gate_failures: Vec<String>,
    /// The findings, in layer order per check.
    pub findings: Vec<Finding>,
    /// Layer counts, reformats, unfused Q/DQ, broken fusions.
    pub summary: Summary,
    /// The broken-fusion check ran (a matches file was given); when false, `broken_fusions` is 0
    /// because nothing was checked.
    pub broken_fusions_checked: bool,
    /// Summed time of the reformat layers (profile average per inference), when profiled.
    pub reformat_time_ms: Option<f64>,
    /// What could not be checked, and why.
    pub notes: Vec<String>,
}

impl VerifyRecord {
    /// Records a verification made with `matches` (as passed to [`crate::verify::verify`]).
    pub fn new(outcome: &VerifyOutcome, matches: Option<&MatchesFile>) -> VerifyRecord {
        VerifyRecord {
            broken_fusions_checked: matches.is_some(),
            passed: outcome.passed(),
            gate_failures: outcome.gate_failures.clone(),
            findings: outcome.findings.clone(),
            summary: outcome.summary.clone(),
            reformat_time_ms: outcome.reformats.time_ms,
            notes: outcome.notes.clone(),
        }
    }
}

/// Figures of a built engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuiltEngine {
    /// End-to-end latency from the timing file; `None` when the engine was not timed.
    pub latency: Option<LatencySummary>,
    /// Inferences per second: batch size / median latency.
    pub throughput_per_s: Option<f64>,
    /// Size of the serialized engine, in bytes.
    pub engine_bytes: Option<u64>,
    /// The checks over the engine's layer report; `None` when no layer report was available.
    pub verify: Option<VerifyRecord>,
}

impl BuiltEngine {
    /// An engine known by its latency only (no layer report).
    pub fn new(
        latency: Option<LatencySummary>,
        batch_size: usize,
        engine_bytes: Option<u64>,
    ) -> BuiltEngine {
        let throughput_per_s = latency
            .as_ref()
            .filter(|l| l.median_ms > 0.0)
            .map(|l| batch_size as f64 * 1000.0 / l.median_ms);
        BuiltEngine {
            latency,
            throughput_per_s,
            engine_bytes,
            verify: None,
        }
    }

    /// An engine with its layer report (latency from the report's timing file) and its
    /// verification, made with `matches`.
    pub fn from_engine(
        report: &EngineReport,
        matches: Option<&MatchesFile>,
        outcome: &VerifyOutcome,
        batch_size: usize,
        engine_bytes: Option<u64>,
    ) -> BuiltEngine {
        BuiltEngine {
            verify: Some(VerifyRecord::new(outcome, matches)),
            ..BuiltEngine::new(report.latency().cloned(), batch_size, engine_bytes)
        }
    }
}

/// Whether a variant's engine exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EngineStatus {
    /// The engine was built; its figures.
    Built(Box<BuiltEngine>),
    /// The engine stage was skipped or failed.
    NotBuilt {
        /// Why, e.g. [`NO_TENSORRT`].
        reason: String,
    },
}

/// One variant's row of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantReport {
    /// Which variant.
    pub variant: Variant,
    /// QuantizeLinear + DequantizeLinear nodes in the variant's ONNX model (0 for FP16); `None`
    /// when the model was not available to count.
    pub qdq_nodes: Option<usize>,
    /// Accuracy of the variant's ONNX model against FP32, when measured (for [`Variant::Fp16`]:
    /// the FP32 model with its float regions converted to FP16).
    pub accuracy: Option<Accuracy>,
    /// Accuracy of the variant's Q/DQ model with its float regions in FP16 (the float policy a
    /// strongly typed engine runs, `compare.fp16`), when measured; `None` for [`Variant::Fp16`],
    /// whose `accuracy` is already that of an FP16 model. Absent in reports of older trtq.
    #[serde(default)]
    pub accuracy_fp16: Option<Accuracy>,
    /// The engine, or why there is none.
    pub engine: EngineStatus,
}

impl VariantReport {
    /// A variant whose engine was not built, with the reason (e.g. [`NO_TENSORRT`]).
    pub fn not_built(variant: Variant, reason: impl Into<String>) -> VariantReport {
        VariantReport {
            variant,
            qdq_nodes: None,
            accuracy: None,
            accuracy_fp16: None,
            engine: EngineStatus::NotBuilt {
                reason: reason.into(),
            },
        }
    }

    /// A variant with a built engine.
    pub fn built(variant: Variant, engine: BuiltEngine) -> VariantReport {
        VariantReport {
            variant,
            qdq_nodes: None,
            accuracy: None,
            accuracy_fp16: None,
            engine: EngineStatus::Built(Box::new(engine)),
        }
    }

    /// The built engine's figures, if built.
    pub fn engine(&self) -> Option<&BuiltEngine> {
        match &self.engine {
            EngineStatus::Built(engine) => Some(engine),
            EngineStatus::NotBuilt { .. } => None,
        }
    }

    /// `"not built: <reason>"` when the engine was not built.
    pub fn not_built_text(&self) -> Option<String> {
        match &self.engine {
            EngineStatus::Built(_) => None,
            EngineStatus::NotBuilt { reason } => Some(format!("not built: {reason}")),
        }
    }

    /// The verification of the built engine, if any.
    pub fn verify(&self) -> Option<&VerifyRecord> {
        self.engine().and_then(|e| e.verify.as_ref())
    }

    /// Median latency of the built engine, when timed.
    pub fn median_ms(&self) -> Option<f64> {
        self.engine()
            .and_then(|e| e.latency.as_ref())
            .map(|l| l.median_ms)
    }
}

/// The report of one `trtq build` run (`report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Always [`SCHEMA_VERSION`] when written by this trtq.
    pub schema_version: u32,
    /// The trtq version that wrote the report.
    pub trtq_version: String,
    /// The model the run started from (as named in the config).
    pub model: String,
    /// Samples per inference (the engines' batch dimension), for throughput.
    pub batch_size: usize,
    /// The variant this run delivers (`quantization.strategy`): its engine's verify gates and its
    /// accuracy gate decide the run; the other variants are there to be compared with.
    pub product: Variant,
    /// TensorRT and GPU the engines were built on (free text); `None` when no engine was built.
    pub tensorrt: Option<String>,
    /// The accuracy gate (`verify.min_sqnr_db`): INT8 variants below it fail the run.
    pub min_sqnr_db: Option<f64>,
    /// One entry per variant, in [`Variant::ALL`] order.
    pub variants: Vec<VariantReport>,
    /// Warnings of the run the reader should see (e.g. synthetic calibration data).
    pub warnings: Vec<String>,
    /// The comparison with `report.baseline`, when one was configured.
    pub comparison: Option<CompareOutcome>,
}

impl RunReport {
    /// An empty report of the current trtq version.
    pub fn new(model: impl Into<String>, batch_size: usize, product: Variant) -> RunReport {
        RunReport {
            schema_version: SCHEMA_VERSION,
            trtq_version: env!("CARGO_PKG_VERSION").to_string(),
            model: model.into(),
            batch_size,
            product,
            tensorrt: None,
            min_sqnr_db: None,
            variants: Vec::new(),
            warnings: Vec::new(),
            comparison: None,
        }
    }

    /// The entry of `variant`, if the run has one.
    pub fn variant(&self, variant: Variant) -> Option<&VariantReport> {
        self.variants.iter().find(|v| v.variant == variant)
    }

    /// Every failed gate of the run: the verify gates of the product's engine, its accuracy gate,
    /// and the baseline comparison (all variants), each naming its variant.
    pub fn gate_failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if let Some(entry) = self.variant(self.product) {
            let label = entry.variant.label();
            if let Some(record) = entry.verify() {
                failures.extend(record.gate_failures.iter().map(|g| format!("{label}: {g}")));
            }
            if let Some(failure) = self.accuracy_gate_failure(entry) {
                failures.push(format!("{label}: {failure}"));
            }
        }
        if let Some(comparison) = &self.comparison {
            failures.extend(comparison.failures().map(|c| {
                format!(
                    "{}: baseline {}: {}",
                    c.variant.label(),
                    c.check.key(),
                    c.message
                )
            }));
        }
        failures
    }

    /// True when no gate failed.
    pub fn passed(&self) -> bool {
        self.gate_failures().is_empty()
    }

    /// Why `entry` would fail the accuracy gate (`verify.min_sqnr_db`), if it would; only a
    /// measured SQNR is judged.
    pub fn accuracy_gate_failure(&self, entry: &VariantReport) -> Option<String> {
        let min = self.min_sqnr_db?;
        let sqnr = entry.accuracy.as_ref()?.sqnr_db;
        (sqnr < min).then(|| format!("min_sqnr_db: SQNR {sqnr:.2} dB is below {min} dB"))
    }

    /// What the run did not measure, and why, one line each.
    pub fn not_measured(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for entry in &self.variants {
            let label = entry.variant.label();
            match entry.engine() {
                None => lines.push(format!(
                    "{label}: engine {} (latency, throughput, size and the engine-layer checks)",
                    entry.not_built_text().unwrap_or_default()
                )),
                Some(engine) => {
                    if engine.latency.is_none() {
                        lines.push(format!("{label}: latency: the engine was not timed"));
                    }
                    if engine.engine_bytes.is_none() {
                        lines.push(format!("{label}: engine size: not recorded"));
                    }
                    match &engine.verify {
                        None => lines.push(format!(
                            "{label}: engine structure: no layer report of this engine"
                        )),
                        Some(record) => {
                            lines.extend(record.notes.iter().map(|note| format!("{label}: {note}")))
                        }
                    }
                }
            }
            if entry.qdq_nodes.is_none() {
                lines.push(format!(
                    "{label}: Q/DQ node count: the ONNX model was not available"
                ));
            }
            if entry.accuracy.is_none() {
                lines.push(format!("{label}: accuracy: not measured"));
            }
        }
        lines
    }
}
