"""Calibration parity: trtq's amax against numpy references and onnxruntime's MinMax calibrator.

`trtq calib-amax FILE.npy --method M [--percentile P]` calibrates one array (first axis = batches)
and prints {"amax", "bin_width", "warnings"}. The oracles:
- scripts/calib_reference.py, numpy implementations written from the published algorithms;
  histogram methods must agree within one histogram bin, max within 1e-6 relative;
- onnxruntime's MinMax calibrator in symmetric mode over an Identity model, for max;
- on real models (PP-OCRv4 det at 320×320, light_resnet50), every Q/DQ tensor: onnxruntime
  computes the activations of trtq's fused FP32 model on the npy data trtq calibrated with, and
  the numpy reference's amax of every method is compared with calib.json's `amax_by_method`.

The binary comes from $TRTQ_BIN, else target/release/trtq, else target/debug/trtq.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import calib_reference as reference  # noqa: E402
from harness import MODELS_DIR, missing, ort_session, write_build_config  # noqa: E402

SHAPE = (16, 4096)  # 16 batches of 4096 values


def trtq_binary():
    candidates = [os.environ.get("TRTQ_BIN"), ROOT / "target/release/trtq", ROOT / "target/debug/trtq"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    pytest.skip("no trtq binary: set TRTQ_BIN or run `cargo build` first")


def calib_amax(path, method, percentile=None):
    command = [str(trtq_binary()), "calib-amax", str(path), "--method", method]
    if percentile is not None:
        command += ["--percentile", str(percentile)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, f"{command} failed: {completed.stderr}"
    return json.loads(completed.stdout)


def distributions():
    rng = np.random.default_rng(20261127)
    gaussian = rng.normal(0.0, 1.0, SHAPE)
    outliers = rng.normal(0.0, 1.0, SHAPE)
    outliers.flat[rng.choice(outliers.size, 20, replace=False)] = rng.uniform(-60.0, 60.0, 20)
    bimodal = np.where(rng.random(SHAPE) < 0.5, rng.normal(-4.0, 0.5, SHAPE), rng.normal(3.0, 1.0, SHAPE))
    return {
        "gaussian": gaussian,
        "laplace": rng.laplace(0.0, 1.0, SHAPE),
        "student_t3": rng.standard_t(3, SHAPE),
        "relu_gaussian": np.maximum(rng.normal(0.2, 1.0, SHAPE), 0.0),
        "bimodal": bimodal,
        "gaussian_with_outliers": outliers,
        "uniform": rng.uniform(-2.0, 2.0, SHAPE),
        # Few distinct values: many entropy thresholds reach KL = 0 exactly (ties decide).
        "discrete_thirds": np.round(rng.normal(0.0, 1.0, SHAPE) * 3.0) / 3.0,
        "mostly_zero": np.where(rng.random(SHAPE) < 0.98, 0.0, rng.exponential(1.0, SHAPE)),
    }


DISTRIBUTIONS = distributions()
METHODS = [("max", None), ("percentile", 99.99), ("percentile", 99.0), ("entropy", None), ("mse", None)]


@pytest.fixture(scope="module")
def npy_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib")
    files = {}
    for name, values in DISTRIBUTIONS.items():
        files[name] = folder / f"{name}.npy"
        np.save(files[name], values.astype(np.float32))
    return files


@pytest.mark.parametrize("distribution", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("method,percentile", METHODS)
def test_amax_matches_numpy_reference(npy_files, distribution, method, percentile):
    values = np.load(npy_files[distribution])
    got = calib_amax(npy_files[distribution], method, percentile)
    expected, bin_width = reference.amax(values, method, percentile if percentile else 99.99)
    assert got["warnings"] == []
    assert got["bin_width"] == pytest.approx(float(bin_width), rel=1e-6)
    if method == "max":
        assert got["amax"] == pytest.approx(float(expected), rel=1e-6)
    else:
        assert abs(got["amax"] - float(expected)) <= float(bin_width), (
            f"{method} on {distribution}: trtq {got['amax']} vs reference {float(expected)}, bin width {float(bin_width)}"
        )


def test_entropy_and_percentile_clip_rare_outliers(npy_files):
    """Not parity: the methods must do what they are for. 20 outliers in 65536 values lie above
    the 99.9th percentile (not above the 99.99th). mse keeps them, rightly: clipping 20 values by
    ~40 costs more squared error than the coarser steps cost the rest."""
    path = npy_files["gaussian_with_outliers"]
    maximum = calib_amax(path, "max")["amax"]
    for method, percentile in [("entropy", None), ("percentile", 99.9)]:
        clipped = calib_amax(path, method, percentile)["amax"]
        assert clipped < 0.5 * maximum, f"{method} kept the outliers: {clipped} vs max {maximum}"


def onnxruntime_symmetric_minmax(values, tmp_path):
    from onnx import TensorProto, helper, save
    from onnxruntime.quantization.calibrate import CalibrationDataReader, CalibrationMethod, create_calibrator

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"], name="identity")],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", values.shape[1]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", values.shape[1]])],
    )
    model_path = tmp_path / "identity.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model_path)

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": batch[None, :]} for batch in values])

        def get_next(self):
            return next(self.batches, None)

    calibrator = create_calibrator(
        model_path,
        augmented_model_path=str(tmp_path / "identity.augmented.onnx"),
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"symmetric": True},
    )
    calibrator.collect_data(Batches())
    lowest, highest = (np.asarray(bound).reshape(-1) for bound in calibrator.compute_data()["x"].range_value)
    assert lowest.size == 1 and highest.size == 1 and lowest[0] == -highest[0]
    return float(highest[0])


@pytest.mark.parametrize("distribution", ["gaussian", "relu_gaussian", "gaussian_with_outliers", "bimodal"])
def test_max_matches_onnxruntime_symmetric_minmax(npy_files, distribution, tmp_path):
    pytest.importorskip("onnxruntime")
    values = np.load(npy_files[distribution])
    expected = onnxruntime_symmetric_minmax(values, tmp_path)
    got = calib_amax(npy_files[distribution], "max")["amax"]
    assert got == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("method", ["max", "percentile", "entropy", "mse"])
def test_all_zero_gives_the_floor_and_a_warning(tmp_path, method):
    path = tmp_path / "zeros.npy"
    np.save(path, np.zeros(SHAPE, np.float32))
    got = calib_amax(path, method)
    assert got["amax"] == pytest.approx(1e-8, rel=1e-6)
    assert [warning["kind"] for warning in got["warnings"]] == ["all_zero"]


@pytest.mark.parametrize("method", ["max", "percentile", "entropy", "mse"])
def test_constant_gives_its_magnitude(tmp_path, method):
    path = tmp_path / "constant.npy"
    np.save(path, np.full(SHAPE, -0.37, np.float32))
    got = calib_amax(path, method)
    assert got["amax"] == pytest.approx(0.37, rel=1e-6)
    assert [warning["kind"] for warning in got["warnings"]] == ["constant_magnitude"]


@pytest.mark.parametrize("method", ["max", "percentile", "entropy", "mse"])
def test_nan_in_one_sample_is_ignored_and_reported(npy_files, tmp_path, method):
    values = np.load(npy_files["gaussian"]).copy()
    values[3, 17] = np.nan
    values[5, 2] = np.inf
    path = tmp_path / "with_nan.npy"
    np.save(path, values)
    got = calib_amax(path, method)
    clean = np.load(npy_files["gaussian"]).copy()
    clean[3, 17] = 0.0
    clean[5, 2] = 0.0
    expected, bin_width = reference.amax(clean, method)
    assert np.isfinite(got["amax"]) and got["amax"] > 0
    assert abs(got["amax"] - float(expected)) <= float(bin_width)
    assert got["warnings"] == [{"kind": "non_finite", "nan": 1, "inf": 1}]


def test_unknown_method_is_a_clear_error(npy_files):
    completed = subprocess.run(
        [str(trtq_binary()), "calib-amax", str(npy_files["gaussian"]), "--method", "kl"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode != 0
    assert "unknown calibration method `kl`" in completed.stderr


# Real models: (id, path under TRTQ_MODELS without .onnx, input name, shape of one sample batch).
REAL_MODELS = [
    ("ppocr_det_320", "rapidocr/ch_PP-OCRv4_det_infer", "x", [1, 3, 320, 320]),
    ("light_resnet50", "onnx/light/light_resnet50", None, None),
]
REAL_SAMPLES = 4
# calib.json key -> (reference method, percentile).
REAL_METHODS = {
    "max": ("max", None),
    f"percentile_{reference.DEFAULT_PERCENTILE:g}": ("percentile", reference.DEFAULT_PERCENTILE),
    "entropy": ("entropy", None),
    "mse": ("mse", None),
}


def single_input(model):
    """(name, shape) of the model's only non-initializer input, batch dim 1."""
    initializers = {t.name for t in model.graph.initializer}
    (value,) = [i for i in model.graph.input if i.name not in initializers]
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in value.type.tensor_type.shape.dim]
    return value.name, dims


