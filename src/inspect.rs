//! `trtq inspect`: what a model holds, before and after normalization.
//!
//! Owns: [`InspectReport`] (versions, producer, inputs/outputs with shapes, op histogram,
//! parameter count and bytes, what normalization would fold or remove) and its text form.
//! Does not own: loading or normalizing (it calls them).

use crate::graph::Model;
use crate::graph::normalize::{Evaluator, NormalizeOptions, NormalizeReport, normalize};
use crate::graph::shape::{Dim, ValueType};
use crate::graph::tensor::{dtype_name, element_count};
use crate::onnx::proto::DataType;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A graph input or output as declared.
#[derive(Clone, Debug, Serialize)]
pub struct IoInfo {
    /// Value name.
    pub name: String,
    /// Element type name (`FLOAT`, ...).
    pub dtype: String,
    /// Dims: numbers, symbolic names, or `?`.
    pub shape: Vec<String>,
}

/// Everything `trtq inspect` reports.
#[derive(Clone, Debug, Serialize)]
pub struct InspectReport {
    /// ONNX IR version.
    pub ir_version: i64,
    /// Opset imports, domain → version (`""` = default domain).
    pub opsets: BTreeMap<String, i64>,
    /// Producer name and version.
    pub producer: String,
    /// Graph inputs (initializers excluded).
    pub inputs: Vec<IoInfo>,
    /// Graph outputs.
    pub outputs: Vec<IoInfo>,
    /// Node count.
    pub nodes: usize,
    /// Op type → count.
    pub ops: BTreeMap<String, usize>,
    /// Number of parameters (elements of all initializers).
    pub parameters: u64,
    /// Bytes of all initializers.
    pub parameter_bytes: u64,
    /// What normalization (opset 17, declared shapes) would change, or why it failed.
    pub normalization: Result<NormalizeReport, String>,
}

fn io_info(v: &crate::onnx::proto::ValueInfoProto) -> IoInfo {
    let t = ValueType::from_value_info(v);
    IoInfo {
        name: v.name.clone().unwrap_or_default(),
        dtype: t.as_ref().map_or("?".into(), |t| dtype_name(t.dtype)),
        shape: t
            .and_then(|t| t.shape)
            .map(|d| {
                d.iter()
                    .map(|d| match d {
                        Dim::Known(v) => v.to_string(),
                        Dim::Param(p) => p.clone(),
                        Dim::Unknown => "?".into(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Inspects a loaded model; `eval` computes constant nodes for the normalization dry run.
pub fn inspect(model: &Model, eval: Evaluator) -> InspectReport {
    let g = &model.graph;
    let mut ops = BTreeMap::new();
    for id in g.node_ids() {
        *ops.entry(g.node(id).op_type.clone()).or_insert(0) += 1;
    }
    let (mut parameters, mut parameter_bytes) = (0u64, 0u64);
    for (_, t) in g.initializers() {
        let n = element_count(&t.dims).unwrap_or(0) as u64;
        parameters += n;
        let width = DataType::try_from(t.data_type.unwrap_or(0))
            .ok()
            .and_then(|d| d.byte_size())
            .unwrap_or(0) as u64;
        parameter_bytes += n * width;
    }
    let mut dry = model.clone();
    let opts = NormalizeOptions {
        opset: model.opset().max(17),
        input_shapes: BTreeMap::new(),
    };
    let normalization = normalize(&mut dry, &opts, eval).map_err(|e| e.to_string());
    InspectReport {
        ir_version: model.rest.ir_version.unwrap_or(0),
        opsets: model
            .rest
            .opset_import
            .iter()
            .map(|o| (o.domain.clone().unwrap_or_default(), o.version.unwrap_or(0)))
            .collect(),
        producer: format!(
            "{} {}",
            model.rest.producer_name.as_deref().unwrap_or(""),
            model.rest.producer_version.as_deref().unwrap_or("")
        )
        .trim()
        .to_string(),
        inputs: g
            .inputs
            .iter()
            .filter(|i| i.name.as_deref().is_some_and(|n| g.is_input(n)))
            .map(io_info)
            .collect(),
        outputs: g.outputs.iter().map(io_info).collect(),
        nodes: g.node_count(),
        ops,
        parameters,
        parameter_bytes,
        normalization,
    }
}

impl InspectReport {
    /// The human-readable form printed by `trtq inspect`.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let opsets: Vec<String> = self
            .opsets
            .iter()
            .map(|(d, v)| format!("{}={v}", if d.is_empty() { "ai.onnx" } else { d }))
            .collect();
        let _ = writeln!(
            s,
            "IR version {}, opsets {}, producer '{}'",
            self.ir_version,
            opsets.join(" "),
            self.producer
        );
        for (label, list) in [("input", &self.inputs), ("output", &self.outputs)] {
            for io in list {
                let _ = writeln!(
                    s,
                    "{label:>6}  {} {} [{}]",
                    io.name,
                    io.dtype,
                    io.shape.join(", ")
                );
            }
        }
        let _ = writeln!(s, "nodes   {} ({} op types)", self.nodes, self.ops.len());
        for (op, n) in &self.ops {
            let _ = writeln!(s, "  {op:<24} {n}");
        }
        let _ = writeln!(
            s,
            "params  {} ({:.2} MB)",
            self.parameters,
            self.parameter_bytes as f64 / 1e6
        );
        match &self.normalization {
            Ok(r) => {
                let _ = writeln!(
                    s,
                    "normalize (opset {} → {}): {} → {} nodes; {} upgraded",
                    r.from_opset, r.to_opset, r.nodes_before, r.nodes_after, r.upgraded_nodes
                );
                let folded: Vec<String> =
                    r.folded.iter().map(|(k, v)| format!("{k}×{v}")).collect();
                let dead: Vec<String> = r.dead.iter().map(|(k, v)| format!("{k}×{v}")).collect();
                let _ = writeln!(
                    s,
                    "  folded: {}",
                    if folded.is_empty() {
                        "nothing".into()
                    } else {
                        folded.join(", ")
                    }
                );
                let _ = writeln!(
                    s,
                    "  dead:   {}",
                    if dead.is_empty() {
                        "nothing".into()
                    } else {
                        dead.join(", ")
                    }
                );
            }
            Err(e) => {
                let _ = writeln!(s, "normalize: fails: {e}");
            }
        }
        s
    }
}
