"""The `paper` profile on one GPU, in two short stages that each fit a lease of a few minutes.

    python tools/gpu_run.py train --profile paper --device cuda --out "$OUT"
    python tools/gpu_run.py book  --profile paper --device cuda --out "$OUT" --weights "$OUT/weights.tar.gz"

``train`` trains (load-or-train) every network the book needs under ``--artifacts`` and packs the
checkpoints, in the shipped form (G and C in float32, the others in float16), into one
``weights.tar.gz`` under ``--out``. ``book`` unpacks such an archive into ``--artifacts`` (so
nothing is retrained), executes every chapter headlessly with papermill on the device (timings are
CUDA-synchronised by ``egan_lib.eval.timing``) and packs the executed notebooks, the results JSON
and the stored evaluations into ``book.tar.gz``. Each stage prints its wall time, and each archive
stays one file (the device tool returns at most 8 files, 16 MiB each).

A third stage runs a chapter's attack campaign (``egan_lib.eval.campaign``'s plan) against a deadline:

    python tools/gpu_run.py campaign --profile cpu --chapter 8 --device cuda --out "$OUT" --seconds 480

It starts from the stored pieces of the working tree (``--results-dir``, default book/results), so only
missing parts are computed, stops the campaign at ``--seconds`` (a part is written atomically: a stopped
run loses at most the part in progress) and packs every piece file that is new or changed into
``campaign.tar.gz``, to unpack over book/results here (``tar -xzf campaign.tar.gz -C book/results``).
Pieces do not record the device, so parts computed on a GPU and on a CPU make one piece together. It
exits 0 when the plan is complete, 3 when the deadline stopped it (the archive then holds what was done).
On a machine without internet, ``--data-dir`` names a folder holding ``mnist.pkl.gz`` from the data cache.

The same stages run on a CPU with a tiny profile (``tests/test_gpu_path.py`` runs them with
``--profile smoke --device cpu``), so the path is exercised on every CI run even where no GPU is lent.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

LIMIT_BYTES = 16 * 1024 * 1024     # the device tool returns no file over 16 MiB


def _pack(out: Path, name: str, root: Path, paths) -> Path:
    archive = out / name
    with tarfile.open(archive, "w:gz") as tar:
        for p in paths:
            tar.add(p, arcname=str(Path(p).relative_to(root)))
    size = archive.stat().st_size
    if size > LIMIT_BYTES:
        raise SystemExit(f"{archive.name} is {size / 2**20:.1f} MiB, over the {LIMIT_BYTES / 2**20:.0f} MiB "
                         "the device tool returns")
    print(f"packed {archive} ({size / 2**20:.1f} MiB)")
    return archive


def stage_train(a) -> Path:
    from egan_lib import setup
    from egan_lib.checkpoints import load_checkpoint, save_checkpoint
    from egan_lib.defenses import get_defenses
    from ship_weights import FULL_PRECISION      # the shipped form: G, C and E in float32, the rest in float16
    t0 = time.perf_counter()
    ws = setup(a.profile, a.seed, a.device, a.data_dir, a.artifacts, progress=False, use_shipped_weights=False)
    ws.classifier()
    ws.encoder()                     # G, then E on it
    get_defenses(ws)                 # every baseline (DnCNN, AutoEncoder, APE-GAN, PixelCNN), load-or-train
    for kind, t in ws.timings.items():
        print(f"{kind}: {t['status']} in {t['seconds']:.0f} s")
    staged = Path(a.artifacts) / "staged" / ws.profile.name
    staged.mkdir(parents=True, exist_ok=True)
    files = []
    for path in sorted(ws.checkpoint_dir.glob("*.pt")):
        ck = load_checkpoint(path)
        files.append(save_checkpoint(staged / path.name, ck.state_dict, ck.config, kind=ck.kind, extra=ck.extra,
                                     half=ck.kind not in FULL_PRECISION))
    archive = _pack(Path(a.out), "weights.tar.gz", staged.parent.parent, files)
    print(f"train stage ({ws.profile.name}, {ws.device}): {time.perf_counter() - t0:.0f} s")
    return archive


def stage_book(a) -> Path:
    t0 = time.perf_counter()
    art = Path(a.artifacts)
    if a.weights:
        with tarfile.open(a.weights) as tar:
            tar.extractall(art / "unpacked", filter="data")
        src = art / "unpacked" / "staged" / a.profile
        dst = art / "checkpoints" / a.profile
        dst.mkdir(parents=True, exist_ok=True)
        for f in src.glob("*.pt"):
            f.replace(dst / f.name)
    out = Path(a.out)
    book, results = out / "executed", out / "results"
    book.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "egan_lib.pipeline", "--profile", a.profile, "--seed", str(a.seed), "--device",
           a.device, "--out", str(book), "--artifacts", str(art), "--results-dir", str(results)]
    if a.data_dir:
        cmd += ["--data-dir", a.data_dir]
    if a.only:
        cmd += ["--only", *a.only]
    r = subprocess.run(cmd, cwd=ROOT)
    files = sorted(book.glob("*.ipynb")) + sorted(p for p in results.rglob("*") if p.is_file())
    archive = _pack(out, "book.tar.gz", out, files)
    for p in files:
        p.unlink()
    print(f"book stage ({a.profile}, {a.device}): {time.perf_counter() - t0:.0f} s, pipeline exit {r.returncode}")
    if r.returncode:
        raise SystemExit(r.returncode)
    return archive


def _files(root: Path) -> dict:
    """{path: (size, mtime)} of every file under ``root``: what a run changed is where these differ."""
    return {p: (st.st_size, st.st_mtime_ns) for p in root.rglob("*") if p.is_file() for st in (p.stat(),)}


def stage_campaign(a) -> int:
    from egan_lib.eval.campaign import campaign_dir
    if a.seconds <= 0:
        raise SystemExit(f"--seconds: expected a positive number, got {a.seconds}")
    t0 = time.perf_counter()
    results = Path(a.results_dir).resolve()
    camp = campaign_dir(results, a.profile)
    camp.mkdir(parents=True, exist_ok=True)
    before = _files(camp)
    cmd = [sys.executable, "-u", "-m", "egan_lib.eval.campaign", "--profile", a.profile, "--seed", str(a.seed),
           "--device", a.device, "--artifacts", str(a.artifacts), "--results-dir", str(results),
           "--chapter", str(a.chapter), "--plan", *(a.jobs or [])]
    env = dict(os.environ, **({"EGAN_DATA": str(Path(a.data_dir).resolve())} if a.data_dir else {}))
    try:
        code = subprocess.run(cmd, cwd=ROOT, env=env, timeout=a.seconds).returncode
    except subprocess.TimeoutExpired:
        code = None
    changed = [p for p, st in sorted(_files(camp).items()) if before.get(p) != st and not p.name.endswith(".tmp")]
    _pack(Path(a.out), "campaign.tar.gz", results, changed)
    state = "stopped at the deadline" if code is None else f"campaign exit {code}"
    print(f"campaign stage ({a.profile}, chapter {a.chapter}, {a.device}): {len(changed)} new or changed files, "
          f"{time.perf_counter() - t0:.0f} s, {state}")
    return 3 if code is None else code


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["train", "book", "campaign"])
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", required=True, help="where the archive goes ($OUT on the device machine)")
    ap.add_argument("--artifacts", default=str(ROOT / "artifacts"))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--weights", default=None, help="book: a weights.tar.gz of the train stage to use")
    ap.add_argument("--only", nargs="+", default=None, help="book: only these chapters")
    ap.add_argument("--chapter", type=int, default=8, choices=(7, 8), help="campaign: whose plan")
    ap.add_argument("--jobs", nargs="+", default=None, help="campaign: only these jobs of the plan")
    ap.add_argument("--seconds", type=float, default=480.0, help="campaign: stop after this many seconds")
    ap.add_argument("--results-dir", default=str(ROOT / "book" / "results"), help="campaign: the stored pieces")
    a = ap.parse_args(argv)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    if a.stage == "campaign":
        return stage_campaign(a)
    (stage_train if a.stage == "train" else stage_book)(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
