"""The book builds: Jupyter Book 1 with warnings as errors, plus the checks the build relies on.

* ``test_results_*``: the results extension (book/_ext/egan_results.py) in a tiny Sphinx project with
  a FAKE results file under a temp dir: it renders the numbers of the file, and a missing file is a
  build warning (so ``-W`` fails). Seconds.
* ``test_book_builds``: ``jupyter-book build <book root> --path-output $EGAN_SCRATCH/book-build -W
  --keep-going``: no broken cross-reference, no unrenderable output, no missing results file, every
  page of the toc written. The browser test then serves this HTML. About a minute.
* cheap guards: the repository URL is set only in _config.yml (and the chapters that name it), the
  chapters are executed notebooks stamped by the pipeline, the vendored widget/MathJax assets exist,
  match ipywidgets and stay small.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from book_env import BOOK_ROOT, BUILD_OK, BUILD_OUT, REPO, book_config, chapter_pages, repo_url, toc_pages

JB = Path(sys.executable).with_name("jupyter-book")
EXT_DIR = BOOK_ROOT / "book" / "_ext"
WIDGETS = BOOK_ROOT / "book" / "_widgets"
VENDOR_BUDGET_MB = 8.0


# ------------------------------------------------------------------ the results extension, alone
def _fake_results(eps=("0.00", "0.30", "0.50"), threat_model="oblivious") -> dict:
    methods = {}
    for j, m in enumerate(["Original", "EGAN", "Defense-GAN"]):
        acc = {e: round(0.99 - float(e) * (0.9 - 0.3 * j), 4) for e in eps}
        methods[m] = {"accuracy": acc, "ci95": {e: [a - 0.02, min(1.0, a + 0.01)] for e, a in acc.items()},
                      "seconds_per_image": [2e-6, 6.7e-3, 1.5][j], "n": 200 if m == "Defense-GAN" else 500}
    return {"dataset": "mnist", "profile": "cpu", "device": "cpu", "n_test": 500, "threat_model": threat_model,
            "git_commit": "f00dbee", "methods": methods}


def _sphinx_project(tmp_path: Path, page: str, results=None) -> Path:
    src = tmp_path / "src"
    (src / "results").mkdir(parents=True)
    (src / "conf.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(EXT_DIR)!r})
        extensions = ["myst_parser", "egan_results"]
        egan_results_file = "results/mnist-cpu.json"
        exclude_patterns = ["_build"]
    """))
    (src / "index.md").write_text(page)
    if results is not None:
        (src / "results" / "mnist-cpu.json").write_text(json.dumps(results))
    return src


def _sphinx(src: Path, out: Path):
    return subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-E",
                           str(src), str(out)], capture_output=True, text=True, timeout=300)


PAGE = """# Results

```{results-table}
:eps: 0.00 0.3
:methods: Original EGAN Defense-GAN
```

EGAN keeps {result}`EGAN@0.30` at {result}`EGAN@time` per image on {result}`@n_test` images.
"""


def test_results_table_reads_the_file(tmp_path):
    data = [_fake_results(), _fake_results(threat_model="adaptive-pgd")]   # a list, one per threat model
    data[1]["methods"]["EGAN"]["accuracy"]["0.30"] = 0.0123    # the other threat model's entry must not be read
    data[1]["methods"]["EGAN"]["ci95"]["0.30"] = [0.005, 0.03]
    src = _sphinx_project(tmp_path, PAGE, data)
    r = _sphinx(src, tmp_path / "html")
    assert r.returncode == 0, r.stdout + r.stderr
    html = (tmp_path / "html" / "index.html").read_text()
    egan = data[0]["methods"]["EGAN"]
    a, (lo, hi) = egan["accuracy"]["0.30"], egan["ci95"]["0.30"]
    cell = rf"{100 * a:.1f}(</strong>)?<span class=\"egan-ci\"> \[{100 * lo:.1f}, {100 * hi:.1f}\]</span>"
    assert re.search(cell, html), f"no table cell {cell} in the page"   # accuracy [95% CI]
    assert f"{100 * a:.1f} % (95 % CI {100 * lo:.1f}–{100 * hi:.1f} %)" in html   # role
    assert "6.7 ms" in html and "1.5 s" in html and "2 µs" in html             # seconds per image
    assert ">200<" in html and ">500<" in html                                  # n per method
    assert "oblivious threat model" in html and "f00dbee" in html               # caption names the run
    assert ">1.2<" not in html and "1.2 %" not in html                         # not the adaptive entry


@pytest.mark.parametrize("case", ["missing", "unknown-method", "unknown-eps", "bad-json"])
def test_results_problems_are_build_warnings(tmp_path, case):
    results, page = _fake_results(), PAGE
    if case == "missing":
        results = None
    elif case == "unknown-method":
        page = PAGE.replace(":methods: Original EGAN Defense-GAN", ":methods: Original MagNet")
    elif case == "unknown-eps":
        page = PAGE.replace(":eps: 0.00 0.3", ":eps: 0.00 0.45")
    src = _sphinx_project(tmp_path, page, results)
    if case == "bad-json":
        (src / "results" / "mnist-cpu.json").write_text("{not json")
    r = _sphinx(src, tmp_path / "html")
    out = r.stdout + r.stderr
    assert r.returncode != 0, f"a {case} results file must fail a -W build:\n{out}"
    assert "mnist-cpu.json" in out or "MagNet" in out or "0.45" in out, out
    if case == "missing":
        assert "is missing" in out, out


