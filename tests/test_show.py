"""show_source: the library's real code on the page, short enough to read, and only egan_lib's."""
import pytest

from egan_lib.attacks.fgsm import fgsm
from egan_lib.defenses import EGAN
from egan_lib.eval.stats import wilson_interval
from egan_lib.models import Encoder
from egan_lib.show import show_source


def test_shows_the_current_source_as_markdown():
    s = show_source(Encoder)
    md = s._repr_markdown_()
    assert md.startswith("`egan_lib.models.Encoder") and "```python" in md and "class Encoder(nn.Module):" in md
    assert "def forward" in repr(s)


def test_docstring_can_be_left_out():
    with_doc, without = show_source(wilson_interval).code, show_source(wilson_interval, docstring=False).code
    assert "Wilson score interval" in with_doc and "Wilson score interval" not in without
    assert "def wilson_interval" in without and "return lo, hi" in without


def test_refuses_long_pieces_and_foreign_code():
    with pytest.raises(ValueError, match="split it"):
        show_source(EGAN, max_lines=5)
    with pytest.raises(ValueError, match="egan_lib's own code"):
        show_source(pytest.raises)
    with pytest.raises(TypeError, match="class or a function"):
        show_source(42)
    assert show_source(fgsm).code.startswith("def fgsm(")


def _chapter_code(path):
    import jupytext
    nb = jupytext.read(path)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def test_every_object_a_chapter_shows_still_exists():
    """Each chapter's show_source(...) targets resolve against the chapter's own imports (seconds,
    nothing executed): renaming or removing a shown function fails here, not only in the smoke run."""
    import ast
    import re
    from pathlib import Path
    shown_any = False
    for md in sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("0*.md")):
        cells = _chapter_code(md)
        ns: dict = {}
        for src in cells:
            for node in ast.parse("\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!")))).body:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    exec(compile(ast.Module([node], []), str(md), "exec"), ns)
        for src in cells:
            for target in re.findall(r"show_source\(\s*([A-Za-z_][\w.]*)", src):
                shown_any = True
                obj = eval(target, ns)          # AttributeError / NameError: the shown object is gone
                assert show_source(obj).code, f"{md.name}: {target}"
    assert shown_any
