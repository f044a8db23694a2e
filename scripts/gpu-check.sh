#!/usr/bin/env bash
# The one script a GPU session runs for issue 6: CUDA parity tests and the calibration benchmark.
#
# Two modes:
#   scripts/gpu-check.sh --prepare   on the build machine (Rust, no GPU needed): builds the
#       release binary and the CUDA parity test binary, and copies them (stripped) with the
#       models they need into .gpu-carry/ (git-ignored through .git/info/exclude; < 64 MiB).
#   scripts/gpu-check.sh             on the GPU machine (no Rust: CUDA 13 driver, PyTorch,
#       torchvision, onnx, onnxruntime): runs from .gpu-carry/ and writes results into $OUT
#       (default ./gpu-check-out): gpu-check.md (the table for bench-results/), parity.log,
#       amax.txt, machine.txt, steps.log, and details.tar.gz (every trtq run's log and summary,
#       the export and PyTorch logs).
#
# What the GPU mode runs (about 4 minutes on an H100; every step has its own timeout):
#   1. tests/cuda_parity.rs with TRTQ_REQUIRE_GPU=1: every op vs the CPU executor within 1e-4
#      relative (TF32 off), the demo / light_resnet50 / PP-OCRv4 det (2x3x320x320) at every
#      tensor, and the on-device statistics bin for bin.
#   2. trtq build --device cpu and --device cuda on the same data: every tensor's amax of every
#      method (calib.json amax_by_method) must agree within one 2048-bin histogram bin.
#   3. Calibration throughput (images/s from summary.json: samples / calibration seconds) at
#      batch 32 on ResNet-50 (torchvision architecture, seeded weights, exported here by
#      scripts/export-torchvision.py) and PP-OCRv4 det (640x640): GPU vs the CPU path, and
#      PyTorch FP32 inference of the same ResNet-50 on the same GPU (scripts/torch_throughput.py;
#      TF32 off like trtq, and PyTorch's defaults). No PyTorch figure for det (a Paddle export:
#      no PyTorch model of it exists here).
# Exit status: 0 when every check passed, 1 otherwise (the benchmark never fails the run).
# GPU_CHECK_DRY=1 shrinks the benchmark to one batch per run: for trying the script itself on a
# machine without a GPU (its CUDA steps then fail, the rest runs).
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
carry="$repo_root/.gpu-carry"

prepare() {
    set -e
    local models="${TRTQ_MODELS:-$repo_root/target/models}"
    echo "building release binaries (feature cuda is on by default)"
    cargo build --release
    local parity
    parity="$(cargo test --release --test cuda_parity --no-run --message-format json 2>/dev/null |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "cuda_parity":
        print(m["executable"])')"
    [[ -x "$parity" ]] || { echo "error: no cuda_parity test binary" >&2; exit 1; }
    rm -rf "$carry"
    mkdir -p "$carry/bin" "$carry/models/onnx/light" "$carry/models/rapidocr"
    strip -o "$carry/bin/trtq" target/release/trtq
    strip -o "$carry/bin/cuda_parity" "$parity"
    cp "$models/onnx/light/light_resnet50.onnx" "$carry/models/onnx/light/"
    cp "$models/rapidocr/ch_PP-OCRv4_det_infer.onnx" "$carry/models/rapidocr/"
    git rev-parse HEAD >"$carry/BUILD"
    local exclude
    exclude="$(git rev-parse --git-path info/exclude)"
    mkdir -p "$(dirname "$exclude")"
    grep -qx '/.gpu-carry/' "$exclude" 2>/dev/null || echo '/.gpu-carry/' >>"$exclude"
    du -sh "$carry"
    local bytes
    bytes="$(du -sb "$carry" | cut -f1)"
    if ((bytes > 60 * 1024 * 1024)); then
        echo "error: .gpu-carry is $bytes bytes; the device run carries at most 64 MiB in all" >&2
        exit 1
    fi
    echo "ready: run 'bash scripts/gpu-check.sh' on the GPU machine with carry [\".gpu-carry\"]"
}

if [[ "${1:-}" == "--prepare" ]]; then
    prepare
    exit 0
fi

out="${OUT:-$repo_root/gpu-check-out}"
mkdir -p "$out"
work="$(mktemp -d)"
# At most 8 files come back from a device run: the per-run logs and summaries go into
# $out/details.tar.gz, the main results stay files of their own.
logs="$work/logs"
mkdir -p "$logs"
status=0
start=$SECONDS
note() { echo "==> [+$((SECONDS - start))s] $*" | tee -a "$out/steps.log"; }
fail() {
    echo "FAILED: $*" | tee -a "$out/steps.log"
    status=1
}

