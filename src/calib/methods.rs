//! The four calibration methods, and the threshold searches of the three that read a histogram.
//!
//! Owns [`Method`] and the pure searches over a 2048-bin histogram of |x|, which work in *bin
//! units* (a threshold of `k` means `k` bin widths) so that they do not depend on the range; the
//! histogram turns units into an amax. It does not fill histograms (see `histogram`) nor apply
//! the degenerate-data floor (see `amax`).
//!
//! The searches follow the published algorithms (TensorRT's entropy calibrator as presented in
//! "8-bit Inference with TensorRT", GTC 2017, and pytorch-quantization's histogram methods);
//! where those differ, the choice is stated on the function. `scripts/calib_reference.py` is an
//! independent numpy implementation of the same definitions, and the conformance test compares
//! the two.

use std::fmt;

use rayon::prelude::*;

use super::error::CalibError;
use super::histogram::BINS;

/// How an activation's amax is chosen from its observed values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// The largest finite |x|.
    Max,
    /// The given percentile of |x| (histogram-resolved: the edge of the bin where it falls).
    Percentile(Percentile),
    /// TensorRT's KL-divergence threshold on the histogram of |x| (128 quantized levels).
    Entropy,
    /// The threshold minimizing the histogram-weighted quantize-dequantize squared error.
    Mse,
}

/// A percentile in (0, 100].
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Percentile(f64);

/// The percentile the config uses when none is given.
pub const DEFAULT_PERCENTILE: f64 = 99.99;

impl Percentile {
    /// Validates a percentile: it must lie in (0, 100].
    pub fn new(value: f64) -> Result<Self, CalibError> {
        if value > 0.0 && value <= 100.0 {
            Ok(Self(value))
        } else {
            Err(CalibError::InvalidPercentile { value })
        }
    }

    /// The percentile, in (0, 100].
    pub fn value(self) -> f64 {
        self.0
    }
}

impl Method {
    /// Parses a config/CLI method name (`max`, `percentile`, `entropy`, `mse`); `percentile` is
    /// used only by the percentile method, and validated only then.
    pub fn from_name(name: &str, percentile: f64) -> Result<Self, CalibError> {
        match name {
            "max" => Ok(Self::Max),
            "percentile" => Ok(Self::Percentile(Percentile::new(percentile)?)),
            "entropy" => Ok(Self::Entropy),
            "mse" => Ok(Self::Mse),
            _ => Err(CalibError::UnknownMethod {
                name: name.to_owned(),
            }),
        }
    }

    /// The method's config name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Max => "max",
            Self::Percentile(_) => "percentile",
            Self::Entropy => "entropy",
            Self::Mse => "mse",
        }
    }

    /// Whether the method reads a histogram (all but `max`, which needs only the abs-max).
    pub fn needs_histogram(self) -> bool {
        !matches!(self, Self::Max)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Percentile(p) => write!(f, "percentile {}", p.value()),
            other => f.write_str(other.name()),
        }
    }
}

/// INT8 symmetric levels on one side of zero, as TensorRT's entropy calibrator uses.
const QUANT_LEVELS: usize = 128;
/// The first candidate threshold (in bins) of the entropy and mse searches.
const FIRST_CANDIDATE: usize = 128;
/// Largest quantized magnitude of symmetric INT8.
const INT8_MAX: f64 = 127.0;
/// 2^52: for 0 ≤ y < 2^52, `(y + 2^52) − 2^52` is y rounded half to even (IEEE default rounding),
/// the same as `round_ties_even` but a plain add the compiler vectorizes (no libm call).
const ROUND_HALF_EVEN_SHIFT: f64 = 4_503_599_627_370_496.0;

/// Percentile threshold in bin units: the smallest bin edge `k` (1..=2048) such that at least
/// `percentile`% of the values lie in bins `0..k`. (pytorch-quantization returns the bin's left
/// edge; the right edge is used here so that the threshold covers the percentile.)
pub(crate) fn percentile_edge(bins: &[u64; BINS], percentile: Percentile) -> f64 {
    let total: u64 = bins.iter().sum();
    let target = percentile.value() / 100.0 * total as f64;
    let mut cumulative = 0u64;
    for (index, &count) in bins.iter().enumerate() {
        cumulative += count;
        if cumulative as f64 >= target {
            return (index + 1) as f64;
        }
    }
    BINS as f64
}

