"""scripts/qdq_ablation.py reads a Q/DQ model as a plan and writes it back onto the FP32 model
without changing what it computes (bench-results/peers-accuracy.md relies on rebuilt models
scoring as the files do), and its group edits name and remove the edges one plan alone has."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import onnx
import onnxruntime as ort
from harness import REPO_ROOT
from onnx import TensorProto, helper, numpy_helper

_spec = importlib.util.spec_from_file_location("qdq_ablation", REPO_ROOT / "scripts" / "qdq_ablation.py")
ablation = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = ablation  # dataclasses look their module up there
_spec.loader.exec_module(ablation)

WEIGHT = np.random.default_rng(0).standard_normal((3, 2, 1, 1)).astype(np.float32)
WEIGHT_SCALE = (np.abs(WEIGHT).reshape(3, -1).max(axis=1) / 127).astype(np.float32)
INPUT_SCALE = np.float32(0.02)


def conv_relu(path, quantized: bool) -> None:
    """x[1,2,4,4] → Conv(W) → y → Relu → z; quantized: Q/DQ on x, W as int8 → DequantizeLinear
    (per output channel), the way trtq stores weights."""
    nodes, inits = [], []
    x, w = "x", "W"
    if quantized:
        inits += [
            numpy_helper.from_array(np.array(INPUT_SCALE), "x_scale"),
            numpy_helper.from_array(np.array(0, np.int8), "x_zero"),
            numpy_helper.from_array(
                np.clip(np.rint(WEIGHT / WEIGHT_SCALE[:, None, None, None]), -127, 127).astype(np.int8), "W_quantized"
            ),
            numpy_helper.from_array(WEIGHT_SCALE, "W_scale"),
            numpy_helper.from_array(np.zeros(3, np.int8), "W_zero"),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["x_q"]),
            helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], ["x_dq"]),
            helper.make_node("DequantizeLinear", ["W_quantized", "W_scale", "W_zero"], ["W_dq"], axis=0),
        ]
        x, w = "x_dq", "W_dq"
    else:
        inits.append(numpy_helper.from_array(WEIGHT, "W"))
    nodes += [helper.make_node("Conv", [x, w], ["y"]), helper.make_node("Relu", ["y"], ["z"])]
    graph = helper.make_graph(
        nodes,
        "conv_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3, 4, 4])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_a_plan_written_back_onto_the_fp32_model_computes_the_same(tmp_path):
    fp32, qdq, rebuilt = tmp_path / "fp32.onnx", tmp_path / "qdq.onnx", tmp_path / "rebuilt.onnx"
    conv_relu(fp32, quantized=False)
    conv_relu(qdq, quantized=True)

    plan = ablation.read_plan(qdq)
    assert set(plan.activations) == {("y", 0)} and plan.activations[("y", 0)].tensor == "x"
    assert set(plan.weights) == {("y", 1)} and plan.weights[("y", 1)].axis == 0
    np.testing.assert_array_equal(plan.weights[("y", 1)].scale, WEIGHT_SCALE)

    ablation.apply_plan(onnx.load(str(fp32)), plan, rebuilt)
    x = np.random.default_rng(1).standard_normal((1, 2, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(run(rebuilt, x), run(qdq, x))
    assert not np.array_equal(run(fp32, x), run(qdq, x))  # the Q/DQ does change the result


def test_group_edits_remove_the_weight_only_one_plan_quantizes(tmp_path):
    fp32_path, qdq = tmp_path / "fp32.onnx", tmp_path / "qdq.onnx"
    conv_relu(fp32_path, quantized=False)
    conv_relu(qdq, quantized=True)
    fp32 = onnx.load(str(fp32_path))
    mine = ablation.read_plan(qdq)
    other = ablation.Plan(mine.activations, {})  # the same, weight left float

    edits = dict(ablation.group_edits(fp32, mine, "mine", other, "other"))
    assert list(edits) == ["mine − its Conv weight, which other leaves float (1 edges)"]
    assert edits["mine − its Conv weight, which other leaves float (1 edges)"].weights == {}
    back = dict(ablation.group_edits(fp32, other, "other", mine, "mine"))
    assert list(back) == ["other + mine's Conv weight (1 edges)"]
    assert set(back["other + mine's Conv weight (1 edges)"].weights) == {("y", 1)}
