"""Helpers chapters 05-06 use (egan_lib.explore: repository files, the DnCNN budget table) and the
expected outcomes their from-scratch exercises state."""
import json
import math

import pytest
import torch

from egan_lib import explore
from egan_lib import defenses as dfn
from egan_lib.eval.stats import wilson_interval

BUDGET = {"profile": "cpu", "rows": [
    {"net": "17x64", "epochs": 2, "steps": 156, "train_seconds": 173.0, "n": 300,
     "accuracy": {"0.1": {"correct": 163, "acc": 163 / 300, "ci95": list(wilson_interval(163, 300))}}},
    {"net": "17x64", "epochs": 6, "steps": 468, "train_seconds": 480.9, "n": 300,
     "accuracy": {"0.1": {"correct": 236, "acc": 236 / 300, "ci95": list(wilson_interval(236, 300))},
                  "0.3": {"correct": 27, "acc": 0.09, "ci95": list(wilson_interval(27, 300))}}}]}


def test_repository_file(tmp_path):
    assert explore.repository_file("benchmarks/results/dncnn_budget_cpu.json").is_file()
    assert explore.repository_file("no/such/file.json", start=tmp_path) is None
    (tmp_path / "a").mkdir()
    (tmp_path / "x.json").write_text("{}")
    assert explore.repository_file("x.json", start=tmp_path / "a") == tmp_path / "x.json"
    for bad in ("", "/etc/passwd", None):
        with pytest.raises(ValueError):
            explore.repository_file(bad)


def test_budget_markdown(tmp_path):
    rows = explore.budget_rows(BUDGET)
    assert [r["epochs"] for r in rows] == [2, 6] and rows[0]["n"] == 300
    md = explore.budget_markdown(BUDGET).splitlines()
    assert md[0].startswith("| net") and "eps 0.10" in md[0] and "eps 0.30" in md[0]
    assert "54.3% [48.7, 59.9]" in md[2] and md[2].rstrip().endswith("| - |")   # no eps 0.3 for that row
    assert "78.7% [73.7, 82.9]" in md[3]
    (tmp_path / "b.json").write_text(json.dumps(BUDGET))
    assert explore.load_json(tmp_path / "b.json") == BUDGET
    for bad in ({}, {"rows": []}, {"rows": [{"net": "1x1"}]}, []):
        with pytest.raises(ValueError):
            explore.budget_rows(bad)


def test_the_shipped_budget_file_reads():
    obj = explore.load_json(explore.repository_file("benchmarks/results/dncnn_budget_cpu.json"))
    md = explore.budget_markdown(obj)
    assert md.count("\n") == len(obj["rows"]) + 1


def test_chapter_06_exercise_wilson_by_hand():
    z, n = 1.96, 10
    centre = (z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(z * z / (4 * n * n)) / (1 + z * z / n)
    assert round(centre, 4) == 0.1388 and round(centre + half, 4) == 0.2775
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and round(hi, 4) == 0.2775
    assert tuple(round(v, 4) for v in wilson_interval(10, 10)) == (0.7225, 1.0)


def test_chapter_05_exercise_pixeldefend_rule_for_one_pixel():
    def rule(logits, x_i, eps):
        v = torch.arange(256)
        ok = (v / 255 - x_i).abs() <= eps
        return int(logits.masked_fill(~ok, float("-inf")).argmax())

    torch.manual_seed(0)
    pc = dfn.PixelCNN(8, 1)
    x = torch.rand(2, 1, 28, 28)
    eps = 32 / 255
    out, logits = dfn.pixeldefend_batch(pc, x, eps, return_logits=True)
    got = torch.tensor([[[rule(logits[j, :, r, c], float(x[j, 0, r, c]), eps) for c in range(28)]
                         for r in range(28)] for j in range(2)])
    assert int((got == (255 * out[:, 0]).round().long()).sum()) == 2 * 784
    window = [v for v in range(256) if abs(v / 255 - 0.5) <= eps]
    assert (window[0], window[-1], len(window)) == (96, 159, 64)
