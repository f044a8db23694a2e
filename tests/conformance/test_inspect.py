"""`trtq inspect MODEL --json` prints one JSON object on stdout for every model it can load."""

from __future__ import annotations

import json

import pytest
from harness import main_model_cases, model_params, require_model


@pytest.mark.parametrize("case", model_params(main_model_cases()))
def test_inspect_json_is_an_object(case, trtq, tmp_path):
    case = require_model(case)
    result = trtq("inspect", case.path, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.describe()
    report = json.loads(result.stdout)
    assert isinstance(report, dict) and report, "inspect --json printed no JSON object"
    assert list(tmp_path.iterdir()) == [], "inspect wrote files"
