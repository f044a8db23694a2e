//! Finds the recorded TensorRT reports (../shared/trt-reports, see its PROVENANCE.md) for tests.

use std::path::PathBuf;

/// The recordings folder: `CARGO_MANIFEST_DIR/../shared/trt-reports`, else `$TRTQ_TRT_REPORTS`.
/// `None` (after saying why on stderr) when neither exists, so the calling test can skip.
pub fn recordings_dir() -> Option<PathBuf> {
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/trt-reports");
    if beside.is_dir() {
        return Some(beside);
    }
    if let Some(dir) = std::env::var_os("TRTQ_TRT_REPORTS")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
    {
        return Some(dir);
    }
    eprintln!(
        "SKIPPED: no recorded TensorRT reports at {} and TRTQ_TRT_REPORTS is not set to a folder",
        beside.display()
    );
    None
}