/// Divergences within this of the smallest count as tied (then the largest threshold wins).
/// Far above floating-point noise (~1e-15 here), far below any real difference.
const ENTROPY_TIE_TOLERANCE: f64 = 1e-12;
/// Candidates whose prefix-sum divergence is within this of the smallest are recomputed
/// directly; it exceeds the prefix-sum form's rounding error by orders of magnitude.
const ENTROPY_RECHECK_MARGIN: f64 = 1e-9;
/// Squared errors within this fraction of the smallest count as tied (then the smallest
/// threshold wins).
const MSE_TIE_RELATIVE: f64 = 1e-12;
/// Absolute tie tolerance of squared errors, per observed value (in squared bin units).
const MSE_TIE_PER_VALUE: f64 = 1e-18;

/// `x ln x` with the convention `0 ln 0 = 0`.
fn x_ln_x(x: f64) -> f64 {
    if x > 0.0 { x * x.ln() } else { 0.0 }
}

/// Entropy (KL-divergence) threshold in bin units: the bin edge `i` in 128..=2048 minimizing
/// KL(P‖Q), where
/// - P is bins `0..i` with the mass of bins `i..` added to bin `i-1` (clipping),
/// - Q quantizes bins `0..i` into 128 levels (bin `j` belongs to level `⌊128 j / i⌋`) and
///   expands each level's total evenly over its non-empty bins (empty bins stay empty),
/// - both are normalized; a bin with P > 0 and Q = 0 makes the divergence infinite.
///
/// As pytorch-quantization does, bin 0 is first given bin 1's count (so the spike of exact zeros
/// after a ReLU does not dominate), the threshold is the bin's upper edge `i` (the GTC slides say
/// `i + 0.5`), and ties go to the largest threshold. Ties matter: on sparse histograms (e.g.
/// discrete values) several thresholds reach KL = 0 exactly, and only the largest keeps the data.
///
/// Every candidate is first scored in O(128) from prefix sums (see [`divergence_from_prefix_sums`]);
/// that form cancels large terms, so the candidates near the minimum are then recomputed bin by
/// bin ([`divergence_direct`]), which gives exact zeros where P and Q coincide.
pub(crate) fn entropy_edge(bins: &[u64; BINS]) -> f64 {
    let mut counts = *bins;
    counts[0] = counts[1];
    let prefix = PrefixSums::new(&counts);
    if prefix.count[BINS] == 0 {
        return BINS as f64;
    }
    let fast: Vec<(usize, f64)> = (FIRST_CANDIDATE..=BINS)
        .map(|edge| (edge, divergence_from_prefix_sums(&counts, &prefix, edge)))
        .collect();
    let fast_min = fast.iter().map(|&(_, d)| d).fold(f64::INFINITY, f64::min);
    if fast_min == f64::INFINITY {
        return BINS as f64;
    }
    let rechecked: Vec<(usize, f64)> = fast
        .iter()
        .filter(|&&(_, d)| d <= fast_min + ENTROPY_RECHECK_MARGIN)
        .map(|&(edge, _)| (edge, divergence_direct(&counts, edge)))
        .collect();
    let direct_min = rechecked
        .iter()
        .map(|&(_, d)| d)
        .fold(f64::INFINITY, f64::min);
    rechecked
        .iter()
        .rev()
        .find(|&&(_, d)| d <= direct_min + ENTROPY_TIE_TOLERANCE)
        .map_or(BINS as f64, |&(edge, _)| edge as f64)
}

/// Prefix sums over the bins: `count[k] = Σ_{j<k} c_j`, likewise for non-empty bins and `c ln c`.
struct PrefixSums {
    count: Box<[u64; BINS + 1]>,
    nonzero: Box<[u64; BINS + 1]>,
    x_ln_x: Box<[f64; BINS + 1]>,
}

impl PrefixSums {
    fn new(counts: &[u64; BINS]) -> Self {
        let mut sums = Self {
            count: Box::new([0; BINS + 1]),
            nonzero: Box::new([0; BINS + 1]),
            x_ln_x: Box::new([0.0; BINS + 1]),
        };
        for (j, &count) in counts.iter().enumerate() {
            sums.count[j + 1] = sums.count[j] + count;
            sums.nonzero[j + 1] = sums.nonzero[j] + u64::from(count > 0);
            sums.x_ln_x[j + 1] = sums.x_ln_x[j] + x_ln_x(count as f64);
        }
        sums
    }
}

/// The bins `start..end` of quantization level `level` when `edge` bins make 128 levels.
fn level_bounds(level: usize, edge: usize) -> (usize, usize) {
    (
        (level * edge).div_ceil(QUANT_LEVELS),
        ((level + 1) * edge).div_ceil(QUANT_LEVELS),
    )
}

