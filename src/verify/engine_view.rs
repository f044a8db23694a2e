//! Questions the checks ask about an engine's dataflow: is a layer a network I/O conversion, which
//! layers are unfused Q/DQ, does a tensor flow into a quantize.
//!
//! Owns these shared definitions so that every check (and the summary) classifies layers the same
//! way. It reads an [`EngineReport`]; it produces no findings.

use std::collections::{BTreeSet, HashMap};

use crate::trt::report::names::{is_qdq_node, is_quantize_node, node_key};
use crate::trt::report::{EngineReport, Layer, NodesSource};

/// Longest chain of copy/pooling layers walked when following a tensor.
const MAX_WALK: usize = 8;

/// What an unfused Q/DQ layer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QdqRole {
    /// A QuantizeLinear (float → Int8).
    Quantize,
    /// A DequantizeLinear (Int8 → float).
    Dequantize,
    /// A Q → DQ pair run as one float → float kernel.
    QuantizeDequantize,
}

impl QdqRole {
    /// Human name for messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            QdqRole::Quantize => "QuantizeLinear",
            QdqRole::Dequantize => "DequantizeLinear",
            QdqRole::QuantizeDequantize => "QuantizeLinear/DequantizeLinear pair",
        }
    }
}

/// An engine report with its network inputs and outputs, and where each ONNX node runs, resolved once.
pub(crate) struct EngineView<'a> {
    /// The report.
    pub(crate) report: &'a EngineReport,
    inputs: BTreeSet<&'a str>,
    outputs: BTreeSet<&'a str>,
    layers_by_node: HashMap<String, Vec<usize>>,
}

impl<'a> EngineView<'a> {
    /// Resolves the network I/O of `report` and indexes its layers by ONNX node.
    pub(crate) fn new(report: &'a EngineReport) -> EngineView<'a> {
        let mut layers_by_node: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, layer) in report.layers().iter().enumerate() {
            for node in &layer.nodes {
                layers_by_node
                    .entry(node_key(node))
                    .or_default()
                    .push(index);
            }
        }
        EngineView {
            report,
            inputs: report.network_inputs(),
            outputs: report.network_outputs(),
            layers_by_node,
        }
    }

    /// Indices of the layers that run ONNX node `node` (names compared with [`node_key`]).
    pub(crate) fn layers_of_node(&self, node: &str) -> &[usize] {
        self.layers_by_node
            .get(&node_key(node))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The layer at `index`.
    pub(crate) fn layer(&self, index: usize) -> Option<&'a Layer> {
        self.report.layers().get(index)
    }

