//! Errors of the calibration statistics (collectors, histograms, methods, weights).
//!
//! Degenerate data is not an error (it yields a floored amax and a warning, see `amax`); these
//! are misuse and bad input: a method name or percentile that cannot be used, histograms that
//! cannot be combined, an axis a weight does not have, a file that cannot be read.

use std::path::PathBuf;

/// Everything that can go wrong while computing calibration statistics.
#[derive(Debug, thiserror::Error)]
pub enum CalibError {
    /// The method name is not one of the four.
    #[error("unknown calibration method `{name}`: use one of max, percentile, entropy, mse")]
    UnknownMethod {
        /// The name as given.
        name: String,
    },
    /// The percentile is outside (0, 100].
    #[error("percentile {value} is out of range: use a value in (0, 100], e.g. 99.99")]
    InvalidPercentile {
        /// The percentile as given.
        value: f64,
    },
    /// A histogram range must be a finite, non-negative abs-max.
    #[error("histogram range {range_max} is not a finite non-negative number")]
    InvalidRange {
        /// The range as given.
        range_max: f32,
    },
    /// A histogram method was asked of a result that kept no histograms (a `max` run).
    #[error(
        "method `{method}` needs the histograms of a histogram-method calibration; re-run calibration with it"
    )]
    NeedsHistogram {
        /// The method asked for.
        method: String,
    },
    /// A fine-grid exponent outside the allowed range (a corrupt stored histogram or device result).
    #[error("fine histogram exponent {exponent} is outside [{min}, {max}]")]
    FineExponent {
        /// The exponent as given.
        exponent: i32,
        /// Smallest allowed.
        min: i32,
        /// Largest allowed.
        max: i32,
    },
    /// A stored run of histogram bins reaches past the last bin (a corrupt calib.json).
    #[error("histogram run of {len} bins starting at bin {start} does not fit in {bins} bins")]
    RunOutOfRange {
        /// First bin of the run.
        start: usize,
        /// Bins in the run.
        len: usize,
        /// Bins in the histogram.
        bins: usize,
    },
    /// A histogram (from calib.json or a device) does not have the fixed bin count.
    #[error("histogram has {found} bins; calibration histograms have exactly {expected}")]
    BinCount {
        /// Bins found.
        found: usize,
        /// Bins required.
        expected: usize,
    },
    /// A tie group needs at least one member.
    #[error("a tie group must have at least one tensor")]
    EmptyTieGroup,
    /// The weight has no such axis for per-channel statistics.
    #[error("per-channel axis {axis} is out of range for a weight of rank {rank}")]
    AxisOutOfRange {
        /// The requested axis.
        axis: usize,
        /// The weight's rank.
        rank: usize,
    },
    /// An .npy file could not be read as a float32 array.
    #[error("cannot read {} as a float32 .npy array (other dtypes: convert with numpy's astype(np.float32)): {source}", path.display())]
    ReadNpy {
        /// The file.
        path: PathBuf,
        /// What the reader reported.
        #[source]
        source: Box<super::data::DataError>,
    },
}
