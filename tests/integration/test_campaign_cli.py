"""Chapter 08's campaign from the command line, part-major (--by-part) and its progress (--progress), with
the smoke profile. Runs after the smoke pipeline (stage 2 of `dev.py test`), whose checkpoints (the robust
encoders included) it reuses, so it costs seconds; alone it trains the smoke models first."""
from __future__ import annotations

import subprocess
import sys

from book_env import REPO
from test_gpu_path import _smoke_artifacts


def test_by_part_then_progress_on_the_smoke_plan(tmp_path):
    art, results = _smoke_artifacts(tmp_path), tmp_path / "results"

    def campaign(*extra):
        r = subprocess.run([sys.executable, "-m", "egan_lib.eval.campaign", "--profile", "smoke", "--device", "cpu",
                            "--artifacts", str(art), "--results-dir", str(results), "--chapter", "8",
                            "--plan", "robust", *extra], cwd=REPO, capture_output=True, text=True, timeout=1200)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        return r.stdout
    before = campaign("--progress")                      # nothing stored: nothing computed either
    assert "| robust | EGAN-R | 0.30 | 0 of 16 | - |" in before
    assert not (results / "evaluations").exists()
    log = campaign("--by-part")
    assert log.index("the plan on the first 8 images") < log.index("the plan on the first 16 images")
    after = campaign("--progress")
    for variant in ("EGAN-R", "EGAN-RC"):
        row = next(r for r in after.splitlines() if r.startswith(f"| robust | {variant} | 0.30 |"))
        assert "| 16 of 16 |" in row and "[" in row, after
    parts = sorted(p.name for p in (results / "evaluations" / "mnist-smoke-campaign" / "EGAN-R").rglob("*.part*.pt"))
    assert parts and all(n.endswith(("part0000-0008.pt", "part0008-0016.pt")) for n in parts), parts
