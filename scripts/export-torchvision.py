#!/usr/bin/env python3
"""Export torchvision architectures to ONNX for trtq's tests (optional: needs torch, not CI).

Owns: building resnet50, mobilenet_v2, efficientnet_b0, convnext_tiny and vit_b_16 with random
weights (seeded, so every run gives the same weights), exporting each with both of PyTorch's ONNX
exporters where available (TorchScript-based `dynamo=False` and `dynamo=True`) at opset 17, and
checking each export against PyTorch with onnxruntime. Does not own: fetching pinned models
(scripts/fetch-models.sh) or testing trtq on them (tests/conformance picks up whatever is in
$TRTQ_MODELS/torchvision/).

Each model has input `input` [batch, 3, 224, 224] (batch dynamic) and output `logits`
[batch, 1000]. Files: <out>/<arch>_torchscript.onnx and <out>/<arch>_dynamo.onnx, each written to a
temporary name in the same folder, then renamed.

Usage: export-torchvision.py [--out DIR] [--arch NAME ...] [--exporter torchscript|dynamo|both]
Default DIR: $TRTQ_MODELS/torchvision, else target/models/torchvision in the repository.
Exits 1 if any export failed (the others are still written).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torchvision

ARCHITECTURES = ["resnet50", "mobilenet_v2", "efficientnet_b0", "convnext_tiny", "vit_b_16"]
EXPORTERS = ["torchscript", "dynamo"]
OPSET = 17
SEED = 0
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def default_out_dir() -> pathlib.Path:
    models = os.environ.get("TRTQ_MODELS")
    return (pathlib.Path(models) if models else REPO_ROOT / "target" / "models") / "torchvision"


def build(arch: str) -> torch.nn.Module:
    """The architecture with random weights drawn from a generator seeded per run."""
    torch.manual_seed(SEED)
    return torchvision.models.get_model(arch, weights=None).eval()


def export(model: torch.nn.Module, example: torch.Tensor, path: pathlib.Path, exporter: str) -> None:
    """Export with the named exporter; batch is a dynamic dim in both."""
    common = dict(input_names=["input"], output_names=["logits"], opset_version=OPSET)
    if exporter == "torchscript":
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            **common,
        )
    else:
        program = torch.onnx.export(
            model, (example,), dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},), **common
        )
        program.save(str(path), external_data=False)


def write_export(model, example, out: pathlib.Path, exporter: str) -> None:
    """Export into a temporary file beside `out`, check it loads, then rename it to `out`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        export(model, example, pathlib.Path(tmp), exporter)
        onnx.checker.check_model(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def max_abs_error(path: pathlib.Path, model: torch.nn.Module, batch: torch.Tensor) -> float:
    """Largest |onnxruntime - PyTorch| on `batch` (a batch size other than the export's)."""
    with torch.no_grad():
        expected = model(batch).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {"input": batch.numpy()})
    return float(np.abs(actual - expected).max())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=default_out_dir())
    parser.add_argument("--arch", action="append", choices=ARCHITECTURES, help="repeatable; default: all")
    parser.add_argument("--exporter", choices=[*EXPORTERS, "both"], default="both")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    exporters = EXPORTERS if args.exporter == "both" else [args.exporter]
    generator = torch.Generator().manual_seed(SEED)
    example = torch.rand(1, 3, 224, 224, generator=generator)
    check_batch = torch.rand(2, 3, 224, 224, generator=generator)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, onnx {onnx.__version__}")
    failures = []
    for arch in args.arch or ARCHITECTURES:
        model = build(arch)
        for exporter in exporters:
            out = args.out / f"{arch}_{exporter}.onnx"
            start = time.monotonic()
            try:
                write_export(model, example, out, exporter)
                error = max_abs_error(out, model, check_batch)
            except Exception as failure:  # report every failed export, keep going with the rest
                failures.append(f"{out.name}: {type(failure).__name__}: {str(failure).splitlines()[0][:300]}")
                print(f"FAILED {failures[-1]}", file=sys.stderr)
                continue
            size_mb = out.stat().st_size / 1e6
            opset = {o.domain or "ai.onnx": o.version for o in onnx.load(out, load_external_data=False).opset_import}
            note = "" if opset.get("ai.onnx") == OPSET else f" (the exporter left opset {opset.get('ai.onnx')})"
            print(f"{out}: {size_mb:.1f} MB, {time.monotonic() - start:.0f} s, max |ort - torch| = {error:.2e}{note}")
    for failure in failures:
        print(f"error: export failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
