"""Paths and helpers shared by the integration tests (book build, real browser, Colab install).

Locations, all overridable by environment variables:

* ``EGAN_BOOK_ROOT``  the book to build and check (default: this repository; _config.yml + _toc.yml)
* ``EGAN_SCRATCH``    scratch folder (default: <repo>/scratch); the build test writes the HTML to
                      ``$EGAN_SCRATCH/book-build/_build/html``
* ``EGAN_BOOK_HTML``  built HTML the browser test serves (default: the newer of the build test's
                      output, if that build passed, and ``<book root>/_build/html``, the output of
                      ``jupyter-book build .``)
* ``EGAN_CHROMIUM``   the Chromium executable (default: ``chromium`` on PATH)
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BOOK_ROOT = Path(os.environ.get("EGAN_BOOK_ROOT") or REPO).resolve()
SCRATCH = Path(os.environ.get("EGAN_SCRATCH") or REPO / "scratch").resolve()
BUILD_OUT = SCRATCH / "book-build"          # jupyter-book build --path-output BUILD_OUT
BUILD_OK = BUILD_OUT / "build.ok"           # written by the build test when the build passed
ARTIFACTS = REPO / "test-artifacts"          # screenshots etc. (gitignored)
CHAPTER_RE = re.compile(r"^book/\d\d_[A-Za-z0-9_]+$")


def book_config(root: Path = BOOK_ROOT) -> dict:
    return yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))


def repo_url(root: Path = BOOK_ROOT) -> str:
    """The repository URL: set in _config.yml (repository.url) and nowhere else."""
    return book_config(root)["repository"]["url"].rstrip("/")


def repo_branch(root: Path = BOOK_ROOT) -> str:
    return book_config(root)["repository"].get("branch") or "master"


def toc_pages(root: Path = BOOK_ROOT) -> list[str]:
    """Every page of _toc.yml (docnames without suffix), root first, in reading order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]]

    def walk(items):
        for it in items or []:
            if "file" in it:
                pages.append(it["file"])
            walk(it.get("sections"))
            walk(it.get("chapters"))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    walk(toc.get("sections"))
    return pages


def chapter_pages(root: Path = BOOK_ROOT) -> list[str]:
    """The chapters (executed notebooks book/NN_name) among the pages of the toc."""
    return [p for p in toc_pages(root) if CHAPTER_RE.match(p)]


def built_html() -> Path:
    """The built HTML to test (see the module docstring); may not exist."""
    if os.environ.get("EGAN_BOOK_HTML"):
        return Path(os.environ["EGAN_BOOK_HTML"]).resolve()
    candidates = [BUILD_OUT / "_build" / "html", BOOK_ROOT / "_build" / "html"]
    existing = [c for c in candidates if (c / "index.html").is_file()]
    if not BUILD_OK.is_file():      # the build test's output counts only when that build passed
        existing = [c for c in existing if c != candidates[0]]
    if not existing:
        return candidates[1]
    return max(existing, key=lambda c: (c / "index.html").stat().st_mtime)