def _stamped_notebook(path: Path, seconds=None, profile="cpu"):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}")]
    if seconds is not None:
        nb.metadata["egan"] = {"profile": profile, "device": "cpu", "threads": 2, "seconds": seconds,
                               "date": "2026-11-25 05:00 UTC", "git_commit": "f00dbee"}
    nbformat.write(nb, path)


RUNTIMES = """# Times

```{run-times}
:chapters: 01_a 02_b
:profile: cpu
```
"""


def test_run_times_read_the_notebook_metadata(tmp_path):
    src = _sphinx_project(tmp_path, RUNTIMES, _fake_results())
    _stamped_notebook(src / "01_a.ipynb", 63.2)
    _stamped_notebook(src / "02_b.ipynb", 3725.0)
    r = _sphinx(src, tmp_path / "html")
    assert r.returncode == 0, r.stdout + r.stderr
    html = (tmp_path / "html" / "index.html").read_text()
    assert "1 min 03 s" in html and "1 h 02 min" in html and "1 h 03 min" in html   # rows and total
    assert "profile cpu, device cpu, threads 2" in html


@pytest.mark.parametrize("case", ["unstamped", "other-profile"])
def test_run_times_problems_are_build_warnings(tmp_path, case):
    src = _sphinx_project(tmp_path, RUNTIMES, _fake_results())
    _stamped_notebook(src / "01_a.ipynb", 63.2)
    _stamped_notebook(src / "02_b.ipynb", None if case == "unstamped" else 10.0, profile="smoke")
    r = _sphinx(src, tmp_path / "html")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "02_b.ipynb" in out, out


def test_profile_table_reads_egan_lib_config(tmp_path):
    from egan_lib.config import PROFILES
    src = _sphinx_project(tmp_path, "# Profiles\n\n```{profile-table}\n```\n", _fake_results())
    r = _sphinx(src, tmp_path / "html")
    assert r.returncode == 0, r.stdout + r.stderr
    html = (tmp_path / "html" / "index.html").read_text()
    for name in PROFILES:
        assert f">{name}<" in html
    assert "enc_channels" in html and f"{PROFILES['cpu'].enc_channels:,}" in html


def test_profile_role_reads_a_setting_and_warns_on_a_bad_one(tmp_path):
    from egan_lib.config import PROFILES
    cpu = PROFILES["cpu"]
    page = "# Settings\n\nn is {profile}`cpu.n_test`, per part {profile}`cpu.expensive_n_test/eval_parts`.\n"
    src = _sphinx_project(tmp_path / "good", page, _fake_results())
    r = _sphinx(src, tmp_path / "good" / "html")
    assert r.returncode == 0, r.stdout + r.stderr
    html = (tmp_path / "good" / "html" / "index.html").read_text()
    assert f"n is <span class=\"egan-profile\">{cpu.n_test:,}</span>" in html
    assert f"per part <span class=\"egan-profile\">{cpu.expensive_n_test // cpu.eval_parts:,}</span>" in html
    src = _sphinx_project(tmp_path / "bad", "# Settings\n\n{profile}`cpu.no_such_field`\n", _fake_results())
    r = _sphinx(src, tmp_path / "bad" / "html")
    assert r.returncode != 0 and "profile role" in r.stdout + r.stderr, r.stdout + r.stderr


# ------------------------------------------------------------------------------ cheap guards
def test_repository_url_is_set_only_in_config():
    """The URL lives in _config.yml; other files read it. Exceptions: notebooks (the chapters' Colab
    link and install cell name it), i.e. the .ipynb files and the chapter sources notebooks/NN_name.md (and notebooks/pending/NN_name.md),
    which tests/test_chapters.py checks name exactly this URL."""
    url = repo_url(REPO)
    assert url.startswith("https://github.com/"), url
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for f in files:
        if f == "_config.yml" or f.endswith(".ipynb") or f.startswith("book/_widgets/") \
                or re.fullmatch(r"notebooks/(pending/)?\d\d_\w+\.md", f):
            continue
        p = REPO / f
        try:
            if p.is_file() and p.stat().st_size < 2_000_000 and url.split("//", 1)[1] in p.read_text(errors="ignore"):
                offenders.append(f)
        except OSError:
            continue
    assert not offenders, f"the repository URL {url} is typed in {offenders}; read it from _config.yml instead"


