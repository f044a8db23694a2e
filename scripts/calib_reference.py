#!/usr/bin/env python3
"""Numpy reference implementations of trtq's calibration methods.

Written from the published algorithms, independently of the Rust code (which computes the
entropy search from prefix sums; this file computes every candidate's distributions in full):

- max: the largest finite |x|.
- histogram: trtq's documented single-pass rule (src/calib/fine.rs), computed directly at the
  final grid rather than by growing it: 16384 fine bins of width 2^e, e = the smallest integer in
  [-127, 114] with floor(abs-max / 2^e) < 16384; fine bin i = floor(|x| / 2^e) (exact in f64);
  then each fine bin's count goes to the 2048-bin bin over [0, abs-max] holding the fine bin's
  centre, floor((2i + 1) * 2^(e-1) * 2048 / abs-max), clamped to 2047. NaN/Inf not binned.
- percentile: the smallest bin edge k (in 1..2048) with at least p% of the values in bins 0..k.
- entropy: TensorRT's KL-divergence calibration ("8-bit Inference with TensorRT", GTC 2017) with
  pytorch-quantization's conventions: bin 0 takes bin 1's count, thresholds i = 128..2048 bins,
  P = bins[:i] with the clipped mass added to its last bin, Q = bins[:i] merged into 128 levels
  and spread evenly over each level's non-empty bins, amax = i bin widths; divergences within
  1e-12 of the smallest are ties, won by the largest i.
- mse: among bin centers i + 0.5 (i = 128..2047), the amax minimizing the count-weighted squared
  error of INT8 symmetric fake quantization (round half to even, saturate at 127) of the bin
  centers; errors within 1e-12 relative (+1e-18 per value) of the smallest are ties, won by the
  smallest.
- floor: an amax below 1e-8 becomes 1e-8; if every finite |x| falls in the top bin, every
  histogram method returns abs-max.

Usage: calib_reference.py FILE.npy --method {max,percentile,entropy,mse} [--percentile P]
prints {"amax": x, "bin_width": w} as trtq calib-amax does.
"""

import argparse
import json

import numpy as np

BINS = 2048
FINE_BINS = 16384
FINE_BITS = 14
MIN_EXPONENT = -127
MAX_EXPONENT = 128 - FINE_BITS
QUANT_LEVELS = 128
FIRST_CANDIDATE = 128
INT8_MAX = 127.0
AMAX_FLOOR = np.float32(1e-8)
DEFAULT_PERCENTILE = 99.99
ENTROPY_TIE_TOLERANCE = 1e-12
MSE_TIE_RELATIVE = 1e-12
MSE_TIE_PER_VALUE = 1e-18


def abs_max(values):
    """Largest finite |x| as float32 (0 when there is none)."""
    magnitudes = np.abs(np.asarray(values, dtype=np.float32).ravel())
    finite = magnitudes[np.isfinite(magnitudes)]
    return np.float32(finite.max()) if finite.size else np.float32(0.0)


def fine_exponent(range_max):
    """Smallest e in [MIN_EXPONENT, MAX_EXPONENT] with floor(range_max / 2^e) < FINE_BINS."""
    if range_max <= 0:
        return MIN_EXPONENT
    # range_max = mantissa * 2^power with mantissa in [0.5, 1): floor(log2(range_max)) = power - 1.
    _, power = np.frexp(np.float64(range_max))
    return int(np.clip(int(power) - 1 + 1 - FINE_BITS, MIN_EXPONENT, MAX_EXPONENT))


def fine_histogram(values, range_max):
    """(exponent, 16384 fine bins) of the finite |x|, binned directly at the final grid."""
    magnitudes = np.abs(np.asarray(values, dtype=np.float32).ravel()).astype(np.float64)
    magnitudes = magnitudes[np.isfinite(magnitudes)]
    exponent = fine_exponent(range_max)
    indices = np.floor(magnitudes / 2.0**exponent).astype(np.int64)
    return exponent, np.bincount(indices, minlength=FINE_BINS).astype(np.uint64)


def histogram(values, range_max):
    """2048-bin histogram of the finite |x| over [0, range_max] by trtq's fine-grid rule."""
    exponent, fine = fine_histogram(values, range_max)
    return histogram_from_fine(exponent, fine, range_max)


def histogram_from_fine(exponent, fine, range_max):
    """The 2048-bin view over [0, range_max] of a fine histogram: each fine bin's count goes to
    the bin holding the fine bin's centre (clamped to the top bin)."""
    fine = np.asarray(fine, np.uint64)
    if range_max <= 0:
        bins = np.zeros(BINS, np.uint64)
        bins[0] = fine.sum()
        return bins
    centres = (2 * np.arange(FINE_BINS, dtype=np.float64) + 1) * (2.0 ** (exponent - 1) * BINS) / float(range_max)
    target = np.minimum(np.floor(centres), BINS - 1).astype(np.int64)
    return np.bincount(target, weights=fine.astype(np.float64), minlength=BINS).astype(np.uint64)


