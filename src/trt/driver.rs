//! (driver: being written)
