"""What the peers' default "entropy" calibration really computes (bench-results/peers-accuracy.md).

onnxruntime's quantize_static (CalibrationMethod.Entropy) and ModelOpt 0.47's ONNX int8 PTQ
(`--calibration_method=entropy`, modelopt/onnx/quantization/ort_patching.py) both build
onnxruntime's HistogramCollector with num_bins=128 and num_quantized_bins=128. Its
get_entropy_threshold tries the thresholds `range(num_quantized_bins // 2, num_bins // 2 + 1)`
bins either side of zero, so a 128-bin histogram has ONE candidate: its whole range, i.e. the
tensor's min/max. quantize_static histograms all samples at once, so its "entropy" is exactly
min/max. ModelOpt histograms sample by sample; a later sample beyond the first one's range widens
the histogram by whole bins, and the KL search then runs only over thresholds from the first
sample's abs-max up to the overall abs-max. trtq's `entropy` is TensorRT's search (2048 bins,
128 levels), which clips heavy tails; on the same collector 2048 bins clip too.

If an onnxruntime upgrade changes any of this, these tests say so, and the peer comparison's
like-for-like table (scripts/compare_peers.py, ACCURACY_BARS) must be revisited.
"""

from __future__ import annotations

import inspect

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnxruntime.quantization.calibrate import (
    CalibrationMethod,
    EntropyCalibrater,
    HistogramCollector,
    create_calibrator,
)

SAMPLES, VALUES = 64, 4096


def heavy_tailed() -> np.ndarray:
    """64 samples of 4096 Laplace values: a long tail that any real KL search clips."""
    return np.random.default_rng(0).laplace(size=(SAMPLES, VALUES)).astype(np.float32)


def entropy_range(batches: list[np.ndarray], num_bins: int, num_quantized_bins: int) -> tuple[float, float]:
    """(low, high) of onnxruntime's entropy method after collecting `batches` one call each."""
    collector = HistogramCollector("entropy", True, num_bins, num_quantized_bins, 99.999, "same")
    for batch in batches:
        collector.collect({"t": [batch]})
    low, high, *_histogram = collector.compute_collection_result()["t"]
    return float(low), float(high)


def test_the_peers_default_bins_are_128_and_128(tmp_path):
    defaults = inspect.signature(EntropyCalibrater.__init__).parameters
    assert (defaults["num_bins"].default, defaults["num_quantized_bins"].default) == (128, 128)

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    # What quantize_static builds for CalibrationMethod.Entropy without extra_options.
    calibrator = create_calibrator(
        model, augmented_model_path=str(tmp_path / "augmented.onnx"), calibrate_method=CalibrationMethod.Entropy
    )
    assert (calibrator.num_bins, calibrator.num_quantized_bins) == (128, 128)


def test_one_128_bin_histogram_gives_min_max_like_quantize_static():
    data = heavy_tailed()
    low, high = entropy_range([data], num_bins=128, num_quantized_bins=128)
    assert (low, high) == (float(data.min()), float(data.max()))


def test_2048_bins_clip_the_tail_as_a_kl_search_does():
    data = heavy_tailed()
    low, high = entropy_range([data], num_bins=2048, num_quantized_bins=128)
    abs_max = float(np.abs(data).max())
    assert max(-low, high) < 0.9 * abs_max, (low, high, abs_max)


def test_sample_by_sample_like_modelopt_searches_only_above_the_first_samples_range():
    data = heavy_tailed()
    first_abs_max = float(np.abs(data[0]).max())
    abs_max = float(np.abs(data).max())
    assert first_abs_max < 0.8 * abs_max  # the later samples widen the histogram

    low, high = entropy_range(list(data), num_bins=128, num_quantized_bins=128)
    threshold = max(-low, high)
    assert first_abs_max <= threshold * (1 + 1e-6), (threshold, first_abs_max)
    assert threshold <= abs_max

    # When the first sample holds the abs-max, no later sample widens it: one candidate, min/max.
    reordered = data[np.argsort(-np.abs(data).max(axis=1))]
    low, high = entropy_range(list(reordered), num_bins=128, num_quantized_bins=128)
    assert max(-low, high) == abs_max
