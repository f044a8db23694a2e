//! The model calibration and evaluation run on: the user's model normalized again with the
//! configured batch size in place of the batch that `inputs:` declares.
//!
//! The exported Q/DQ model keeps the declared batch (TensorRT's engine shapes come from it),
//! but calibration and the accuracy evaluation run `calibration.batch_size` samples per executor
//! run. Normalization folds shape arithmetic with the batch it is given, so changing the batch
//! of a normalized model is not enough: the model is normalized again from the file with the
//! batch dimension of every graph input set to the new size, then transformed the same way.
//!
//! Owns: re-specializing a loaded model's batch ([`normalize_at_batch`]) and the check that the
//! result is the same model at another batch ([`check_same_model`]): the same node names (every
//! stage names nodes deterministically, so every tensor calibration observes exists in both) and
//! every graph output and quantized activation holding `batch / declared` times the elements
//! with the same per-sample shape. A model that hard-codes its batch (e.g. a Reshape to a
//! constant `[1, 2048]`) fails one of the two, naming the node, and the caller falls back to
//! the declared batch. Does not own: normalization, the pattern transform, or choosing the size.

use crate::calib::data::ModelInput;
use crate::graph::normalize::{NormalizeOptions, normalize};
use crate::graph::shape::ValueType;
use crate::graph::{GraphError, Model};
use crate::onnx::proto::type_proto;
use std::collections::BTreeSet;

/// Why a model could not run at another batch size.
#[derive(Debug, thiserror::Error)]
pub enum RebatchError {
    /// Normalizing at the new batch failed (typically a shape hard-coded for the declared batch).
    #[error("normalizing at batch {batch} fails: {source}")]
    Normalize { batch: usize, source: GraphError },
    /// A graph input has no dimension to use as the batch.
    #[error("graph input '{input}' has no batch dimension")]
    NoBatchDim { input: String },
    /// The model at the new batch is not the declared model with a different batch.
    #[error(
        "at batch {batch} the model is not the batch-{declared} model with more samples: {what}"
    )]
    Differs {
        batch: usize,
        declared: usize,
        what: String,
    },
}

/// Normalizes `original` (a model as loaded, not yet normalized) with `opts`, but with the
/// first dimension of every one of `inputs` (the declared model's inputs) set to `batch`,
/// whatever the file or `inputs:` fixed it to.
pub fn normalize_at_batch(
    mut original: Model,
    opts: &NormalizeOptions,
    inputs: &[ModelInput],
    batch: usize,
) -> Result<Model, RebatchError> {
    let mut opts = opts.clone();
    for input in inputs {
        let no_batch = || RebatchError::NoBatchDim {
            input: input.name.clone(),
        };
        let (_, sample) = input.dims.split_first().ok_or_else(no_batch)?;
        let mut dims = vec![batch as i64];
        dims.extend_from_slice(sample);
        opts.input_shapes.insert(input.name.clone(), dims);
        forget_batch_dim(&mut original, &input.name).ok_or_else(no_batch)?;
    }
    normalize(&mut original, &opts, &crate::fold_evaluator)
        .map_err(|source| RebatchError::Normalize { batch, source })?;
    Ok(original)
}

/// Marks graph input `name`'s first dimension unknown, so normalization accepts a new size for
/// it; `None` when the input has no known rank.
fn forget_batch_dim(model: &mut Model, name: &str) -> Option<()> {
    let info = model
        .graph
        .inputs
        .iter_mut()
        .find(|i| i.name.as_deref() == Some(name))?;
    let Some(type_proto::Value::TensorType(tensor)) = info.r#type.as_mut()?.value.as_mut() else {
        return None;
    };
    tensor.shape.as_mut()?.dim.first_mut()?.value = None;
    Some(())
}

/// Checks that `batched` is `declared` run at `batch` instead of `declared_batch` samples: the
/// same node names, and every graph output and every quantized activation (the input of a
/// QuantizeLinear that is not a weight) with `batch / declared_batch` times the elements —
/// for graph outputs, along the first axis with the other dims unchanged.
pub fn check_same_model(
    declared: &Model,
    batched: &Model,
    declared_batch: usize,
    batch: usize,
) -> Result<(), RebatchError> {
    let differs = |what: String| RebatchError::Differs {
        batch,
        declared: declared_batch,
        what,
    };
    let names = |m: &Model| -> BTreeSet<String> {
        m.graph
            .node_ids()
            .map(|id| m.graph.node(id).name.clone())
            .collect()
    };
    let (want, got) = (names(declared), names(batched));
    if let Some(name) = want.symmetric_difference(&got).next() {
        let side = if want.contains(name) {
            "is missing"
        } else {
            "is new"
        };
        return Err(differs(format!("node '{name}' {side}")));
    }
    let dims = |m: &Model, value: &str| -> Option<Vec<i64>> {
        ValueType::from_value_info(m.graph.value_info(value)?)?.static_dims()
    };
    let (b, n) = (declared_batch as i64, batch as i64);
    for output in declared
        .graph
        .outputs
        .iter()
        .filter_map(|o| o.name.as_deref())
    {
        let (Some(want), Some(got)) = (dims(declared, output), dims(batched, output)) else {
            continue;
        };
        let scaled = match (want.split_first(), got.split_first()) {
            (Some((w0, w_rest)), Some((g0, g_rest))) => w_rest == g_rest && g0 * b == w0 * n,
            _ => false,
        };
        if !scaled {
            return Err(differs(format!(
                "graph output '{output}' is {got:?} instead of {want:?} with the first dim scaled"
            )));
        }
    }
    let g = &declared.graph;
    for id in g.node_ids() {
        let node = g.node(id);
        let Some(value) = node.input(0) else { continue };
        if node.op_type != "QuantizeLinear" || g.initializer(value).is_some() {
            continue;
        }
        let count = |dims: Option<Vec<i64>>| dims.map(|d| d.iter().product::<i64>());
        if let (Some(want), Some(got)) = (count(dims(declared, value)), count(dims(batched, value)))
            && got * b != want * n
        {
            return Err(differs(format!(
                "quantized tensor '{value}' holds {got} elements instead of {want} × {batch}/{declared_batch}"
            )));
        }
    }
    Ok(())
}
