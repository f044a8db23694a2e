"""Bad input is refused cleanly: exit code 2, exactly one stderr line starting `error:` that names
the file and the problem, no panic, nothing written, and the input left untouched.

Bad models (built with onnx.helper and saved without checking) go through `trtq inspect`,
`trtq convert` and `trtq build`; those that only a graph check can catch (a cycle, an undefined
value, a value defined twice) through inspect and build, since convert only decodes and encodes.
Bad configs go through `trtq build`. Each command runs in an empty working folder that must stay
empty; `build` gets `--out` inside it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import re
import shutil
from collections.abc import Callable

import numpy as np
import onnx
import pytest
from harness import DEMO_MODEL
from onnx import TensorProto, helper

# ---------------------------------------------------------------------------------------------
# Bad models. Each maker writes its files into the input folder and returns the model's path.


def save_unchecked(model: onnx.ModelProto, path: pathlib.Path) -> pathlib.Path:
    path.write_bytes(model.SerializeToString())
    return path


def small_model(nodes: list[onnx.NodeProto], initializers: list[onnx.TensorProto] = ()) -> onnx.ModelProto:
    """X [1, 4] float -> nodes -> Y [1, 4] float, opset 17."""
    graph = helper.make_graph(
        nodes,
        "bad",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])],
        initializer=list(initializers),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def external_weight_model(location: str) -> onnx.ModelProto:
    """Y = X + W, with W's 4 floats stored externally at `location`."""
    weight = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    return small_model([helper.make_node("Add", ["X", "W"], ["Y"], name="add")], [weight])


def write_outside_data(folder: pathlib.Path) -> pathlib.Path:
    """A real data file beside (not inside) the model folder, so only the escape is wrong."""
    outside = folder.parent / "outside.bin"
    outside.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    return outside


def make_truncated(folder: pathlib.Path) -> pathlib.Path:
    data = DEMO_MODEL.read_bytes()
    path = folder / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])  # cuts through the graph's length-delimited field
    return path


def make_random_bytes(folder: pathlib.Path) -> pathlib.Path:
    path = folder / "random_bytes.onnx"
    path.write_bytes(np.random.default_rng(7).bytes(4096))
    return path


def make_cycle(folder: pathlib.Path) -> pathlib.Path:
    nodes = [
        helper.make_node("Relu", ["loop_b"], ["loop_a"], name="relu_a"),
        helper.make_node("Relu", ["loop_a"], ["loop_b"], name="relu_b"),
        helper.make_node("Add", ["X", "loop_a"], ["Y"], name="add"),
    ]
    return save_unchecked(small_model(nodes), folder / "cycle.onnx")


def make_undefined_value(folder: pathlib.Path) -> pathlib.Path:
    nodes = [helper.make_node("Add", ["X", "ghost_value"], ["Y"], name="add")]
    return save_unchecked(small_model(nodes), folder / "undefined_value.onnx")


def make_duplicate_output(folder: pathlib.Path) -> pathlib.Path:
    nodes = [
        helper.make_node("Relu", ["X"], ["made_twice"], name="relu"),
        helper.make_node("Sigmoid", ["X"], ["made_twice"], name="sigmoid"),
        helper.make_node("Add", ["X", "made_twice"], ["Y"], name="add"),
    ]
    return save_unchecked(small_model(nodes), folder / "duplicate_output.onnx")


def make_external_dotdot(folder: pathlib.Path) -> pathlib.Path:
    write_outside_data(folder)
    return save_unchecked(external_weight_model("../outside.bin"), folder / "external_dotdot.onnx")


def make_external_absolute(folder: pathlib.Path) -> pathlib.Path:
    outside = write_outside_data(folder)
    return save_unchecked(external_weight_model(str(outside)), folder / "external_absolute.onnx")


def make_external_symlink(folder: pathlib.Path) -> pathlib.Path:
    outside = write_outside_data(folder)
    os.symlink(outside, folder / "link.bin")
    return save_unchecked(external_weight_model("link.bin"), folder / "external_symlink.onnx")


def make_external_missing(folder: pathlib.Path) -> pathlib.Path:
    return save_unchecked(external_weight_model("weights.bin"), folder / "external_missing.onnx")


@dataclasses.dataclass(frozen=True)
class BadModel:
    """A bad model, the patterns its error line must match, and whether only a graph check sees it."""

    make: Callable[[pathlib.Path], pathlib.Path]
    problem: tuple[str, ...]  # regexes (case-insensitive) that must all match the error line
    graph_level: bool = False


DECODE = r"truncat|unexpected end|decod|invalid|malformed|protobuf|wire|buffer|not an onnx"
NOT_FOUND = r"not found|no such|does not exist|missing|cannot open|can't open|failed to open"
ESCAPES = r"outside|escape|leaves|absolute|symlink"