def stored_bins(stored):
    """The 2048 counts of a calib.json histogram (`bins` = 2048, `runs` of [first bin, [counts]])."""
    assert stored["bins"] == BINS, f"calib.json histogram has {stored['bins']} bins, not {BINS}"
    bins = np.zeros(BINS, np.uint64)
    for start, counts in stored["runs"]:
        assert start + len(counts) <= BINS, f"run at {start} of {len(counts)} bins past the end"
        bins[start : start + len(counts)] = counts
    return bins


def percentile_edge(bins, percentile):
    """Smallest bin edge k with at least `percentile`% of the values below it."""
    cumulative = np.cumsum(bins.astype(np.float64))
    target = percentile / 100.0 * cumulative[-1]
    reached = np.nonzero(cumulative >= target)[0]
    return float(reached[0] + 1) if reached.size else float(BINS)


def kl_divergence(p, q):
    """KL(p || q) of two unnormalized distributions; infinite where p > 0 and q == 0."""
    p_sum, q_sum = p.sum(), q.sum()
    if p_sum == 0 or q_sum == 0:
        return np.inf
    p = p / p_sum
    q = q / q_sum
    support = p > 0
    if np.any(q[support] == 0):
        return np.inf
    return float(np.sum(p[support] * np.log(p[support] / q[support])))


def entropy_edge(bins):
    """TensorRT entropy threshold, in bins, computed candidate by candidate (candidates up to
    len(bins); trtq's views have 2048)."""
    counts = bins.astype(np.float64).copy()
    counts[0] = counts[1]
    if counts.sum() == 0:
        return float(counts.size)
    edges = np.arange(FIRST_CANDIDATE, counts.size + 1)
    divergences = np.empty(edges.size)
    for index, edge in enumerate(edges):
        kept = counts[:edge]
        reference = kept.copy()
        reference[-1] += counts[edge:].sum()
        level = (np.arange(edge) * QUANT_LEVELS) // edge
        level_total = np.bincount(level, weights=kept, minlength=QUANT_LEVELS)
        level_nonzero = np.bincount(level, weights=(kept > 0).astype(np.float64), minlength=QUANT_LEVELS)
        candidate = np.where(kept > 0, level_total[level] / np.maximum(level_nonzero[level], 1.0), 0.0)
        divergences[index] = kl_divergence(reference, candidate)
    tied = np.nonzero(divergences <= divergences.min() + ENTROPY_TIE_TOLERANCE)[0]
    return float(edges[tied[-1]])


def mse_center(bins):
    """MSE threshold, in bins: the best bin center among candidates 128.5 .. 2047.5."""
    counts = bins.astype(np.float64)
    centers = np.arange(BINS) + 0.5
    amaxes = (np.arange(FIRST_CANDIDATE, BINS) + 0.5)[:, None]
    dequantized = np.minimum(np.rint(centers[None, :] * (INT8_MAX / amaxes)), INT8_MAX) * (amaxes / INT8_MAX)
    errors = ((dequantized - centers[None, :]) ** 2 * counts[None, :]).sum(axis=1)
    tolerance = errors.min() * MSE_TIE_RELATIVE + counts.sum() * MSE_TIE_PER_VALUE
    tied = np.nonzero(errors <= errors.min() + tolerance)[0]
    return float(amaxes[tied[0], 0])


def amax(values, method, percentile=DEFAULT_PERCENTILE):
    """(amax, bin_width) of `values` for `method`, with trtq's floor and constant rule."""
    range_max = abs_max(values)
    bins = None if method == "max" else histogram(values, range_max)
    return amax_from_histogram(bins, range_max, method, percentile)


def amax_from_histogram(bins, range_max, method, percentile=DEFAULT_PERCENTILE):
    """(amax, bin_width) of `method` from the 2048-bin histogram `bins` over [0, range_max]
    (`bins` is unused for max)."""
    range_max = np.float32(range_max)
    bin_width = np.float32(range_max / np.float32(BINS))
    if method == "max":
        computed = range_max
    elif range_max == 0 or bins[-1] == bins.sum():
        computed = range_max
    else:
        edge = {
            "percentile": lambda: percentile_edge(bins, percentile),
            "entropy": lambda: entropy_edge(bins),
            "mse": lambda: mse_center(bins),
        }[method]()
        computed = np.float32(edge * float(range_max) / BINS)
    return max(np.float32(computed), AMAX_FLOOR), bin_width


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("npy")
    parser.add_argument("--method", required=True, choices=["max", "percentile", "entropy", "mse"])
    parser.add_argument("--percentile", type=float, default=99.99)
    args = parser.parse_args()
    result, width = amax(np.load(args.npy), args.method, args.percentile)
    print(json.dumps({"amax": float(result), "bin_width": float(width)}))


if __name__ == "__main__":
    main()
