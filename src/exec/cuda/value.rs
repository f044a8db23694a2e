//! Values of a run on the GPU: device buffers (float32, and int8/uint8 for Q/DQ) with their
//! shapes, or host tensors for everything else (shapes, indices, booleans: small, and read by
//! the host side of ops).
//!
//! Owns: [`Value`], uploads and downloads between [`Tensor`] and the device, byte sizes for the
//! live-memory count. Does not own: which values are live (the backend follows the [`Plan`]).
//!
//! [`Plan`]: crate::exec::Plan

use super::gpu::{Gpu, device_error};
use crate::exec::ExecError;
use crate::graph::Tensor;
use cudarc::driver::{CudaSlice, DeviceRepr};
use ndarray::{ArrayD, IxDyn};
use std::rc::Rc;

/// A device buffer of one element type.
pub(crate) enum DeviceData {
    /// float32.
    F32(CudaSlice<f32>),
    /// int8 (QuantizeLinear outputs).
    I8(CudaSlice<i8>),
    /// uint8.
    U8(CudaSlice<u8>),
}

/// A value of a run.
#[derive(Clone)]
pub(crate) enum Value {
    /// On the device; shape-only ops share the buffer (hence `Rc`).
    Device {
        /// The elements, row-major.
        data: Rc<DeviceData>,
        /// The shape.
        shape: Vec<usize>,
    },
    /// On the host.
    Host(Rc<Tensor>),
}

impl Value {
    /// A new float32 device value.
    pub fn f32(data: CudaSlice<f32>, shape: Vec<usize>) -> Value {
        Value::Device {
            data: Rc::new(DeviceData::F32(data)),
            shape,
        }
    }

    /// The float32 buffer and shape, when this is a float32 device value.
    pub fn as_f32(&self) -> Option<(&CudaSlice<f32>, &[usize])> {
        match self {
            Value::Device { data, shape } => match data.as_ref() {
                DeviceData::F32(d) => Some((d, shape)),
                _ => None,
            },
            Value::Host(_) => None,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::Device { shape, .. } => shape,
            Value::Host(t) => t.shape(),
        }
    }

    /// The same buffer seen with another shape (Reshape and friends; same element count).
    pub fn reshaped(&self, shape: Vec<usize>) -> Value {
        match self {
            Value::Device { data, .. } => Value::Device {
                data: data.clone(),
                shape,
            },
            Value::Host(t) => Value::Host(t.clone()),
        }
    }

    /// Bytes this value holds on the device (host values count 0).
    pub fn device_bytes(&self) -> usize {
        match self {
            Value::Device { data, .. } => match data.as_ref() {
                DeviceData::F32(d) => d.len() * 4,
                DeviceData::I8(d) => d.len(),
                DeviceData::U8(d) => d.len(),
            },
            Value::Host(_) => 0,
        }
    }
}

fn contiguous<T: Clone>(a: &ArrayD<T>) -> std::borrow::Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(a.iter().cloned().collect()),
    }
}

/// Copies a device buffer to a new host vector and waits for the copy: cudarc's copy into
/// pageable memory is asynchronous and only *might* complete before returning (CUDA's API
/// synchronization rules), so the stream is synchronized before the vector is read.
pub(crate) fn to_host<T: DeviceRepr>(gpu: &Gpu, data: &CudaSlice<T>) -> Result<Vec<T>, ExecError> {
    let values = gpu
        .stream
        .clone_dtoh(data)
        .map_err(|e| device_error("device → host copy", e))?;
    gpu.stream
        .synchronize()
        .map_err(|e| device_error("cuStreamSynchronize", e))?;
    Ok(values)
}

/// Uploads float32 / int8 / uint8 tensors (empty ones stay on the host: nothing to allocate);
/// other element types stay on the host.
pub(crate) fn upload(gpu: &Gpu, tensor: Tensor) -> Result<Value, ExecError> {
    let copy = |e| device_error("host → device copy", e);
    let shape = tensor.shape().to_vec();
    if tensor.is_empty() {
        return Ok(Value::Host(Rc::new(tensor)));
    }
    let data = match &tensor {
        Tensor::F32(a) => DeviceData::F32(
            gpu.stream
                .clone_htod(contiguous(a).as_ref())
                .map_err(copy)?,
        ),
        Tensor::I8(a) => DeviceData::I8(
            gpu.stream
                .clone_htod(contiguous(a).as_ref())
                .map_err(copy)?,
        ),
        Tensor::U8(a) => DeviceData::U8(
            gpu.stream
                .clone_htod(contiguous(a).as_ref())
                .map_err(copy)?,
        ),
        _ => return Ok(Value::Host(Rc::new(tensor))),
    };
    Ok(Value::Device {
        data: Rc::new(data),
        shape,
    })
}

/// The value as a host tensor (a device → host copy for device values).
pub(crate) fn download(gpu: &Gpu, value: &Value) -> Result<Tensor, ExecError> {
    let (data, shape) = match value {
        Value::Host(t) => return Ok(t.as_ref().clone()),
        Value::Device { data, shape } => (data, shape),
    };
    fn array<T>(shape: &[usize], values: Vec<T>) -> Result<ArrayD<T>, ExecError> {
        ArrayD::from_shape_vec(IxDyn(shape), values)
            .map_err(|_| ExecError::Device(format!("a device buffer does not fill {shape:?}")))
    }
    Ok(match data.as_ref() {
        DeviceData::F32(d) => Tensor::F32(array(shape, to_host(gpu, d)?)?),
        DeviceData::I8(d) => Tensor::I8(array(shape, to_host(gpu, d)?)?),
        DeviceData::U8(d) => Tensor::U8(array(shape, to_host(gpu, d)?)?),
    })
}
