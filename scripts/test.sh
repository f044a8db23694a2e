#!/usr/bin/env bash
# Run every test trtq has, as CI does: `scripts/test.sh` (what .ci/run calls).
#
# Owns: the order of the stages and their environment. Each stage prints its name; the first
# failing stage stops the run with a non-zero exit. Stages:
#   1. Python venv with the oracles (scripts/requirements-test.txt); TRTQ_VENV overrides .venv
#   2. real models (scripts/fetch-models.sh); TRTQ_MODELS overrides target/models
#   3. cargo fmt --check
#   4. cargo clippy --all-targets -- -D warnings
#   5. cargo test --release (it also builds target/release/trtq for the integration tests; a
#      separate `cargo build --release` would compile every dependency a second time, with the
#      feature set that excludes the dev-dependencies), with NVRTC from PyPI's nvidia-cuda-nvrtc wheel on LD_LIBRARY_PATH
#      (tests/cuda_nvrtc.rs compiles every CUDA kernel source; TRTQ_REQUIRE_NVRTC=1 makes a
#      missing NVRTC a failure instead of a skip)
#   6. pytest tests/conformance against target/release/trtq (TRTQ_REQUIRE=1: a missing binary or
#      model fails instead of skipping; collecting no test at all fails too)
# Needs only python3.11 (or python3) with venv and pip, cargo, and network access to PyPI and
# crates.io on the first run.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

venv="${TRTQ_VENV:-$repo_root/.venv}"
export TRTQ_MODELS="${TRTQ_MODELS:-$repo_root/target/models}"
requirements="$repo_root/scripts/requirements-test.txt"
run_start=$SECONDS

stage() {
    echo
    echo "==> [$(date -u +%H:%M:%S) +$((SECONDS - run_start))s] $*"
}

stage "python venv ($venv)"
if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    base_python="$(command -v python3.11 || command -v python3 || true)"
    [[ -n "$base_python" ]] || { echo "error: neither python3.11 nor python3 is on PATH" >&2; exit 3; }
    rm -rf "$venv"
    "$base_python" -m venv "$venv"
fi
# Reinstall only when the pinned requirements changed since this venv last installed them.
stamp="$venv/.trtq-requirements.sha256"
want_stamp="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want_stamp" ]]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want_stamp" >"$stamp"
else
    echo "requirements already installed"
fi

stage "fetch models ($TRTQ_MODELS)"
PYTHON="$venv/bin/python" "$repo_root/scripts/fetch-models.sh"

stage "cargo fmt --check"
cargo fmt --all -- --check

stage "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

stage "NVRTC for the CUDA kernel compile test (nvidia-cuda-nvrtc wheel)"
nvrtc_wheel="nvidia-cuda-nvrtc==13.0.88"
if ! "$venv/bin/python" -m pip show --quiet nvidia-cuda-nvrtc >/dev/null 2>&1; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$nvrtc_wheel"
fi
nvrtc_lib="$("$venv/bin/python" -c 'import importlib.util, pathlib; spec = importlib.util.find_spec("nvidia"); print(pathlib.Path(list(spec.submodule_search_locations)[0]) / "cu13" / "lib")')"
ls "$nvrtc_lib"/libnvrtc.so.13 >/dev/null
export LD_LIBRARY_PATH="$nvrtc_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export TRTQ_REQUIRE_NVRTC=1

stage "cargo test --release"
cargo test --release

stage "pytest tests/conformance"
export TRTQ_BIN="$repo_root/target/release/trtq"
export TRTQ_REQUIRE=1
pytest_status=0
"$venv/bin/python" -m pytest -p no:cacheprovider -rs tests/conformance || pytest_status=$?
if [[ $pytest_status -eq 5 ]]; then
    echo "error: pytest collected no tests in tests/conformance" >&2
    exit 1
fi
if [[ $pytest_status -ne 0 ]]; then
    exit "$pytest_status"
fi

stage "all stages passed"
