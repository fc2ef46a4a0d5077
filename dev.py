#!/usr/bin/env python3
"""The project's two entry points (see README.md); needs only python3 (>= 3.9) and pip.

    python3 dev.py book   install everything, execute the book (default profile) and build the HTML
    python3 dev.py test   install everything and run every test (what CI runs, see .ci/run)
    python3 dev.py chapter 03   after editing notebooks/03_encoder.md: sync its .ipynb, execute it into book/

Both create ./.venv on first use (reused while requirements.txt and pyproject.toml are unchanged),
install the pinned toolchain and egan_lib, and register the Jupyter kernel papermill uses.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".egan-installed"


def log(msg: str) -> None:
    print(f"[dev] {msg}", flush=True)


def run(cmd, **kw) -> None:
    log("$ " + " ".join(str(c) for c in cmd))
    r = subprocess.run([str(c) for c in cmd], cwd=kw.pop("cwd", ROOT), **kw)
    if r.returncode != 0:
        log(f"command failed with exit code {r.returncode}: {' '.join(str(c) for c in cmd)}")
        sys.exit(r.returncode)


def install() -> float:
    """Create .venv and install requirements.txt + egan_lib (editable) + the kernel. Idempotent."""
    t0 = time.time()
    want = hashlib.sha256(b"".join((ROOT / f).read_bytes() for f in
                                   ("requirements.txt", "requirements-nodeps.txt", "pyproject.toml"))).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == want and PY.exists():
        log("environment up to date (.venv)")
        return 0.0
    if not PY.exists():
        run([sys.executable, "-m", "venv", VENV])
    run([PY, "-m", "pip", "install", "--upgrade", "--quiet", "pip"])
    run([PY, "-m", "pip", "install", "--quiet", "-r", ROOT / "requirements.txt", "-e", ROOT])
    # packages whose declared pins conflict with the toolchain but which work with it (torchattacks)
    run([PY, "-m", "pip", "install", "--quiet", "--no-deps", "-r", ROOT / "requirements-nodeps.txt"])
    # papermill needs a registered kernel inside the venv
    run([PY, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3", "--display-name", "Python 3 (egan)"])
    STAMP.write_text(want)
    dt = time.time() - t0
    log(f"installed in {dt:.0f} s")
    return dt


def ensure_chromium() -> str | None:
    """Path of a headless Chromium for the browser test; installs Debian's package when root."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], env=env, check=False)
        return shutil.which("chromium")
    return None


def cmd_book(args) -> None:
    install()
    t0 = time.time()
    pipe = [PY, "-m", "egan_lib.pipeline", "--profile", args.profile, "--out", args.out]
    if args.retrain:
        pipe.append("--retrain")
    if args.reevaluate:
        pipe.append("--reevaluate")
    run(pipe)
    run([VENV / "bin" / "jupyter-book", "build", "--warningiserror", "--keep-going", ROOT])
    log(f"book executed ({args.profile}) and built in {time.time() - t0:.0f} s: open _build/html/index.html")


def cmd_chapter(args) -> None:
    """Regenerate each named chapter's notebook from its MyST source and execute it into book/."""
    install()
    for key in args.chapters:
        hits = sorted((ROOT / "notebooks").glob(f"{key}*.md")) if key else []
        if len(hits) != 1:
            log(f"chapter {key!r}: expected one notebooks/{key}*.md, found {[h.name for h in hits]}")
            sys.exit(2)
        run([VENV / "bin" / "jupytext", "--to", "ipynb", "--update", "--quiet", hits[0]])
    run([PY, "-m", "egan_lib.pipeline", "--profile", args.profile, "--only", *args.chapters])


