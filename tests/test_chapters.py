"""The chapters have ONE source each: the MyST Markdown notebook notebooks/NN_name.md.

jupytext pairs it (notebooks/jupytext.toml) with notebooks/NN_name.ipynb, the stripped notebook that
papermill executes into book/NN_name.ipynb and that Colab opens. After editing a chapter:

    .venv/bin/jupytext --sync notebooks/NN_name.md                      # the paired .ipynb
    .venv/bin/python -m egan_lib.pipeline --profile cpu --only NN       # the published book/NN_name.ipynb

These tests execute nothing (seconds): the pair is in sync and the .ipynb is stripped; every chapter
has the common frame (title, Colab link, install cell, one `parameters` cell, setup, Overview,
Summary, Exercises); the executed book/NN_name.ipynb has exactly the source's cells, so a chapter
edited but not re-executed fails; and every code cell compiles, with pyflakes finding no error
(undefined name, ...) in the chapter's code read as one script (the cells share one namespace).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from egan_lib import pipeline

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BOOK = ROOT / "book"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.md"))
NAMES = [p.stem for p in SOURCES]
PUBLISHED = [n for n in NAMES if n not in pipeline.DRAFTS]   # a draft (egan_lib.pipeline.DRAFTS) is not in the book
SYNC = ".venv/bin/jupytext --sync notebooks/{name}.md"
RERUN = ".venv/bin/python -m egan_lib.pipeline --profile cpu --only {nn}"
# what egan_lib.pipeline passes to every chapter (papermill overrides them in the `parameters` cell)
PARAMETERS = ("profile", "seed", "device", "data_dir", "artifacts_dir", "results_dir", "retrain", "reevaluate")
# cells the pipeline adds to an executed chapter: papermill's parameters and the run note (pipeline.stamp)
ADDED_BY_PIPELINE = {"injected-parameters", "run-info"}

chapter = pytest.mark.parametrize("name", NAMES)


def source(name: str):
    return jupytext.read(NOTEBOOKS / f"{name}.md")


def tags(cell) -> list:
    return list(cell.get("metadata", {}).get("tags", []))


def first_difference(a: list, b: list, what_a: str, what_b: str) -> str | None:
    """None when the two cell lists agree on type, source and tags; else a readable account."""
    for i, (x, y) in enumerate(zip(a, b)):
        for key, fx, fy in (("type", x.cell_type, y.cell_type), ("source", x.source, y.source),
                            ("tags", tags(x), tags(y))):
            if fx != fy:
                if key == "source":
                    lx, ly = fx.splitlines(), fy.splitlines()
                    j = next((k for k, (u, v) in enumerate(zip(lx, ly)) if u != v), min(len(lx), len(ly)))
                    fx, fy = (lx[j] if j < len(lx) else "<end>"), (ly[j] if j < len(ly) else "<end>")
                    key = f"source line {j + 1}"
                return f"cell {i} ({x.cell_type}) differs in its {key}:\n  {what_a}: {fx!r}\n  {what_b}: {fy!r}"
    if len(a) != len(b):
        return f"{what_a} has {len(a)} cells, {what_b} has {len(b)}"
    return None


def config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------- the pair
def test_every_chapter_is_one_md_with_its_ipynb():
    assert SOURCES, f"no chapter sources notebooks/NN_name.md in {NOTEBOOKS}"
    ipynbs = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert NAMES == ipynbs, (f"chapter sources (.md) {NAMES} and notebooks (.ipynb) {ipynbs} differ: "
                             f"create a missing .ipynb with `{SYNC.format(name='NN_name')}`; "
                             "delete an .ipynb whose .md was deleted")
    toc = re.findall(r"^\s*- file: book/(\d\d_\w+)\s*$", (ROOT / "_toc.yml").read_text(encoding="utf-8"), re.M)
    assert sorted(toc) == PUBLISHED, f"_toc.yml lists the chapters {sorted(toc)}, notebooks/ publishes {PUBLISHED}"
    assert list(pipeline.CHAPTERS) == PUBLISHED and set(pipeline.DRAFTS) <= set(NAMES)


def test_jupytext_config_pairs_md_and_ipynb_in_notebooks_only():
    from jupytext.config import find_jupytext_configuration_file, load_jupytext_configuration_file
    found = find_jupytext_configuration_file(str(NOTEBOOKS))
    assert found and Path(found).resolve() == NOTEBOOKS / "jupytext.toml", found
    cfg = load_jupytext_configuration_file(found)
    assert cfg.formats in ("ipynb,md:myst", ["ipynb,md:myst"]), cfg.formats
    assert cfg.cell_metadata_filter == "-all,tags", cfg.cell_metadata_filter
    # the executed chapters in book/ are pages of the book: pairing them would add book/NN_name.md pages
    other = find_jupytext_configuration_file(str(BOOK))
    assert other is None or ROOT not in Path(other).resolve().parents, f"{other} applies to book/ too"


@chapter
def test_md_is_myst_with_front_matter(name):
    text = (NOTEBOOKS / f"{name}.md").read_text(encoding="utf-8")
    assert text.startswith("---\njupytext:\n"), f"notebooks/{name}.md: no jupytext front matter"
    nb = source(name)
    rep = nb.metadata["jupytext"]["text_representation"]
    assert rep["format_name"] == "myst", rep
    assert rep["jupytext_version"] == jupytext.__version__, (
        f"notebooks/{name}.md was written by jupytext {rep['jupytext_version']}, the pinned one is "
        f"{jupytext.__version__}: run `{SYNC.format(name=name)}` with .venv's jupytext")
    assert nb.metadata["kernelspec"]["name"] == "python3", nb.metadata.get("kernelspec")


@chapter
def test_ipynb_is_the_md_regenerated(name):
    """What jupytext makes of the .md equals the committed .ipynb, cell by cell (type, source, tags)."""
    md, ipynb = source(name), nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    diff = first_difference(md.cells, ipynb.cells, f"notebooks/{name}.md", f"notebooks/{name}.ipynb")
    if diff:
        pytest.fail(f"notebooks/{name}.ipynb is not in sync with its source: {diff}\n"
                    f"run `{SYNC.format(name=name)}` (the .md is the file to edit)", pytrace=False)
    assert ipynb.metadata.get("kernelspec") == md.metadata.get("kernelspec")


@chapter
def test_ipynb_is_stripped(name):
    path = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    fix = f"rewrite it from the source: `.venv/bin/jupytext --to ipynb notebooks/{name}.md`"
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None, f"{path.name}: cell {i} has outputs; {fix}"
        extra = set(c.metadata) - {"tags"}
        assert not extra, f"{path.name}: cell {i} has metadata {sorted(extra)}; {fix}"
    assert set(nb.metadata) <= {"kernelspec", "jupytext"}, f"{path.name}: metadata {sorted(nb.metadata)}; {fix}"
    ids = [c.get("id") for c in nb.cells]
    assert all(ids) and len(set(ids)) == len(ids), f"{path.name}: missing or repeated cell ids"


# -------------------------------------------------------------------------------- the frame
@chapter
def test_chapter_frame(name):
    nb = source(name)
    cells, nn = nb.cells, name[:2]
    md_text = "\n\n".join(c.source for c in cells if c.cell_type == "markdown")
    code = [(i, c) for i, c in enumerate(cells) if c.cell_type == "code"]

    head = cells[0]
    assert head.cell_type == "markdown" and re.match(rf"# {nn}\. \S", head.source), \
        f"{name}: the first cell must be the title '# {nn}. ...', not {head.source[:60]!r}"
    repo = config()["repository"]
    url, branch = repo["url"].rstrip("/"), repo.get("branch", "main")
    colab = f"https://colab.research.google.com/github/{url.split('github.com/', 1)[1]}/blob/{branch}/notebooks/{name}.ipynb"
    assert colab in head.source, (f"{name}: the title cell has no Colab link {colab} (repository.url and "
                                  "branch of _config.yml; after changing them, update every notebooks/*.md)")

    install = [i for i, c in code if "colab-install" in tags(c)]
    assert len(install) == 1, f"{name}: {len(install)} cells tagged colab-install; want exactly one"
    cell = cells[install[0]].source
    assert "google.colab" in cell and f"git+{url}" in cell, f"{name}: the install cell must install git+{url} in Colab only"

    params = [i for i, c in code if "parameters" in tags(c)]
    assert len(params) == 1, f"{name}: {len(params)} cells tagged parameters; papermill needs exactly one"
    bound = {t.id for n in ast.parse(cells[params[0]].source).body if isinstance(n, ast.Assign)
             for t in n.targets if isinstance(t, ast.Name)}
    assert set(PARAMETERS) <= bound, f"{name}: the parameters cell does not set {sorted(set(PARAMETERS) - bound)}"

    setup = [i for i, c in code if re.search(r"^ws = el\.setup\(", c.source, re.M)]
    assert len(setup) == 1, f"{name}: {len(setup)} setup cells (`ws = el.setup(profile, seed, ...)`); want one"
    assert install[0] < params[0] < setup[0], f"{name}: install, parameters and setup cells out of order"

    where = [m.start() if (m := re.search(rf"^## {h}\s*$", md_text, re.M)) else -1
             for h in ("Overview", "Summary", "Exercises")]
    assert min(where) >= 0, f"{name}: missing section(s) " + \
        ", ".join(h for h, w in zip(("Overview", "Summary", "Exercises"), where) if w < 0)
    assert where == sorted(where), f"{name}: Overview, Summary and Exercises out of order"


# ------------------------------------------------------------------ the published chapter
@pytest.mark.parametrize("name", PUBLISHED)
def test_book_chapter_was_executed_from_this_source(name):
    """book/NN_name.ipynb (what the book shows) has the source's cells, but for those the pipeline adds."""
    path = BOOK / f"{name}.ipynb"
    rerun = RERUN.format(nn=name[:2])
    assert path.is_file(), f"book/{name}.ipynb is missing: run `{rerun}`"
    book = [c for c in nbformat.read(path, as_version=4).cells if not ADDED_BY_PIPELINE & set(tags(c))]
    diff = first_difference(source(name).cells, book, f"notebooks/{name}.md", f"book/{name}.ipynb")
    if diff:
        pytest.fail(f"book/{name}.ipynb is stale, it was not executed from notebooks/{name}.md: {diff}\n"
                    f"re-execute it: `{SYNC.format(name=name)}` then `{rerun}`", pytrace=False)


