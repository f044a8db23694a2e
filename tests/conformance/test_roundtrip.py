"""`trtq convert IN OUT` (decode, then encode) loses nothing: onnx reads the re-encoded file as a
ModelProto equal to the original, and onnxruntime gives bit-identical outputs on fixed inputs.

Runs on the demo model, every fetched model, torchvision exports if present, and onnx's backend
test models (these feed their own test data; those onnxruntime cannot run are only compared as
protos, and the output test says why it skipped).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from harness import (
    backend_model_cases,
    main_model_cases,
    model_params,
    require_model,
    run_ort,
    seeded_inputs,
)

CASES = main_model_cases() + backend_model_cases()


@pytest.fixture(scope="module")
def convert_once(trtq, tmp_path_factory):
    """Convert each model once per module; both tests below look at the same output."""
    done = {}

    def convert(case):
        if case.id not in done:
            out = tmp_path_factory.mktemp("convert") / "reencoded.onnx"
            done[case.id] = (trtq("convert", case.path, out), out)
        return done[case.id]

    return convert


def first_difference(a, b, path: str = "model") -> str:
    """Where two protobuf messages first differ, as a field path, for the assertion message."""
    for field in a.DESCRIPTOR.fields:
        left, right = getattr(a, field.name), getattr(b, field.name)
        here = f"{path}.{field.name}"
        is_message = field.message_type is not None
        if field.is_repeated:
            if len(left) != len(right):
                return f"{here}: {len(left)} entries vs {len(right)}"
            for index, (x, y) in enumerate(zip(left, right, strict=True)):
                if x != y:
                    return (
                        first_difference(x, y, f"{here}[{index}]") if is_message else f"{here}[{index}]: {x!r} vs {y!r}"
                    )
        elif field.has_presence and a.HasField(field.name) != b.HasField(field.name):
            return f"{here}: set in {'original' if a.HasField(field.name) else 're-encoded'} only"
        elif left != right:
            return first_difference(left, right, here) if is_message else f"{here}: {left!r} vs {right!r}"
    return f"{path}: no field differs (unknown fields?)"


def assert_bit_identical(expected, actual, name: str) -> None:
    """Same type, dtype, shape and bytes (so NaNs and signed zeros count); sequences itemwise."""
    if isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{name}: sequence differs"
        for index, (x, y) in enumerate(zip(expected, actual, strict=True)):
            assert_bit_identical(x, y, f"{name}[{index}]")
        return
    expected, actual = np.asarray(expected), np.asarray(actual)
    assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), f"{name}: dtype/shape differ"
    if expected.dtype == object:
        assert np.array_equal(actual, expected), f"{name}: values differ"
    else:
        as_bytes = [np.frombuffer(np.ascontiguousarray(a).tobytes(), np.uint8) for a in (expected, actual)]
        differing = np.count_nonzero(as_bytes[0] != as_bytes[1])
        assert differing == 0, f"{name}: {differing} bytes differ"


@pytest.mark.parametrize("case", model_params(CASES))
def test_reencoded_model_proto_equal(case, convert_once):
    case = require_model(case)
    result, out = convert_once(case)
    assert result.returncode == 0, result.describe()
    original = onnx.load(case.path)
    reencoded = onnx.load(out)
    assert original == reencoded, first_difference(original, reencoded)


@pytest.mark.parametrize("case", model_params(CASES))
def test_reencoded_outputs_bit_identical(case, convert_once):
    case = require_model(case)
    result, out = convert_once(case)
    assert result.returncode == 0, result.describe()
    feeds = seeded_inputs(case, onnx.load(case.path))
    try:
        expected = run_ort(case.path, feeds)
    except Exception as error:  # onnxruntime raises its own exception types
        if case.data_dir is None:
            raise  # every main model must run; only some backend test models cannot
        pytest.skip(f"onnxruntime cannot run the original model: {str(error).splitlines()[0][:200]}")
    actual = run_ort(out, feeds)
    assert list(actual) == list(expected), "output names differ"
    for name, value in expected.items():
        assert_bit_identical(value, actual[name], name)
