"""pytest fixtures of the conformance tests: the trtq binary and a runner for it.

Owns: finding the binary (skipping, or failing under TRTQ_REQUIRE=1, when it is absent) and
running it. Model discovery and inputs live in harness.py; assertions in the test_*.py files.
"""

from __future__ import annotations

import os
import pathlib
import subprocess

import pytest
from harness import TRTQ_BIN, TrtqResult, missing

COMMAND_TIMEOUT_S = 600


@pytest.fixture(scope="session")
def trtq_bin() -> pathlib.Path:
    """The trtq binary; skips (or fails under TRTQ_REQUIRE=1) when it has not been built."""
    if not TRTQ_BIN.is_file():
        missing(f"trtq binary {TRTQ_BIN} not found: run `cargo build --release` or set TRTQ_BIN")
    return TRTQ_BIN


@pytest.fixture(scope="session")
def trtq(trtq_bin):
    """Run trtq with arguments (in `cwd` if given) and return a TrtqResult; never raises on a
    non-zero exit, so tests assert the exit code themselves."""

    def run(*args: str | os.PathLike, cwd: pathlib.Path | None = None) -> TrtqResult:
        argv = [str(a) for a in args]
        done = subprocess.run(
            [str(trtq_bin), *argv],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        return TrtqResult(argv, done.returncode, done.stdout, done.stderr)

    return run
