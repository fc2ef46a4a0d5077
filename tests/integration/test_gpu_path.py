"""The GPU path (tools/gpu_run.py), exercised on the CPU with the smoke profile: the train stage packs every
checkpoint into one archive, the book stage unpacks it (nothing is retrained) and executes chapters with
papermill on the named device. Runs after the smoke pipeline (stage 2 of `dev.py test`), whose checkpoints
it reuses, so it costs seconds; alone it trains the smoke models first."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile

from book_env import REPO, SCRATCH


def _smoke_artifacts(tmp_path):
    """An artifacts folder holding the smoke pipeline's checkpoints (when it ran), so nothing retrains."""
    art = tmp_path / "artifacts"
    smoke = SCRATCH / "artifacts" / "checkpoints" / "smoke"
    if smoke.is_dir():
        shutil.copytree(smoke, art / "checkpoints" / "smoke")
    return art


def test_train_then_book_stage_on_cpu(tmp_path):
    art = _smoke_artifacts(tmp_path)
    out = tmp_path / "out"
    run = lambda *a: subprocess.run([sys.executable, str(REPO / "tools" / "gpu_run.py"), *a], cwd=REPO,  # noqa: E731
                                    capture_output=True, text=True, timeout=900)
    r = run("train", "--profile", "smoke", "--device", "cpu", "--out", str(out), "--artifacts", str(art))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    with tarfile.open(out / "weights.tar.gz") as tar:
        names = sorted(m.name.split("/")[-1] for m in tar.getmembers())
    assert {"generator.pt", "encoder.pt", "classifier.pt", "dncnn.pt", "autoencoder.pt", "apegan.pt",
            "pixelcnn.pt"} <= set(names)
    art2, out2 = tmp_path / "fresh", tmp_path / "out2"
    r = run("book", "--profile", "smoke", "--device", "cpu", "--out", str(out2), "--artifacts", str(art2),
            "--weights", str(out / "weights.tar.gz"), "--only", "03")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    with tarfile.open(out2 / "book.tar.gz") as tar:
        nb = next(m for m in tar.getmembers() if m.name.endswith("03_encoder.ipynb"))
        text = tar.extractfile(nb).read().decode()
    assert "encoder weights: loaded" in text          # the packed weights were used, nothing was retrained
    assert '"profile": "smoke"' in text or "profile smoke" in text


def test_campaign_stage_packs_new_pieces_and_stops_at_its_deadline(tmp_path):
    art = _smoke_artifacts(tmp_path)
    results = tmp_path / "results"

    def run(out, seconds):
        return subprocess.run([sys.executable, str(REPO / "tools" / "gpu_run.py"), "campaign", "--profile", "smoke",
                               "--chapter", "8", "--jobs", "robust-latent-egan", "--device", "cpu", "--out", str(out),
                               "--artifacts", str(art), "--results-dir", str(results), "--seconds", str(seconds)],
                              cwd=REPO, capture_output=True, text=True, timeout=1200)
    r = run(tmp_path / "late", 0.5)                    # the deadline comes before the first part
    assert r.returncode == 3, r.stdout[-2000:] + r.stderr[-2000:]
    assert "stopped at the deadline" in r.stdout
    r = run(tmp_path / "out", 900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    with tarfile.open(tmp_path / "out" / "campaign.tar.gz") as tar:
        names = [m.name for m in tar.getmembers()]
    assert names and all(n.startswith("evaluations/mnist-smoke-campaign/EGAN/latent") for n in names), names
    assert not any(n.endswith(".tmp") for n in names)
    r = run(tmp_path / "again", 900)                   # everything stored: nothing new to pack
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "0 new or changed files" in r.stdout
