"""`trtq build CONFIG --out DIR` normalizes a model (constant folding, shape inference with the
config's concrete input shapes, opset upgrade to 17) without changing what it computes.

For the demo model, every fetched model and torchvision exports if present:
- DIR/model.normalized.onnx and DIR/summary.json are written; the model is at the config's
  opset: 17, or the model's own where that is higher (trtq upgrades, never downgrades);
- onnx.checker.check_model(full_check=True) passes;
- onnxruntime outputs match the original's on fixed inputs within 1e-5 relative, with this
  formula per element: |n - o| <= 1e-5 * |o| + 1e-5 * max|o|, where o is the original output,
  n the normalized one and max|o| the largest magnitude in that output tensor (so elements near
  zero are held to 1e-5 of the tensor's scale); NaN only where the original has NaN;
- every node output in the normalized model has a recorded static shape, and those shapes agree
  with onnx.shape_inference run on the original with the same concrete input shapes, for every
  value name both have (dims compared where both are known).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pathlib

import numpy as np
import onnx
import pytest
from harness import (
    concrete_shapes,
    main_model_cases,
    model_params,
    TrtqResult,
    require_model,
    run_ort,
    seeded_inputs,
    write_build_config,
)

CASES = main_model_cases()
TARGET_OPSET = 17
RTOL = 1e-5


@dataclasses.dataclass(frozen=True)
class BuildRun:
    """One `trtq build` of a model: the command's result and where it wrote."""

    result: TrtqResult
    out_dir: pathlib.Path
    shapes: dict[str, list[int]]

    @property
    def normalized(self) -> pathlib.Path:
        """Where the build writes the normalized model."""
        return self.out_dir / "model.normalized.onnx"

    def require_success(self) -> pathlib.Path:
        """The normalized model's path, after asserting the build succeeded and wrote it."""
        assert self.result.returncode == 0, self.result.describe()
        assert self.normalized.is_file(), f"{self.normalized} not written"
        return self.normalized