def test_config_points_at_vendored_assets():
    cfg = book_config()["sphinx"]["config"]
    static = [BOOK_ROOT / p for p in cfg["html_static_path"]]
    assert all(s.is_dir() and s.name != "_static" for s in static), static
    wanted = list(cfg["nb_ipywidgets_js"]) + [cfg["mathjax_path"]]
    for rel in wanted:
        assert "://" not in rel, f"{rel}: loaded from the internet; vendor it (book/_widgets/VENDOR.txt)"
        assert any((s / rel).is_file() for s in static), f"{rel} is not in {static}"
    size = sum(f.stat().st_size for s in static for f in s.rglob("*") if f.is_file()) / 2**20
    assert size < VENDOR_BUDGET_MB, f"vendored assets take {size:.1f} MB (budget {VENDOR_BUDGET_MB} MB)"


def test_vendored_html_manager_matches_ipywidgets():
    import ipywidgets
    pkg = json.loads((WIDGETS / "html-manager" / "package.json").read_text())
    assert pkg["name"] == "@jupyter-widgets/html-manager"
    want = getattr(ipywidgets, "__html_manager_version__", "^1.0.0")      # e.g. '^1.0.1' for ipywidgets 8.1
    major, minor, patch = (int(x) for x in pkg["version"].split("."))
    lo = tuple(int(x) for x in want.lstrip("^~").split("."))
    assert major == lo[0] and (major, minor, patch) >= lo, \
        f"vendored html-manager {pkg['version']} does not satisfy ipywidgets {ipywidgets.__version__}'s {want}"


def test_toc_lists_the_chapters_in_order():
    chapters = [p.split("/", 1)[1] for p in chapter_pages(REPO)]
    paper = ["01_data", "02_gan", "03_encoder", "04_attack", "05_baselines", "06_results"]
    assert chapters[:6] == paper, f"_toc.yml chapters {chapters}; expected {paper} first"
    assert "07_adaptive" in chapters, "07_adaptive missing from _toc.yml"
    for p in toc_pages(REPO):
        if p not in chapter_pages(REPO):
            assert (REPO / f"{p}.md").is_file(), f"{p}.md listed in _toc.yml does not exist"


def test_chapters_are_executed_and_stamped():
    """The book shows stored outputs (execute_notebooks: off): every chapter must be an executed
    notebook written by egan_lib.pipeline, not a stripped source."""
    import nbformat
    problems = []
    for page in chapter_pages():
        path = BOOK_ROOT / f"{page}.ipynb"
        if not path.is_file():
            problems.append(f"{path.relative_to(BOOK_ROOT)} is missing (python -m egan_lib.pipeline writes it)")
            continue
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
        unrun = [i for i, c in enumerate(code) if c.get("execution_count") is None]
        if unrun:
            problems.append(f"{path.name}: {len(unrun)} of {len(code)} code cells were not executed")
        if not any(c.get("outputs") for c in code):
            problems.append(f"{path.name}: no outputs at all")
        if "egan" not in nb.metadata:
            problems.append(f"{path.name}: no metadata.egan (not written by egan_lib.pipeline)")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------ the real build
def test_book_builds():
    """jupyter-book build with warnings as errors; the HTML lands in $EGAN_SCRATCH/book-build."""
    assert JB.exists(), f"{JB} missing: install requirements.txt (jupyter-book==1.0.4.post1)"
    html = BUILD_OUT / "_build" / "html"
    BUILD_OK.unlink(missing_ok=True)
    if html.exists():
        shutil.rmtree(html)
    BUILD_OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    r = subprocess.run([str(JB), "build", str(BOOK_ROOT), "--path-output", str(BUILD_OUT), "--warningiserror",
                        "--keep-going"], capture_output=True, text=True, timeout=1800,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    dt = time.perf_counter() - t0
    log = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout + r.stderr)          # no terminal colours
    (BUILD_OUT / "build.log").write_text(log)
    warnings = list(dict.fromkeys(ln for ln in log.splitlines() if re.search(r"WARNING|ERROR|CRITICAL", ln)))
    assert r.returncode == 0 and not warnings, (
        f"jupyter-book build failed (exit {r.returncode}, {dt:.0f} s); full log in {BUILD_OUT / 'build.log'}\n"
        + "\n".join(warnings[:40]) + ("\n" + log[-3000:] if not warnings else ""))
    for page in toc_pages():
        assert (html / f"{page}.html").is_file(), f"{page}.html was not written"
    assert (html / "index.html").is_file()
    # Markdown a cell prints (results tables, shown library source) renders as tables and code, not as
    # a paragraph of bars: no page may carry a raw Markdown table row
    for page in chapter_pages():
        text = (html / f"{page}.html").read_text(encoding="utf-8")
        body = re.sub(r"<(pre|code)\b.*?</\1>", "", text, flags=re.S)         # source code may contain bars
        assert not re.search(r"\|\s*(?:-{3}|\u2014)\s*\|", body), f"{page}: a Markdown table was not rendered"
    size = sum(f.stat().st_size for f in html.rglob("*") if f.is_file()) / 2**20
    BUILD_OK.write_text(f"{BOOK_ROOT}\n{dt:.0f} s\n{size:.1f} MB\n")
    print(f"\nbook built in {dt:.0f} s: {html} ({size:.1f} MB)")
