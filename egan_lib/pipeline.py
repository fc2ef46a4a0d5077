"""Execute the book headlessly: ``python -m egan_lib.pipeline --profile cpu``.

Runs the source notebooks of ``notebooks/`` in order with papermill (kernel ``python3``), writes the
executed copies to ``--out`` (default ``book/``) and stamps each with the profile, device, seed,
wall time, git commit and library versions, in its metadata (``metadata.egan``) and in a short
note at its top. A notebook is written to a temporary file and moved into place only when it ran
through, so a failing run never replaces a good executed notebook; a chapter that fails or whose
cell runs past ``--cell-timeout`` is kept, partly executed, as ``<out>/NN_name.failed.ipynb`` and
reported in one line naming the chapter and the cell. Models are load-or-train, so a rerun of the
same profile reuses the checkpoints under ``--artifacts``.

Every argument is checked before any chapter runs (the profile, the seed, the device, the chapters,
a positive --cell-timeout, and that --out, --artifacts and --results-dir are writable folders):
a bad one is answered with one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from . import __version__
from .eval.results import GIT_COMMIT_ENV, git_commit

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = ("01_data", "02_gan", "03_encoder", "04_attack", "05_baselines", "06_results", "07_adaptive")
#: chapters written but not yet published: the smoke profile runs them (CI executes and checks them), the
#: book's profiles do not until their trained weights and stored results ship; then they move to CHAPTERS
DRAFTS = ("08_robust",)


class PipelineError(RuntimeError):
    """A chapter failed: the message is one line naming the chapter, the cell and the error."""


class _Parser(argparse.ArgumentParser):
    """argparse, but every error is one line on stderr (no usage block) with exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(str(message).split())} (see --help)\n")


def _positive_seconds(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of seconds > 0, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of seconds > 0, got {text!r}")
    return v


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    from ._validate import check_seed
    try:
        return check_seed(v)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("seed: ")) from None


def writable_folder(path) -> Path:
    """``path`` as an absolute folder that exists (made if needed) and takes a new file; raises OSError."""
    p = Path(path).expanduser().resolve()
    p.mkdir(parents=True, exist_ok=True)
    if not p.is_dir():
        raise NotADirectoryError(f"{p} is not a folder")
    with tempfile.TemporaryFile(dir=p):
        pass
    return p


def _first_line(text) -> str:
    lines = str(text).strip().splitlines()
    return lines[0].strip() if lines else ""


def available_chapters(notebooks: Path = NOTEBOOKS, *, drafts: bool = False) -> list[str]:
    """The chapters with a source notebook, in order; ``drafts``: the unpublished ones (``DRAFTS``) too."""
    return [c for c in CHAPTERS + (DRAFTS if drafts else ()) if (notebooks / f"{c}.ipynb").exists()]


def select(chapters: list[str], only=None, start=None) -> list[str]:
    """Chapters to run: all, ``only`` some (names or number prefixes), or ``start`` from one on."""
    def resolve(key: str) -> str:
        hits = [c for c in chapters if c == key or c.startswith(key + "_") or c.split("_", 1)[0] == key.zfill(2)]
        if len(hits) != 1:
            raise ValueError(f"unknown chapter {key!r}; available: {', '.join(chapters)}")
        return hits[0]
    if only and start:
        raise ValueError("use --only or --from, not both")
    if only:
        wanted = {resolve(k) for k in only}
        return [c for c in chapters if c in wanted]
    if start:
        first = resolve(start)
        return chapters[chapters.index(first):]
    return list(chapters)