    /// The network input `layer` reads, directly or through builder copies.
    pub(crate) fn network_input_read_by(&self, layer: &'a Layer) -> Option<&'a str> {
        let mut tensor = layer.inputs.first()?.name.as_str();
        for _ in 0..MAX_WALK {
            if self.inputs.contains(tensor) {
                return Some(tensor);
            }
            let producer = self.report.producer(tensor)?;
            if !is_copy(producer) {
                return None;
            }
            tensor = producer.inputs.first()?.name.as_str();
        }
        None
    }

    /// The layer that computes `layer`'s first input, looking through builder copies.
    pub(crate) fn computing_producer_of(&self, layer: &'a Layer) -> Option<&'a Layer> {
        let mut tensor = layer.inputs.first()?.name.as_str();
        for _ in 0..MAX_WALK {
            let producer = self.report.producer(tensor)?;
            if !is_copy(producer) {
                return Some(producer);
            }
            tensor = producer.inputs.first()?.name.as_str();
        }
        None
    }

    /// The network output `layer` writes, directly or through builder copies.
    pub(crate) fn network_output_written_by(&self, layer: &'a Layer) -> Option<&'a str> {
        layer
            .outputs
            .iter()
            .find_map(|tensor| self.output_reached_from(&tensor.name, MAX_WALK))
    }

    fn output_reached_from(&self, tensor: &'a str, budget: usize) -> Option<&'a str> {
        if self.outputs.contains(tensor) {
            return Some(tensor);
        }
        if budget == 0 {
            return None;
        }
        self.report
            .consumers(tensor)
            .filter(|consumer| is_copy(consumer))
            .flat_map(|consumer| consumer.outputs.iter())
            .find_map(|out| self.output_reached_from(&out.name, budget - 1))
    }

    /// True when `layer` is a conversion TensorRT needs at the network boundary: a Q reading a
    /// network input, a DQ writing a network output, or a builder copy at either end.
    pub(crate) fn is_io_conversion(&self, layer: &'a Layer) -> bool {
        match unfused_qdq_role(layer) {
            Some(QdqRole::Quantize) => self.network_input_read_by(layer).is_some(),
            Some(QdqRole::Dequantize) => self.network_output_written_by(layer).is_some(),
            Some(QdqRole::QuantizeDequantize) | None => {
                self.network_input_read_by(layer).is_some()
                    || self.network_output_written_by(layer).is_some()
            }
        }
    }

    /// Where a float output of `layer` goes back into INT8: the first unfused Q, or INT8 layer (a
    /// residual input), reached from its outputs through copies, pooling and shuffles.
    pub(crate) fn requantizing_consumer_of(&self, layer: &'a Layer) -> Option<Requantized<'a>> {
        let mut frontier: Vec<&str> = layer.outputs.iter().map(|t| t.name.as_str()).collect();
        for _ in 0..MAX_WALK {
            let mut next = Vec::new();
            for tensor in frontier {
                for consumer in self.report.consumers(tensor) {
                    if matches!(unfused_qdq_role(consumer), Some(QdqRole::Quantize)) {
                        return Some(Requantized::ByUnfusedQ(consumer));
                    }
                    if consumer.is_int8() && consumer.index != layer.index {
                        return Some(Requantized::IntoInt8Layer(consumer));
                    }
                    if passes_quantization_through(consumer) {
                        next.extend(consumer.outputs.iter().map(|t| t.name.as_str()));
                    }
                }
            }
            if next.is_empty() {
                return None;
            }
            frontier = next;
        }
        None
    }
}

/// How a float tensor returns to INT8 downstream.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Requantized<'a> {
    /// A Q that did not fuse quantizes it again.
    ByUnfusedQ(&'a Layer),
    /// An INT8 layer reads it as a float input (e.g. the residual input of a fused Add).
    IntoInt8Layer(&'a Layer),
}

/// A builder copy: NoOp, or a Reformat that is not an unfused Q/DQ.
pub(crate) fn is_copy(layer: &Layer) -> bool {
    layer.is_noop() || (layer.is_reformat() && !layer.is_qdq_reformat())
}

/// Layers through which a Q after them could have been propagated to the conv before them.
fn passes_quantization_through(layer: &Layer) -> bool {
    let kind = layer.layer_type.to_ascii_lowercase();
    is_copy(layer)
        || ((kind.contains("pool") && !kind.contains("conv")) || kind.contains("shuffle"))
}

/// Whether `layer` is a Q or DQ TensorRT left standalone, in any of its forms: a Reformat with
/// Origin QDQ, a TensorRT 8.0 Scale layer with Int8 on one side, or a layer (Myelin kgen) whose
/// Metadata names only Q/DQ nodes.
pub(crate) fn unfused_qdq_role(layer: &Layer) -> Option<QdqRole> {
    let int8_in = layer.precision().is_some_and(|t| t.is_int8());
    let int8_out = layer.output_precision().is_some_and(|t| t.is_int8());
    let by_dtype = || match (int8_in, int8_out) {
        (false, true) => Some(QdqRole::Quantize),
        (true, false) => Some(QdqRole::Dequantize),
        _ => None,
    };
    if layer.is_qdq_reformat() {
        let by_name = if is_quantize_node(&layer.name) {
            QdqRole::Quantize
        } else {
            QdqRole::Dequantize
        };
        return Some(by_dtype().unwrap_or(by_name));
    }
    if layer.layer_type == "Scale" {
        return by_dtype();
    }
    let runs_a_kernel = !layer.is_noop()
        && !layer.is_reformat()
        && layer.layer_type != "Constant"
        && !layer.inputs.is_empty()
        && !layer.outputs.is_empty();
    let only_qdq = layer.nodes_source == NodesSource::Metadata
        && !layer.nodes.is_empty()
        && layer.nodes.iter().all(|node| is_qdq_node(node));
    if !(runs_a_kernel && only_qdq) {
        return None;
    }
    let quantizes = layer
        .nodes
        .iter()
        .filter(|node| is_quantize_node(node))
        .count();
    Some(match (quantizes, layer.nodes.len() - quantizes) {
        (_, 0) => QdqRole::Quantize,
        (0, _) => QdqRole::Dequantize,
        _ => by_dtype().unwrap_or(QdqRole::QuantizeDequantize),
    })
}
