"""The built book in a real browser: Debian's Chromium driven by Playwright, fully offline.

The built HTML (see ``book_env.built_html``: the build test's output or ``_build/html``) is served on
127.0.0.1 by a thread; every request that leaves localhost is blocked and fails the test (the book
must work offline: widgets, MathJax, fonts are vendored). For every page of _toc.yml:

* it loads with no console error, no uncaught page error and no HTTP error;
* every image has loaded (naturalWidth > 0); a chapter has at least one figure;
* math is typeset by the vendored MathJax; ipywidgets views are rendered, once each;
* a chapter has a Colab button that opens ``notebooks/<chapter>.ipynb`` and a download button;
* a full-page screenshot goes to ``test-artifacts/screenshots/`` (gitignored).

On the results chapter (06_results) the static epsilon slider (egan_lib/slider.py:
``input[type=range]#eps-slider``, ``#eps-label``, ``img.eps-frame``) is moved with the keyboard and
what it shows must change.

Skips (with the reason) only when no built book exists; with EGAN_REQUIRE_BUILT_BOOK=1 (dev.py test)
that is a failure too. A missing Chromium is always a failure: ``apt-get install -y chromium`` or set
EGAN_CHROMIUM.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from book_env import ARTIFACTS, BUILD_OK, BUILD_OUT, built_html, chapter_pages, repo_branch, repo_url, toc_pages

HTML = built_html()
SHOTS = ARTIFACTS / "screenshots"
RESULTS_PAGE = "book/06_results"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
TIMEOUT_MS = 60_000

if not (HTML / "index.html").is_file():
    reason = (f"no built book at {HTML} (run tests/integration/test_book_build.py, `jupyter-book build .` "
              "or set EGAN_BOOK_HTML)")
    if (BUILD_OUT / "_build" / "html" / "index.html").is_file() and not BUILD_OK.is_file():
        reason += f"; the last build test failed, see {BUILD_OUT / 'build.log'}"
    if os.environ.get("EGAN_REQUIRE_BUILT_BOOK"):
        raise RuntimeError(reason)
    pytest.skip(reason, allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402  (only when there is something to test)


def chromium_executable() -> str:
    path = os.environ.get("EGAN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("no Chromium found: install Debian's package (apt-get install -y chromium; dev.py test does it "
                    "when run as root) or point EGAN_CHROMIUM at a Chromium executable")
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".js": "text/javascript", ".svg": "image/svg+xml", ".woff2": "font/woff2", ".woff": "font/woff"}

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(HTML)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    exe = chromium_executable()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


class Visit:
    """One page in a fresh context: what it requested, logged and showed."""

    def __init__(self, browser, url: str):
        self.blocked, self.errors, self.http_errors = [], [], []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught page error: {e}"))
        self.page.on("response", lambda r: self.http_errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
        self.page.goto(url, wait_until="load")
        self.page.wait_for_load_state("networkidle")

    def _route(self, route):
        u = urlsplit(route.request.url)
        if u.scheme in ("data", "blob", "about") or u.hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("blockedbyclient")

    def _console(self, msg):
        if msg.type == "error":
            loc = msg.location or {}
            self.errors.append(f"console error: {msg.text} ({loc.get('url', '')}:{loc.get('lineNumber', '')})")

    def close(self):
        self.context.close()


def _settle(page) -> dict:
    """Load every image (lazy ones too), wait for MathJax and the widget manager; describe the page."""
    return page.evaluate("""async () => {
        const imgs = [...document.images];
        imgs.forEach(i => { i.loading = "eager"; });
        await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
        if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
        const views = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
        const rendered = () => views.filter(v => v.previousElementSibling
            && v.previousElementSibling.classList.contains("widget-subarea")
            && v.previousElementSibling.querySelector(".jupyter-widgets")).length;
        for (let t = 0; views.length && rendered() < views.length && t < 150; t++) {
            await new Promise(r => setTimeout(r, 100));
        }
        const article = document.querySelector("article") || document.querySelector("main") || document.body;
        return {
            images: imgs.map(i => ({src: (i.currentSrc || i.src).slice(0, 100), w: i.naturalWidth,
                                    inArticle: article.contains(i)})),
            math: document.querySelectorAll("span.math, div.math").length,
            typeset: document.querySelectorAll("mjx-container").length,
            widgetViews: views.length,
            widgetsRendered: rendered(),
            widgetAreas: document.querySelectorAll(".widget-subarea").length,
            links: [...document.querySelectorAll("a[href]")].map(a => a.getAttribute("href")),
        };
    }""")


def _shot_name(page_name: str, suffix: str = "") -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS / (page_name.replace("/", "_") + suffix + ".png")


def _check_clean(v: Visit, where: str):
    assert not v.blocked, f"{where} tried to load from the internet (offline book): {v.blocked}"
    assert not v.http_errors, f"{where}: {v.http_errors}"
    assert not v.errors, f"{where}: " + "\n".join(v.errors)


PAGES = toc_pages()
CHAPTERS = set(chapter_pages())


@pytest.mark.parametrize("page_name", PAGES)
def test_page(browser, server, page_name):
    if not (HTML / f"{page_name}.html").is_file():
        pytest.fail(f"{page_name}.html is not in the built book {HTML}")
    v = Visit(browser, f"{server}/{page_name}.html")
    try:
        info = _settle(v.page)
        v.page.screenshot(path=str(_shot_name(page_name)), full_page=True)
        _check_clean(v, page_name)
        broken = [i["src"] for i in info["images"] if not i["w"]]
        assert not broken, f"{page_name}: images that did not load: {broken}"
        if info["math"]:
            assert info["typeset"] >= 1, f"{page_name}: {info['math']} math elements but MathJax typeset none"
        if info["widgetViews"]:
            assert info["widgetsRendered"] == info["widgetViews"] == info["widgetAreas"], (
                f"{page_name}: {info['widgetViews']} widget views, {info['widgetsRendered']} rendered, "
                f"{info['widgetAreas']} widget areas (each view must render exactly once, offline)")
        if page_name in CHAPTERS:
            figures = [i for i in info["images"] if i["inArticle"] and i["w"]]
            assert figures, f"{page_name}: a chapter without a single figure (missing outputs?)"
            name = page_name.rsplit("/", 1)[1]
            colab = (f"https://colab.research.google.com/github/{repo_url().split('github.com/', 1)[1]}"
                     f"/blob/{repo_branch()}/notebooks/{name}.ipynb")
            assert colab in info["links"], (f"{page_name}: no Colab button to the source notebook {colab}; "
                                            f"colab links: {[h for h in info['links'] if 'colab' in h]}")
            assert any(h.endswith(f"_sources/{page_name}.ipynb") for h in info["links"]), \
                f"{page_name}: no download button for the executed notebook"
    finally:
        v.close()


def test_index_redirects_to_the_root_page(browser, server):
    v = Visit(browser, f"{server}/index.html")
    try:
        v.page.wait_for_url(f"**/{PAGES[0]}.html")
        _check_clean(v, "index.html")
    finally:
        v.close()


_SHOWN = """() => {
    const slider = document.querySelector('input[type=range]#eps-slider');
    const root = slider.closest('.eps-slider-widget') || document;
    const frames = [...root.querySelectorAll('img.eps-frame')];
    const visible = frames.map((f, i) => [i, f.offsetParent !== null && getComputedStyle(f).display !== 'none'
                                            && f.getBoundingClientRect().height > 0])
                          .filter(x => x[1]).map(x => x[0]);
    return {value: slider.value, min: slider.min, max: slider.max, frames: frames.length, visible,
            label: (document.getElementById('eps-label') || {}).textContent,
            loaded: frames.every(f => f.naturalWidth > 0)};
}"""


def test_results_slider_moves(browser, server):
    if RESULTS_PAGE not in PAGES:
        pytest.fail(f"{RESULTS_PAGE} is not in _toc.yml")
    v = Visit(browser, f"{server}/{RESULTS_PAGE}.html")
    try:
        _settle(v.page)
        slider = v.page.locator("input[type=range]#eps-slider")
        assert slider.count() >= 1, f"{RESULTS_PAGE}: no static eps slider (input[type=range]#eps-slider)"
        slider = slider.first
        slider.scroll_into_view_if_needed()
        widget = v.page.locator(".eps-slider-widget").first if v.page.locator(".eps-slider-widget").count() else slider
        before = v.page.evaluate(_SHOWN)
        assert before["frames"] >= 2 and before["loaded"], f"slider frames missing or not loaded: {before}"
        assert len(before["visible"]) == 1, f"exactly one frame must show: {before}"
        widget.screenshot(path=str(_shot_name(RESULTS_PAGE, "-slider-before")))
        slider.focus()
        v.page.keyboard.press("Home" if before["value"] == before["max"] else "End")
        after = v.page.evaluate(_SHOWN)
        widget.screenshot(path=str(_shot_name(RESULTS_PAGE, "-slider-after")))
        assert after["value"] != before["value"], f"the slider did not move: {before} -> {after}"
        assert len(after["visible"]) == 1, f"exactly one frame must show after moving: {after}"
        assert after["visible"] != before["visible"], f"the shown frame did not change: {before} -> {after}"
        assert after["label"] != before["label"], f"the eps label did not change: {before} -> {after}"
        _check_clean(v, f"{RESULTS_PAGE} (slider)")
    finally:
        v.close()
