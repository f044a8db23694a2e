//! [`EngineReport`]: what TensorRT says about a built engine, independent of the TensorRT version.
//!
//! Owns loading the layer-information file ([`layer_info`]), the per-layer profile ([`profile`]) and
//! the per-iteration timings ([`times`]) into one value, joining profile records to layers by name,
//! and answering graph questions about the engine (who produces or consumes a tensor, which tensors
//! are network inputs and outputs). Mapping layers to ONNX nodes is in [`names`], element types in
//! [`dtype`]. Judging the engine (findings, gates) is `crate::verify`'s job, not this module's.

pub mod dtype;
pub mod layer_info;
pub mod names;
pub mod profile;
pub mod times;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};

pub use dtype::DataType;
pub use layer_info::{Layer, LayerInfo, NodesSource, TensorInfo};
pub use names::CopyNodeOf;
pub use profile::{Profile, ProfileRecord};
pub use times::LatencySummary;

/// Why a TensorRT report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file could not be read.
    #[error("cannot read TensorRT report {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The layer-information file is not in any known shape.
    #[error("{path}: not a TensorRT layer-information file: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        reason: String,
    },
    /// The layer list holds names only.
    #[error(
        "{path}: the layer list holds {layers} names but no layer details: the engine was built without \
         --profilingVerbosity=detailed: rebuild with detailed verbosity (trtexec --profilingVerbosity=detailed)"
    )]
    NamesOnly {
        /// The file.
        path: PathBuf,
        /// Number of names listed.
        layers: usize,
    },
    /// The profile file is not usable.
    #[error("{path}: not a trtexec --exportProfile file: {reason}")]
    Profile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The timing file is not usable.
    #[error("{path}: not a trtexec --exportTimes file: {reason}")]
    Times {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// An engine's layers (with ONNX node names and, when profiled, times), bindings and latency.
#[derive(Debug, Clone)]
pub struct EngineReport {
    source: PathBuf,
    layers: Vec<Layer>,
    bindings: Vec<String>,
    profile: Option<Profile>,
    latency: Option<LatencySummary>,
    producers: HashMap<String, usize>,
    consumers: HashMap<String, Vec<usize>>,
}

impl EngineReport {
    /// Builds a report from parsed layer information; `source` names the file in messages.
    pub fn new(info: LayerInfo, source: &Path) -> EngineReport {
        let mut producers = HashMap::new();
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, layer) in info.layers.iter().enumerate() {
            for tensor in &layer.outputs {
                producers.entry(tensor.name.clone()).or_insert(index);
            }
            for tensor in &layer.inputs {
                consumers
                    .entry(tensor.name.clone())
                    .or_default()
                    .push(index);
            }
        }
        EngineReport {
            source: source.to_path_buf(),
            layers: info.layers,
            bindings: info.bindings,
            profile: None,
            latency: None,
            producers,
            consumers,
        }
    }

    /// Parses layer-information text (any supported shape).
    pub fn from_layer_info(text: &str, source: &Path) -> Result<EngineReport, ReportError> {
        Ok(EngineReport::new(
            layer_info::parse_layer_info(text, source)?,
            source,
        ))
    }

    /// Loads a layer-information file and, when given, its profile and timing files.
    pub fn load(
        layers: &Path,
        profile: Option<&Path>,
        times: Option<&Path>,
    ) -> Result<EngineReport, ReportError> {
        let mut report = EngineReport::from_layer_info(&read(layers)?, layers)?;
        if let Some(path) = profile {
            report.attach_profile(profile::parse_profile(&read(path)?, path)?);
        }
        if let Some(path) = times {
            report.latency = Some(times::parse_times(&read(path)?, path)?);
        }
        Ok(report)
    }

    /// Joins profile records to layers by name (in order, for repeated names); returns how many
    /// layers received a time.
    pub fn attach_profile(&mut self, profile: Profile) -> usize {
        let mut by_name: HashMap<&str, VecDeque<f64>> = HashMap::new();
        for record in &profile.records {
            by_name
                .entry(record.name.as_str())
                .or_default()
                .push_back(record.average_ms);
        }
        let mut joined = 0;
        for layer in &mut self.layers {
            layer.time_ms = by_name
                .get_mut(layer.name.as_str())
                .and_then(VecDeque::pop_front);
            joined += usize::from(layer.time_ms.is_some());
        }
        self.profile = Some(profile);
        joined
    }

    /// Sets the latency summary (from a timing file or a trtexec log).
    pub fn set_latency(&mut self, latency: LatencySummary) {
        self.latency = Some(latency);
    }

    /// The layer-information file this report came from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Layers in execution order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Binding names as listed in the file (empty for the text form and bare lists).
    pub fn bindings(&self) -> &[String] {
        &self.bindings
    }

    /// The attached profile, if any.
    pub fn profile(&self) -> Option<&Profile> {
        self.profile.as_ref()
    }

    /// End-to-end latency, when a timing file was attached.
    pub fn latency(&self) -> Option<&LatencySummary> {
        self.latency.as_ref()
    }

    /// Sum of per-layer average times, when a profile is attached.
    pub fn total_time_ms(&self) -> Option<f64> {
        self.profile.as_ref().map(Profile::total_average_ms)
    }

    /// The layer that writes `tensor`.
    pub fn producer(&self, tensor: &str) -> Option<&Layer> {
        self.producers.get(tensor).and_then(|&i| self.layers.get(i))
    }

    /// The layers that read `tensor`.
    pub fn consumers(&self, tensor: &str) -> impl Iterator<Item = &Layer> {
        self.consumers
            .get(tensor)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.layers.get(i))
    }

    /// Network input tensors: bindings no layer writes, or (without bindings) tensors read but
    /// never written.
    pub fn network_inputs(&self) -> BTreeSet<&str> {
        if self.bindings.is_empty() {
            self.consumers
                .keys()
                .filter(|t| !self.producers.contains_key(*t))
                .map(String::as_str)
                .collect()
        } else {
            self.bindings
                .iter()
                .filter(|b| !self.producers.contains_key(*b))
                .map(String::as_str)
                .collect()
        }
    }

    /// Network output tensors: bindings some layer writes, or (without bindings) tensors written
    /// but never read.
    pub fn network_outputs(&self) -> BTreeSet<&str> {
        if self.bindings.is_empty() {
            self.producers
                .keys()
                .filter(|t| !self.consumers.contains_key(*t))
                .map(String::as_str)
                .collect()
        } else {
            self.bindings
                .iter()
                .filter(|b| self.producers.contains_key(*b))
                .map(String::as_str)
                .collect()
        }
    }
}

fn read(path: &Path) -> Result<String, ReportError> {
    std::fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })
}
