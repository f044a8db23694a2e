//! (stage not built yet)

pub mod data;
