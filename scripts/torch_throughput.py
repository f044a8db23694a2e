#!/usr/bin/env python3
"""PyTorch FP32 inference throughput of torchvision's ResNet-50 on the GPU (scripts/gpu-check.sh).

Owns: timing the reference the CUDA calibration benchmark is compared with — the same
architecture with the same seeded weights that scripts/export-torchvision.py exports (its
`build`), in eval mode under `torch.inference_mode()`, on random batches already on the GPU
(so the figure is the model alone: no data loading, no host→device copy). Does not own:
trtq's own timing (gpu-check.sh reads it from summary.json).

--tf32 off: FP32 everywhere (cuDNN and cuBLAS TF32 disabled), like trtq's CUDA backend by
default. --tf32 on: PyTorch's defaults (cuDNN convolutions may use TF32).

Usage: torch_throughput.py [--batch 32] [--iters 50] [--warmup 10] [--tf32 off|on]
Prints one JSON object: {"model", "batch", "tf32", "images_per_s", "ms_per_batch", "device"}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import time

import torch

HERE = pathlib.Path(__file__).resolve().parent


def exported_build():
    """scripts/export-torchvision.py's `build` (its file name is not an importable module name)."""
    spec = importlib.util.spec_from_file_location("export_torchvision", HERE / "export-torchvision.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--tf32", choices=["off", "on"], default="off")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("error: PyTorch sees no CUDA device")
    if args.tf32 == "off":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    model = exported_build()("resnet50").cuda().eval()
    generator = torch.Generator(device="cuda").manual_seed(0)
    batch = torch.rand(args.batch, 3, 224, 224, device="cuda", generator=generator)
    with torch.inference_mode():
        for _ in range(args.warmup):
            model(batch)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.iters):
            model(batch)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "model": "torchvision resnet50 (seeded weights of export-torchvision.py)",
                "batch": args.batch,
                "tf32": args.tf32,
                "images_per_s": args.batch * args.iters / seconds,
                "ms_per_batch": 1000 * seconds / args.iters,
                "device": torch.cuda.get_device_name(),
                "torch": torch.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
