//! The result of calibrating one tensor: an amax that is always usable, plus warnings.
//!
//! Owns the degenerate-data policy: the amax floor and the warnings that explain why an amax is
//! not what the data alone would give. It does not compute amaxes (see `collectors`,
//! `histogram` and `methods`) and does not print anything: callers attach the tensor name and
//! decide how to report.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The smallest amax calibration ever returns.
///
/// Any computed amax below it (including 0 from all-zero data, and the "no finite data" case)
/// becomes this value, so the INT8 scale `amax / 127` ≈ 7.9e-11 is a normal, positive f32 and
/// its reciprocal ≈ 1.27e10 is finite. Values this small quantize to 0 at any sensible scale, so
/// raising a genuinely tiny amax to the floor loses nothing.
pub const AMAX_FLOOR: f32 = 1e-8;

/// Why an amax needs the user's attention. Returned, never printed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AmaxWarning {
    /// No finite value was observed at all (no data, or only NaN/Inf); the amax is [`AMAX_FLOOR`].
    NoFiniteData,
    /// Every finite value observed was zero; the amax is [`AMAX_FLOOR`].
    AllZero,
    /// NaN or ±Inf values were seen; they were counted and left out of the amax.
    NonFinite {
        /// How many NaN values were seen.
        nan: u64,
        /// How many +Inf or -Inf values were seen.
        inf: u64,
    },
    /// Every finite |x| had the same magnitude (within one histogram bin for histogram methods),
    /// so there is no distribution to fit and the amax is that magnitude.
    ConstantMagnitude {
        /// The magnitude, which is also the amax.
        value: f32,
    },
    /// The method's amax was positive but below [`AMAX_FLOOR`] and was raised to it.
    Floored {
        /// The amax the method computed.
        computed: f32,
    },
}

impl fmt::Display for AmaxWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoFiniteData => write!(
                f,
                "no finite value was observed; amax set to the floor {AMAX_FLOOR:e} (check that the calibration data reaches this tensor)"
            ),
            Self::AllZero => write!(
                f,
                "every observed value was 0; amax set to the floor {AMAX_FLOOR:e} (calibration data may not exercise this tensor)"
            ),
            Self::NonFinite { nan, inf } => write!(
                f,
                "{nan} NaN and {inf} infinite values were ignored (check the calibration data and the model for overflow)"
            ),
            Self::ConstantMagnitude { value } => write!(
                f,
                "every observed |x| equals {value:e}; the amax is that value (calibration data may not vary enough)"
            ),
            Self::Floored { computed } => write!(
                f,
                "computed amax {computed:e} is below the floor {AMAX_FLOOR:e} and was raised to it"
            ),
        }
    }
}

/// An amax ready to become a scale (`amax / 127`): finite, and at least [`AMAX_FLOOR`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AmaxResult {
    /// The calibrated absolute maximum.
    pub amax: f32,
    /// What made this amax special; empty for ordinary data.
    pub warnings: Vec<AmaxWarning>,
}

/// What a collector saw, as far as the degenerate-data policy needs to know.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ObservedSummary {
    /// Finite values seen.
    pub finite: u64,
    /// NaN values seen.
    pub nan: u64,
    /// ±Inf values seen.
    pub inf: u64,
    /// Largest finite |x| (0 when there is none).
    pub abs_max: f32,
    /// Whether every finite |x| had the same magnitude.
    pub constant_magnitude: bool,
}

impl AmaxResult {
    /// Applies the degenerate-data policy to an amax a method computed from `observed` data.
    pub(crate) fn from_computed(computed: f32, observed: ObservedSummary) -> Self {
        let mut warnings = Vec::new();
        if observed.nan > 0 || observed.inf > 0 {
            warnings.push(AmaxWarning::NonFinite {
                nan: observed.nan,
                inf: observed.inf,
            });
        }
        let degenerate = if observed.finite == 0 {
            Some(AmaxWarning::NoFiniteData)
        } else if observed.abs_max == 0.0 {
            Some(AmaxWarning::AllZero)
        } else {
            None
        };
        let is_degenerate = degenerate.is_some();
        warnings.extend(degenerate);
        if !is_degenerate && observed.constant_magnitude {
            warnings.push(AmaxWarning::ConstantMagnitude {
                value: observed.abs_max,
            });
        }
        // `>=` is false for NaN, so a NaN amax can never escape either.
        let amax = if computed >= AMAX_FLOOR && computed.is_finite() {
            computed
        } else {
            if !is_degenerate {
                warnings.push(AmaxWarning::Floored { computed });
            }
            AMAX_FLOOR
        };
        Self { amax, warnings }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(finite: u64, abs_max: f32) -> ObservedSummary {
        ObservedSummary {
            finite,
            nan: 0,
            inf: 0,
            abs_max,
            constant_magnitude: false,
        }
    }

    #[test]
    fn floor_scale_is_a_normal_f32_with_finite_reciprocal() {
        let scale = AMAX_FLOOR / 127.0;
        assert!(scale.is_normal());
        assert!((1.0 / scale).is_finite());
    }

    #[test]
    fn ordinary_amax_passes_through_without_warnings() {
        let result = AmaxResult::from_computed(2.5, summary(10, 3.0));
        assert_eq!(result.amax, 2.5);
        assert!(result.warnings.is_empty());
    }

    #[test]
    fn all_zero_gets_the_floor_and_one_warning() {
        let result = AmaxResult::from_computed(0.0, summary(10, 0.0));
        assert_eq!(result.amax, AMAX_FLOOR);
        assert_eq!(result.warnings, vec![AmaxWarning::AllZero]);
    }

    #[test]
    fn tiny_amax_is_floored_with_the_computed_value_reported() {
        let result = AmaxResult::from_computed(1e-20, summary(10, 1e-20));
        assert_eq!(result.amax, AMAX_FLOOR);
        assert_eq!(
            result.warnings,
            vec![AmaxWarning::Floored { computed: 1e-20 }]
        );
    }

    #[test]
    fn nan_computed_amax_never_escapes() {
        let result = AmaxResult::from_computed(f32::NAN, summary(10, 1.0));
        assert_eq!(result.amax, AMAX_FLOOR);
    }
}