def default_opset(model: onnx.ModelProto) -> int | None:
    """The model's ai.onnx opset version."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def expected_opset(original: onnx.ModelProto) -> int:
    """The opset the build config asks for: 17, or the model's own where that is higher (PyTorch's
    dynamo exporter leaves opset 18, and trtq upgrades, never downgrades)."""
    return max(TARGET_OPSET, default_opset(original) or 0)


@pytest.fixture(scope="module")
def build_once(trtq, tmp_path_factory):
    """Build each model once per module with a generated config; tests share the output."""
    done = {}

    def build(case):
        if case.id not in done:
            work = tmp_path_factory.mktemp("build")
            original = onnx.load(case.path, load_external_data=False)
            shapes = concrete_shapes(case, original)
            config = work / "config.yaml"
            write_build_config(config, case.path, shapes, opset=expected_opset(original))
            out_dir = work / "out"
            done[case.id] = BuildRun(trtq("build", config, "--out", out_dir, "--until", "normalize"), out_dir, shapes)
        return done[case.id]

    return build


def with_concrete_inputs(model: onnx.ModelProto, shapes: dict[str, list[int]]) -> onnx.ModelProto:
    """A copy of `model` whose graph inputs carry the given concrete shapes."""
    model = copy.deepcopy(model)
    for value in model.graph.input:
        if value.name in shapes:
            shape = value.type.tensor_type.shape
            shape.ClearField("dim")
            for size in shapes[value.name]:
                shape.dim.add().dim_value = size
    return model


def recorded_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, tuple[int | None, ...] | None]]:
    """name -> (elem_type, dims) for every value with a type in value_info, inputs and outputs;
    dims is None without a shape, a dim is None when not a known positive size."""
    shapes = {}
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        tensor = value.type.tensor_type
        dims = None
        if tensor.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor.shape.dim)
        shapes[value.name] = (tensor.elem_type, dims)
    return shapes


@pytest.mark.parametrize("case", model_params(CASES))
def test_build_writes_normalized_model_and_summary(case, build_once):
    run = build_once(require_model(case))
    run.require_success()
    summary = json.loads((run.out_dir / "summary.json").read_text())
    assert isinstance(summary, dict) and summary, "summary.json is not a non-empty JSON object"


@pytest.mark.parametrize("case", model_params(CASES))
def test_normalized_model_is_at_target_opset(case, build_once):
    case = require_model(case)
    normalized = onnx.load(build_once(case).require_success(), load_external_data=False)
    expected = expected_opset(onnx.load(case.path, load_external_data=False))
    assert default_opset(normalized) == expected, f"opset imports {normalized.opset_import}"


@pytest.mark.parametrize("case", model_params(CASES))
def test_normalized_model_passes_full_checker(case, build_once):
    path = build_once(require_model(case)).require_success()
    onnx.checker.check_model(str(path), full_check=True)


@pytest.mark.parametrize("case", model_params(CASES))
def test_normalized_outputs_match_original(case, build_once):
    case = require_model(case)
    normalized = build_once(case).require_success()
    feeds = seeded_inputs(case, onnx.load(case.path))
    expected = run_ort(case.path, feeds)
    actual = run_ort(normalized, feeds)
    assert list(actual) == list(expected), "graph output names or order changed"
    for name, original in expected.items():
        got = actual[name]
        assert (got.dtype, got.shape) == (original.dtype, original.shape), f"{name}: dtype/shape differ"
        if not np.issubdtype(original.dtype, np.floating):
            assert np.array_equal(got, original), f"{name}: values differ"
            continue
        nan = np.isnan(original)
        assert np.array_equal(np.isnan(got), nan), f"{name}: NaN in different places"
        o, n = original[~nan].astype(np.float64), got[~nan].astype(np.float64)
        if o.size == 0:
            continue
        bound = RTOL * np.abs(o) + RTOL * np.abs(o).max()
        excess = np.abs(n - o) - bound
        worst = int(np.argmax(excess))
        assert excess[worst] <= 0, (
            f"{name}: {np.count_nonzero(excess > 0)} of {o.size} elements off; worst: original {o[worst]!r}, "
            f"normalized {n[worst]!r} (allowed {bound[worst]:.3g})"
        )


@pytest.mark.parametrize("case", model_params(CASES))
def test_every_normalized_value_has_a_static_shape(case, build_once):
    model = onnx.load(build_once(require_model(case)).require_success(), load_external_data=False)
    recorded = recorded_shapes(model)
    lacking = [
        output
        for node in model.graph.node
        for output in node.output
        if output and (recorded.get(output, (0, None))[1] is None or None in recorded[output][1])
    ]
    assert not lacking, f"{len(lacking)} node outputs without a static shape, e.g. {lacking[:10]}"


@pytest.mark.parametrize("case", model_params(CASES))
def test_normalized_shapes_agree_with_onnx_shape_inference(case, build_once):
    case = require_model(case)
    run = build_once(case)
    normalized = recorded_shapes(onnx.load(run.require_success(), load_external_data=False))
    original = with_concrete_inputs(onnx.load(case.path, load_external_data=False), run.shapes)
    reference = recorded_shapes(onnx.shape_inference.infer_shapes(original, strict_mode=False, data_prop=True))
    common = sorted(set(normalized) & set(reference))
    assert common, "the normalized model shares no value names with the original"
    disagreements = []
    for name in common:
        (ours_type, ours), (ref_type, ref) = normalized[name], reference[name]
        if ours_type and ref_type and ours_type != ref_type:
            disagreements.append(f"{name}: elem_type {ours_type} vs onnx {ref_type}")
        elif ours is not None and ref is not None:
            if len(ours) != len(ref) or any(
                a is not None and b is not None and a != b for a, b in zip(ours, ref, strict=True)
            ):
                disagreements.append(f"{name}: {list(ours)} vs onnx {list(ref)}")
    assert not disagreements, f"{len(disagreements)} of {len(common)} values disagree: {disagreements[:10]}"
