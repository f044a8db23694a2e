//! One GPU opened for the backend: context, stream, cuBLAS handle and every kernel loaded.
//!
//! Owns: creating the context (event tracking off: one stream orders everything), loading the
//! NVRTC images (compiled once per process, see [`super::nvrtc::cubin`]), the cuBLAS math mode
//! (TF32 off unless asked), launch geometry, and the conversions of driver/cuBLAS errors into
//! [`ExecError::Device`]. Does not own: what the kernels compute (`kernels/*.cu`) or when they
//! run (the backend).

use super::kernels::{FINE_BINS, SOURCES};
use super::{DeviceInfo, nvrtc};
use crate::exec::ExecError;
use cudarc::cublas::{CudaBlas, sys as blas_sys};
use cudarc::driver::sys::CUfunction_attribute;
use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::sync::Arc;

/// Threads per block of the elementwise-style kernels (and of the row kernels, which assume it).
pub(crate) const THREADS: u32 = 256;

/// A device failure as an [`ExecError`], naming what was being done.
pub(crate) fn device_error(what: &str, error: impl std::fmt::Display) -> ExecError {
    ExecError::Device(format!("{what}: {error}"))
}

/// The opened GPU.
pub(crate) struct Gpu {
    /// The device.
    pub info: DeviceInfo,
    /// Its primary context.
    pub context: Arc<CudaContext>,
    /// The one stream every copy, kernel and GEMM runs on, in order.
    pub stream: Arc<CudaStream>,
    /// cuBLAS on `stream`.
    pub blas: CudaBlas,
    functions: HashMap<&'static str, CudaFunction>,
    multiprocessors: u32,
}

impl Gpu {
    /// Opens `info`'s device, compiles (or takes from the process cache) and loads every kernel
    /// source for its architecture, and sets cuBLAS's math mode (`tf32`: allow TF32 tensor-core
    /// GEMMs; off, GEMMs are full FP32).
    pub fn open(info: DeviceInfo, tf32: bool) -> Result<Gpu, ExecError> {
        let context = CudaContext::new(info.ordinal).map_err(|e| device_error("cuCtx", e))?;
        // SAFETY: one stream orders every operation of this backend, so cudarc's per-buffer
        // events are not needed.
        unsafe { context.disable_event_tracking() };
        let stream = context
            .new_stream()
            .map_err(|e| device_error("cuStreamCreate", e))?;
        let arch = nvrtc::arch_of(info.compute_capability);
        let mut functions = HashMap::new();
        for source in SOURCES {
            let image =
                nvrtc::cubin(source, &arch).map_err(|e| ExecError::Device(e.to_string()))?;
            let module = context
                .load_module(Ptx::from_binary(image.as_ref().clone()))
                .map_err(|e| device_error(&format!("loading kernels/{}.cu", source.name), e))?;
            for &name in source.entry_points {
                let function = module
                    .load_function(name)
                    .map_err(|e| device_error(&format!("kernel {name}"), e))?;
                functions.insert(name, function);
            }
        }
        // The fine histogram keeps FINE_BINS u32 counters per block in dynamic shared memory.
        if let Some(histogram) = functions.get("fine_histogram") {
            histogram
                .set_attribute(
                    CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    (FINE_BINS * 4) as i32,
                )
                .map_err(|e| device_error("fine_histogram shared memory opt-in", e))?;
        }
        let blas = CudaBlas::new(stream.clone()).map_err(|e| device_error("cublasCreate", e))?;
        let mode = if tf32 {
            blas_sys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            blas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        // SAFETY: the handle is live for `blas`'s lifetime.
        unsafe { blas_sys::cublasSetMathMode(*blas.handle(), mode) }
            .result()
            .map_err(|e| device_error("cublasSetMathMode", e))?;
        let multiprocessors = context
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map_err(|e| device_error("cuDeviceGetAttribute", e))?
            .max(1) as u32;
        Ok(Gpu {
            info,
            context,
            stream,
            blas,
            functions,
            multiprocessors,
        })
    }

    /// The loaded kernel `name` (one of the sources' entry points).
    pub fn function(&self, name: &str) -> Result<&CudaFunction, ExecError> {
        self.functions
            .get(name)
            .ok_or_else(|| ExecError::Device(format!("no kernel named {name} was loaded")))
    }

    /// A grid-stride launch over `n` elements: `THREADS` per block, at most 32 blocks per
    /// multiprocessor (enough to fill the GPU; the loop covers the rest).
    pub fn grid(&self, n: usize) -> LaunchConfig {
        self.grid_with(n, 32)
    }

    /// As [`Gpu::grid`] with at most `blocks_per_sm` blocks per multiprocessor.
    pub fn grid_with(&self, n: usize, blocks_per_sm: u32) -> LaunchConfig {
        let wanted = n.div_ceil(THREADS as usize).max(1);
        let cap = (self.multiprocessors * blocks_per_sm) as usize;
        LaunchConfig {
            grid_dim: (wanted.min(cap) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// One block of `THREADS` per row, `rows` blocks (rows ≤ 2^31 - 1).
    pub fn rows(&self, rows: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (rows.max(1) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}
