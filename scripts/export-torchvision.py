#!/usr/bin/env python3
"""Export torchvision architectures to ONNX for trtq's tests (optional: needs torch, not CI).

Owns: building resnet50, mobilenet_v2, efficientnet_b0, convnext_tiny and vit_b_16 with random
weights (seeded, so every run gives the same weights), exporting each with both of PyTorch's ONNX
exporters where available (TorchScript-based `dynamo=False` and `dynamo=True`) at opset 17, and
checking each export against PyTorch with onnxruntime. Does not own: fetching pinned models
(scripts/fetch-models.sh) or testing trtq on them (tests/conformance picks up whatever is in
$TRTQ_MODELS/torchvision/).

Each model has input `input` [batch, 3, 224, 224] and output `logits` [batch, 1000] (batch is
dynamic in the TorchScript exports, 1 in the dynamo ones). Files: <out>/<arch>_torchscript.onnx
and <out>/<arch>_dynamo.onnx, each written to a temporary name in the same folder, checked, then
renamed. The dynamo exporter cannot lower some of its opset-18 output to 17 and then leaves it at
18; the summary line says so.

Usage: export-torchvision.py [--out DIR] [--arch NAME ...] [--exporter torchscript|dynamo|both]
Default DIR: $TRTQ_MODELS/torchvision, else target/models/torchvision in the repository.
Exits 1 if any export failed (the others are still written).
"""

from __future__ import annotations

import argparse
import math
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
    """The architecture with random weights from a seeded generator, drawn so that activations
    stay of order one through the network.

    torchvision's own initialization is no good for numerical tests: it zeroes ViT's head (all
    logits exactly 0) and shrinks MobileNet/EfficientNet logits to ~1e-10, so any error would pass.
    Here Conv/Linear weights are N(0, 1/fan_in), biases N(0, 0.01), norm scales U(0.5, 1.5) and
    shifts N(0, 0.1), BatchNorm running statistics mean N(0, 0.1) and var U(0.5, 1.5), ConvNeXt's
    layer scales U(0.1, 0.5).
    """
    model = torchvision.models.get_model(arch, weights=None).eval()
    generator = torch.Generator().manual_seed(SEED)

    def draw(shape, scale=1.0, offset=0.0, uniform=False):
        sample = torch.rand(shape, generator=generator) if uniform else torch.randn(shape, generator=generator)
        return sample * scale + offset

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                module.weight.copy_(draw(module.weight.shape, math.sqrt(1.0 / module.weight[0].numel())))
                if module.bias is not None:
                    module.bias.copy_(draw(module.bias.shape, 0.01))
            elif isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)) and module.weight is not None:
                module.weight.copy_(draw(module.weight.shape, 1.0, 0.5, uniform=True))
                module.bias.copy_(draw(module.bias.shape, 0.1))
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(draw(module.running_mean.shape, 0.1))
                module.running_var.copy_(draw(module.running_var.shape, 1.0, 0.5, uniform=True))
        for name, parameter in model.named_parameters():
            if name.endswith("layer_scale"):
                parameter.copy_(draw(parameter.shape, 0.4, 0.1, uniform=True))
    return model


def export(model: torch.nn.Module, example: torch.Tensor, path: pathlib.Path, exporter: str) -> None:
    """Export with the named exporter. The TorchScript exporter keeps batch dynamic; the dynamo
    exporter exports batch 1 (its dynamic-shape capture fails on ConvNeXt and ViT here)."""
    common = dict(input_names=["input"], output_names=["logits"], opset_version=OPSET)
    if exporter == "torchscript":
        dynamic_axes = {"input": {0: "batch"}, "logits": {0: "batch"}}
        torch.onnx.export(model, (example,), str(path), dynamo=False, dynamic_axes=dynamic_axes, **common)
    else:
        torch.onnx.export(model, (example,), dynamo=True, **common).save(str(path), external_data=False)


def relative_error(path: pathlib.Path, model: torch.nn.Module, generator: torch.Generator) -> float:
    """max |onnxruntime - PyTorch| / max |PyTorch| on a fresh batch (of 2 where batch is dynamic)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch_dim = session.get_inputs()[0].shape[0]
    batch = torch.rand(batch_dim if isinstance(batch_dim, int) else 2, 3, 224, 224, generator=generator)
    with torch.no_grad():
        expected = model(batch).numpy()
    (actual,) = session.run(None, {"input": batch.numpy()})
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def write_export(model, example, out: pathlib.Path, exporter: str, generator: torch.Generator) -> float:
    """Export into a temporary file beside `out`, check it (onnx checker, onnxruntime against
    PyTorch within 1e-3 relative), then rename it to `out`. Returns the relative error."""
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        export(model, example, pathlib.Path(tmp), exporter)
        onnx.checker.check_model(tmp)
        error = relative_error(pathlib.Path(tmp), model, generator)
        if not error <= 1e-3:
            raise ValueError(f"onnxruntime differs from PyTorch by {error:.2e} relative")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
        return error
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, onnx {onnx.__version__}")
    failures = []
    for arch in args.arch or ARCHITECTURES:
        model = build(arch)
        for exporter in exporters:
            out = args.out / f"{arch}_{exporter}.onnx"
            start = time.monotonic()
            try:
                error = write_export(model, example, out, exporter, generator)
            except Exception as failure:  # report every failed export, keep going with the rest
                failures.append(f"{out.name}: {type(failure).__name__}: {str(failure).splitlines()[0][:300]}")
                print(f"FAILED {failures[-1]}", file=sys.stderr)
                continue
            size_mb = out.stat().st_size / 1e6
            opset = {o.domain or "ai.onnx": o.version for o in onnx.load(out, load_external_data=False).opset_import}
            note = "" if opset.get("ai.onnx") == OPSET else f" (the exporter left opset {opset.get('ai.onnx')})"
            seconds = time.monotonic() - start
            print(f"{out}: {size_mb:.1f} MB, {seconds:.0f} s, max |ort - torch| / max |torch| = {error:.1e}{note}")
    for failure in failures:
        print(f"error: export failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
