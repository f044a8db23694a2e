//! On-device calibration statistics of one tensor of one batch: only the scalars and the
//! histogram counts are copied to the host, never the tensor.
//!
//! Owns: the launch protocol — (a) `range_stats` (finite abs-max/abs-min, finite min/max,
//! finite/NaN/Inf counts), (b) the sink picks the bin exponent `e` from the batch's abs-max
//! (the host side of the rule, shared with the CPU collectors), (c) `fine_histogram` bins
//! finite |x| as `floor(|x| · 2^-e)` into [`FINE_BINS`] u64 counts. Does not own: the rule's
//! constants and merge (the collectors in `calib`) or the kernels (`kernels/stats.cu`).

use super::gpu::{Gpu, device_error};
use super::kernels::FINE_BINS;
use super::ops::launch;
use super::value::to_host;
use crate::exec::{BatchRange, BatchStats, ExecError, StatsSink};
use cudarc::driver::{CudaSlice, PushKernelArg};

/// Order-preserving u32 key of a float (as in stats.cu).
fn order_key(value: f32) -> u32 {
    let bits = value.to_bits();
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// The float of an [`order_key`].
fn from_order_key(key: u32) -> f32 {
    f32::from_bits(if key & 0x8000_0000 != 0 {
        key & 0x7fff_ffff
    } else {
        !key
    })
}

/// `2^-exponent` as an exact f32, or `None` when it is not a normal f32.
fn inverse_width(exponent: i32) -> Option<f32> {
    let biased = 127 - exponent;
    (1..=254)
        .contains(&biased)
        .then(|| f32::from_bits((biased as u32) << 23))
}

/// Statistics of the float32 buffer `x` (one batch of `value`), binned at the exponent `sink`
/// chooses.
pub(crate) fn batch_stats(
    gpu: &Gpu,
    x: &CudaSlice<f32>,
    value: &str,
    sink: &dyn StatsSink,
) -> Result<BatchStats, ExecError> {
    let copy = |e| device_error("statistics copy", e);
    let n = x.len() as i64;
    let initial = [
        0u32,
        f32::MAX.to_bits(),
        order_key(f32::MAX),
        order_key(-f32::MAX),
    ];
    let mut keys = gpu.stream.clone_htod(&initial).map_err(copy)?;
    let mut counts = gpu
        .stream
        .alloc_zeros::<u64>(3)
        .map_err(|e| device_error("cuMemAlloc", e))?;
    launch!(
        gpu,
        "range_stats",
        gpu.grid_with(x.len(), 8),
        x,
        &n,
        &mut keys,
        &mut counts
    )?;
    let keys = to_host(gpu, &keys)?;
    let counts = to_host(gpu, &counts)?;
    let (&[abs_max, abs_min, min, max], &[finite, nan, inf]) = (keys.as_slice(), counts.as_slice())
    else {
        return Err(ExecError::Device(
            "range_stats returned a short result".into(),
        ));
    };
    let range = BatchRange {
        abs_max: f32::from_bits(abs_max),
        abs_min: f32::from_bits(abs_min),
        min: from_order_key(min),
        max: from_order_key(max),
        finite,
        nan,
        inf,
    };
    if !sink.wants_histogram(value) {
        return Ok(BatchStats {
            range,
            exponent: 0,
            bins: Vec::new(),
        });
    }
    let exponent = sink.exponent(value, range.abs_max);
    let scale = inverse_width(exponent).ok_or_else(|| {
        ExecError::Device(format!(
            "bin exponent {exponent} of '{value}' is outside the normal f32 range"
        ))
    })?;
    let mut bins = gpu
        .stream
        .alloc_zeros::<u64>(FINE_BINS)
        .map_err(|e| device_error("cuMemAlloc", e))?;
    if finite > 0 {
        let mut config = gpu.grid_with(x.len(), 2);
        config.shared_mem_bytes = (FINE_BINS * 4) as u32;
        launch!(gpu, "fine_histogram", config, x, &n, &scale, &mut bins)?;
    }
    Ok(BatchStats {
        range,
        exponent,
        bins: to_host(gpu, &bins)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys_sort_like_floats_and_round_trip() {
        let values = [-f32::MAX, -2.5, -0.0, 0.0, 1e-40, 3.0, f32::MAX];
        for pair in values.windows(2) {
            assert!(order_key(pair[0]) <= order_key(pair[1]), "{pair:?}");
        }
        for v in values {
            assert_eq!(from_order_key(order_key(v)).to_bits(), v.to_bits());
        }
    }

    #[test]
    fn inverse_width_is_an_exact_power_of_two() {
        assert_eq!(inverse_width(0), Some(1.0));
        assert_eq!(inverse_width(3), Some(0.125));
        assert_eq!(inverse_width(-20), Some(1_048_576.0));
        assert_eq!(inverse_width(127), None);
        assert_eq!(inverse_width(-128), None);
    }
}
