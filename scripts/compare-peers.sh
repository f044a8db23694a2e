#!/usr/bin/env bash
# One command for the peer comparison (bench-results/peers.md): makes the two pinned venvs when
# missing or stale, builds the release binary, then runs scripts/compare_peers.py with every
# argument given here (e.g. --models resnet50 --tools trtq,modelopt --skip-slow; --help lists them).
#
# Owns: the venvs and which interpreter runs what. The driver, the scoring and onnxruntime's
# quantize_static run in PEERS_ORT_VENV (scripts/requirements-peers-ort.txt, no torch); ModelOpt
# runs in PEERS_VENV (scripts/requirements-peers.txt, installed with --no-deps, see that file).
# Environment: PEERS_VENV (default /work/peervenv), PEERS_ORT_VENV (default /work/peervenv-ort),
# TRTQ_MODELS (default target/models), TRTQ_BIN (default: target/release/trtq, built here).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
export TRTQ_MODELS="${TRTQ_MODELS:-$repo_root/target/models}"
modelopt_venv="${PEERS_VENV:-/work/peervenv}"
ort_venv="${PEERS_ORT_VENV:-/work/peervenv-ort}"

# make_venv DIR REQUIREMENTS [PIP ARGS...]: (re)install only when the requirements changed.
make_venv() {
    local venv="$1" requirements="$2"
    shift 2
    if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        python3 -m venv "$venv"
    fi
    local stamp="$venv/.trtq-requirements.sha256" want
    want="$(sha256sum "$requirements" | cut -d' ' -f1)"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
        echo "installing $requirements into $venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" -r "$requirements"
        echo "$want" >"$stamp"
    fi
}
make_venv "$ort_venv" scripts/requirements-peers-ort.txt
make_venv "$modelopt_venv" scripts/requirements-peers.txt --no-deps

if [[ -z "${TRTQ_BIN:-}" ]]; then
    cargo build --release --quiet
    export TRTQ_BIN="$repo_root/target/release/trtq"
fi
exec "$ort_venv/bin/python" scripts/compare_peers.py --modelopt-python "$modelopt_venv/bin/python" "$@"