# -------------------------------------------------------------------------------- the code
MAGIC = re.compile(r"^(\s*)[%!].*$", re.M)
# pyflakes findings that are style in a teaching notebook (the frame's setup cell imports plt,
# explore and plots for every chapter), not errors; every other finding fails the test
STYLE = {"UnusedImport", "UnusedVariable", "RedefinedWhileUnused", "FStringMissingPlaceholders"}
# IPython's builtins in a notebook
IPYTHON_BUILTINS = {"display", "get_ipython"}


def python_of(cell) -> str | None:
    """The cell as plain Python (IPython line magics and shell escapes become `pass`); None for a
    cell magic whose body is not Python."""
    src = cell.source
    if src.startswith("%%"):
        magic, _, body = src.partition("\n")
        if magic.split()[0] not in ("%%time", "%%timeit", "%%capture"):
            return None
        src = "\n" + body
    return MAGIC.sub(r"\1pass", src)


@chapter
def test_code_cells_compile_and_pass_pyflakes(name):
    from pyflakes.checker import Checker
    cells = [(i, python_of(c)) for i, c in enumerate(source(name).cells) if c.cell_type == "code"]
    cells = [(i, s) for i, s in cells if s is not None]
    problems, script, starts = [], [], []
    for i, src in cells:
        try:
            ast.parse(src)
        except SyntaxError as e:
            problems.append(f"cell {i} line {e.lineno}: {e.msg}: {(e.text or '').strip()!r}")
        starts.append((sum(s.count("\n") + 1 for s in script) + 1, i))
        script.append(src)
    if problems:
        pytest.fail(f"notebooks/{name}.md: code that does not compile:\n" + "\n".join(problems), pytrace=False)

    def where(lineno: int) -> str:
        first, i = max((s, i) for s, i in starts if s <= lineno)
        return f"cell {i} line {lineno - first + 1}"

    checker = Checker(ast.parse("\n".join(script)), filename=f"{name}.md",
                      builtins=IPYTHON_BUILTINS)
    errors = [f"{where(m.lineno)}: {m.message % m.message_args}" for m in checker.messages
              if type(m).__name__ not in STYLE]
    if errors:
        pytest.fail(f"notebooks/{name}.md (its code cells read in order as one script):\n" + "\n".join(errors),
                    pytrace=False)


@chapter
def test_figure_cells_show_their_figure(name):
    """egan_lib's figures live outside pyplot: a cell that makes one with `fig = plots.` / `study.`
    shows it only by ending with `fig` (the rule the old chapter scripts applied themselves)."""
    bad = [i for i, c in enumerate(source(name).cells) if c.cell_type == "code"
           and re.search(r"^fig = (plots|study)\.", c.source, re.M) and not c.source.rstrip().endswith("\nfig")]
    assert not bad, f"notebooks/{name}.md: cells {bad} make a figure but do not end with `fig`"
