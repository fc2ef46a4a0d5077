"""Each chapter's Colab install cell, run the way Colab runs it, installs egan_lib and leaves torch alone.

Colab is simulated, not visited:

* "Preinstalled" packages: a fresh venv (``--without-pip``) whose ``.pth`` adds a copy of this
  project's ``.venv`` site-packages made of symlinks, minus egan_lib itself. So torch, torchvision,
  numpy, matplotlib, IPython and pip are there, as in Colab, and egan_lib is not.
* The marker: a ``google.colab`` module is put into ``sys.modules`` before the cell runs.
* The cell runs in IPython (``InteractiveShell.run_cell``), so ``%pip``/``!pip`` cells work too.
* The install source: the cell's ``git+<repository.url of _config.yml>`` is replaced by a copy of
  this checkout (pyproject.toml, README.md, egan_lib/), so the test checks the working tree, offline
  from GitHub. (pip still fetches the build backend, setuptools, from the package index or its cache.)

It asserts that the cell names the configured repository URL, does nothing outside Colab, and in
"Colab" leaves egan_lib importable from the fresh environment with the checkout's version while torch
keeps its version and location: pip did not install torch, torchvision, triton or nvidia-* packages.
Identical cells (the usual case: every chapter has the same one) are run once. About 30 s.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import nbformat
import pytest

from book_env import REPO, repo_url

SOURCES = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SITE = Path(sysconfig.get_paths()["purelib"])
FORBIDDEN = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia[-_].*)$", re.I)
TIMEOUT = 300

FIXTURE_CELL = '''# Colab only: install egan_lib from the repository (never touches Colab's torch).
import sys
if "google.colab" in sys.modules:
    %pip install -q "egan_lib @ git+{url}"
'''

RUNNER = textwrap.dedent('''
    """Run one notebook cell in IPython, optionally as in Colab (google.colab importable)."""
    import sys, types
    src = open(sys.argv[1], encoding="utf-8").read()
    if sys.argv[2] == "colab":
        try:
            import google
        except ImportError:
            google = types.ModuleType("google")
            google.__path__ = []
            sys.modules["google"] = google
        colab = types.ModuleType("google.colab")
        sys.modules["google.colab"] = colab
        google.colab = colab
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    result = shell.run_cell(src)
    result.raise_error()
''')

PROBE = textwrap.dedent('''
    import json, os
    out = {}
    try:
        import egan_lib
        out["egan_lib"] = [egan_lib.__version__, os.path.realpath(egan_lib.__file__)]
    except ImportError as e:
        out["egan_lib"] = None
    import torch
    out["torch"] = [torch.__version__, os.path.realpath(torch.__file__)]
    print(json.dumps(out))
''')


def install_cell(nb) -> str | None:
    """The Colab install cell: the first code cell tagged ``colab-install``, else the first code cell
    that mentions ``google.colab``."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    for c in code:
        if "colab-install" in c.get("metadata", {}).get("tags", []):
            return c.source
    for c in code:
        if "google.colab" in c.source:
            return c.source
    return None


def localize(src: str, url: str, local: Path) -> str:
    """Replace ``git+<url>[.git][@ref][#fragment]`` by ``file://<local>``; fail if the cell does not
    install from the configured repository URL."""
    pattern = re.compile(r"git\+" + re.escape(url.rstrip("/")) + r"(?:\.git)?/?(?:@[\w./-]+)?(?:#[^\s\"']*)?")
    new, n = pattern.subn(local.as_uri(), src)
    assert n >= 1, f"the install cell does not install from git+{url} (repository.url of _config.yml):\n{src}"
    return new


def _env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_TARGET", "PIP_PREFIX"))}
    env.update(IPYTHONDIR=str(tmp / "ipython"), PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
               MPLBACKEND="Agg", PATH=os.environ.get("PATH", ""))
    return env


