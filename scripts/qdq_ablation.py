#!/usr/bin/env python3
"""Why two Q/DQ models of the same FP32 model score differently: placement or scales, and which
Q/DQ groups carry the difference (bench-results/peers-accuracy.md).

Owns: reading a Q/DQ model as a *plan* (which input edge of which node reads a quantized tensor,
and with which scale; weights per channel), writing a plan back onto the FP32 model, the swap and
add/remove experiments between two plans, and their table. Does not own the scoring: every model
is scored by scripts/compare_peers.py's `score` (onnxruntime, graph optimizations off, SQNR at the
logits on the same evaluation set), nor running the tools (compare_peers.py writes the models).

An edge is (the consumer node's first output, the input index): both trtq and ModelOpt keep the
FP32 model's node outputs, so edges of the two models compare by name. A plan applied to the FP32
model gives one QuantizeLinear → DequantizeLinear pair per (tensor, scale), shared by its edges.

    python scripts/qdq_ablation.py --fp32 M.onnx --a trtq=A.qdq.onnx --b modelopt=B.quant.onnx \
        --calib calib.npy --eval eval.npy --input input --work /tmp/acc/ablation --out result.json
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import pathlib
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

SCRIPTS = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("compare_peers", SCRIPTS / "compare_peers.py")
peers = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = peers  # dataclasses look their module up there
_spec.loader.exec_module(peers)

Edge = tuple[str, int]  # (consumer node's first output, input index)
QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}


@dataclasses.dataclass
class Quantized:
    """What one edge reads: `tensor` (an FP32 tensor or initializer name) through Q/DQ with
    `scale` (a scalar, or one per channel along `axis`)."""

    tensor: str
    scale: np.ndarray
    axis: int | None


@dataclasses.dataclass
class Plan:
    """Every quantized input edge of a model, activations and weights apart."""

    activations: dict[Edge, Quantized]
    weights: dict[Edge, Quantized]

    def with_activations(self, activations: dict[Edge, Quantized]) -> Plan:
        """This plan with other activation edges, the same weights."""
        return Plan(activations, self.weights)


def read_plan(path: pathlib.Path) -> Plan:
    """The plan of a Q/DQ model: for each input of each non-Q/DQ node read through a
    DequantizeLinear, the tensor behind it (the QuantizeLinear's input, or the int8 initializer's
    float source name for a weight stored quantized) and the DequantizeLinear's scale."""
    model = onnx.load(str(path))
    initializers = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    activations, weights = {}, {}
    for node in model.graph.node:
        if node.op_type in QDQ_OPS:
            continue
        for index, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            scale = numpy_helper.to_array(initializers[dq.input[1]]).astype(np.float32)
            axis = next((a.i for a in dq.attribute if a.name == "axis"), 1) if scale.ndim else None
            q = producer.get(dq.input[0])
            tensor = q.input[0] if q is not None and q.op_type == "QuantizeLinear" else dq.input[0]
            target = weights if (tensor in initializers or q is None) else activations
            target[(node.output[0], index)] = Quantized(tensor, scale, axis)
    return Plan(activations, weights)


def apply_plan(fp32: onnx.ModelProto, plan: Plan, path: pathlib.Path) -> pathlib.Path:
    """Writes `fp32` with `plan`'s Q/DQ (float weights go through Q → DQ with the plan's
    per-channel scales) to `path`. Edges the FP32 model lacks are an error."""
    model = onnx.ModelProto()
    model.CopyFrom(fp32)
    graph = model.graph
    consumers = {n.output[0]: n for n in graph.node}
    pairs: dict[tuple[str, bytes], str] = {}  # (tensor, scale bytes) -> dequantized name
    new_inits, new_nodes = [], {}  # consumer output -> Q/DQ nodes to put before it
    for (consumer, index), quantized in {**plan.weights, **plan.activations}.items():
        node = consumers.get(consumer)
        if node is None or index >= len(node.input):
            raise SystemExit(f"error: the FP32 model has no node with output {consumer!r} and input {index}")
        tensor = node.input[index]  # a weight's FP32 initializer; an activation must match
        if (consumer, index) in plan.activations and tensor != quantized.tensor:
            raise SystemExit(
                f"error: {consumer!r} input {index} is {tensor!r} in the FP32 model, not {quantized.tensor!r}"
            )
        key = (tensor, quantized.scale.tobytes())
        if key not in pairs:
            stem = f"{tensor}_qdq{len(pairs)}"
            zero = np.zeros(quantized.scale.shape, np.int8)
            new_inits += [
                numpy_helper.from_array(quantized.scale, f"{stem}_scale"),
                numpy_helper.from_array(zero, f"{stem}_zero"),
            ]
            axis = {} if quantized.axis is None else {"axis": quantized.axis}
            new_nodes.setdefault(consumer, []).extend(
                [
                    helper.make_node(
                        "QuantizeLinear", [tensor, f"{stem}_scale", f"{stem}_zero"], [f"{stem}_q"], **axis
                    ),
                    helper.make_node(
                        "DequantizeLinear", [f"{stem}_q", f"{stem}_scale", f"{stem}_zero"], [f"{stem}_dq"], **axis
                    ),
                ]
            )
            pairs[key] = f"{stem}_dq"
        node.input[index] = pairs[key]
    ordered = []
    for node in graph.node:
        ordered += new_nodes.get(node.output[0], [])
        ordered.append(node)
    del graph.node[:]
    graph.node.extend(ordered)
    graph.initializer.extend(new_inits)
    onnx.save(model, str(path))
    return path