/// KL(P‖Q) for threshold `edge` in O(128): with `SP = Σ P`, `SQ = Σ Q`,
/// `KL = (Σ P ln P − Σ P ln Q) / SP + ln(SQ / SP)`, and every non-empty bin of a level has the
/// same Q, so `Σ P ln Q` is a sum over levels.
fn divergence_from_prefix_sums(counts: &[u64; BINS], prefix: &PrefixSums, edge: usize) -> f64 {
    let total = prefix.count[BINS] as f64;
    let last = counts[edge - 1];
    let outliers = total - prefix.count[edge] as f64;
    if last == 0 && outliers > 0.0 {
        return f64::INFINITY;
    }
    let kept = prefix.count[edge] as f64;
    let p_ln_p = prefix.x_ln_x[edge - 1] + x_ln_x(last as f64 + outliers);
    let mut p_ln_q = 0.0;
    let mut last_level_q = 0.0;
    for level in 0..QUANT_LEVELS {
        let (start, end) = level_bounds(level, edge);
        let level_total = (prefix.count[end] - prefix.count[start]) as f64;
        let nonzero = (prefix.nonzero[end] - prefix.nonzero[start]) as f64;
        if level_total > 0.0 {
            let q = level_total / nonzero;
            p_ln_q += level_total * q.ln();
            last_level_q = q;
        }
    }
    // Bin edge-1 lies in the last level (⌊128 (i-1) / i⌋ = 127 for i ≥ 128) and is non-empty
    // whenever outliers > 0, so its Q is the last level's.
    if outliers > 0.0 {
        p_ln_q += outliers * last_level_q.ln();
    }
    (p_ln_p - p_ln_q) / total + (kept / total).ln()
}

/// KL(P‖Q) for threshold `edge`, bin by bin from the normalized distributions.
fn divergence_direct(counts: &[u64; BINS], edge: usize) -> f64 {
    // Integer-valued f64 sums below 2^53 are exact, whatever the order.
    let total: f64 = counts.iter().map(|&c| c as f64).sum();
    let kept: f64 = counts[..edge].iter().map(|&c| c as f64).sum();
    let mut divergence = 0.0;
    for level in 0..QUANT_LEVELS {
        let (start, end) = level_bounds(level, edge);
        let level_bins = &counts[start..end];
        let level_total: f64 = level_bins.iter().map(|&c| c as f64).sum();
        let nonzero = level_bins.iter().filter(|&&c| c > 0).count() as f64;
        for (offset, &count) in level_bins.iter().enumerate() {
            let mut p = count as f64;
            if start + offset == edge - 1 {
                p += total - kept;
            }
            if p == 0.0 {
                continue;
            }
            if count == 0 {
                return f64::INFINITY;
            }
            let p = p / total;
            let q = level_total / nonzero / kept;
            divergence += p * (p / q).ln();
        }
    }
    divergence
}