class FreshColab:
    """A new venv on top of the 'preinstalled' packages, without egan_lib."""

    def __init__(self, root: Path, overlay: Path):
        self.root = root
        root.mkdir(parents=True)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True, timeout=120)
        self.python = root / "venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        purelib = subprocess.run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        self.site = Path(purelib)
        (self.site / "colab_preinstalled.pth").write_text(f"import site; site.addsitedir({str(overlay)!r})\n")
        self.work = root / "work"
        self.work.mkdir()

    def run(self, *args, timeout=TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.python), *map(str, args)], cwd=self.work, env=_env(self.root),
                              capture_output=True, text=True, timeout=timeout)

    def probe(self) -> dict:
        r = self.run("-c", PROBE, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        return json.loads(r.stdout.strip().splitlines()[-1])

    def new_dists(self) -> list[str]:
        return sorted(p.name.split("-")[0] for p in self.site.glob("*.dist-info"))


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """Factory of fresh Colab-like environments + the local copy of the project to install."""
    tmp = tmp_path_factory.mktemp("colab")
    src = tmp / "egan-src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "setup.py", "setup.cfg", "MANIFEST.in"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "egan_lib", src / "egan_lib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    overlay = tmp / "preinstalled"
    overlay.mkdir()
    for p in SITE.iterdir():
        n = p.name.lower()
        if "egan_lib" in n or "egan-lib" in n:
            continue          # Colab does not have egan_lib: the cell must install it
        (overlay / p.name).symlink_to(p)
    (tmp / "run_cell.py").write_text(RUNNER)
    counter = iter(range(1000))

    def make() -> FreshColab:
        return FreshColab(tmp / f"env{next(counter)}", overlay)

    make.src, make.runner = src, tmp / "run_cell.py"
    return make


def _repo_version() -> str:
    m = re.search(r'^__version__\s*=\s*["\']([^"\']+)', (REPO / "egan_lib" / "__init__.py").read_text(), re.M)
    return m.group(1) if m else "?"


_DONE: dict[str, dict] = {}


def run_like_colab(colab, cell: str) -> dict:
    """Run one install cell outside and inside 'Colab'; returns what was measured (cached per cell)."""
    local = localize(cell, repo_url(REPO), colab.src)
    if local in _DONE:
        return _DONE[local]
    env = colab()
    cell_file = env.root / "cell.py"
    cell_file.write_text(local)
    before = env.probe()
    assert before["egan_lib"] is None, f"egan_lib is importable before the install: {before}"

    r = env.run(colab.runner, cell_file, "plain")
    assert r.returncode == 0, f"the install cell fails outside Colab:\n{r.stdout}\n{r.stderr}"
    assert env.probe()["egan_lib"] is None, "outside Colab the install cell must do nothing, but egan_lib got installed"

    r = env.run(colab.runner, cell_file, "colab")
    log = r.stdout + r.stderr
    assert r.returncode == 0, f"the install cell fails in (simulated) Colab:\n{log}"
    after = env.probe()
    out = {"before": before, "after": after, "new": env.new_dists(), "site": str(env.site), "log": log}
    _DONE[local] = out
    return out


def test_install_cell_forms_are_localized(tmp_path):
    """The URL substitution handles the forms such a cell takes (subprocess, %pip, !pip, @ref, #egg)."""
    url = repo_url(REPO)
    local = tmp_path / "src"
    forms = [f'subprocess.run([sys.executable, "-m", "pip", "install", "-q", "egan_lib @ git+{url}"], check=True)',
             f'%pip install -q "egan_lib @ git+{url}@main"',
             f"!pip install -q git+{url}.git#egg=egan_lib",
             f'%pip install -q "egan_lib[notebook] @ git+{url}/"']
    for f in forms:
        out = localize(f, url, local)
        assert "git+" not in out and local.as_uri() in out, out
    with pytest.raises(AssertionError):
        localize('%pip install -q "egan_lib @ git+https://github.com/someone/else"', url, local)


@pytest.mark.parametrize("source", SOURCES or ["fixture"], ids=lambda p: getattr(p, "name", str(p)))
def test_colab_install_cell(colab, source):
    if source == "fixture":     # no source notebooks yet: prove the machinery on the expected form
        cell = FIXTURE_CELL.format(url=repo_url(REPO))
    else:
        cell = install_cell(nbformat.read(source, as_version=4))
        assert cell is not None, f"{source.name}: no Colab install cell (tag 'colab-install' or 'google.colab')"
    res = run_like_colab(colab, cell)
    before, after = res["before"], res["after"]
    assert after["egan_lib"] is not None, f"egan_lib is not importable after the install cell:\n{res['log']}"
    version, path = after["egan_lib"]
    assert version == _repo_version(), f"installed egan_lib {version}, the checkout is {_repo_version()}"
    assert path.startswith(os.path.realpath(res["site"])), f"egan_lib imported from {path}, not from the install"
    assert after["torch"] == before["torch"], f"torch changed: {before['torch']} -> {after['torch']}"
    bad = [d for d in res["new"] if FORBIDDEN.match(d)]
    assert not bad, f"the install cell (re)installed {bad}: never reinstall Colab's torch"
