//! Finding a usable GPU: the driver library, a device, NVRTC and cuBLAS, checked in that order
//! without ever letting cudarc panic (it panics when asked to use a library it cannot load).
//!
//! Owns: [`probe`], [`DeviceInfo`] and [`CudaUnavailable`] (what is missing, worded for a user).
//! Does not own: creating the backend's context or compiling kernels.

use cudarc::driver::{CudaContext, result as driver};

/// Why the CUDA backend cannot run here; each names what is missing and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CudaUnavailable {
    /// libcuda (the driver's user-space library) could not be loaded.
    #[error(
        "the CUDA driver library (libcuda.so.1) was not found: install the NVIDIA driver, or put the folder holding libcuda.so.1 on LD_LIBRARY_PATH"
    )]
    NoDriverLibrary,
    /// cuInit failed (no kernel module, a driver/library mismatch, no permission).
    #[error(
        "the CUDA driver did not initialize ({0}): check that `nvidia-smi` sees the GPU and that the driver supports CUDA 13"
    )]
    DriverInit(String),
    /// The driver works but sees no device.
    #[error("the CUDA driver sees no GPU (CUDA_VISIBLE_DEVICES may hide them)")]
    NoDevice,
    /// The device could not be opened.
    #[error("GPU {ordinal} could not be opened: {message}")]
    Context {
        /// The device's ordinal.
        ordinal: usize,
        /// The driver's error.
        message: String,
    },
    /// libnvrtc (the run-time CUDA C compiler) could not be loaded.
    #[error(
        "NVRTC (libnvrtc.so.13) was not found: install the CUDA 13 toolkit, or `pip install nvidia-cuda-nvrtc` and put its nvidia/cu13/lib folder on LD_LIBRARY_PATH"
    )]
    NoNvrtc,
    /// libcublas could not be loaded.
    #[error(
        "cuBLAS (libcublas.so.13) was not found: install the CUDA 13 toolkit, or `pip install nvidia-cublas` and put its nvidia/cu13/lib folder on LD_LIBRARY_PATH"
    )]
    NoCublas,
}

/// The GPU the CUDA backend would run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device ordinal (always 0: trtq uses the first visible GPU).
    pub ordinal: usize,
    /// The device's name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Compute capability (major, minor), e.g. (9, 0).
    pub compute_capability: (i32, i32),
    /// Device memory in bytes.
    pub total_memory: usize,
    /// Free device memory in bytes when probed.
    pub free_memory: usize,
}

impl std::fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (major, minor) = self.compute_capability;
        write!(
            f,
            "cuda:{} ({}, sm_{major}{minor}, {:.1} GiB)",
            self.ordinal,
            self.name,
            self.total_memory as f64 / f64::from(1u32 << 30)
        )
    }
}

/// True when the driver library can be loaded (cudarc panics on first use otherwise).
pub(crate) fn driver_library_present() -> bool {
    // SAFETY: only tries to dlopen the library names; nothing is called through it.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// True when libnvrtc can be loaded.
pub(crate) fn nvrtc_library_present() -> bool {
    // SAFETY: as above.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// True when libcublas can be loaded.
pub(crate) fn cublas_library_present() -> bool {
    // SAFETY: as above.
    unsafe { cudarc::cublas::sys::is_culib_present() }
}

/// Finds the GPU the backend would use, or says what is missing: the driver library, a working
/// driver, a device, NVRTC, cuBLAS (checked in that order).
pub fn probe() -> Result<DeviceInfo, CudaUnavailable> {
    if !driver_library_present() {
        return Err(CudaUnavailable::NoDriverLibrary);
    }
    driver::init().map_err(|e| CudaUnavailable::DriverInit(e.to_string()))?;
    let count =
        driver::device::get_count().map_err(|e| CudaUnavailable::DriverInit(e.to_string()))?;
    if count < 1 {
        return Err(CudaUnavailable::NoDevice);
    }
    let ordinal = 0;
    let context_error = |e: cudarc::driver::DriverError| CudaUnavailable::Context {
        ordinal,
        message: e.to_string(),
    };
    let context = CudaContext::new(ordinal).map_err(context_error)?;
    let name = context.name().map_err(context_error)?;
    let compute_capability = context.compute_capability().map_err(context_error)?;
    let (free_memory, total_memory) = context.mem_get_info().map_err(context_error)?;
    if !nvrtc_library_present() {
        return Err(CudaUnavailable::NoNvrtc);
    }
    if !cublas_library_present() {
        return Err(CudaUnavailable::NoCublas);
    }
    Ok(DeviceInfo {
        ordinal,
        name,
        compute_capability,
        total_memory,
        free_memory,
    })
}