/// MSE threshold in bin units: among the bin centers `i + 0.5` for i in 128..2048, the one
/// minimizing `Σ_j count_j · (fq(c_j) − c_j)²` over the bin centers `c_j`, where `fq` is symmetric
/// INT8 fake quantization with that amax (round half to even, saturate at 127) — the search of
/// pytorch-quantization's mse method. Ties (errors within 1e-12 relative, plus 1e-18 per value,
/// of the smallest) go to the smallest threshold.
pub(crate) fn mse_center(bins: &[u64; BINS]) -> f64 {
    let occupied: Vec<(f64, f64)> = bins
        .iter()
        .enumerate()
        .filter(|&(_, &count)| count > 0)
        .map(|(j, &count)| (j as f64 + 0.5, count as f64))
        .collect();
    let total: f64 = occupied.iter().map(|&(_, count)| count).sum();
    let errors: Vec<(f64, f64)> = (FIRST_CANDIDATE..BINS)
        .into_par_iter()
        .map(|candidate| {
            let amax = candidate as f64 + 0.5;
            let to_int = INT8_MAX / amax;
            let to_float = amax / INT8_MAX;
            let error: f64 = occupied
                .iter()
                .map(|&(center, count)| {
                    // center * to_int ≥ 0, far below 2^52.
                    let rounded = (center * to_int + ROUND_HALF_EVEN_SHIFT) - ROUND_HALF_EVEN_SHIFT;
                    let dequantized = rounded.min(INT8_MAX) * to_float;
                    count * (dequantized - center) * (dequantized - center)
                })
                .sum();
            (amax, error)
        })
        .collect();
    let min_error = errors.iter().map(|&(_, e)| e).fold(f64::INFINITY, f64::min);
    let tolerance = min_error * MSE_TIE_RELATIVE + total * MSE_TIE_PER_VALUE;
    errors
        .iter()
        .find(|&&(_, e)| e <= min_error + tolerance)
        .map_or(BINS as f64 - 0.5, |&(amax, _)| amax)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform_bins(count_per_bin: u64) -> Box<[u64; BINS]> {
        Box::new([count_per_bin; BINS])
    }

    #[test]
    fn method_names_round_trip() {
        for name in ["max", "percentile", "entropy", "mse"] {
            assert_eq!(Method::from_name(name, 99.0).unwrap().name(), name);
        }
        assert!(matches!(
            Method::from_name("kl", 99.0),
            Err(CalibError::UnknownMethod { .. })
        ));
    }

    #[test]
    fn percentile_outside_0_100_is_rejected() {
        for bad in [0.0, -1.0, 100.5, f64::NAN] {
            assert!(matches!(
                Method::from_name("percentile", bad),
                Err(CalibError::InvalidPercentile { .. })
            ));
        }
        // A bad percentile does not matter to the other methods.
        assert_eq!(Method::from_name("max", f64::NAN).unwrap(), Method::Max);
    }

    #[test]
    fn percentile_of_flat_histogram_is_proportional() {
        let bins = uniform_bins(10);
        let half = Percentile::new(50.0).unwrap();
        assert_eq!(percentile_edge(&bins, half), 1024.0);
        assert_eq!(
            percentile_edge(&bins, Percentile::new(100.0).unwrap()),
            2048.0
        );
        assert_eq!(percentile_edge(&bins, Percentile::new(0.01).unwrap()), 1.0);
    }

    #[test]
    fn entropy_keeps_the_whole_range_of_a_flat_histogram() {
        // Clipping a flat distribution puts a spike into P that Q cannot represent; the full
        // range quantizes 16 equal bins per level exactly, so KL = 0 there.
        assert_eq!(entropy_edge(&uniform_bins(5)), 2048.0);
    }

    #[test]
    fn entropy_keeps_an_outlier_that_the_full_range_represents_exactly() {
        // Flat mass in bins 0..256 and one value in the top bin. At the full range every level
        // spans 16 bins: the flat levels are exact and the outlier's level has one non-empty bin,
        // so Q == P and KL = 0; every clipping threshold adds the outlier to P's last bin, which
        // Q cannot match. Empty bins cost nothing in this algorithm.
        let mut bins = Box::new([0u64; BINS]);
        for count in bins.iter_mut().take(256) {
            *count = 1000;
        }
        bins[BINS - 1] = 1;
        assert_eq!(entropy_edge(&bins), 2048.0);
    }

    #[test]
    fn entropy_clips_where_the_mass_ends_and_the_tail_is_flat() {
        // Heavy mass in bins 0..200 then a thin flat tail to the top: clipping the tail into one
        // bin costs little, while quantizing the dense part with wide levels costs a lot.
        let mut bins = Box::new([1u64; BINS]);
        for (j, count) in bins.iter_mut().enumerate().take(200) {
            *count = 100_000 + (j as u64 * 7919) % 5000;
        }
        let edge = entropy_edge(&bins);
        assert!(edge < 1024.0, "threshold {edge} should clip the thin tail");
    }

    #[test]
    fn shifted_add_rounds_half_to_even() {
        for y in [0.0, 0.5, 1.5, 2.5, 3.49, 126.5, 127.5, 2047.5, 1e6 + 0.5] {
            let shifted = (y + ROUND_HALF_EVEN_SHIFT) - ROUND_HALF_EVEN_SHIFT;
            assert_eq!(shifted, f64::round_ties_even(y), "{y}");
        }
    }

    #[test]
    fn mse_of_flat_histogram_is_near_the_top() {
        let center = mse_center(&uniform_bins(3));
        assert!(center > 1900.0, "mse threshold {center}");
    }

    #[test]
    fn mse_never_clips_a_single_occupied_bin() {
        let mut bins = Box::new([0u64; BINS]);
        bins[500] = 7;
        // Any amax below the bin's center clips it by at least half a bin; amax = 500.5
        // represents it (almost) exactly.
        let center = mse_center(&bins);
        assert!(center >= 500.5, "mse threshold {center} clips the only bin");
    }
}
