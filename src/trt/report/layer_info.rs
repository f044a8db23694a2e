//! The layer-information file of an engine (`trtexec --exportLayerInfo`, i.e.
//! `IEngineInspector::getEngineInformation(kJSON)`), in every shape TensorRT writes it.
//!
//! Owns reading the classic detailed schema (`{"Layers":[{...}],"Bindings":[...]}`), a bare list root
//! (TensorRT 11), the reduced Myelin schema (bare dtypes, no `Origin`), TensorRT 11's split
//! `Datatype`/`Format` tensor keys, and the concatenated `--- Layer i ---` text form, into
//! [`Layer`]s. Unknown keys are ignored. A names-only list (engine built without detailed profiling
//! verbosity) is an error, never an empty report. Checks over the layers live in `crate::verify`.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::ReportError;
use super::dtype::DataType;
use super::names::{self, CopyNodeOf};

/// One tensor at a layer boundary.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Tensor name as TensorRT reports it.
    pub name: String,
    /// Dimensions (-1 for dynamic).
    pub dimensions: Vec<i64>,
    /// Element type.
    pub dtype: DataType,
    /// The original format/datatype text (memory layout included when TensorRT wrote one).
    pub format: String,
}

/// Where a layer's ONNX node names came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodesSource {
    /// `Metadata` (`[ONNX Layer: X]` items), exact.
    Metadata,
    /// Split from the layer name, best effort.
    LayerName,
}

/// One engine layer, independent of the TensorRT version that reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Position in the engine's execution order.
    pub index: usize,
    /// Layer name (fused layers join ONNX names).
    pub name: String,
    /// TensorRT's layer type ("CaskConvolution", "Reformat", "kgen", "gemm", ...).
    pub layer_type: String,
    /// Input tensors in order.
    pub inputs: Vec<TensorInfo>,
    /// Output tensors in order.
    pub outputs: Vec<TensorInfo>,
    /// `Origin` of Reformat layers: "REFORMAT" (builder copy), "QDQ" (unfused Q/DQ), others.
    pub origin: Option<String>,
    /// Kernel (tactic) name, when reported.
    pub tactic: Option<String>,
    /// Type of the layer's weights (`Weights.Type`), when reported.
    pub weights_dtype: Option<DataType>,
    /// ONNX node names this layer runs.
    pub nodes: Vec<String>,
    /// Where [`Layer::nodes`] came from.
    pub nodes_source: NodesSource,
    /// For builder copy nodes: the layer or network tensor the copy serves.
    pub copy_of: Option<CopyNodeOf>,
    /// Average time per inference from the profile, when one was attached.
    pub time_ms: Option<f64>,
}

impl Layer {
    /// The layer's precision: its first input's type (TREx's definition); `None` without inputs.
    pub fn precision(&self) -> Option<&DataType> {
        self.inputs.first().map(|tensor| &tensor.dtype)
    }

    /// First output's type.
    pub fn output_precision(&self) -> Option<&DataType> {
        self.outputs.first().map(|tensor| &tensor.dtype)
    }

    /// A NoOp layer (elided copy, reshape): it runs no kernel.
    pub fn is_noop(&self) -> bool {
        self.layer_type == "NoOp"
    }

    /// A layer TensorRT reports as `Reformat` (builder copy or unfused Q/DQ alike).
    pub fn is_reformat(&self) -> bool {
        self.layer_type == "Reformat"
    }

    /// A Reformat layer whose `Origin` is QDQ: a Q or DQ node TensorRT could not fuse.
    pub fn is_qdq_reformat(&self) -> bool {
        self.is_reformat()
            && self
                .origin
                .as_deref()
                .is_some_and(|o| o.eq_ignore_ascii_case("QDQ"))
    }

    /// An INT8 layer: not a NoOp, and its first input is Int8.
    pub fn is_int8(&self) -> bool {
        !self.is_noop() && self.precision().is_some_and(DataType::is_int8)
    }

    /// A convolution, deconvolution or matrix-multiply layer, classic or Myelin.
    pub fn is_conv_or_gemm(&self) -> bool {
        let kind = self.layer_type.to_ascii_lowercase();
        [
            "conv",
            "gemm",
            "correlation",
            "matrixmultiply",
            "fullyconnected",
        ]
        .iter()
        .any(|word| kind.contains(word))
    }

