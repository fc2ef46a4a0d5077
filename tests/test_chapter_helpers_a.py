"""Helpers that chapters 02-04 and the introduction rely on for a computed phrase."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("sphinx")
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import egan_results  # noqa: E402


def entry(times: dict) -> dict:
    return {"methods": {m: {"seconds_per_image": t} for m, t in times.items()}}


def test_time_rank_orders_the_defenses_by_time_per_image_without_original():
    e = entry({"Original": 1.0, "EGAN": 0.0125, "DnCNN": 0.0044, "Defense-GAN": 0.0857, "PixelDefend": 0.0031})
    assert egan_results.time_rank(e, "Defense-GAN") == "the slowest of the 4 defenses"
    assert egan_results.time_rank(e, "EGAN") == "the 2nd slowest of the 4 defenses"
    assert egan_results.time_rank(e, "DnCNN") == "the 3rd slowest of the 4 defenses"
    assert egan_results.time_rank(e, "PixelDefend") == "the 4th slowest of the 4 defenses"


def test_time_rank_ties_share_the_better_place_and_unknown_methods_are_refused():
    e = entry({"A": 2.0, "B": 2.0, "C": 1.0})
    assert egan_results.time_rank(e, "B") == "the slowest of the 3 defenses"
    assert egan_results.time_rank(e, "C") == "the 3rd slowest of the 3 defenses"
    with pytest.raises(egan_results.ResultsError):
        egan_results.time_rank(e, "Original")
    with pytest.raises(egan_results.ResultsError):
        egan_results.time_rank(e, "nope")


def test_time_rank_of_the_committed_run_matches_its_times():
    e = json.loads((ROOT / "book" / "results" / "mnist-cpu.json").read_text())
    times = {m: r["seconds_per_image"] for m, r in e["methods"].items() if m != "Original"}
    slowest = max(times, key=times.get)
    assert egan_results.time_rank(e, slowest) == f"the slowest of the {len(times)} defenses"


def test_time_rank_role_renders_in_a_sphinx_build(tmp_path):
    """The role as the introduction uses it, in a tiny Sphinx project on the committed results file."""
    import shutil
    import subprocess
    import textwrap
    pytest.importorskip("myst_parser")
    src = tmp_path / "src"
    (src / "results").mkdir(parents=True)
    shutil.copy(ROOT / "book" / "results" / "mnist-cpu.json", src / "results" / "mnist-cpu.json")
    (src / "conf.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / "book" / "_ext")!r})
        extensions = ["myst_parser", "egan_results"]
        egan_results_file = "results/mnist-cpu.json"
    """))
    (src / "index.md").write_text("# T\n\nEGAN is {result}`EGAN@time_rank`.\n")
    r = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-W", "-q", "-E", str(src), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    e = json.loads((src / "results" / "mnist-cpu.json").read_text())
    assert egan_results.time_rank(e, "EGAN") in (tmp_path / "out" / "index.html").read_text()
