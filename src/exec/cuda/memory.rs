//! What `calibration.batch_size: auto` means on the GPU: the batch whose live memory fits the
//! device's free memory, estimated from the plan's peak live bytes at the model's declared batch.
//!
//! Owns: the static peak estimate (the [`Plan`]'s schedule over the shapes shape inference
//! recorded in the graph) and the rule that turns it into a batch size. Does not own: measuring
//! memory during a run (the backend's `peak_live_bytes`) or loading batches.

use crate::exec::{ExecError, Plan};
use crate::graph::Model;
use crate::onnx::proto::{DataType, ValueInfoProto, tensor_shape_proto::dimension, type_proto};

/// Largest batch `auto` picks (the data loaders' batches are held in host memory too).
pub const MAX_AUTO_BATCH: usize = 256;

/// Share of the free device memory the live values may take (the rest: cuBLAS workspace,
/// im2col buffers, the allocator's slack).
const FREE_MEMORY_SHARE: f64 = 0.5;

/// Bytes of a value whose type and shape are fully known.
fn static_bytes(value: &ValueInfoProto) -> Option<usize> {
    let Some(type_proto::Value::TensorType(tensor)) = value.r#type.as_ref()?.value.as_ref() else {
        return None;
    };
    let element = DataType::try_from(tensor.elem_type?).ok()?.byte_size()?;
    let count = tensor
        .shape
        .as_ref()?
        .dim
        .iter()
        .try_fold(1usize, |acc, d| match d.value {
            Some(dimension::Value::DimValue(v)) if v >= 0 => acc.checked_mul(v as usize),
            _ => None,
        })?;
    count.checked_mul(element)
}

/// The largest total of live bytes over `model`'s schedule (graph inputs and node outputs, not
/// initializers), from the graph's static shapes; `None` when some value has no static shape.
pub fn planned_peak_bytes(model: &Model) -> Result<Option<usize>, ExecError> {
    let plan = Plan::new(model)?;
    let graph = &model.graph;
    let size = |name: &str| graph.value_info(name).and_then(static_bytes);
    let mut live = 0usize;
    for name in &plan.inputs {
        let Some(bytes) = size(name) else {
            return Ok(None);
        };
        live += bytes;
    }
    let mut peak = live;
    for step in &plan.steps {
        for output in step.node.outputs.iter().filter(|o| !o.is_empty()) {
            let Some(bytes) = size(output) else {
                return Ok(None);
            };
            live += bytes;
        }
        peak = peak.max(live);
        for freed in &step.frees {
            live = live.saturating_sub(size(freed).unwrap_or(0));
        }
    }
    Ok(Some(peak))
}

/// The largest power-of-two batch (1 to [`MAX_AUTO_BATCH`]) whose live bytes, `per_sample`
/// times the batch, fit in half of `free_bytes`.
pub fn auto_batch(per_sample: usize, free_bytes: usize) -> usize {
    let budget = free_bytes as f64 * FREE_MEMORY_SHARE;
    let mut batch = 1;
    while batch * 2 <= MAX_AUTO_BATCH && (per_sample.max(1) * batch * 2) as f64 <= budget {
        batch *= 2;
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_batch_fits_half_the_free_memory() {
        let gib = 1usize << 30;
        // ResNet-50-like: ~40 MB of live activations per sample, 70 GiB free → capped at 256.
        assert_eq!(auto_batch(40_000_000, 70 * gib), MAX_AUTO_BATCH);
        // 1 GiB per sample, 10 GiB free: 4 samples take 4 GiB ≤ 5, 8 would take 8 > 5.
        assert_eq!(auto_batch(gib, 10 * gib), 4);
        // Nothing fits: still one sample at a time.
        assert_eq!(auto_batch(20 * gib, 10 * gib), 1);
    }

    #[test]
    fn planned_peak_of_the_demo_model_counts_live_values_only() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/demo/resnet_tiny.onnx");
        let mut model = crate::load(&path).unwrap();
        let opts = crate::graph::normalize::NormalizeOptions {
            opset: 17,
            input_shapes: [("input".to_string(), vec![1, 3, 32, 32])].into(),
        };
        crate::graph::normalize::normalize(&mut model, &opts, &crate::fold_evaluator).unwrap();
        let peak = planned_peak_bytes(&model)
            .unwrap()
            .expect("static shapes after normalize");
        let input = 3 * 32 * 32 * 4;
        // At least the input and one activation live together; far less than every value summed.
        let total: usize = model
            .graph
            .value_infos()
            .filter_map(static_bytes)
            .sum::<usize>()
            + input;
        assert!(
            peak > input && peak < total,
            "peak {peak}, input {input}, all values {total}"
        );
    }
}
