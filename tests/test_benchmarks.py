"""The benchmark scripts run end to end on the smoke profile and reject bad arguments."""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dncnn_budget_parse_net():
    mod = _load("dncnn_budget")
    assert mod.parse_net("17x64x2") == (17, 64, 2)
    for bad in ("17x64", "17x64x0", "2x8x1", "axbxc", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="--nets"):
            mod.parse_net(bad)


def test_dncnn_budget_runs_on_smoke(tmp_path, mnist, capsys):
    mod = _load("dncnn_budget")
    out = tmp_path / "rows.json"
    rc = mod.main(["--profile", "smoke", "--device", "cpu", "--threads", "1", "--artifacts", str(tmp_path / "a"),
                   "--n-test", "16", "--nets", "3x4x1", "4x4x1", "--eps", "0", "0.3", "--json", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["net"] for r in rows] == ["3x4", "4x4"]
    for r in rows:
        assert r["n"] == 16 and r["steps"] >= 1 and r["train_seconds"] >= 0
        for v in r["accuracy"].values():
            assert v["acc"] == v["correct"] / 16 and v["ci95"][0] <= v["acc"] <= v["ci95"][1]
    printed = capsys.readouterr().out
    assert "DnCNN    3x4 x 1 epochs" in printed and "n=16" in printed


def test_dncnn_budget_rejects_bad_eps(tmp_path):
    mod = _load("dncnn_budget")
    with pytest.raises(SystemExit):
        mod.main(["--profile", "smoke", "--eps", "1.5", "--artifacts", str(tmp_path)])


def test_bench_encoder_reports_every_variant(tmp_path, capsys):
    mod = _load("bench_encoder")
    out = tmp_path / "enc.json"
    assert mod.main(["--profile", "smoke", "--threads", "1", "--batches", "4", "--repeats", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows] == ["fp32", "bf16", "bf16+channels_last"]
    assert all(r["image_steps_per_second"] > 0 for r in rows)
    assert "image-steps/s" in capsys.readouterr().out


def test_attack_step_benchmark_runs_on_smoke(tmp_path, capsys):
    mod = _load("attack_step")
    out = tmp_path / "rows.json"
    assert mod.main(["--profile", "smoke", "--threads", "1", "--batches", "4", "--repeats", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["pipeline"] for r in rows] == ["deployed fp32", "attacker: folded, channels_last, fp32",
                                              "attacker: folded, channels_last, bf16"]
    assert all(r["ms_per_image"] > 0 for r in rows) and "machine:" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        mod.main(["--batches", "0"])
