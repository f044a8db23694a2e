//! Calibration device selection through the CLI, on the machine the test runs on.
//!
//! Without a usable GPU (CI, or a build without the `cuda` feature) — the case this machine
//! tests for real: `--device cuda` exits 3 with one `error:` line that names what is missing and
//! writes nothing, and `--device auto` calibrates on the CPU and says so on stderr. With a GPU
//! (feature `cuda`, a driver, NVRTC and cuBLAS), both run on it and say which device.

use std::path::Path;
use std::process::{Command, Output};

fn demo_config() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/demo.yaml"))
}

fn build(device: &str, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trtq"))
        .args(["build", "--cpu", "--device", device, "--out"])
        .arg(out)
        .arg(demo_config())
        .output()
        .expect("the trtq binary runs")
}

/// The GPU the backend would use, or why none (`Err` names what is missing).
fn usable_gpu() -> Result<String, String> {
    #[cfg(feature = "cuda")]
    {
        trtq::exec::cuda::probe()
            .map(|info| info.to_string())
            .map_err(|e| e.to_string())
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err("built without the `cuda` feature".into())
    }
}

#[test]
fn device_cuda_without_a_gpu_is_exit_3_naming_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let result = build("cuda", &out);
    let stderr = String::from_utf8_lossy(&result.stderr);
    match usable_gpu() {
        Ok(gpu) => {
            assert_eq!(result.status.code(), Some(0), "{stderr}");
            assert!(
                stderr.contains("calibration device: cuda:0"),
                "{gpu}: {stderr}"
            );
        }
        Err(why) => {
            assert_eq!(result.status.code(), Some(3), "{stderr}");
            let error = stderr
                .lines()
                .find(|l| l.starts_with("error:"))
                .unwrap_or_else(|| panic!("no error line: {stderr}"));
            assert!(error.contains("calibration.device is cuda"), "{error}");
            assert!(
                error.contains(&why),
                "expected the reason '{why}' in: {error}"
            );
            assert!(!out.exists(), "a failed run wrote {}", out.display());
        }
    }
}

#[test]
fn device_auto_says_which_device_it_used() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let result = build("auto", &out);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(0), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("calibration device:"))
        .unwrap_or_else(|| panic!("no device line: {stderr}"));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let recorded = summary["calibration"]["device"]
        .as_str()
        .unwrap()
        .to_string();
    match usable_gpu() {
        Ok(gpu) => {
            assert!(line.contains(&gpu), "{line}");
            assert_eq!(recorded, gpu);
        }
        Err(why) => {
            assert!(line.contains("calibration device: cpu"), "{line}");
            // The line says why the GPU was not used.
            assert!(line.contains(&why), "expected '{why}' in: {line}");
            assert_eq!(recorded, "cpu");
        }
    }
}
