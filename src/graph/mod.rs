//! (IR not built yet)
