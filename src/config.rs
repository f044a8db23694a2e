//! (stage not built yet)
