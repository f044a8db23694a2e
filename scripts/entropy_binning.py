#!/usr/bin/env python3
"""How the histogram layout behind trtq's entropy amax changes it, and what that does to
accuracy (bench-results/peers-accuracy.md).

trtq histograms |x| once on a fine grid (16384 bins of width 2^e, scripts/calib_reference.py) and
derives a 2048-bin view over [0, abs-max] by sending each fine bin to the view bin holding its
centre; a view bin is 4 to 8 fine bins wide but not a whole number of them, so every few bins one
gets a fine bin fewer. The KL search of the entropy method can be ill-conditioned (a flat
divergence curve, candidates whose edge bin is empty are infinite), so the grid alone may move its
result. This script recomputes the entropy amax of every activation a trtq Q/DQ model quantizes
(tie groups as calib.json records them) from the same calibration data with three views, writes
trtq's model with each set of scales (and each with the Gemm weights left float), and scores them
with scripts/compare_peers.py's `score`:

- centre rule: trtq's own view (reproduces calib.json's entropy amax);
- whole fine bins: view bins of exactly k = ceil(abs-max / (2048 · 2^e)) fine bins, as many as
  reach abs-max (1639 to 2048): no periodic dips; amax capped at abs-max;
- direct: numpy's 2048-bin histogram of |x| over [0, abs-max] (a two-pass layout: the first pass
  fixes the range), computed in a second pass.

    python scripts/entropy_binning.py --fp32 M.onnx --trtq-out OUT --calib calib.npy \
        --eval eval.npy --input input --work /tmp/acc/binning --out result.json
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import pathlib
import sys

import numpy as np
import onnx

SCRIPTS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))
import calib_reference as reference  # noqa: E402

_spec = importlib.util.spec_from_file_location("qdq_ablation", SCRIPTS / "qdq_ablation.py")
ablation = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = ablation  # dataclasses look their module up there
_spec.loader.exec_module(ablation)

VIEWS = ("centre rule", "whole fine bins", "direct")


@dataclasses.dataclass
class Unit:
    """Tensors that share one scale (a tie group, or one tensor) and their histograms."""

    tensors: list[str]
    range_max: float
    fine: np.ndarray | None = None  # 16384 fine bins at range_max's exponent
    direct: np.ndarray | None = None  # 2048 bins over [0, range_max]


def units_of(calib: dict, quantized: set[str], abs_max: dict[str, float]) -> list[Unit]:
    """One unit per calib.json tie group touching `quantized`, one per other quantized tensor."""
    units, covered = [], set()
    for group in calib.get("tie_groups", []):
        members = list(group["tensors"])
        if quantized.intersection(members):
            units.append(Unit(members, max(abs_max[t] for t in members)))
            covered.update(members)
    units += [Unit([t], abs_max[t]) for t in sorted(quantized - covered)]
    return units


def collect(fp32: onnx.ModelProto, units: list[Unit], samples: dict[str, np.ndarray]) -> None:
    """Second pass: every unit's fine and direct histograms over all samples (ranges known)."""
    import onnxruntime as ort

    model = onnx.ModelProto()
    model.CopyFrom(fp32)
    names = sorted({t for u in units for t in u.tensors})
    inputs = {i.name for i in model.graph.input}
    for name in names:
        if name not in inputs:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    fetch = [n for n in names if n not in inputs]
    for u in units:
        u.fine = np.zeros(reference.FINE_BINS, np.uint64)
        u.direct = np.zeros(reference.BINS, np.int64)
    count = next(iter(samples.values())).shape[0]
    for i in range(count):
        feed = {k: v[i : i + 1] for k, v in samples.items()}
        values = dict(zip(fetch, session.run(fetch, feed), strict=True)) | feed
        for u in units:
            for tensor in u.tensors:
                magnitudes = np.abs(values[tensor].ravel())
                u.fine += reference.fine_histogram(magnitudes, u.range_max)[1]
                u.direct += np.histogram(magnitudes, bins=reference.BINS, range=(0.0, u.range_max))[0]


