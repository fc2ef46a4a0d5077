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
    names = pipeline.available_chapters(drafts=True)
    assert names[:4] == CHAPS and set(pipeline.DRAFTS) <= set(names)
    assert not set(pipeline.DRAFTS) & set(pipeline.available_chapters())     # a draft is not in the book
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


def test_a_cell_timeout_keeps_the_partly_executed_notebook_and_names_the_cell(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir(); out.mkdir()
    _tiny_notebook(src / "03_encoder.ipynb", "import time\ntime.sleep(60)")
    with pytest.raises(pipeline.PipelineError) as info:
        pipeline.run_chapter("03_encoder", out, {"profile": "smoke"}, notebooks=src, cell_timeout=2)
    msg = str(info.value)
    assert "\n" not in msg
    # cell 0 is the title, 1 the parameters, 2 papermill's injected parameters, 3 the sleeping cell
    assert msg.startswith("03_encoder.ipynb: cell 3 (execution count 3) timed out after 2 s (--cell-timeout)"), msg
    failed = out / "03_encoder.failed.ipynb"
    assert str(failed) in msg and failed.exists() and not (out / "03_encoder.ipynb").exists()
    nb = nbformat.read(failed, as_version=4)
    assert nb.cells[1].execution_count == 1                 # what ran before the timeout is kept
    assert [p.name for p in out.iterdir()] == ["03_encoder.failed.ipynb"]   # no temp file left


def test_executed_notebooks_get_the_normal_file_mode(tmp_path):
    import os
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir(); out.mkdir()
    _tiny_notebook(src / "01_data.ipynb", "x = 1")
    old = os.umask(0o022)
    try:
        pipeline.run_chapter("01_data", out, {}, notebooks=src)
    finally:
        os.umask(old)
    assert (os.stat(out / "01_data.ipynb").st_mode & 0o777) == 0o644


# ---------------------------------------------------------------------------- the command line: bad arguments
# Each case is refused before any chapter runs: one line on stderr, exit status 2, nothing on stdout.
# (--only 01 and temporary folders everywhere: a regression would run one chapter into tmp, not the book.)
def _cli_cases(tmp):
    blocker = tmp / "a-file"
    blocker.write_text("not a folder")
    safe = ["--out", str(tmp / "out"), "--artifacts", str(tmp / "art")]
    return {
        "unknown profile": (["--profile", "nope", "--only", "01", *safe], "argument --profile: unknown profile 'nope'"),
        "device tpu": (["--device", "tpu", "--only", "01", *safe], "argument --device: 'tpu' is not a device name"),
        "device cuda:99": (["--device", "cuda:99", "--only", "01", *safe], "argument --device: 'cuda"),
        "cell-timeout -5": (["--cell-timeout", "-5", "--only", "01", *safe],
                            "argument --cell-timeout: expected a whole number of seconds > 0, got '-5'"),
        "cell-timeout 0": (["--cell-timeout", "0", "--only", "01", *safe], "seconds > 0, got '0'"),
        "cell-timeout abc": (["--cell-timeout", "abc", "--only", "01", *safe], "seconds > 0, got 'abc'"),
        "seed -1": (["--seed", "-1", "--only", "01", *safe], "argument --seed: expected a non-negative integer"),
        "unwritable out": (["--out", str(blocker / "out"), "--artifacts", str(tmp / "art"), "--only", "01"],
                           "argument --out: "),
        "unwritable artifacts": (["--artifacts", str(blocker / "art"), "--out", str(tmp / "out"), "--only", "01"],
                                 "argument --artifacts: "),
        "unwritable results-dir": (["--results-dir", str(blocker / "res"), "--only", "01", *safe],
                                   "argument --results-dir: "),
        "unknown --only": (["--only", "09", *safe], "unknown chapter '09'"),
        "unknown --from": (["--from", "nope", *safe], "unknown chapter 'nope'"),
        "unknown option": (["--bogus", "--only", "01", *safe], "unrecognized arguments: --bogus"),
    }


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    """Run every bad command line as ``python -m egan_lib.pipeline`` at once (each only imports the library)."""
    import os
    import subprocess
    tmp = tmp_path_factory.mktemp("cli")
    cases = _cli_cases(tmp)
    env = dict(os.environ, PYTHONPATH=str(pipeline.ROOT))
    procs = {k: subprocess.Popen([sys.executable, "-m", "egan_lib.pipeline", *args], cwd=tmp, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, (args, _) in cases.items()}
    out = {}
    for k, p in procs.items():
        try:
            so, se = p.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            p.kill()
            so, se = p.communicate()
        out[k] = (p.returncode, so, se, cases[k][1])
    return tmp, out


@pytest.mark.parametrize("case", [
    "unknown profile", "device tpu", "device cuda:99", "cell-timeout -5", "cell-timeout 0", "cell-timeout abc",
    "seed -1", "unwritable out", "unwritable artifacts", "unwritable results-dir", "unknown --only",
    "unknown --from", "unknown option"])
def test_a_bad_command_line_is_one_line_on_stderr_and_exit_status_2(cli_results, case):
    tmp, results = cli_results
    rc, stdout, stderr, expected = results[case]
    assert rc == 2, (rc, stdout, stderr)
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr                                  # no usage block, no traceback
    assert lines[0].startswith("python -m egan_lib.pipeline: error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in stderr and stdout == ""               # refused before any chapter started
    assert not list(tmp.glob("**/*.ipynb"))


def test_output_folders_are_checked_before_any_chapter_or_retrain(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    art = tmp_path / "art"
    (art / "checkpoints" / "smoke").mkdir(parents=True)
    (art / "checkpoints" / "smoke" / "generator.pt").write_bytes(b"old")
    ran = []
    monkeypatch.setattr(pipeline, "run_chapter", lambda *a, **k: ran.append(a) or 0.1)
    with pytest.raises(SystemExit) as info:
        pipeline.main(["--profile", "smoke", "--device", "cpu", "--out", str(tmp_path / "o"), "--artifacts", str(art),
                       "--results-dir", str(blocker / "results"), "--retrain"])
    assert info.value.code == 2 and ran == []
    assert "argument --results-dir" in capsys.readouterr().err
    assert (art / "checkpoints" / "smoke" / "generator.pt").read_bytes() == b"old"   # --retrain did not start


def test_writable_folder(tmp_path):
    assert pipeline.writable_folder(tmp_path / "new" / "sub") == (tmp_path / "new" / "sub").resolve()
    (tmp_path / "f").write_text("x")
    with pytest.raises(OSError):
        pipeline.writable_folder(tmp_path / "f")
    with pytest.raises(OSError):
        pipeline.writable_folder(tmp_path / "f" / "sub")