def abs_max_of_every_tensor(fp32: onnx.ModelProto, samples: dict[str, np.ndarray]) -> dict[str, float]:
    """Abs-max over the calibration samples of every node output and graph input of the FP32 model
    (trtq's and ModelOpt's `max` rule), for tensors a plan quantizes that the other does not."""
    import onnxruntime as ort

    model = onnx.ModelProto()
    model.CopyFrom(fp32)
    outputs = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for name in node.output:
            if name not in outputs:
                model.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    found = {name: float(np.abs(v).max()) for name, v in samples.items()}
    count = next(iter(samples.values())).shape[0]
    for i in range(count):
        feed = {k: v[i : i + 1] for k, v in samples.items()}
        for name, value in zip(names, session.run(names, feed), strict=True):
            found[name] = max(found.get(name, 0.0), float(np.abs(value).max()))
    return found


def group_of(fp32: onnx.ModelProto, edge: Edge, tensor: str, weight: bool) -> str:
    """A readable class of an edge: `consumer op[input] ← producer op`, or `consumer op weight`."""
    producer = {o: n.op_type for n in fp32.graph.node for o in n.output}
    consumer = {n.output[0]: n.op_type for n in fp32.graph.node}[edge[0]]
    if weight:
        return f"{consumer} weight"
    source = producer.get(tensor, "graph input")
    if consumer == "Add":
        return f"Add[{edge[1]}] ← {source}"
    return f"{consumer} ← {source}"


def rescaled(edges: dict[Edge, Quantized], scales: dict[str, np.ndarray]) -> dict[Edge, Quantized]:
    """`edges` with each tensor's scale taken from `scales` where it has one."""
    return {e: dataclasses.replace(q, scale=scales.get(q.tensor, q.scale)) for e, q in edges.items()}


def scales_of(plan: Plan) -> dict[str, np.ndarray]:
    """Activation tensor → its scale in `plan`."""
    return {q.tensor: q.scale for q in plan.activations.values()}


def grouped(fp32: onnx.ModelProto, edges: dict[Edge, Quantized], weight: bool) -> dict[str, dict[Edge, Quantized]]:
    """`edges` by group_of, groups sorted by name."""
    groups: dict[str, dict[Edge, Quantized]] = {}
    for edge, q in edges.items():
        groups.setdefault(group_of(fp32, edge, q.tensor, weight), {})[edge] = q
    return dict(sorted(groups.items()))


def group_edits(fp32: onnx.ModelProto, mine: Plan, mine_name: str, other: Plan, other_name: str):
    """(label, plan): `mine` plus each group of edges only `other` quantizes (an added activation
    keeps `mine`'s scale for its tensor where it has one), and `mine` minus each group of edges
    only `mine` quantizes; activations and weights alike."""
    own = scales_of(mine)
    for weight in (False, True):
        have, theirs = (mine.weights, other.weights) if weight else (mine.activations, other.activations)

        def replaced(edges: dict[Edge, Quantized], weight: bool = weight) -> Plan:
            return Plan(mine.activations, edges) if weight else mine.with_activations(edges)

        extra = {e: q for e, q in theirs.items() if e not in have}
        for group, edges in grouped(fp32, extra, weight).items():
            added = {**have, **(edges if weight else rescaled(edges, own))}
            yield f"{mine_name} + {other_name}'s {group} ({len(edges)} edges)", replaced(added)
        only_mine = {e: q for e, q in have.items() if e not in theirs}
        for group, edges in grouped(fp32, only_mine, weight).items():
            kept = {e: q for e, q in have.items() if e not in edges}
            yield f"{mine_name} − its {group}, which {other_name} leaves float ({len(edges)} edges)", replaced(kept)


def jittered(plan: Plan, seed: int) -> Plan:
    """`plan` with every activation scale moved one float32 ulp up or down at random: any change
    of scales re-draws the rounding noise, so the spread of these scores is the resolution of
    every other figure."""
    rng = np.random.default_rng(seed)

    def nudge(scale: np.ndarray) -> np.ndarray:
        return np.nextafter(scale, np.float32(np.inf) if rng.random() < 0.5 else np.float32(0)).astype(np.float32)

    return plan.with_activations({e: dataclasses.replace(q, scale=nudge(q.scale)) for e, q in plan.activations.items()})


