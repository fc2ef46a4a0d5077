"""The papermill runner: chapter selection, stamping, failure reporting (tiny notebooks, real kernel)."""
import json
import sys

import nbformat
import pytest

from egan_lib import pipeline


CHAPS = ["01_data", "02_gan", "03_encoder", "04_attack"]


def test_select_all_only_from():
    assert pipeline.select(CHAPS) == CHAPS
    assert pipeline.select(CHAPS, only=["03"]) == ["03_encoder"]
    assert pipeline.select(CHAPS, only=["04_attack", "1"]) == ["01_data", "04_attack"]
    assert pipeline.select(CHAPS, start="02_gan") == CHAPS[1:]


@pytest.mark.parametrize("kw", [{"only": ["09"]}, {"start": "nope"}, {"only": ["01"], "start": "02"}])
def test_select_rejects_unknown(kw):
    with pytest.raises(ValueError):
        pipeline.select(CHAPS, **kw)


def test_source_notebooks_have_parameters_and_no_outputs():
    names = pipeline.available_chapters()
    assert names[:4] == CHAPS
    for name in names:
        nb = nbformat.read(pipeline.NOTEBOOKS / f"{name}.ipynb", as_version=4)
        tags = [c.metadata.get("tags", []) for c in nb.cells]
        assert sum("parameters" in t for t in tags) == 1, name
        assert any("colab-install" in t for t in tags), name
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), name
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), name
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert "## Summary" in text and "## Exercises" in text, name


def _tiny_notebook(path, body):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Tiny"),
                nbformat.v4.new_code_cell("profile = 'x'\nseed = 0", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_run_chapter_stamps_and_reports_failures(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir(); out.mkdir()
    _tiny_notebook(src / "01_data.ipynb", "print(profile, seed)")
    _tiny_notebook(src / "02_gan.ipynb", "raise ValueError('boom')")
    sec = pipeline.run_chapter("01_data", out, {"profile": "smoke", "seed": 3}, notebooks=src)
    assert sec > 0
    info = {"profile": "smoke", "seed": 3, "device": "cpu", "threads": 2, "git_commit": "abc", "seconds": sec,
            "date": "today", "versions": {"torch": "t", "egan_lib": "e"}}
    pipeline.stamp(out / "01_data.ipynb", info)
    nb = nbformat.read(out / "01_data.ipynb", as_version=4)
    assert nb.metadata["egan"]["profile"] == "smoke"
    assert nb.metadata["papermill"]["parameters"]["seed"] == 3
    assert "run-info" in nb.cells[1].metadata["tags"] and "profile **smoke**" in nb.cells[1].source
    assert "(2 threads)" in nb.cells[1].source           # no machine recorded: none shown
    pipeline.stamp(out / "01_data.ipynb", {**info, "machine": "Some CPU, AVX2"})
    nb = nbformat.read(out / "01_data.ipynb", as_version=4)
    assert "(Some CPU, AVX2, 2 threads)" in nb.cells[1].source
    assert sum("run-info" in c.metadata.get("tags", []) for c in nb.cells) == 1   # restamping replaces the note
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("smoke 3" in o.get("text", "") for o in outputs)
    with pytest.raises(pipeline.PipelineError, match=r"02_gan.ipynb failed in cell .*ValueError: boom"):
        pipeline.run_chapter("02_gan", out, {}, notebooks=src)
    assert not (out / "02_gan.ipynb").exists()          # a failed run never replaces a good notebook
    assert (out / "02_gan.failed.ipynb").exists()


def test_retrain_empties_the_checkpoints_once_and_runs_chapters_without_retrain(tmp_path, monkeypatch):
    """--retrain trains each model once: old checkpoints moved aside, chapters get retrain=False."""
    art = tmp_path / "art"
    (art / "checkpoints" / "smoke").mkdir(parents=True)
    (art / "checkpoints" / "smoke" / "generator.pt").write_bytes(b"old")
    seen = []
    monkeypatch.setattr(pipeline, "run_chapter", lambda name, out, params, cell_timeout=None: seen.append(
        (name, dict(params))) or 0.1)
    monkeypatch.setattr(pipeline, "stamp", lambda path, info: None)
    rc = pipeline.main(["--profile", "smoke", "--device", "cpu", "--only", "01", "02", "--out", str(tmp_path / "o"),
                        "--artifacts", str(art), "--retrain"])
    assert rc == 0 and [n for n, _ in seen] == ["01_data", "02_gan"]
    assert all(p["retrain"] is False for _, p in seen)
    assert [p.name for p in (art / "checkpoints" / "smoke").iterdir()] == [".from-scratch"]
    kept = [p for p in (art / "checkpoints").iterdir() if p.name.startswith("smoke.before-retrain-")]
    assert len(kept) == 1 and (kept[0] / "generator.pt").read_bytes() == b"old"
