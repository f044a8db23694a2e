//! Every CUDA kernel source compiles with NVRTC, without warnings, for a fixed architecture
//! (sm_90, the H100/H200), and defines exactly the entry points the backend launches.
//!
//! Needs only libnvrtc (no GPU, no driver). When it cannot be found the test skips with a
//! message, except where `TRTQ_REQUIRE_NVRTC=1` (scripts/test.sh sets it after installing the
//! `nvidia-cuda-nvrtc` wheel): there a missing NVRTC fails.
#![cfg(feature = "cuda")]

use trtq::exec::cuda::kernels::SOURCES;
use trtq::exec::cuda::nvrtc::{self, CompileError, Output};

const ARCH: &str = "sm_90";

/// NVRTC's version, or `None` after saying why the test skips (panics where it is required).
fn nvrtc_or_skip() -> Option<(i32, i32)> {
    match nvrtc::version() {
        Ok(version) => Some(version),
        Err(e) if std::env::var("TRTQ_REQUIRE_NVRTC").as_deref() == Ok("1") => {
            panic!("TRTQ_REQUIRE_NVRTC=1 but {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            None
        }
    }
}

/// Names of the `extern "C" __global__ void NAME(` functions of a source text.
fn declared_entry_points(text: &str) -> Vec<String> {
    text.split("extern \"C\" __global__ void ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next())
        .map(|name| name.trim().to_string())
        .collect()
}

#[test]
fn every_kernel_source_compiles_clean_for_sm_90() {
    let Some((major, minor)) = nvrtc_or_skip() else {
        return;
    };
    eprintln!("NVRTC {major}.{minor}");
    for source in SOURCES {
        let cubin = nvrtc::compile(source, ARCH, Output::Cubin).unwrap_or_else(|e| panic!("{e}"));
        // An ELF image: what cuModuleLoadData takes for this architecture.
        assert_eq!(&cubin[..4], b"\x7fELF", "{}: not a cubin", source.name);
        let ptx = nvrtc::compile(source, ARCH, Output::Ptx).unwrap_or_else(|e| panic!("{e}"));
        let ptx = String::from_utf8_lossy(&ptx);
        let mut declared = declared_entry_points(source.text);
        declared.sort();
        let mut listed: Vec<String> = source.entry_points.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(
            declared, listed,
            "{}: entry points in the .cu vs kernels.rs",
            source.name
        );
        for entry in source.entry_points {
            assert!(
                ptx.contains(&format!(".entry {entry}(")),
                "{}: no kernel {entry} in the PTX",
                source.name
            );
        }
    }
}

#[test]
fn a_warning_or_an_error_fails_compilation() {
    if nvrtc_or_skip().is_none() {
        return;
    }
    let warns = trtq::exec::cuda::kernels::KernelSource {
        name: "warns",
        text: "extern \"C\" __global__ void k(float* y) { int unused; y[0] = 1.0f; }",
        entry_points: &["k"],
    };
    assert!(matches!(
        nvrtc::compile(&warns, ARCH, Output::Cubin),
        Err(CompileError::Warnings { .. })
    ));
    let broken = trtq::exec::cuda::kernels::KernelSource {
        name: "broken",
        text: "extern \"C\" __global__ void k(float* y) { y[0] = undefined_name; }",
        entry_points: &["k"],
    };
    let error = nvrtc::compile(&broken, ARCH, Output::Cubin).unwrap_err();
    assert!(
        matches!(error, CompileError::Failed { .. })
            && error.to_string().contains("undefined_name"),
        "{error}"
    );
    assert!(matches!(
        nvrtc::compile(&broken, "compute_90", Output::Cubin),
        Err(CompileError::BadArch(_))
    ));
}