def classifier_float(fp32: onnx.ModelProto, plan: Plan) -> Plan:
    """`plan` with the last Gemm/MatMul in float: its weight unquantized and no Q/DQ on its input
    or on the Reshape/Flatten/Squeeze chain feeding it (what ModelOpt's GEMV rule does to the weight,
    carried through to the input, since a float FC reads its input in float anyway)."""
    producer = {o: n for n in fp32.graph.node for o in n.output}
    linear = [n for n in fp32.graph.node if n.op_type in ("Gemm", "MatMul")]
    if not linear:
        return plan
    chain, node = {linear[-1].output[0]}, producer.get(linear[-1].input[0])
    while node is not None and node.op_type in ("Reshape", "Flatten", "Squeeze"):
        chain.add(node.output[0])
        node = producer.get(node.input[0])
    return Plan(
        {e: q for e, q in plan.activations.items() if e[0] not in chain},
        {e: q for e, q in plan.weights.items() if e[0] != linear[-1].output[0]},
    )


def experiments(
    fp32: onnx.ModelProto, a: Plan, b: Plan, a_name: str, b_name: str, max_scales: dict[str, np.ndarray], jitters: int
):
    """(label, plan) pairs: both rebuilt as read, `jitters` 1-ulp jitters of `a`, the scale swaps
    (a tensor the other plan does not quantize keeps its own scale), abs-max scales on each
    placement, the weight swap, the group edits of each plan towards the other, and each plan with
    its classifier in float."""
    yield f"{a_name} as read", a
    yield f"{b_name} as read", b
    for seed in range(jitters):
        yield f"{a_name}, activation scales ±1 ulp (seed {seed})", jittered(a, seed)
    yield f"{a_name} placement, {b_name} activation scales", a.with_activations(rescaled(a.activations, scales_of(b)))
    yield f"{b_name} placement, {a_name} activation scales", b.with_activations(rescaled(b.activations, scales_of(a)))
    yield f"{a_name} placement, abs-max activation scales", a.with_activations(rescaled(a.activations, max_scales))
    yield f"{b_name} placement, abs-max activation scales", b.with_activations(rescaled(b.activations, max_scales))
    yield f"{a_name} activations, {b_name} weights", Plan(a.activations, b.weights)
    yield f"{b_name} activations, {a_name} weights", Plan(b.activations, a.weights)
    yield from group_edits(fp32, a, a_name, b, b_name)
    yield from group_edits(fp32, b, b_name, a, a_name)
    for plan, name in ((a, a_name), (b, b_name)):
        yield f"{name}, classifier (last Gemm/MatMul: weight and input) float", classifier_float(fp32, plan)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--fp32", required=True, type=pathlib.Path)
    parser.add_argument("--a", required=True, help="NAME=PATH of the first Q/DQ model")
    parser.add_argument("--b", required=True, help="NAME=PATH of the second Q/DQ model")
    parser.add_argument("--calib", required=True, type=pathlib.Path, help="calibration .npy (for abs-max scales)")
    parser.add_argument("--eval", required=True, type=pathlib.Path, help="evaluation .npy (compare_peers's)")
    parser.add_argument("--input", required=True, help="the model's input name")
    parser.add_argument("--work", required=True, type=pathlib.Path, help="where the rebuilt models go")
    parser.add_argument("--out", required=True, type=pathlib.Path, help="JSON of every experiment's score")
    parser.add_argument("--jitters", type=int, default=4, help="1-ulp jitters of the first plan (the resolution)")
    args = parser.parse_args(argv)
    (a_name, a_path), (b_name, b_path) = (s.split("=", 1) for s in (args.a, args.b))
    fp32 = onnx.load(str(args.fp32))
    a, b = read_plan(pathlib.Path(a_path)), read_plan(pathlib.Path(b_path))
    args.work.mkdir(parents=True, exist_ok=True)
    abs_max = abs_max_of_every_tensor(fp32, {args.input: np.load(args.calib)})
    max_scales = {t: np.float32(m / 127.0) for t, m in abs_max.items()}
    candidates = {f"{a_name} (file)": pathlib.Path(a_path), f"{b_name} (file)": pathlib.Path(b_path)}
    for i, (label, plan) in enumerate(experiments(fp32, a, b, a_name, b_name, max_scales, args.jitters)):
        candidates[label] = apply_plan(fp32, plan, args.work / f"exp{i:02d}.onnx")
    scores = peers.score(args.fp32, candidates, {args.input: np.load(args.eval)})
    rows = []
    for label, outputs in scores.items():
        metric = next((s for s in outputs if s.name.startswith("logits")), outputs[0])
        rows.append(
            {"experiment": label, "metric": metric.name, "sqnr_db": metric.sqnr_db, "model": str(candidates[label])}
        )
        print(f"{metric.sqnr_db:6.2f} dB  {label}", flush=True)
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
