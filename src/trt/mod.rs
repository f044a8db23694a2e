//! TensorRT: the `trtexec` driver ([`driver`]) and the parsers of what TensorRT reports about an
//! engine ([`report`]: layer information, per-layer profile, per-iteration timings).
//!
//! This module knows nothing about patterns or quantization: it builds engines and turns TensorRT's
//! own files into an [`report::EngineReport`]. Joining a report with the pattern matches is
//! [`crate::verify`]'s job.

pub mod driver;
pub mod report;