def cmd_test(args) -> None:
    """Every test, in stages; each prints its wall time and the first failing stage stops the run:
    1 unit tests, 2 the smoke pipeline into scratch/, 3 nbval on its notebooks, 4 the book build
    (-W), 5 the other integration tests (real browser on the built book, Colab install cells).
    Extra arguments go to every pytest stage."""
    t_all = time.time()
    install()
    env = dict(os.environ)
    scratch = ROOT / "scratch"
    env["EGAN_SCRATCH"] = str(scratch)
    env["EGAN_REQUIRE_BUILT_BOOK"] = "1"      # the browser test may not skip: stage 4 built the book
    integration = ROOT / "tests" / "integration"
    browser_off = []
    if args.no_browser:
        browser_off = [f"--ignore={integration / 'test_browser.py'}"]
        log("--no-browser: the browser test is left out")
    else:
        chrome = ensure_chromium()
        if chrome:
            env["EGAN_CHROMIUM"] = chrome
        else:
            log("no Chromium found and none could be installed: the browser test will fail")
    pytest = [PY, "-m", "pytest", "-p", "no:cacheprovider"]
    smoke_book = scratch / "book"

    def notebooks():
        nbs = sorted(p for p in smoke_book.glob("*.ipynb") if ".failed." not in p.name)
        if not nbs:
            raise SystemExit(f"no executed notebooks in {smoke_book}")
        return nbs

    stages = [
        ("unit tests", lambda: [*pytest, "tests", f"--ignore={integration}", *args.pytest_args]),
        ("smoke pipeline", lambda: [PY, "-m", "egan_lib.pipeline", "--profile", "smoke", "--out", smoke_book,
                                    "--artifacts", scratch / "artifacts"]),
        ("nbval", lambda: [*pytest, "--nbval-lax", "--nbval-sanitize-with", ROOT / "tests" / "nbval_sanitize.cfg",
                           *notebooks(), *args.pytest_args]),
        ("book build", lambda: [*pytest, integration / "test_book_build.py", *args.pytest_args]),
        ("browser + colab", lambda: [*pytest, integration, f"--ignore={integration / 'test_book_build.py'}",
                                     *browser_off, *args.pytest_args]),
    ]
    times = []
    for i, (name, make_cmd) in enumerate(stages, 1):
        log(f"stage {i}/{len(stages)}: {name}")
        t0 = time.time()
        try:
            cmd = [str(c) for c in make_cmd()]
            log("$ " + " ".join(cmd))
            rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
        except SystemExit as e:     # a stage that cannot even start (e.g. no notebooks to check)
            rc = 1
            log(str(e))
        dt = time.time() - t0
        times.append((name, dt))
        if rc != 0:
            log(f"FAILED at stage {i}/{len(stages)} '{name}' (exit code {rc}) after {dt:.0f} s")
            sys.exit(rc)
        log(f"stage {i}/{len(stages)} '{name}' passed in {dt:.0f} s")
    log("all tests passed in " + f"{time.time() - t_all:.0f} s (" + ", ".join(f"{n} {t:.0f} s" for n, t in times) + ")")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("book", help="install, execute the book and build the HTML")
    b.add_argument("--profile", default="cpu", help="smoke | cpu | paper (default: cpu)")
    b.add_argument("--out", default="book", help="folder for the executed notebooks (default: book)")
    b.add_argument("--retrain", action="store_true", help="train every model from scratch")
    b.add_argument("--reevaluate", action="store_true", help="recompute the stored evaluations (chapters 06-07)")
    b.set_defaults(func=cmd_book)
    c = sub.add_parser("chapter", help="after editing notebooks/NN_name.md: sync its .ipynb and execute it")
    c.add_argument("chapters", nargs="+", help="chapter numbers or names, e.g. 03 or 03_encoder")
    c.add_argument("--profile", default="cpu", help="smoke | cpu | paper (default: cpu)")
    c.set_defaults(func=cmd_chapter)
    t = sub.add_parser("test", help="install and run every test")
    t.add_argument("--no-browser", action="store_true", help="skip installing chromium")
    t.add_argument("pytest_args", nargs="*", help="extra arguments for pytest")
    t.set_defaults(func=cmd_test)
    sub.add_parser("install", help="only install").set_defaults(func=lambda a: install())
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
