//! The `kind: synthetic` form: seeded uniform random values in [0, 1), for smoke and latency
//! runs where no real data is at hand (the scales it gives say nothing about accuracy).
//!
//! Owns: the generator (SplitMix64, a counter-based PRNG: jumping ahead by `n` values is one
//! addition, so `skip` costs nothing) and filling each input. Input `i` draws from its own
//! stream seeded with `seed ^ mix(i)`, and sample `k` of an input always holds the same values
//! whatever the batch size or `skip`. Float inputs get uniform [0, 1) values (float32 from 24
//! random bits, float64 from 53, float16 from 11, so none rounds up to 1); integer and bool
//! inputs get zeros (a valid index for any embedding table).
//! Does not own: batching ([`super`]).

use std::collections::HashMap;

use half::f16;
use ndarray::{ArrayD, IxDyn};

use super::npy::batch_dims;
use super::{DataError, ModelInput, SampleReader};
use crate::graph::Tensor;
use crate::onnx::proto::DataType;

/// SplitMix64's increment (the golden ratio in 64-bit fixed point).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The SplitMix64 generator (Steele, Lea, Flood 2014).
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose first output is `mix(seed + GAMMA)`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// Skips `count` outputs.
    pub fn advance(&mut self, count: u64) {
        self.state = self.state.wrapping_add(GAMMA.wrapping_mul(count));
    }
}

/// One input's generator and shape.
struct InputStream {
    name: String,
    dtype: DataType,
    sample_dims: Vec<usize>,
    values_per_sample: usize,
    rng: SplitMix64,
}

impl InputStream {
    /// The next `count` samples of this input.
    fn tensor(&mut self, count: usize) -> Tensor {
        let shape = IxDyn(&batch_dims(count, &self.sample_dims));
        let rng = &mut self.rng;
        match self.dtype {
            DataType::Float => {
                let scale = (-24f32).exp2();
                Tensor::F32(ArrayD::from_shape_fn(shape, |_| {
                    (rng.next_u64() >> 40) as f32 * scale
                }))
            }
            DataType::Double => {
                let scale = (-53f64).exp2();
                Tensor::F64(ArrayD::from_shape_fn(shape, |_| {
                    (rng.next_u64() >> 11) as f64 * scale
                }))
            }
            DataType::Float16 => {
                let scale = (-11f32).exp2();
                Tensor::F16(ArrayD::from_shape_fn(shape, |_| {
                    f16::from_f32((rng.next_u64() >> 53) as f32 * scale)
                }))
            }
            DataType::Int8 => Tensor::I8(ArrayD::zeros(shape)),
            DataType::Uint8 => Tensor::U8(ArrayD::zeros(shape)),
            DataType::Int32 => Tensor::I32(ArrayD::zeros(shape)),
            DataType::Bool => Tensor::Bool(ArrayD::from_elem(shape, false)),
            _ => Tensor::I64(ArrayD::zeros(shape)),
        }
    }
}

/// Whether synthetic data can fill an input of this element type.
fn supported(dtype: DataType) -> bool {
    matches!(
        dtype,
        DataType::Float
            | DataType::Double
            | DataType::Float16
            | DataType::Int8
            | DataType::Uint8
            | DataType::Int32
            | DataType::Int64
            | DataType::Bool
    )
}

/// Endless seeded samples for every model input.
pub struct SyntheticSamples {
    inputs: Vec<InputStream>,
}

impl SyntheticSamples {
    /// Generators for `inputs`, seeded from `seed`.
    pub fn new(seed: u64, inputs: &[ModelInput]) -> Result<Self, DataError> {
        let inputs = inputs
            .iter()
            .zip(0u64..)
            .map(|(input, index)| {
                if !supported(input.dtype) {
                    return Err(DataError::BadModelInput {
                        input: input.name.clone(),
                        reason: format!(
                            "synthetic data cannot fill element type {}",
                            input.dtype.as_str_name()
                        ),
                    });
                }
                let sample_dims = input.sample_dims()?;
                Ok(InputStream {
                    name: input.name.clone(),
                    dtype: input.dtype,
                    values_per_sample: sample_dims.iter().product(),
                    sample_dims,
                    rng: SplitMix64::new(seed ^ mix(index)),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { inputs })
    }
}

impl SampleReader for SyntheticSamples {
    fn skip(&mut self, count: usize) -> Result<(), DataError> {
        for input in &mut self.inputs {
            if matches!(
                input.dtype,
                DataType::Float | DataType::Double | DataType::Float16
            ) {
                let values = (count as u64).wrapping_mul(input.values_per_sample as u64);
                input.rng.advance(values);
            }
        }
        Ok(())
    }

    fn read(&mut self, count: usize) -> Result<HashMap<String, Tensor>, DataError> {
        Ok(self
            .inputs
            .iter_mut()
            .map(|input| (input.name.clone(), input.tensor(count)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // First outputs of the reference C implementation (Vigna's splitmix64.c) from seed 0.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn advance_equals_drawing() {
        let mut drawn = SplitMix64::new(7);
        (0..1000).for_each(|_| {
            drawn.next_u64();
        });
        let mut jumped = SplitMix64::new(7);
        jumped.advance(1000);
        assert_eq!(drawn.next_u64(), jumped.next_u64());
    }
}
