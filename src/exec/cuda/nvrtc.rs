//! Compiling the kernel sources with NVRTC for the GPU's architecture, once per process.
//!
//! Owns: the compiler options (IEEE single precision: no FMA contraction, no flush-to-zero,
//! exact division and square root; those make the statistics kernels bit-identical to the CPU),
//! turning NVRTC's log into errors (a warning is an error: kernels must compile clean), and the
//! process-wide cache of compiled images keyed by source and architecture.
//! Does not own: loading images into a context (the backend) or the sources ([`super::kernels`]).
//!
//! Runs without a GPU: only libnvrtc is needed (see the module doc of [`super`] for how it is
//! found).

use super::kernels::{KernelSource, PRELUDE};
use cudarc::nvrtc::{result, sys};
use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char};
use std::sync::{Arc, Mutex, OnceLock};

/// Why a kernel source could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// libnvrtc could not be loaded.
    #[error(
        "NVRTC (libnvrtc.so.13) was not found: install the CUDA 13 toolkit, or `pip install nvidia-cuda-nvrtc` and put its nvidia/cu13/lib folder on LD_LIBRARY_PATH"
    )]
    NoLibrary,
    /// The target is not `sm_XY` (a real architecture: the image is a cubin).
    #[error("'{0}' is not a GPU architecture of the form sm_90")]
    BadArch(String),
    /// An NVRTC call failed outside compilation.
    #[error("kernels/{source_name}.cu: NVRTC {call} failed: {message}")]
    Nvrtc {
        /// The source.
        source_name: &'static str,
        /// The NVRTC function.
        call: &'static str,
        /// NVRTC's error.
        message: String,
    },
    /// Compilation failed; the log says where.
    #[error("kernels/{source_name}.cu does not compile for {arch}:\n{log}")]
    Failed {
        /// The source.
        source_name: &'static str,
        /// The target architecture.
        arch: String,
        /// NVRTC's log.
        log: String,
    },
    /// Compilation succeeded with warnings (treated as errors).
    #[error("kernels/{source_name}.cu compiles for {arch} with warnings:\n{log}")]
    Warnings {
        /// The source.
        source_name: &'static str,
        /// The target architecture.
        arch: String,
        /// NVRTC's log.
        log: String,
    },
}

/// What a compilation produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// Machine code for exactly this architecture (loaded without JIT).
    Cubin,
    /// PTX for the matching virtual architecture (`compute_XY`), readable text.
    Ptx,
}

/// The options every source is compiled with, for architecture `arch` (`sm_XY`).
pub fn options(arch: &str, output: Output) -> Vec<String> {
    let target = match output {
        Output::Cubin => arch.to_string(),
        Output::Ptx => arch.replacen("sm_", "compute_", 1),
    };
    vec![
        format!("--gpu-architecture={target}"),
        "--std=c++17".into(),
        "--fmad=false".into(),
        "--ftz=false".into(),
        "--prec-div=true".into(),
        "--prec-sqrt=true".into(),
    ]
}

/// The architecture name of a compute capability, e.g. (9, 0) → "sm_90".
pub fn arch_of(compute_capability: (i32, i32)) -> String {
    format!("sm_{}{}", compute_capability.0, compute_capability.1)
}

/// NVRTC's version (major, minor), or [`CompileError::NoLibrary`].
pub fn version() -> Result<(i32, i32), CompileError> {
    if !super::probe::nvrtc_library_present() {
        return Err(CompileError::NoLibrary);
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: both pointers are valid for writes; the library is loaded (checked above).
    let status = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    status.result().map_err(|e| CompileError::Nvrtc {
        source_name: "(none)",
        call: "nvrtcVersion",
        message: format!("{e:?}"),
    })?;
    Ok((major, minor))
}

/// Owns an NVRTC program and destroys it on drop.
struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: the program was created by nvrtcCreateProgram and is destroyed once.
        // A failure to free is not actionable here.
        let _ = unsafe { result::destroy_program(self.0) };
    }
}

fn text_of(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars.iter().map(|&c| c as u8).collect();
    CStr::from_bytes_until_nul(&bytes)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned())
}

/// Compiles `source` (with the prelude) for `arch` (`sm_XY`) and returns the image: cubin bytes,
/// or PTX text bytes (NUL-terminated, as the driver loads it). Any warning is an error.
pub fn compile(source: &KernelSource, arch: &str, output: Output) -> Result<Vec<u8>, CompileError> {
    let digits = arch.strip_prefix("sm_").unwrap_or("");
    if digits.len() < 2 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(CompileError::BadArch(arch.to_string()));
    }
    if !super::probe::nvrtc_library_present() {
        return Err(CompileError::NoLibrary);
    }
    let nvrtc_error = |call: &'static str| {
        move |e: result::NvrtcError| CompileError::Nvrtc {
            source_name: source.name,
            call,
            message: format!("{e:?}"),
        }
    };
    let text =
        CString::new(format!("{PRELUDE}\n{}", source.text)).map_err(|_| CompileError::Failed {
            source_name: source.name,
            arch: arch.to_string(),
            log: "the source contains a NUL byte".into(),
        })?;
    let name = CString::new(format!("{}.cu", source.name))
        .map_err(|_| CompileError::BadArch(arch.into()))?;
    let program = Program(
        result::create_program(&text, Some(&name)).map_err(nvrtc_error("nvrtcCreateProgram"))?,
    );
    let opts = options(arch, output);
    // SAFETY: the program is live; options are valid C strings (built from ASCII).
    let compiled = unsafe { result::compile_program(program.0, &opts) };
    // SAFETY: as above.
    let log = unsafe { result::get_program_log(program.0) }
        .map(|l| text_of(&l))
        .map_err(nvrtc_error("nvrtcGetProgramLog"))?;
    let log = log.trim().to_string();
    if compiled.is_err() {
        return Err(CompileError::Failed {
            source_name: source.name,
            arch: arch.to_string(),
            log,
        });
    }
    if !log.is_empty() {
        return Err(CompileError::Warnings {
            source_name: source.name,
            arch: arch.to_string(),
            log,
        });
    }
    match output {
        Output::Ptx => {
            // SAFETY: the program compiled.
            let ptx = unsafe { result::get_ptx(program.0) }.map_err(nvrtc_error("nvrtcGetPTX"))?;
            Ok(ptx.into_iter().map(|c| c as u8).collect())
        }
        Output::Cubin => {
            let mut size = 0usize;
            // SAFETY: the program compiled for a real architecture; `size` is valid for writes.
            unsafe { sys::nvrtcGetCUBINSize(program.0, &mut size) }
                .result()
                .map_err(nvrtc_error("nvrtcGetCUBINSize"))?;
            let mut cubin = vec![0u8; size];
            // SAFETY: `cubin` holds exactly the size NVRTC reported.
            unsafe { sys::nvrtcGetCUBIN(program.0, cubin.as_mut_ptr().cast()) }
                .result()
                .map_err(nvrtc_error("nvrtcGetCUBIN"))?;
            Ok(cubin)
        }
    }
}

type Cache = Mutex<HashMap<(&'static str, String), Arc<Vec<u8>>>>;

/// The cubin of `source` for `arch`, compiled on first use and then shared for the process.
pub fn cubin(source: &KernelSource, arch: &str) -> Result<Arc<Vec<u8>>, CompileError> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Cache::default);
    let key = (source.name, arch.to_string());
    if let Some(image) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(image);
    }
    let image = Arc::new(compile(source, arch, Output::Cubin)?);
    if let Ok(mut c) = cache.lock() {
        c.entry(key).or_insert_with(|| image.clone());
    }
    Ok(image)
}
