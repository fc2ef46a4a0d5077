"""Sphinx extension of the EGAN book: two fixes of the generated HTML pages.

1. The Colab button opens the SOURCE notebook.

sphinx-book-theme builds its Colab launch link from the page's own path
(``{colab_url}/github/{org}/{repo}/blob/{branch}/{path_to_docs}/{pagename}.ipynb``), i.e. the executed
copy ``book/NN_name.ipynb`` with the reference run's outputs. Readers should open the stripped source
``notebooks/NN_name.ipynb`` instead (same file name), which installs egan_lib in its first cell and has
one ``parameters`` cell. No theme option does that, so this extension rewrites the link after the theme
has built it (an ``html-page-context`` handler that runs after the theme's).

Configuration (``sphinx: config:`` in _config.yml):

``egan_colab_source_dir`` (default ``"notebooks"``)
    folder of the source notebooks, relative to the repository root; empty: keep the theme's link.

A chapter without a source notebook of the same name is a build WARNING (its Colab button would open a
notebook that does not exist in the repository).

2. No inline script twice. With Sphinx 7.4, an inline script that an extension adds after the builder
is initialised (sphinx-thebe's ``const THEBE_JS_URL = ...``, sphinx-togglebutton's settings) is written
twice into every page (once with filename None, once with ""), and the second ``const`` declaration is
an uncaught SyntaxError in the browser. ``dedupe_scripts`` keeps the first of identical scripts.
"""
from __future__ import annotations

import re
from pathlib import Path

from sphinx.util import logging

__version__ = "1.0"

logger = logging.getLogger(__name__)


def colab_source_url(url: str, pagename: str, source_dir: str) -> str | None:
    """The theme's Colab URL with the page's path replaced by ``<source_dir>/<file name>.ipynb``."""
    name = pagename.rsplit("/", 1)[-1]
    m = re.match(r"^(https?://[^/]+/github/[^/]+/[^/]+/blob/[^/]+/)(.+\.ipynb)$", url)
    if not m:
        return None
    return f"{m.group(1)}{source_dir.strip('/')}/{name}.ipynb"


def _walk(buttons):
    for b in buttons or []:
        if isinstance(b, dict):
            yield b
            yield from _walk(b.get("buttons"))


def repoint_colab(app, pagename, templatename, context, doctree):
    source_dir = (app.config.egan_colab_source_dir or "").strip()
    if not source_dir:
        return
    for button in _walk(context.get("header_buttons")):
        if button.get("text") != "Colab" or not button.get("url"):
            continue
        name = pagename.rsplit("/", 1)[-1]
        src = Path(app.srcdir) / source_dir / f"{name}.ipynb"
        if not src.is_file():
            logger.warning(f"Colab button of {pagename}: no source notebook {source_dir}/{name}.ipynb "
                           "(the chapter's Colab link would open a missing file)", location=pagename,
                           type="egan", subtype="colab")
            continue
        new = colab_source_url(button["url"], pagename, source_dir)
        if new is None:
            logger.warning(f"Colab button of {pagename}: unexpected link {button['url']!r}", location=pagename,
                           type="egan", subtype="colab")
            continue
        button["url"] = new
        button["tooltip"] = "Open the source notebook in Colab"


def _script_key(js):
    attrs = getattr(js, "attributes", {}) or {}
    return (getattr(js, "filename", js) or "", getattr(js, "priority", 500), tuple(sorted(attrs.items())))


def dedupe_scripts(app, pagename, templatename, context, doctree):
    files = context.get("script_files")
    if not files:
        return
    seen, keep = set(), []
    for js in files:
        key = _script_key(js)
        if key not in seen:
            seen.add(key)
            keep.append(js)
    if len(keep) != len(files):
        files[:] = keep


def setup(app):
    app.add_config_value("egan_colab_source_dir", "notebooks", "html", types=[str])
    # sphinx-book-theme adds its launch buttons at the default priority (500): run after it
    app.connect("html-page-context", repoint_colab, priority=900)
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"version": __version__, "parallel_read_safe": True, "parallel_write_safe": True}
