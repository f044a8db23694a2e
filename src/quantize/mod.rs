//! (stage not built yet)
pub mod fp16;
