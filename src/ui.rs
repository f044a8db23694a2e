//! What trtq tells the user on stderr while it works: verbosity-filtered messages.
//!
//! Owns: the process-wide verbosity (`-q` quiet, default, `-v` verbose) and the three message
//! levels. Does not own: errors (returned, printed once by the CLI) or reports (files).

use std::sync::atomic::{AtomicI8, Ordering};

static VERBOSITY: AtomicI8 = AtomicI8::new(0);

/// Sets the verbosity: -1 quiet, 0 normal, 1+ verbose.
pub fn set_verbosity(v: i8) {
    VERBOSITY.store(v, Ordering::Relaxed);
}

/// The current verbosity.
pub fn verbosity() -> i8 {
    VERBOSITY.load(Ordering::Relaxed)
}

/// A progress message (hidden under `-q`).
pub fn info(msg: impl AsRef<str>) {
    if verbosity() >= 0 {
        eprintln!("{}", msg.as_ref());
    }
}

/// A warning (always shown).
pub fn warn(msg: impl AsRef<str>) {
    eprintln!("warning: {}", msg.as_ref());
}

/// A detail shown only under `-v`.
pub fn detail(msg: impl AsRef<str>) {
    if verbosity() >= 1 {
        eprintln!("  {}", msg.as_ref());
    }
}
