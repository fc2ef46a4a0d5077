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
