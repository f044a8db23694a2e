"""scripts/make-demo-model.py is deterministic and the committed configs/demo/resnet_tiny.onnx is
its output; the model has the shape the demo config and the later stages rely on."""

from __future__ import annotations

import collections
import subprocess
import sys

import numpy as np
import onnx
from harness import DEMO_MODEL, REPO_ROOT, run_ort

GENERATOR = REPO_ROOT / "scripts" / "make-demo-model.py"


def generate(path) -> bytes:
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(path)], check=True, capture_output=True)
    return path.read_bytes()


def test_generator_is_byte_identical_and_matches_committed_model(tmp_path):
    first = generate(tmp_path / "first.onnx")
    second = generate(tmp_path / "second.onnx")
    assert first == second, "two runs of make-demo-model.py differ"
    assert first == DEMO_MODEL.read_bytes(), "configs/demo/resnet_tiny.onnx is stale: rerun scripts/make-demo-model.py"


def test_demo_model_has_the_promised_interface_and_ops():
    assert DEMO_MODEL.stat().st_size <= 1 << 20
    model = onnx.load(DEMO_MODEL)
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 13)]

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    assert [(i.name, dims(i)) for i in model.graph.input] == [("input", ["batch", 3, 32, 32])]
    assert [(o.name, dims(o)) for o in model.graph.output] == [("logits", ["batch", 10])]
    ops = collections.Counter(node.op_type for node in model.graph.node)
    for op in ("Conv", "BatchNormalization", "Relu", "Add", "MaxPool", "GlobalAveragePool", "Flatten", "Gemm"):
        assert ops[op] > 0, f"no {op}"
    assert ops["Add"] >= 2, "fewer than two residual blocks"
    kernels = [
        list(a.ints) for n in model.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "kernel_shape"
    ]
    one_by_one = [k for k in kernels if k == [1, 1]]
    assert one_by_one, "no 1x1 downsample convolution"
    assert len({n.name for n in model.graph.node}) == len(model.graph.node), "node names not unique"


def test_demo_model_runs_with_a_dynamic_batch():
    batch = np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)
    logits = run_ort(DEMO_MODEL, {"input": batch})["logits"]
    assert logits.shape == (3, 10)
    assert np.isfinite(logits).all()
    assert not np.allclose(logits[0], logits[1]), "the model ignores its input"