def _versions() -> dict:
    import torch
    out = {"python": platform.python_version(), "torch": torch.__version__, "egan_lib": __version__}
    for mod in ("torchvision", "numpy", "matplotlib", "papermill"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            pass
    return out


def _fmt_seconds(s: float) -> str:
    m, sec = divmod(int(round(s)), 60)
    return f"{m} min {sec:02d} s" if m else f"{s:.1f} s"


def stamp(path: Path, info: dict) -> None:
    """Store ``info`` in the notebook's metadata and show it in a note after the title cell."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    nb.metadata["egan"] = info
    text = (f"```{{note}}\nExecuted with profile **{info['profile']}** on **{info['device']}** "
            f"({info['machine'] + ', ' if info.get('machine') else ''}{info['threads']} threads), seed {info['seed']}, commit `{info['git_commit']}`, "
            f"on {info['date']}; wall time {_fmt_seconds(info['seconds'])}. "
            f"torch {info['versions']['torch']}, egan_lib {info['versions']['egan_lib']}.\n```")
    cell = nbformat.v4.new_markdown_cell(text, metadata={"tags": ["run-info"]})
    cells = [c for c in nb.cells if "run-info" not in c.get("metadata", {}).get("tags", [])]
    cells.insert(1 if cells and cells[0].cell_type == "markdown" else 0, cell)
    nb.cells = cells
    for c in nb.cells:          # papermill's per-cell timing metadata is noise in the published book
        c.get("metadata", {}).pop("execution", None)
        tags = c.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            c.metadata["tags"] = tags + ["remove-cell"]    # the values are in the note above
    nbformat.write(nb, path)


def _last_started_cell(path: Path) -> tuple[int | None, int | None]:
    """(index, execution count) of the last cell papermill started in a partly executed notebook."""
    try:
        import nbformat
        nb = nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - an unreadable partial notebook: no cell to name
        return None, None
    last = (None, None)
    for i, c in enumerate(nb.cells):
        if c.get("metadata", {}).get("papermill", {}).get("start_time"):
            last = (i, c.get("execution_count"))
    return last


def run_chapter(name: str, out_dir: Path, params: dict, *, notebooks: Path = NOTEBOOKS,
                cell_timeout: int | None = None) -> float:
    """Execute one chapter; returns its wall time. Raises PipelineError (one line) naming the failing or
    timed-out cell; the partly executed notebook is kept as ``<out_dir>/<name>.failed.ipynb``."""
    import papermill as pm
    from ._atomic import set_default_mode
    src = notebooks / f"{name}.ipynb"
    dst = out_dir / f"{name}.ipynb"
    failed = out_dir / f"{name}.failed.ipynb"
    fd, tmp = tempfile.mkstemp(suffix=".ipynb", prefix=f".{name}.", dir=out_dir)
    os.close(fd)
    set_default_mode(tmp)            # mkstemp's 0600 -> the mode any new file of this process gets

    def keep_partial() -> Path:
        os.replace(tmp, failed)
        return failed

    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(src), tmp, parameters=params, kernel_name="python3", progress_bar=False,
                            log_output=False, cwd=str(notebooks), execution_timeout=cell_timeout)
    except pm.PapermillExecutionError as e:
        keep_partial()
        raise PipelineError(f"{name}.ipynb failed in cell {e.cell_index} (execution count {e.exec_count}): "
                            f"{e.ename}: {_first_line(e.evalue)}; the partly executed notebook is at {failed}") from None
    except Exception as e:  # noqa: BLE001 - nbclient's CellTimeoutError, DeadKernelError, ...
        if os.path.getsize(tmp) == 0:      # nothing was executed (no kernel, unreadable source)
            Path(tmp).unlink(missing_ok=True)
            raise PipelineError(f"{name}.ipynb could not be executed: {type(e).__name__}: {_first_line(e)}") from None
        keep_partial()
        index, count = _last_started_cell(failed)
        cell = f"cell {index} (execution count {count})" if index is not None else "a cell"
        if isinstance(e, TimeoutError):
            what = f"{cell} timed out after {cell_timeout} s (--cell-timeout)"
        else:
            what = f"{cell} failed: {type(e).__name__}: {_first_line(e)}"
        raise PipelineError(f"{name}.ipynb: {what}; the partly executed notebook is at {failed}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - t0
    os.replace(tmp, dst)
    failed.unlink(missing_ok=True)
    return seconds


def main(argv=None) -> int:
    ap = _Parser(prog="python -m egan_lib.pipeline", description=__doc__,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", help="smoke | cpu | paper")
    ap.add_argument("--seed", type=_seed, default=0, help="a non-negative integer (default 0)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    ap.add_argument("--out", default=str(ROOT / "book"), help="folder for the executed notebooks")
    ap.add_argument("--artifacts", default=str(ROOT / "artifacts"), help="folder for checkpoints and caches")
    ap.add_argument("--data-dir", default=None, help="MNIST cache folder (default $EGAN_DATA or ~/.cache/egan_lib)")
    ap.add_argument("--results-dir", default=None, help="where chapter 06/07 write JSON (default <out>/results)")
    ap.add_argument("--only", nargs="+", help="run only these chapters (names or numbers)")
    ap.add_argument("--from", dest="start", help="run from this chapter on")
    ap.add_argument("--reevaluate", action="store_true",
                    help="recompute the stored evaluations of chapters 06-07 even when their settings match")
    ap.add_argument("--retrain", action="store_true",
                    help="train every model from scratch, once: the profile's old checkpoints are moved aside "
                         "(<artifacts>/checkpoints/<profile>.before-retrain-<time>) and the shipped weights are not used")
    ap.add_argument("--cell-timeout", type=_positive_seconds, default=None,
                    help="seconds per cell, > 0 (default: none); a cell that runs longer fails its chapter")
    ap.add_argument("--list", action="store_true", help="list the chapters and exit")
    a = ap.parse_args(argv)

    # every argument is checked here, before any chapter runs (a bad one: one line, exit status 2)
    from .config import device as pick_device, get_profile
    try:
        get_profile(a.profile)
    except (TypeError, ValueError) as e:
        ap.error(f"argument --profile: {e}")
    chapters = available_chapters(drafts=a.profile == "smoke")
    if a.list:
        print("\n".join(chapters))
        return 0
    if not chapters:
        ap.error(f"no chapter notebooks in {NOTEBOOKS}")
    try:
        todo = select(chapters, a.only, a.start)
    except ValueError as e:
        ap.error(str(e))
    try:
        dev = str(pick_device(a.device))
    except (TypeError, ValueError) as e:
        ap.error(f"argument --device: {str(e).removeprefix('device: ')}")
    folders = {}
    for flag, path in (("--out", a.out), ("--artifacts", a.artifacts),
                       ("--results-dir", a.results_dir or Path(a.out) / "results")):
        try:
            folders[flag] = writable_folder(path)
        except OSError as e:
            ap.error(f"argument {flag}: {path} is not a writable folder ({e.strerror or e})")
    if a.data_dir is not None:
        try:
            Path(a.data_dir).expanduser().mkdir(parents=True, exist_ok=True)
        except OSError as e:
            ap.error(f"argument --data-dir: {a.data_dir} is not a folder ({e.strerror or e})")
    out, art, results = folders["--out"], folders["--artifacts"], folders["--results-dir"]
    if a.retrain:
        from .workflow import start_from_scratch
        moved = start_from_scratch(art, a.profile)
        print(f"[pipeline] --retrain: training every model from scratch into {art / 'checkpoints' / a.profile}"
              + (f" (the old checkpoints are kept in {moved})" if moved else ""), flush=True)
    # The chapters themselves run with retrain=False: the first chapter that needs a model trains it
    # into the emptied folder and the later ones load it (retrain=True would retrain it in each chapter).
    params = {"profile": a.profile, "seed": a.seed, "device": dev, "artifacts_dir": str(art),
              "data_dir": a.data_dir, "results_dir": str(results), "retrain": False,
              "reevaluate": bool(a.reevaluate)}
    os.environ.setdefault("EGAN_PROGRESS", "0")  # one line per epoch in logs, not tqdm widgets
    import torch
    from .config import machine_name
    os.environ.pop(GIT_COMMIT_ENV, None)      # this run's own commit, not an inherited stamp
    base = {"profile": a.profile, "seed": a.seed, "device": dev, "machine": machine_name(dev),
            "threads": torch.get_num_threads(),
            "git_commit": git_commit(), "versions": _versions(), "retrain": bool(a.retrain)}
    # one stamp for the whole run: every chapter's results file says the same commit as the notebooks
    os.environ[GIT_COMMIT_ENV] = base["git_commit"]
    print(f"[pipeline] profile={a.profile} device={dev} seed={a.seed} -> {out}", flush=True)
    total = 0.0
    for name in todo:
        print(f"[pipeline] {name} ...", flush=True)
        try:
            sec = run_chapter(name, out, params, cell_timeout=a.cell_timeout)
        except PipelineError as e:
            print(f"[pipeline] FAILED: {e}", file=sys.stderr, flush=True)
            return 1
        total += sec
        info = dict(base, chapter=name, seconds=round(sec, 1),
                    date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
        stamp(out / f"{name}.ipynb", info)
        print(f"[pipeline] {name} done in {_fmt_seconds(sec)}", flush=True)
    print(f"[pipeline] {len(todo)} chapter(s) in {_fmt_seconds(total)}", flush=True)
    (out / "results").mkdir(exist_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
