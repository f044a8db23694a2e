"""Opset upgrade against onnxruntime: small models in the old forms each rewrite handles
(Clip min/max attributes, Squeeze/Unsqueeze/Split/ReduceSum attributes, Softmax's pre-13 2-D
coercion, Upsample, Resize-10, Slice/Pad attributes, BatchNormalization's extra outputs, Dropout,
Sum of two inputs), normalized by `trtq build` to opset 17: onnxruntime gives the same outputs
on the old and the upgraded model, and the upgraded model passes onnx.checker's full check."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def make(nodes, inputs, outputs, opset, inits=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="test")
    m.ir_version = 6 if opset >= 11 else 4
    return m


def vi(name, shape):
    return helper.make_tensor_value_info(name, F, shape)


CASES = {
    "clip_attrs_v6": lambda: make(
        [helper.make_node("Clip", ["x"], ["y"], min=-0.5, max=0.7)], [vi("x", [2, 3])], [vi("y", [2, 3])], 6),
    "squeeze_unsqueeze_attrs_v11": lambda: make(
        [helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0, 3]), helper.make_node("Squeeze", ["u"], ["y"], axes=[0])],
        [vi("x", [2, 3])], [vi("y", [2, 3, 1])], 11),
    "split_attr_v11": lambda: make(
        [helper.make_node("Split", ["x"], ["a", "b"], axis=1, split=[1, 3])],
        [vi("x", [2, 4])], [vi("a", [2, 1]), vi("b", [2, 3])], 11),
    "reducesum_attr_v11": lambda: make(
        [helper.make_node("ReduceSum", ["x"], ["y"], axes=[1], keepdims=0)], [vi("x", [2, 4, 3])], [vi("y", [2, 3])], 11),
    "softmax_coercion_v11": lambda: make(
        [helper.make_node("Softmax", ["x"], ["y"], axis=1)], [vi("x", [2, 3, 4, 5])], [vi("y", [2, 3, 4, 5])], 11),
    "softmax_last_axis_v11": lambda: make(
        [helper.make_node("Softmax", ["x"], ["y"], axis=2)], [vi("x", [2, 3, 4])], [vi("y", [2, 3, 4])], 11),
    "upsample_v9": lambda: make(
        [helper.make_node("Upsample", ["x", "s"], ["y"], mode="nearest")], [vi("x", [1, 2, 3, 4])], [vi("y", [1, 2, 6, 8])], 9,
        [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")]),
    "upsample_linear_v9": lambda: make(
        [helper.make_node("Upsample", ["x", "s"], ["y"], mode="linear")], [vi("x", [1, 2, 3, 4])], [vi("y", [1, 2, 6, 8])], 9,
        [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")]),
    "resize_v10": lambda: make(
        [helper.make_node("Resize", ["x", "s"], ["y"], mode="nearest")], [vi("x", [1, 2, 3, 4])], [vi("y", [1, 2, 6, 8])], 10,
        [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")]),
    "slice_attrs_v9": lambda: make(
        [helper.make_node("Slice", ["x"], ["y"], starts=[1, 0], ends=[3, -1], axes=[0, 2])], [vi("x", [4, 3, 5])], [vi("y", [2, 3, 4])], 9),
    "pad_attrs_v7": lambda: make(
        [helper.make_node("Pad", ["x"], ["y"], pads=[0, 1, 0, 2], value=1.5)], [vi("x", [2, 3])], [vi("y", [2, 6])], 7),
    "batchnorm_v7_spatial": lambda: make(
        [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], spatial=1, epsilon=1e-3)],
        [vi("x", [2, 3, 4, 4])], [vi("y", [2, 3, 4, 4])], 7,
        [numpy_helper.from_array(np.array(a, np.float32), n) for n, a in
         [("s", [1.0, 2.0, 0.5]), ("b", [0.1, -0.2, 0.3]), ("m", [0.0, 1.0, -1.0]), ("v", [1.0, 0.5, 2.0])]]),
    "dropout_and_sum_v9": lambda: make(
        [helper.make_node("Dropout", ["x"], ["d", "mask"], ratio=0.3), helper.make_node("Sum", ["d", "x"], ["y"])],
        [vi("x", [2, 3])], [vi("y", [2, 3])], 9),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_upgrade_matches_onnxruntime(case, trtq, tmp_path):
    m = CASES[case]()
    src = tmp_path / f"{case}.onnx"
    onnx.save(m, src)
    (tmp_path / "c.yaml").write_text(f"model: {src.name}\nopset: 17\noutput_dir: out\n")
    r = trtq("build", tmp_path / "c.yaml", "--until", "normalize")
    assert r.returncode == 0, r.describe()
    up = onnx.load(tmp_path / "out" / "model.normalized.onnx")
    assert up.opset_import[0].version == 17
    onnx.checker.check_model(up, full_check=True)
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
             for i in m.graph.input}
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    got = ort.InferenceSession(up.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
