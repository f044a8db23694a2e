//! A progress bar for long stages (samples/s and ETA), silent under `-q` and when stderr is not
//! a terminal. Owns nothing but the bar.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// A bar over a known number of items per pass.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar of `total` items labelled `label`.
    pub fn new(total: u64, label: &str) -> Progress {
        let bar = ProgressBar::new(total);
        if crate::ui::verbosity() < 0 || !std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} samples, {per_sec}, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(label.to_string());
        Progress { bar }
    }

    /// Shows `done` items of pass `pass`.
    pub fn set(&self, pass: usize, done: u64) {
        self.bar.set_message(format!("pass {pass}"));
        self.bar.set_position(done);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