    /// True when the first input and first output differ in element type.
    pub fn changes_dtype(&self) -> bool {
        match (self.precision(), self.output_precision()) {
            (Some(input), Some(output)) => input != output,
            _ => false,
        }
    }
}

/// The parsed layer-information file: layers and the engine's binding (I/O tensor) names.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerInfo {
    /// Layers in execution order.
    pub layers: Vec<Layer>,
    /// Network input and output tensor names; empty when the file has none (text form, bare list).
    pub bindings: Vec<String>,
}

#[derive(Deserialize)]
struct RawTensor {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Dimensions", default)]
    dimensions: Value,
    #[serde(rename = "Format/Datatype")]
    format_datatype: Option<String>,
    #[serde(rename = "Datatype", alias = "DataType", alias = "Data Type")]
    datatype: Option<String>,
    #[serde(rename = "Format")]
    format: Option<String>,
}

#[derive(Deserialize)]
struct RawWeights {
    #[serde(rename = "Type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct RawLayer {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "LayerType", default)]
    layer_type: Option<String>,
    #[serde(rename = "Inputs", default)]
    inputs: Vec<RawTensor>,
    #[serde(rename = "Outputs", default)]
    outputs: Vec<RawTensor>,
    #[serde(rename = "Origin")]
    origin: Option<String>,
    #[serde(rename = "TacticName")]
    tactic: Option<String>,
    #[serde(rename = "Metadata")]
    metadata: Option<String>,
    #[serde(rename = "Weights", alias = "ConvWeights")]
    weights: Option<RawWeights>,
}

/// Parses a layer-information file's text; `path` names it in errors.
pub fn parse_layer_info(text: &str, path: &Path) -> Result<LayerInfo, ReportError> {
    let body = text.trim_start_matches('\u{feff}').trim_start();
    if body.starts_with("--- Layer") {
        return parse_text_blocks(body, path);
    }
    let root: Value = serde_json::from_str(body).map_err(|err| ReportError::Malformed {
        path: path.to_path_buf(),
        reason: format!("not JSON: {err}"),
    })?;
    let (items, bindings) = match root {
        Value::Object(mut map) => {
            let Some(Value::Array(items)) = map.remove("Layers") else {
                return Err(ReportError::Malformed {
                    path: path.to_path_buf(),
                    reason: "no \"Layers\" list at the top level".into(),
                });
            };
            let bindings = map
                .remove("Bindings")
                .map(binding_names)
                .unwrap_or_default();
            (items, bindings)
        }
        Value::Array(items) => (items, Vec::new()),
        _ => {
            return Err(ReportError::Malformed {
                path: path.to_path_buf(),
                reason: "the top level is neither {\"Layers\": [...]} nor a list of layers".into(),
            });
        }
    };
    let layers = json_layers(items, path)?;
    Ok(LayerInfo { layers, bindings })
}

