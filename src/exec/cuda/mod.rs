//! The CUDA executor (feature `cuda`): a [`Backend`](super::Backend) whose tensors live on one
//! NVIDIA GPU, with calibration statistics computed on the device.
//!
//! Owns: finding a usable GPU and saying what is missing when there is none ([`probe`]), the
//! CUDA C kernel sources and their run-time compilation with NVRTC ([`kernels`], [`nvrtc`]),
//! and, on a GPU, the device backend. Every library (libcuda, libnvrtc, libcublas) is opened with
//! `dlopen` at run time by cudarc, so this module builds and its no-GPU paths run on machines
//! with no CUDA toolkit and no driver.
//! Does not own: the schedule ([`super::Plan`]), the CPU kernels it falls back to for ops it has
//! no kernel for ([`super::cpu::eval_node`]), or how statistics become amaxes (`calib`).
//!
//! Library lookup: cudarc 0.19 (feature `cuda-13000`) tries, through the system's dynamic loader
//! (so `LD_LIBRARY_PATH`, then the ld.so cache), the names `lib{name}.so`, `lib{name}64*.so`
//! and `lib{name}.so.13` / `.12` / `.11` / `.10` / `.9` / `.1` for `name` in `cuda`, `nvrtc`,
//! `cublas`. The PyPI wheel `nvidia-cuda-nvrtc` (13.x) installs `nvidia/cu13/lib/libnvrtc.so.13`
//! under site-packages: put that folder on `LD_LIBRARY_PATH`.

mod backend;
mod dense;
mod gpu;
pub mod kernels;
mod memory;
pub mod nvrtc;
mod ops;
mod probe;
mod stats;
mod value;

pub use backend::CudaBackend;
pub use memory::{MAX_AUTO_BATCH, auto_batch, planned_peak_bytes};

pub use probe::{CudaUnavailable, DeviceInfo, probe};
