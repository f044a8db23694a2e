"""scripts/compare_peers.py cannot rot: its --smoke mode builds the demo model with trtq and scores
the result with the script's one scoring function, and that function measures what it says
(exact SQNR on a known perturbation, logits found behind the nodes a quantizer puts after a final
Softmax). The full comparison (bench-results/peers.md) is not part of CI."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import onnx
from harness import DEMO_MODEL, REPO_ROOT
from onnx import TensorProto, helper, numpy_helper

_spec = importlib.util.spec_from_file_location("compare_peers", REPO_ROOT / "scripts" / "compare_peers.py")
peers = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = peers  # dataclasses look their module up there
_spec.loader.exec_module(peers)


def test_smoke_builds_and_scores_the_demo_with_trtq(trtq_bin, tmp_path):
    args = peers.parse_args(["--smoke", "--tools", "trtq", "--trtq-bin", str(trtq_bin), "--work", str(tmp_path)])
    report = peers.compare(args)

    full, pattern_only = report["runs"]
    assert [(r["tool"], r["method"]) for r in (full, pattern_only)] == [
        ("trtq", "entropy"),
        ("trtq", "entropy, pattern only"),
    ]
    for run in (full, pattern_only):
        assert run["status"] == "ok", run["status"]
        assert run["wall_s"] > 0
    # The pattern-only build writes no uniform model and is the one the speed-up table times.
    assert pattern_only["outputs"] == {}
    assert not (tmp_path / "demo" / "trtq-entropy-pattern-only" / "out" / "model.uniform.qdq.onnx").exists()
    assert (tmp_path / "demo" / "trtq-entropy-pattern-only" / "out" / "model.qdq.onnx").is_file()
    [speedup] = report["speedups"]
    assert (speedup["trtq_run"], speedup["peer"]) == ("entropy, pattern only", "none finished")
    [table] = report["scores"].values()
    assert set(table) == {"trtq pattern (entropy)", "trtq uniform (entropy)"}
    for label, rows in table.items():
        [row] = rows  # the demo's one output, a Gemm: no logits to add
        assert row["name"] == "logits"
        assert row["sqnr_db"] is not None and 15.0 < row["sqnr_db"] < 80.0, (label, row)
        assert 0.0 <= row["top1_agreement"] <= 1.0
    assert (tmp_path / "peers.json").is_file()

    peers.render(tmp_path / "peers.json", tmp_path / "peers.md")
    text = (tmp_path / "peers.md").read_text()
    assert "## Issue 4's accuracy bar: trtq pattern (entropy) minus each other candidate, dB" in text
    assert "## Like with like: trtq pattern (max) minus each other candidate, dB" in text
    # The demo's one bar row: pattern minus uniform is a number, the peers that did not run are "—".
    [row] = [line for line in text.splitlines() if line.startswith("| demo resnet_tiny")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "logits" and cells[3:] == ["—", "—"], row
    float(cells[2])  # pattern minus uniform, a number


def test_like_with_like_bar_puts_trtq_max_against_the_peers_entropy_and_max():
    def rows(sqnr):
        return [
            {"name": "y", "sqnr_db": sqnr, "top1_agreement": None},
            {"name": "logits(y)", "sqnr_db": sqnr - 10.0, "top1_agreement": None},
        ]

    table = {
        "trtq pattern (entropy)": rows(30.0),
        "trtq pattern (max)": rows(32.0),
        "trtq uniform (max)": rows(31.5),
        "ModelOpt (entropy)": rows(33.0),
        "ModelOpt (max)": rows(32.5),
    }
    [entropy_bar, max_bar] = peers.ACCURACY_BARS
    metric, margins = peers.accuracy_margins(table, max_bar)
    assert metric == "logits(y)"
    assert margins["trtq uniform (max)"] == 0.5
    assert margins["ModelOpt (entropy)"] == -1.0
    assert margins["ModelOpt (max)"] == -0.5
    assert np.isnan(margins["onnxruntime quantize_static (entropy)"])
    assert peers.accuracy_margins(table, entropy_bar)[1]["ModelOpt (entropy)"] == -3.0
    assert peers.accuracy_margins({"ModelOpt (entropy)": rows(1.0)}, max_bar) == (None, {})


def test_the_reference_scores_identical_against_itself():
    samples = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    [row] = peers.score(DEMO_MODEL, {"itself": DEMO_MODEL}, {"input": samples})["itself"]
    assert row.sqnr_db is None
    assert row.top1_agreement == 1.0


def softmax_classifier(path, weight_scale: float) -> None:
    """x[1,8] @ W[8,4] -> Softmax -> Q -> DQ -> Reshape -> y[1,4], as a quantizer leaves it."""
    weight = np.linspace(-1.0, 1.0, 32, dtype=np.float32).reshape(8, 4) * np.float32(weight_scale)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["prob"], axis=-1),
        helper.make_node("QuantizeLinear", ["prob", "s", "z"], ["prob_q"]),
        helper.make_node("DequantizeLinear", ["prob_q", "s", "z"], ["prob_dq"]),
        helper.make_node("Reshape", ["prob_dq", "shape"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(weight, "W"),
        numpy_helper.from_array(np.array(1 / 255, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.uint8), "z"),
        numpy_helper.from_array(np.array([1, 4], np.int64), "shape"),
    ]
    graph = helper.make_graph(
        nodes,
        "softmax_classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_logits_are_found_behind_qdq_and_reshape_and_scored_exactly(tmp_path):
    reference, scaled = tmp_path / "reference.onnx", tmp_path / "scaled.onnx"
    softmax_classifier(reference, 1.0)
    softmax_classifier(scaled, 1.01)  # logits off by exactly 1 %: SQNR 40 dB
    assert peers.logits_of(onnx.load(reference)) == {"y": "scores"}

    samples = np.random.default_rng(1).standard_normal((8, 8)).astype(np.float32)
    rows = {r.name: r for r in peers.score(reference, {"scaled": scaled}, {"x": samples})["scaled"]}
    assert set(rows) == {"y", "logits(y)"}
    assert abs(rows["logits(y)"].sqnr_db - 40.0) < 1e-3
    assert rows["logits(y)"].top1_agreement is None
    assert rows["y"].top1_agreement == 1.0  # scaling logits by 1.01 keeps every arg-max
