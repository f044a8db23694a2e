//! Weight amaxes: per-channel abs-max taken from the weights themselves.
//!
//! Owns only the statistic (one [`AmaxResult`] per channel, floored and with warnings as for
//! activations). Which axis is the channel axis for which op, and turning amaxes into scales and
//! int8 data, belong to the quantize stage.

use ndarray::{ArrayViewD, Axis};
use rayon::prelude::*;

use super::amax::AmaxResult;
use super::collectors::{Collector, MaxCollector};
use super::error::CalibError;

/// The abs-max of every slice of `weights` along `axis` (e.g. axis 0 of a Conv weight gives one
/// amax per output channel). An all-zero or non-finite channel gets the floor and a warning.
pub fn per_channel_amax(
    weights: ArrayViewD<'_, f32>,
    axis: usize,
) -> Result<Vec<AmaxResult>, CalibError> {
    let rank = weights.ndim();
    if axis >= rank {
        return Err(CalibError::AxisOutOfRange { axis, rank });
    }
    let channels = weights.len_of(Axis(axis));
    (0..channels)
        .into_par_iter()
        .map(|channel| {
            let mut collector = MaxCollector::default();
            collector.observe_array(weights.index_axis(Axis(axis), channel));
            collector.amax()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calib::amax::{AMAX_FLOOR, AmaxWarning};
    use ndarray::{Array, IxDyn};

    #[test]
    fn per_channel_along_each_axis() {
        // w[o, i] = (o + 1) * (i + 1) * sign, shape 3 x 4.
        let weights = Array::from_shape_fn(IxDyn(&[3, 4]), |index| {
            let (o, i) = (index[0] as f32 + 1.0, index[1] as f32 + 1.0);
            if (index[0] + index[1]) % 2 == 0 {
                o * i
            } else {
                -o * i
            }
        });
        let rows: Vec<f32> = per_channel_amax(weights.view(), 0)
            .unwrap()
            .iter()
            .map(|result| result.amax)
            .collect();
        assert_eq!(rows, vec![4.0, 8.0, 12.0]);
        let columns: Vec<f32> = per_channel_amax(weights.view(), 1)
            .unwrap()
            .iter()
            .map(|result| result.amax)
            .collect();
        assert_eq!(columns, vec![3.0, 6.0, 9.0, 12.0]);
    }

    #[test]
    fn dead_channel_is_floored_with_a_warning() {
        let mut weights = Array::from_elem(IxDyn(&[2, 3, 3]), 0.5f32);
        weights.index_axis_mut(Axis(0), 1).fill(0.0);
        let amaxes = per_channel_amax(weights.view(), 0).unwrap();
        assert_eq!(amaxes[0].amax, 0.5);
        assert_eq!(amaxes[1].amax, AMAX_FLOOR);
        assert_eq!(amaxes[1].warnings, vec![AmaxWarning::AllZero]);
    }

    #[test]
    fn axis_beyond_rank_is_an_error() {
        let weights = Array::<f32, _>::zeros(IxDyn(&[2, 2]));
        assert!(matches!(
            per_channel_amax(weights.view(), 2),
            Err(CalibError::AxisOutOfRange { axis: 2, rank: 2 })
        ));
    }
}