BAD_MODELS = {
    "truncated": BadModel(make_truncated, (DECODE,)),
    "random_bytes": BadModel(make_random_bytes, (DECODE,)),
    "cycle": BadModel(make_cycle, (r"cycl",), graph_level=True),
    "undefined_value": BadModel(
        make_undefined_value,
        (r"ghost_value", r"undefined|not defined|no producer|never produced|unknown|dangling|missing"),
        graph_level=True,
    ),
    "duplicate_output": BadModel(
        make_duplicate_output,
        (r"made_twice", r"duplicat|twice|more than once|already|multiple|redefin"),
        graph_level=True,
    ),
    "external_dotdot": BadModel(make_external_dotdot, (ESCAPES + r"|\.\./outside\.bin",)),
    "external_absolute": BadModel(make_external_absolute, (ESCAPES,)),
    "external_symlink": BadModel(make_external_symlink, (ESCAPES + r"|link\.bin",)),
    "external_missing": BadModel(make_external_missing, (r"weights\.bin", NOT_FOUND)),
}

MODEL_RUNS = [
    pytest.param(name, command, id=f"{name}-{command}")
    for name, bad in BAD_MODELS.items()
    for command in ("inspect", "convert", "build")
    if not (bad.graph_level and command == "convert")
]

# ---------------------------------------------------------------------------------------------
# Bad configs: line 3 is the bad one (or the model named on line 1 does not exist). The regexes
# name the file: file:line:column for a YAML error, the missing model's name for a missing model.

GOOD_LINES = ["model: model.onnx", "inputs: {input: [1, 3, 32, 32]}"]
BAD_CONFIGS = {
    # name: (config lines, regexes the error line must match)
    "unknown_key": (GOOD_LINES + ["frobnicate: true"], (r"config\.yaml:3:\d+", r"frobnicate")),
    "wrong_type": (GOOD_LINES + ["opset: seventeen"], (r"config\.yaml:3:\d+", r"opset|seventeen|type")),
    "missing_model": (["model: no_such_model.onnx", GOOD_LINES[1]], (r"no_such_model\.onnx", NOT_FOUND)),
}


# ---------------------------------------------------------------------------------------------


def snapshot(folder: pathlib.Path) -> dict[str, str]:
    """Every entry under `folder` (symlinks not followed) with a digest of its content."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        relative = str(path.relative_to(folder))
        if path.is_symlink():
            entries[relative] = "link:" + os.readlink(path)
        elif path.is_file():
            entries[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            entries[relative] = "dir"
    return entries


@pytest.fixture
def folders(tmp_path):
    """(input folder, empty working folder) inside a fresh temporary folder."""
    inputs, work = tmp_path / "in", tmp_path / "work"
    inputs.mkdir()
    work.mkdir()
    return inputs, work


def assert_rejected(result, inputs: pathlib.Path, before: dict, work: pathlib.Path, names: list[str], problem) -> None:
    """Exit 2, one `error:` line naming every name and matching every problem regex, no panic,
    nothing written in `work`, the input folder unchanged."""
    assert result.returncode == 2, result.describe()
    assert "panicked" not in result.stderr, result.describe()
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, f"expected exactly one `error:` line\n{result.describe()}"
    line = error_lines[0]
    for name in names:
        assert name in line, f"error line does not name {name!r}: {line}"
    for pattern in problem:
        assert re.search(pattern, line, re.IGNORECASE), f"error line does not match /{pattern}/: {line}"
    assert sorted(p.name for p in work.iterdir()) == [], "something was written in the working folder"
    assert snapshot(inputs) == before, "the input folder changed"


@pytest.mark.parametrize(("name", "command"), MODEL_RUNS)
def test_bad_model_is_rejected(name, command, trtq, folders):
    inputs, work = folders
    bad = BAD_MODELS[name]
    model = bad.make(inputs)
    if command == "inspect":
        args = ["inspect", model, "--json"]
    elif command == "convert":
        args = ["convert", model, work / "converted.onnx"]
    else:
        config = inputs / "config.yaml"
        config.write_text(f"model: {model.name}\ninputs: {{X: [1, 4]}}\n")
        args = ["build", config, "--out", work / "out"]
    before = snapshot(inputs)
    result = trtq(*args, cwd=work)
    assert_rejected(result, inputs, before, work, [model.name], bad.problem)


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_bad_config_is_rejected(name, trtq, folders):
    inputs, work = folders
    lines, problem = BAD_CONFIGS[name]
    shutil.copyfile(DEMO_MODEL, inputs / "model.onnx")
    config = inputs / "config.yaml"
    config.write_text("\n".join(lines) + "\n")
    before = snapshot(inputs)
    result = trtq("build", config, "--out", work / "out", cwd=work)
    assert_rejected(result, inputs, before, work, [], problem)