fn binding_names(value: Value) -> Vec<String> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| match item {
            Value::String(name) => Some(name),
            Value::Object(mut map) => match map.remove("Name") {
                Some(Value::String(name)) => Some(name),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn json_layers(items: Vec<Value>, path: &Path) -> Result<Vec<Layer>, ReportError> {
    if items.is_empty() {
        return Err(ReportError::Malformed {
            path: path.to_path_buf(),
            reason: "the layer list is empty".into(),
        });
    }
    let names_only = items.iter().filter(|item| item.is_string()).count();
    if names_only == items.len() {
        return Err(ReportError::NamesOnly {
            path: path.to_path_buf(),
            layers: names_only,
        });
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let raw: RawLayer =
                serde_json::from_value(item).map_err(|err| ReportError::Malformed {
                    path: path.to_path_buf(),
                    reason: format!("layer {index}: {err}"),
                })?;
            Ok(convert(index, raw))
        })
        .collect()
}

fn parse_text_blocks(body: &str, path: &Path) -> Result<LayerInfo, ReportError> {
    let mut layers = Vec::new();
    let mut block_text = String::new();
    let mut block_header: Option<String> = None;
    for line in body.lines().chain(std::iter::once("--- Layer end ---")) {
        let trimmed = line.trim();
        if trimmed.starts_with("--- Layer") && trimmed.ends_with("---") {
            if let Some(header) = block_header.take() {
                let raw: RawLayer =
                    serde_json::from_str(&block_text).map_err(|err| ReportError::Malformed {
                        path: path.to_path_buf(),
                        reason: format!("block '{header}': {err}"),
                    })?;
                layers.push(convert(layers.len(), raw));
            }
            block_header = Some(trimmed.to_string());
            block_text.clear();
        } else {
            block_text.push_str(line);
            block_text.push('\n');
        }
    }
    if layers.is_empty() {
        return Err(ReportError::Malformed {
            path: path.to_path_buf(),
            reason: "no '--- Layer i ---' blocks".into(),
        });
    }
    Ok(LayerInfo {
        layers,
        bindings: Vec::new(),
    })
}

fn convert(index: usize, raw: RawLayer) -> Layer {
    let metadata_nodes = raw
        .metadata
        .as_deref()
        .map(names::nodes_from_metadata)
        .unwrap_or_default();
    let (nodes, nodes_source) = if metadata_nodes.is_empty() {
        (
            names::nodes_from_layer_name(&raw.name),
            NodesSource::LayerName,
        )
    } else {
        (metadata_nodes, NodesSource::Metadata)
    };
    Layer {
        index,
        copy_of: names::copy_node_of(&raw.name),
        name: raw.name,
        layer_type: raw.layer_type.unwrap_or_default(),
        inputs: raw.inputs.into_iter().map(convert_tensor).collect(),
        outputs: raw.outputs.into_iter().map(convert_tensor).collect(),
        origin: raw.origin,
        tactic: raw.tactic.filter(|t| !t.is_empty()),
        weights_dtype: raw
            .weights
            .and_then(|w| w.kind)
            .map(|kind| DataType::from_trt(&kind)),
        nodes,
        nodes_source,
        time_ms: None,
    }
}

fn convert_tensor(raw: RawTensor) -> TensorInfo {
    let format = [
        raw.format_datatype.as_deref(),
        raw.datatype.as_deref(),
        raw.format.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    let dtype_text = raw.format_datatype.or(raw.datatype).unwrap_or_default();
    let dimensions = match raw.dimensions {
        Value::Array(dims) => dims.iter().map(|d| d.as_i64().unwrap_or(-1)).collect(),
        _ => Vec::new(),
    };
    TensorInfo {
        name: raw.name,
        dimensions,
        dtype: DataType::from_trt(&dtype_text),
        format,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LayerInfo, ReportError> {
        parse_layer_info(text, Path::new("test.json"))
    }

    #[test]
    fn names_only_list_is_the_detailed_verbosity_error() {
        let err = parse(r#"{"Layers": ["a", "b + c"], "Bindings": ["x"]}"#).unwrap_err();
        assert!(matches!(err, ReportError::NamesOnly { layers: 2, .. }));
        assert!(
            err.to_string().contains("rebuild with detailed verbosity"),
            "{err}"
        );
        assert!(matches!(
            parse(r#"["a"]"#),
            Err(ReportError::NamesOnly { layers: 1, .. })
        ));
    }

    #[test]
    fn bare_list_root_and_split_tensor_keys_are_accepted() {
        let text = r#"[{"Name": "Conv_1", "LayerType": "CaskConvolution", "NewKey": {"x": 1},
            "Inputs": [{"Name": "a", "Dimensions": [1, 8], "Datatype": "Int8", "Format": "kCHW32", "Strides": [8, 1]}],
            "Outputs": [{"Name": "b", "Dimensions": [1, 8], "Datatype": "Half", "Format": "kLINEAR"}]}]"#;
        let info = parse(text).unwrap();
        assert_eq!(info.layers.len(), 1);
        let layer = &info.layers[0];
        assert_eq!(layer.precision(), Some(&DataType::Int8));
        assert_eq!(layer.output_precision(), Some(&DataType::Half));
        assert_eq!(layer.nodes, ["Conv_1"]);
        assert!(info.bindings.is_empty());
    }

    #[test]
    fn malformed_inputs_are_errors_not_panics() {
        for text in [
            "",
            "{",
            "42",
            r#"{"Layers": []}"#,
            r#"{"Layers": [{"NoName": 1}]}"#,
            "--- Layer 0 ---\n{oops",
        ] {
            assert!(parse(text).is_err(), "{text:?}");
        }
    }
}
