//! From engine layer names and `Metadata` to ONNX node names.
//!
//! Owns the rules that recover which ONNX nodes an engine layer runs: the `Metadata` items
//! (`[ONNX Layer: X]`, separated by U+001E, or U+001F in Myelin layers) when TensorRT wrote them,
//! else the layer name split on " + ", " || ", `PWN(...)` and `{ForeignNode[a...b]}`, dropping
//! `_clone_N`, " [profile k]" and Myelin `_mylN_M` suffixes and TensorRT's own unnamed layers. It also
//! reads which layer a builder copy ("Reformatting CopyNode for ...") belongs to. It does not know
//! the ONNX model: names are compared loosely with [`node_key`].

/// Which layer or network tensor a builder-inserted copy node serves, read from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyNodeOf {
    /// "Reformatting CopyNode for Input Tensor i to X": the copy feeds layer X.
    InputOf(String),
    /// "Reformatting CopyNode for Output Tensor i to X": the copy takes layer X's output.
    OutputOf(String),
    /// "Reformatting CopyNode for Network Input X".
    NetworkInput(String),
    /// "Reformatting CopyNode for Network Output X".
    NetworkOutput(String),
}

impl CopyNodeOf {
    /// The layer this copy is attributed to, when it serves a layer (not a network tensor).
    pub fn layer(&self) -> Option<&str> {
        match self {
            CopyNodeOf::InputOf(layer) | CopyNodeOf::OutputOf(layer) => Some(layer),
            CopyNodeOf::NetworkInput(_) | CopyNodeOf::NetworkOutput(_) => None,
        }
    }
}

const COPY_NODE_PREFIX: &str = "Reformatting CopyNode for ";
const ONNX_LAYER_PREFIX: &str = "[ONNX Layer: ";
const METADATA_SEPARATORS: [char; 2] = ['\u{1e}', '\u{1f}'];

/// Reads a builder copy node's name; `None` for any other layer.
pub fn copy_node_of(layer_name: &str) -> Option<CopyNodeOf> {
    let rest = strip_profile_suffix(layer_name).strip_prefix(COPY_NODE_PREFIX)?;
    if let Some(target) = rest.strip_prefix("Network Input ") {
        return Some(CopyNodeOf::NetworkInput(target.to_string()));
    }
    if let Some(target) = rest.strip_prefix("Network Output ") {
        return Some(CopyNodeOf::NetworkOutput(target.to_string()));
    }
    let (direction, after) = rest
        .strip_prefix("Input Tensor ")
        .map(|after| (true, after))
        .or_else(|| {
            rest.strip_prefix("Output Tensor ")
                .map(|after| (false, after))
        })?;
    let (_, target) = after.split_once(" to ")?;
    let target = target.to_string();
    Some(if direction {
        CopyNodeOf::InputOf(target)
    } else {
        CopyNodeOf::OutputOf(target)
    })
}

/// ONNX node names listed in a layer's `Metadata` (`[ONNX Layer: X]` items); empty when none.
pub fn nodes_from_metadata(metadata: &str) -> Vec<String> {
    let names = metadata
        .split(METADATA_SEPARATORS)
        .filter_map(|item| {
            item.trim()
                .strip_prefix(ONNX_LAYER_PREFIX)
                .and_then(|inner| inner.strip_suffix(']'))
        })
        .map(str::to_string);
    dedup_in_order(names)
}

/// ONNX node names recovered from a fused layer name; empty for copy nodes and unnamed layers.
pub fn nodes_from_layer_name(layer_name: &str) -> Vec<String> {
    let name = strip_profile_suffix(layer_name);
    if name.starts_with(COPY_NODE_PREFIX) {
        return Vec::new();
    }
    let mut names = Vec::new();
    collect_names(name, &[" || ", " + "], &mut names);
    dedup_in_order(names.into_iter())
}

/// A key for comparing node names loosely: Myelin rewrites `.` to `_` in the names it reports.
pub fn node_key(name: &str) -> String {
    name.replace('.', "_")
}

/// True when a node name is a QuantizeLinear or DequantizeLinear node (by its last path segment).
pub fn is_qdq_node(name: &str) -> bool {
    is_quantize_node(name) || is_dequantize_node(name)
}

/// True when a node name is a QuantizeLinear (not a DequantizeLinear) node.
pub fn is_quantize_node(name: &str) -> bool {
    let last = last_segment(name);
    last.contains("QuantizeLinear") && !last.contains("DequantizeLinear")
}

/// True when a node name is a DequantizeLinear node.
pub fn is_dequantize_node(name: &str) -> bool {
    last_segment(name).contains("DequantizeLinear")
}

fn last_segment(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Pointwise groups list their members separated by ", " as well as " + ".
const PWN_SEPARATORS: [&str; 3] = [" || ", " + ", ", "];

fn collect_names(text: &str, separators: &[&str], out: &mut Vec<String>) {
    for part in split_top_level(text, separators) {
        let part = part.trim();
        if part.is_empty() || part.starts_with("(Unnamed Layer*") {
            continue;
        }
        if let Some(inner) = part.strip_prefix("PWN(").and_then(|p| p.strip_suffix(')')) {
            collect_names(inner, &PWN_SEPARATORS, out);
        } else if let Some(inner) = part
            .strip_prefix("{ForeignNode[")
            .and_then(|p| p.strip_suffix("]}"))
        {
            for end in inner.split("...") {
                collect_names(end, separators, out);
            }
        } else {
            out.push(strip_generated_suffixes(part).to_string());
        }
    }
}

/// Splits on any of `separators` where no bracket is open.
fn split_top_level<'a>(text: &'a str, separators: &[&str]) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let mut index = 0;
    while index < text.len() {
        let rest = &text[index..];
        let Some(ch) = rest.chars().next() else { break };
        match ch {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
        if depth == 0
            && let Some(sep) = separators.iter().find(|sep| rest.starts_with(**sep))
        {
            parts.push(&text[start..index]);
            index += sep.len();
            start = index;
            continue;
        }
        index += ch.len_utf8();
    }
    parts.push(&text[start..]);
    parts
}

