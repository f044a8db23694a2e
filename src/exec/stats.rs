//! Per-batch calibration statistics that a backend computes where a tensor lives, so that only
//! the statistics, never the tensor, reach the host (the CUDA backend's on-device path).
//!
//! Owns: [`BatchStats`] (what one batch of one tensor yields: range scalars, NaN/Inf counts and
//! the fine-grid |x| histogram) and [`StatsSink`] (the side of an observer that takes them, and
//! that chooses each batch's bin width). Does not own: turning them into amaxes (`calib`'s
//! collectors) or computing them (a backend; the CPU backend hands observers tensors instead).
//!
//! Fine grid: `FINE_BINS` bins of width `2^e`; a finite `x` goes to bin `floor(|x| * 2^-e)`,
//! one f32 multiplication by an exact power of two (so every implementation puts every value in
//! the same bin). Per batch the sink picks `e` from the batch's finite abs-max.

/// Finite-value range and value counts of one batch of one tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchRange {
    /// Largest finite |x| (0 when none).
    pub abs_max: f32,
    /// Smallest finite |x| (`f32::MAX` when none).
    pub abs_min: f32,
    /// Smallest finite x (`f32::MAX` when none).
    pub min: f32,
    /// Largest finite x (`-f32::MAX` when none).
    pub max: f32,
    /// Finite values.
    pub finite: u64,
    /// NaN values.
    pub nan: u64,
    /// ±Inf values.
    pub inf: u64,
}

/// Statistics of one batch of one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchStats {
    /// Range and counts.
    pub range: BatchRange,
    /// Bin width exponent `e` of `bins` (width `2^e`).
    pub exponent: i32,
    /// Counts of finite |x| per fine bin (empty when the sink wanted no histogram).
    pub bins: Vec<u64>,
}

/// An observer's side that takes [`BatchStats`] in place of tensors.
pub trait StatsSink {
    /// False when only the range is needed for `value` (the `max` method): the backend then
    /// skips the histogram and hands over empty `bins`. Default: true.
    fn wants_histogram(&self, _value: &str) -> bool {
        true
    }
    /// The bin width exponent to bin this batch of `value` with, given the batch's finite
    /// abs-max (the sink knows the grid it has accumulated so far).
    fn exponent(&self, value: &str, batch_abs_max: f32) -> i32;
    /// Takes one batch's statistics of `value`.
    fn observe_stats(&mut self, value: &str, stats: BatchStats);
}
