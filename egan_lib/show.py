"""Show the library's real code on a chapter's page: ``show_source(obj)`` displays the current source of
a class or function of egan_lib as a highlighted code block (a Markdown output, which the static book,
JupyterLab and Colab all render), taken from the library when the chapter runs, so it never drifts
from what the chapter executes.

A shown piece must stay short enough to read on a page (``max_lines``): a longer one is refused, which
is the sign to split it.
"""
from __future__ import annotations

import inspect
import textwrap

__all__ = ["show_source", "SourceCode"]

MAX_LINES = 60


class SourceCode:
    """The source of one object, as Markdown (a fenced Python block under its qualified name)."""

    def __init__(self, obj, code: str, where: str):
        self.obj, self.code, self.where = obj, code, where

    def _repr_markdown_(self) -> str:
        return f"`{self.where}`\n\n```python\n{self.code.rstrip()}\n```\n"

    def __repr__(self) -> str:
        return f"# {self.where}\n{self.code.rstrip()}"


def _where(obj) -> str:
    mod = getattr(obj, "__module__", None) or getattr(inspect.getmodule(obj), "__name__", "?")
    name = getattr(obj, "__qualname__", getattr(obj, "__name__", type(obj).__name__))
    try:
        line = inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        line = None
    return f"{mod}.{name}" + (f" (line {line})" if line else "")


def show_source(obj, *, docstring: bool = True, max_lines: int = MAX_LINES) -> SourceCode:
    """The source of an egan_lib class, function or method, for display (``display(show_source(EGAN))``
    or as the last line of a cell). ``docstring=False`` leaves out the docstring (what the prose beside it
    already says). Raises TypeError for what has no source, ValueError when it is longer than
    ``max_lines`` lines (split the function: a page should show a piece one can read)."""
    target = inspect.unwrap(obj)
    if not (inspect.isclass(target) or inspect.isfunction(target) or inspect.ismethod(target)):
        raise TypeError(f"show_source: expected a class or a function, got {type(obj).__name__}")
    mod = getattr(target, "__module__", "") or ""
    if not mod.startswith("egan_lib"):
        raise ValueError(f"show_source: shows egan_lib's own code, not {mod or 'unknown'}.{target.__qualname__}")
    try:
        code = textwrap.dedent(inspect.getsource(target))
    except (OSError, TypeError) as e:
        raise TypeError(f"show_source: no source for {target!r} ({e})") from e
    if not docstring:
        code = _strip_docstring(code, target)
    n = len(code.rstrip().splitlines())
    if isinstance(max_lines, bool) or not isinstance(max_lines, int) or max_lines < 1:
        raise ValueError(f"max_lines: expected an integer >= 1, got {max_lines!r}")
    if n > max_lines:
        raise ValueError(f"show_source: {target.__qualname__} is {n} lines, more than {max_lines} fit on a page; "
                         "split it (or show a smaller piece)")
    return SourceCode(obj, code, _where(target))


def _strip_docstring(code: str, target) -> str:
    doc = inspect.getdoc(target)
    if not doc:
        return code
    lines = code.splitlines(keepends=True)
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith(('"""', "'''", 'r"""')):
            quote = s[:3] if not s.startswith("r") else s[1:4]
            body = s[3:] if not s.startswith("r") else s[4:]
            if quote in body:                       # one-line docstring
                return "".join(lines[:i] + lines[i + 1:])
            for j in range(i + 1, len(lines)):
                if quote in lines[j]:
                    return "".join(lines[:i] + lines[j + 1:])
    return code