@pytest.fixture(scope="module", params=REAL_MODELS, ids=[m[0] for m in REAL_MODELS])
def real_calibration(request, tmp_path_factory):
    """Calibrates a real model with trtq on seeded npy data; returns (calib.json, activations of
    every calibrated tensor computed by onnxruntime on trtq's fused model)."""
    import onnx
    from onnx import TensorProto, helper

    model_id, relative, input_name, shape = request.param
    path = MODELS_DIR / f"{relative}.onnx"
    if not path.is_file():
        missing(f"model {path} not found: run scripts/fetch-models.sh (TRTQ_MODELS={MODELS_DIR})")
    if input_name is None:
        input_name, shape = single_input(onnx.load(path, load_external_data=False))
    folder = tmp_path_factory.mktemp(model_id)
    rng = np.random.default_rng(20261127)
    samples = rng.random([REAL_SAMPLES, *shape[1:]], dtype=np.float64).astype(np.float32)
    np.save(folder / "calib.npy", samples)
    config = folder / "config.yaml"
    write_build_config(config, path, {input_name: shape})
    with config.open("a") as text:
        text.write(f"calibration:\n  data: {{kind: npy, path: {json.dumps(str(folder / 'calib.npy'))}}}\n")
        text.write(f"  method: entropy\n  max_samples: {REAL_SAMPLES}\n")
    out = folder / "out"
    command = [str(trtq_binary()), "-q", "build", "--cpu", str(config), "--out", str(out)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    assert completed.returncode == 0, f"{command} failed: {completed.stderr}"
    calib = json.loads((out / "calib.json").read_text())
    assert calib["passes"] == 1 and calib["samples"] == REAL_SAMPLES

    fused = onnx.load(out / "model.fused.onnx")
    graph_inputs = {i.name for i in fused.graph.input}
    outputs = {o.name for o in fused.graph.output}
    for name in calib["tensors"]:
        if name not in outputs and name not in graph_inputs:
            fused.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    exposed = folder / "exposed.onnx"
    onnx.save(fused, exposed)
    session = ort_session(exposed)
    names = [o.name for o in session.get_outputs() if o.name in calib["tensors"]]
    activations = {name: [] for name in calib["tensors"]}
    for sample in samples:
        feeds = {input_name: sample[None]}
        for name, value in zip(names, session.run(names, feeds), strict=True):
            activations[name].append(np.asarray(value, np.float32).ravel())
        for name in graph_inputs & set(calib["tensors"]):
            activations[name].append(feeds[name].ravel())
    return calib, {name: np.concatenate(parts) for name, parts in activations.items()}


# trtq's executor matches onnxruntime within rounding (tests/conformance exec tests: 1e-4
# relative), so the activations the two see differ by ~1e-6 relative (measured ≤ 1.3e-6 on these
# models). That moves some values into a neighbouring bin, so the histograms are compared as
# distributions: no value may have moved by more than EXECUTOR_RELATIVE · abs-max. calib.json
# stores the 2048-bin view; by the fine-grid rule a value lies in its own 2048-bin bin or, within
# 1/8 bin of an edge, the neighbour, and EXECUTOR_RELATIVE · abs-max is 0.02 of a bin: so every
# value must stay within one 2048-bin bin of where the reference's view of onnxruntime's values
# puts it.
EXECUTOR_RELATIVE = 1e-5
VIEW_REACH_BINS = 1


def moved_too_far(bins, expected_bins, reach):
    """Whether `bins` cannot come from `expected_bins` by moving every value by at most `reach`
    bins: the cumulative counts must stay within that many bins."""
    got = np.concatenate([[0], np.cumsum(bins.astype(np.int64))])
    expected = np.concatenate([[0], np.cumsum(expected_bins.astype(np.int64))])
    edges = np.arange(expected.size)
    below = expected[np.maximum(edges - reach, 0)]
    above = expected[np.minimum(edges + reach, expected.size - 1)]
    return bool(np.any(got < below) or np.any(got > above))


def test_real_model_statistics_match_onnxruntime_activations(real_calibration):
    """trtq's stored statistics of every tensor against onnxruntime's activations binned by the
    numpy reference: abs-max, value count, the view's range (= the stored abs-max), and the
    2048-bin view equal up to moving each value by the executor's rounding."""
    calib, activations = real_calibration
    assert calib["tensors"], "no tensor was calibrated"
    failures = []
    for name, stats in sorted(calib["tensors"].items()):
        values = activations[name]
        expected_max = float(reference.abs_max(values))
        expected_bins = reference.histogram(values, np.float32(expected_max))
        stored = stats["histogram"]
        bins = reference.stored_bins(stored)
        checks = [
            (abs(stats["range"]["abs_max"] - expected_max) <= EXECUTOR_RELATIVE * expected_max, "abs-max"),
            (stats["range"]["count"] == values.size and int(bins.sum()) == values.size, "count"),
            (stored["range_max"] == stats["range"]["abs_max"], f"view range {stored['range_max']} is not the abs-max"),
            (
                not moved_too_far(bins, expected_bins, VIEW_REACH_BINS),
                f"values moved more than {VIEW_REACH_BINS} bin",
            ),
        ]
        failures += [f"{name}: {what}" for ok, what in checks if not ok]
    assert not failures, "\n".join(failures)


def test_real_model_amax_matches_numpy_reference_on_every_qdq_tensor(real_calibration):
    """Every method's amax in calib.json against the numpy reference on the same statistics
    (trtq's stored 2048-bin view and exact abs-max, searched independently): max equal within
    1e-6 relative; percentile, entropy and mse within one 2048-bin bin. Tie groups: the group's
    amax from its stored merged view, likewise."""
    calib, _ = real_calibration
    failures = []
    for name, stats in sorted(calib["tensors"].items()):
        range_max = np.float32(stats["range"]["abs_max"])
        bins = reference.stored_bins(stats["histogram"])
        for key, (method, percentile) in REAL_METHODS.items():
            expected, bin_width = reference.amax_from_histogram(
                bins, range_max, method, percentile or reference.DEFAULT_PERCENTILE
            )
            got = stats["amax_by_method"][key]
            if method == "max":
                ok = abs(got - float(expected)) <= 1e-6 * float(expected)
            else:
                ok = abs(got - float(expected)) <= float(bin_width)
            if not ok:
                failures.append(f"{name} {key}: trtq {got} vs reference {float(expected)} (bin {float(bin_width)})")
    for group in calib["tie_groups"]:
        view = group["histogram"]
        expected, bin_width = reference.amax_from_histogram(reference.stored_bins(view), view["range_max"], calib["method"])
        group_max = max(calib["tensors"][t]["range"]["abs_max"] for t in group["tensors"])
        if view["range_max"] != group_max or abs(group["amax"] - float(expected)) > float(bin_width):
            failures.append(f"tie group {group['tensors']}: trtq {group['amax']} vs reference {float(expected)}")
        failures += [f"{t}: not the group's amax" for t in group["tensors"] if calib["tensors"][t]["amax"] != group["amax"]]
    count = 4 * len(calib["tensors"]) + len(calib["tie_groups"])
    assert not failures, f"{len(failures)} of {count} amaxes differ:\n" + "\n".join(failures)