def entropy_amax(u: Unit, view: str) -> float:
    """The entropy amax of `u` read from `view`."""
    exponent = reference.fine_exponent(u.range_max)
    if view == "centre rule":
        bins = reference.histogram_from_fine(exponent, u.fine, u.range_max)
        return float(reference.amax_from_histogram(bins, u.range_max, "entropy")[0])
    if view == "direct":
        return float(reference.amax_from_histogram(u.direct.astype(np.uint64), u.range_max, "entropy")[0])
    fine_width = 2.0**exponent
    per_bin = math.ceil(u.range_max / (reference.BINS * fine_width))
    used = int(u.range_max // fine_width) // per_bin + 1  # the view bin holding abs-max is the last
    padded = np.zeros(used * per_bin, np.uint64)
    padded[: min(padded.size, u.fine.size)] = u.fine[: padded.size]
    bins = padded.reshape(used, per_bin).sum(axis=1)
    return min(reference.entropy_edge(bins) * per_bin * fine_width, u.range_max)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--fp32", required=True, type=pathlib.Path)
    parser.add_argument("--trtq-out", required=True, type=pathlib.Path, help="trtq build's --out (entropy method)")
    parser.add_argument("--calib", required=True, type=pathlib.Path, help="the .npy trtq calibrated with")
    parser.add_argument("--eval", required=True, type=pathlib.Path, action="append", help="evaluation .npy (repeat)")
    parser.add_argument("--input", required=True, help="the model's input name")
    parser.add_argument("--work", required=True, type=pathlib.Path, help="where the rescaled models go")
    parser.add_argument("--out", required=True, type=pathlib.Path, help="JSON: amax per tensor and view, scores")
    args = parser.parse_args(argv)
    fp32 = onnx.load(str(args.fp32))
    qdq_path = args.trtq_out / "model.qdq.onnx"
    plan = ablation.read_plan(qdq_path)
    calib = json.loads((args.trtq_out / "calib.json").read_text())
    samples = {args.input: np.load(args.calib)}
    abs_max = ablation.abs_max_of_every_tensor(fp32, samples)
    units = units_of(calib, set(ablation.scales_of(plan)), abs_max)
    collect(fp32, units, samples)
    amaxes = {view: {t: entropy_amax(u, view) for u in units for t in u.tensors} for view in VIEWS}
    recorded = {t: v["amax_by_method"]["entropy"] for t, v in calib["tensors"].items()}
    mismatch = {t: (a, recorded[t]) for t, a in amaxes["centre rule"].items() if abs(a - recorded[t]) > 1e-5 * a}
    print(f"centre rule vs calib.json: {len(amaxes['centre rule']) - len(mismatch)} equal, mismatches {mismatch}")
    args.work.mkdir(parents=True, exist_ok=True)
    candidates = {"trtq pattern (entropy) as built": qdq_path}
    gemm_outputs = {n.output[0] for n in fp32.graph.node if n.op_type == "Gemm"}
    for i, view in enumerate(VIEWS):
        scales = {t: np.float32(a / 127.0) for t, a in amaxes[view].items()}
        rescaled = plan.with_activations(ablation.rescaled(plan.activations, scales))
        candidates[f"entropy from the {view} view"] = ablation.apply_plan(fp32, rescaled, args.work / f"view{i}.onnx")
        float_gemm = dataclasses.replace(
            rescaled, weights={e: q for e, q in rescaled.weights.items() if e[0] not in gemm_outputs}
        )
        candidates[f"entropy from the {view} view, Gemm weight float"] = ablation.apply_plan(
            fp32, float_gemm, args.work / f"view{i}-gemm-float.onnx"
        )
    result = {"amax": amaxes, "recorded": recorded, "abs_max": {t: abs_max[t] for t in recorded}, "scores": {}}
    for evalset in args.eval:
        scores = ablation.peers.score(args.fp32, candidates, {args.input: np.load(evalset)})
        rows = {
            label: next((s for s in out if s.name.startswith("logits")), out[0]).sqnr_db
            for label, out in scores.items()
        }
        result["scores"][str(evalset)] = rows
        for label, db in rows.items():
            print(f"{db:6.2f} dB  {label}  [{evalset.name}]", flush=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