[[ -x "$carry/bin/trtq" && -x "$carry/bin/cuda_parity" ]] || {
    echo "error: $carry has no binaries: run scripts/gpu-check.sh --prepare on the build machine and carry .gpu-carry" >&2
    exit 2
}

# CUDA libraries: the toolkit's, and PyTorch's pip wheels (nvidia/cu13/lib) as a second source.
wheel_libs="$(python3 -c 'import importlib.util, pathlib
spec = importlib.util.find_spec("nvidia")
print(":".join(str(pathlib.Path(p) / "cu13" / "lib") for p in (spec.submodule_search_locations if spec else [])))' 2>/dev/null || true)"
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:/usr/local/nvidia/lib64:${wheel_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export TRTQ_MODELS="$carry/models"

note "machine"
{
    echo "build: $(cat "$carry/BUILD" 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    nproc | sed 's/^/cpu cores: /'
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
    ls /usr/local/cuda/lib64/libnvrtc.so* /usr/local/cuda/lib64/libcublas.so* 2>/dev/null
} 2>&1 | tee "$out/machine.txt"

note "1. CUDA parity tests (tests/cuda_parity.rs)"
if ! TRTQ_REQUIRE_GPU=1 TRTQ_REPO_ROOT="$repo_root" timeout 240 \
    "$carry/bin/cuda_parity" --test-threads=1 --nocapture >"$out/parity.log" 2>&1; then
    fail "cuda parity tests (see parity.log)"
fi
tail -n 25 "$out/parity.log"

note "exporting ResNet-50 (torchvision architecture, seeded weights)"
mkdir -p "$work/models"
resnet="$work/models/resnet50_torchscript.onnx"
# The TorchScript exporter keeps the batch dynamic; where this PyTorch no longer has it, the
# dynamo exporter's file (batch 1 declared; trtq re-specializes it) is used instead.
for exporter in torchscript dynamo; do
    if timeout 180 python3 scripts/export-torchvision.py --arch resnet50 --exporter "$exporter" \
        --out "$work/models" >>"$logs/export.log" 2>&1; then
        resnet="$work/models/resnet50_$exporter.onnx"
        break
    fi
done
[[ -f "$resnet" ]] || fail "ResNet-50 export (see export.log in details.tar.gz)"

# config NAME MODEL INPUT BATCH SIZE SAMPLES: a calibration-only build config (synthetic data,
# entropy, no uniform/FP16 variants, a one-batch evaluation).
config() {
    cat >"$work/$1.yaml" <<YAML
model: $2
output_dir: $work/out-$1
inputs:
  $3: [$4, 3, $5, $5]
calibration:
  data: {kind: synthetic, seed: 0}
  method: entropy
  batch_size: $4
  max_samples: $6
evaluation:
  data: {kind: synthetic, seed: 1}
  max_samples: $4
compare: {uniform: false, fp16: false}
YAML
}

# build NAME DEVICE: one trtq build; keeps its summary.json and calib.json in $out.
build() {
    local name="$1" device="$2"
    if timeout 240 "$carry/bin/trtq" build --cpu --device "$device" --out "$work/run-$name-$device" \
        "$work/$name.yaml" >"$logs/build-$name-$device.log" 2>&1; then
        cp "$work/run-$name-$device/summary.json" "$logs/summary-$name-$device.json"
        cp "$work/run-$name-$device/calib.json" "$work/calib-$name-$device.json"
    else
        fail "trtq build $name --device $device (see build-$name-$device.log in details.tar.gz)"
    fi
}

det="$carry/models/rapidocr/ch_PP-OCRv4_det_infer.onnx"
note "2. same data on both devices: amax of every method within one bin"
config demo "$repo_root/configs/demo/resnet_tiny.onnx" input 8 32 64
config det-small "$det" x 2 320 8
for name in demo det-small; do
    build "$name" cpu
    build "$name" cuda
done
if [[ -f "$resnet" ]]; then
    config resnet-small "$resnet" input 8 224 32
    build resnet-small cpu
    build resnet-small cuda
fi
python3 - "$work" "$out" >"$out/amax.txt" 2>&1 <<'PY' || fail "amax parity (see amax.txt)"
import json, pathlib, sys
work, out = map(pathlib.Path, sys.argv[1:])
failures = 0
for cpu_file in sorted(work.glob("calib-*-cpu.json")):
    gpu_file = cpu_file.with_name(cpu_file.name.replace("-cpu.json", "-cuda.json"))
    name = cpu_file.name[len("calib-"):-len("-cpu.json")]
    if not gpu_file.exists():
        print(f"{name}: no GPU run"); failures += 1; continue
    cpu, gpu = (json.loads(f.read_text())["tensors"] for f in (cpu_file, gpu_file))
    worst, count = 0.0, 0
    for tensor, stats in cpu.items():
        other = gpu.get(tensor)
        if other is None:
            print(f"{name} {tensor}: missing on the GPU"); failures += 1; continue
        bin_width = max(stats["amax_by_method"]["max"], 1e-30) / 2048
        for method, amax in stats["amax_by_method"].items():
            count += 1
            off = abs(other["amax_by_method"][method] - amax) / bin_width
            worst = max(worst, off)
            if off > 1.0:
                print(f"{name} {tensor} {method}: CPU {amax} GPU {other['amax_by_method'][method]} ({off:.2f} bins)")
                failures += 1
    print(f"{name}: {len(cpu)} tensors, {count} amaxes, worst difference {worst:.3f} bins")
sys.exit(1 if failures else 0)
PY
cat "$out/amax.txt"

note "3. throughput at batch 32"
if [[ "${GPU_CHECK_DRY:-0}" == 1 ]]; then
    samples=(32 32 32 32)
else
    samples=(128 1024 64 256) # ResNet-50 CPU, GPU; det CPU, GPU
fi
if [[ -f "$resnet" ]]; then
    config resnet-cpu "$resnet" input 32 224 "${samples[0]}"
    config resnet-cuda "$resnet" input 32 224 "${samples[1]}"
    build resnet-cpu cpu
    build resnet-cuda cuda
fi
config det-cpu "$det" x 32 640 "${samples[2]}"
config det-cuda "$det" x 32 640 "${samples[3]}"
build det-cpu cpu
build det-cuda cuda
for tf32 in off on; do
    timeout 120 python3 scripts/torch_throughput.py --batch 32 --tf32 "$tf32" \
        >"$logs/torch-tf32-$tf32.json" 2>"$logs/torch-tf32-$tf32.log" || fail "PyTorch throughput (tf32 $tf32)"
done

python3 - "$out" "$logs" <<'PY' >"$out/gpu-check.md"
import json, pathlib, sys
out, logs = map(pathlib.Path, sys.argv[1:])
def load(name):
    path = logs / name
    return json.loads(path.read_text()) if path.exists() and path.stat().st_size else None
machine = (out / "machine.txt").read_text().strip().splitlines()
print("# CUDA calibration: parity and throughput (scripts/gpu-check.sh)\n")
print("Machine:\n")
for line in machine:
    print(f"    {line}")
print("\nCalibration throughput = samples / calibration seconds from trtq's summary.json (synthetic")
print("data, entropy, batch 32, one pass; includes data generation, upload, the forward pass and the")
print("statistics). PyTorch = FP32 inference of the same ResNet-50 (same seeded weights) on the same")
print("GPU, batches already on the device.\n")
print("| model | path | samples | seconds | images/s |")
print("|---|---|---:|---:|---:|")
for label, name in [("ResNet-50", "resnet"), ("PP-OCRv4 det 640x640", "det")]:
    for device in ["cpu", "cuda"]:
        summary = load(f"summary-{name}-{device}.json")
        if summary is None:
            print(f"| {label} | trtq {device} | - | - | failed |")
            continue
        c = summary["calibration"]
        print(f"| {label} | trtq {c['device']} | {c['samples']} | {c['seconds']:.2f} | {c['samples'] / c['seconds']:.1f} |")
    if name == "resnet":
        for tf32 in ["off", "on"]:
            t = load(f"torch-tf32-{tf32}.json")
            if t:
                print(f"| {label} | PyTorch {t['torch']} FP32 inference, TF32 {tf32} | {t['batch']} x 50 | - | {t['images_per_s']:.1f} |")
print("\nParity (tests/cuda_parity.rs):\n")
for line in (out / "parity.log").read_text().splitlines():
    if line.startswith(("test ", "test result", "GPU:")) or "worst relative" in line:
        print(f"    {line}")
print("\nSame data on both devices (amax of every method, in 2048-bin histogram bins):\n")
for line in (out / "amax.txt").read_text().splitlines():
    print(f"    {line}")
PY
cat "$out/gpu-check.md"
note "done (status $status)"
tar -czf "$out/details.tar.gz" -C "$work" logs
rm -rf "$work"
exit "$status"
