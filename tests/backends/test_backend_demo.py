"""`python -m advisor.demo` end to end on the real Banking77 files, cut to a few steps (slow: ~1 minute)."""

from __future__ import annotations

import json

import pytest

from advisor import demo


@pytest.mark.slow
def test_the_demo_plans_trains_scores_on_test_csv_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--output-dir", str(out), "--max-steps", "2"]) == 0
    result = json.loads((out / "demo.json").read_text())
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["steps"] == 2
    assert "held-out test.csv accuracy" in capsys.readouterr().out
    # A second run replaces the first (make demo twice), keeping nothing of it once it completes.
    assert demo.main(["--output-dir", str(out), "--max-steps", "1"]) == 0
    assert json.loads((out / "demo.json").read_text())["steps"] == 1
    assert not list(tmp_path.glob("demo.replaced-*"))