fn strip_profile_suffix(name: &str) -> &str {
    if let Some(open) = name.rfind(" [profile ")
        && let Some(number) = name[open + " [profile ".len()..].strip_suffix(']')
        && is_digits(number)
    {
        return &name[..open];
    }
    name
}

/// Drops the " copy", `_clone_N` and Myelin `_mylN_M` suffixes TensorRT appends to ONNX names.
fn strip_generated_suffixes(name: &str) -> &str {
    let mut name = name.strip_suffix(" copy").unwrap_or(name);
    if let Some(pos) = name.rfind("_myl")
        && let Some((a, b)) = name[pos + 4..].split_once('_')
        && is_digits(a)
        && is_digits(b)
    {
        name = &name[..pos];
    }
    if let Some(pos) = name.rfind("_clone_")
        && is_digits(&name[pos + 7..])
    {
        name = &name[..pos];
    }
    name
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn dedup_in_order(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names.filter(|name| seen.insert(name.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_name_splits_into_onnx_nodes() {
        let name = "fc.weight + QuantizeLinear_255 + Gemm_257 + fc.bias + (Unnamed Layer* 306) [Shuffle] + unsqueeze_node_after_fc.bias + (Unnamed Layer* 306) [Shuffle]_(Unnamed Layer* 306) [Shuffle]_output + (Unnamed Layer* 307) [ElementWise]";
        assert_eq!(
            nodes_from_layer_name(name),
            [
                "fc.weight",
                "QuantizeLinear_255",
                "Gemm_257",
                "fc.bias",
                "unsqueeze_node_after_fc.bias"
            ]
        );
    }

    #[test]
    fn pwn_foreign_node_horizontal_and_suffixes() {
        assert_eq!(
            nodes_from_layer_name("PWN(PWN(/Sub), PWN(/Div))"),
            ["/Sub", "/Div"]
        );
        assert_eq!(
            nodes_from_layer_name("w + QuantizeLinear_8 + Conv_12 + PWN(Clip_16)"),
            ["w", "QuantizeLinear_8", "Conv_12", "Clip_16"]
        );
        assert_eq!(
            nodes_from_layer_name("{ForeignNode[/a/Constant_output_0.../a/Where_13]}"),
            ["/a/Constant_output_0", "/a/Where_13"]
        );
        assert_eq!(
            nodes_from_layer_name("/k/MatMul + /k/Add || /q/MatMul + /q/Add [profile 1]"),
            ["/k/MatMul", "/k/Add", "/q/MatMul", "/q/Add"]
        );
        assert_eq!(
            nodes_from_layer_name("/t/Transpose_1_output_0_clone_6"),
            ["/t/Transpose_1_output_0"]
        );
        assert_eq!(nodes_from_layer_name("/fc1/Gemm_myl0_2"), ["/fc1/Gemm"]);
        assert!(
            nodes_from_layer_name("Reformatting CopyNode for Input Tensor 0 to Conv_1").is_empty()
        );
    }

    #[test]
    fn metadata_items_split_on_both_separators() {
        let metadata = "[ONNX Layer: /fc1/Gemm]\u{1f}[ONNX Layer: /a/DequantizeLinear]\u{1e}[ONNX Layer: /b.1/Relu]";
        assert_eq!(
            nodes_from_metadata(metadata),
            ["/fc1/Gemm", "/a/DequantizeLinear", "/b.1/Relu"]
        );
        assert!(nodes_from_metadata("").is_empty());
    }

    #[test]
    fn copy_nodes_name_what_they_serve() {
        assert_eq!(
            copy_node_of("Reformatting CopyNode for Input Tensor 0 to A + B"),
            Some(CopyNodeOf::InputOf("A + B".into()))
        );
        assert_eq!(
            copy_node_of("Reformatting CopyNode for Output Tensor 1 to {ForeignNode[x...y]}"),
            Some(CopyNodeOf::OutputOf("{ForeignNode[x...y]}".into()))
        );
        assert_eq!(
            copy_node_of("Reformatting CopyNode for Network Input num_points"),
            Some(CopyNodeOf::NetworkInput("num_points".into()))
        );
        assert_eq!(copy_node_of("QuantizeLinear_2"), None);
    }

    #[test]
    fn qdq_nodes_are_recognized_by_last_segment() {
        assert!(is_qdq_node("/qact_input/QuantizeLinear"));
        assert!(is_qdq_node("img_QuantizeLinear"));
        assert!(is_qdq_node("x_DequantizeLinear"));
        assert!(!is_qdq_node("/QuantizeLinear_block/Conv"));
        assert!(is_quantize_node("QuantizeLinear_2"));
        assert!(!is_quantize_node("DequantizeLinear_291"));
    }
}
