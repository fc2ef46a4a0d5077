"""The notebooks' shared setup: load-or-train through a Workspace."""
from __future__ import annotations

import pytest
import torch

import egan_lib.training
from egan_lib.checkpoints import CheckpointMismatch, load_checkpoint
from egan_lib.config import get_profile
from egan_lib.workflow import Workspace, setup

PROFILE = get_profile("smoke", train_size=256, clf_epochs=1, n_test=40)


def _setup(tmp_path, profile=PROFILE, **kw):
    return setup(profile, seed=0, device="cpu", artifacts_dir=tmp_path / "artifacts", progress=False,
                 use_shipped_weights=False, threads=torch.get_num_threads(), **kw)


def test_setup_builds_a_workspace(tmp_path):
    ws = _setup(tmp_path)
    assert isinstance(ws, Workspace)
    assert ws.profile is PROFILE and ws.seed == 0 and ws.device == torch.device("cpu")
    assert ws.artifacts_dir.is_dir() and ws.pretrained_dirs == ()
    assert ws.checkpoint_dir == tmp_path / "artifacts" / "checkpoints" / "smoke"
    assert ws.describe()["profile"] == "smoke"
    with pytest.raises(ValueError, match="unknown profile"):
        setup("huge", artifacts_dir=tmp_path)


def test_classifier_trains_once_then_a_new_workspace_loads_it(tmp_path, monkeypatch):
    ws = _setup(tmp_path)
    c1, hist = ws.classifier()
    assert ws.timings["classifier"]["status"] == "trained"
    assert hist["_status"] == "trained" and len(hist["epoch_loss"]) == 1
    assert ws.classifier()[0] is c1                       # cached in memory
    x, y = ws.train_set()
    assert x.shape == (256, 1, 28, 28) and torch.bincount(y).tolist() == [26] * 6 + [25] * 4
    tx, ty = ws.test_set()
    assert tx.shape == (40, 1, 28, 28) and ws.test_set(10)[0].shape == (10, 1, 28, 28)

    path = ws.checkpoint_dir / "classifier.pt"
    ck = load_checkpoint(path)
    assert ck.config["epochs"] == 1 and ck.config["train_size"] == 256 and ck.config["seed"] == 0

    # a second run (a new Workspace, e.g. the next chapter) loads it and never trains
    def no_training(*a, **k):
        raise AssertionError("the classifier was trained again")
    monkeypatch.setattr(egan_lib.training, "train_classifier", no_training)
    ws2 = _setup(tmp_path)
    c2, hist2 = ws2.classifier()
    assert ws2.timings["classifier"]["status"] == "loaded" and hist2["_status"] == "loaded"
    assert hist2["epoch_loss"] == hist["epoch_loss"]
    for (k, a), b in zip(c1.state_dict().items(), c2.state_dict().values()):
        assert torch.equal(a, b), k
    assert not c2.training

    # a run with another producing config does not silently load the file
    ws3 = _setup(tmp_path, profile=PROFILE.replace(clf_epochs=2))
    with pytest.raises(CheckpointMismatch, match="epochs: file has 1, asked for 2"):
        ws3.classifier()


def test_start_from_scratch_keeps_old_checkpoints_and_blocks_shipped_weights(tmp_path):
    from egan_lib.workflow import FROM_SCRATCH_MARKER, SHIPPED_WEIGHTS, start_from_scratch
    art = tmp_path / "artifacts"
    assert start_from_scratch(art, "cpu") is None                  # nothing to keep yet
    ckpt = art / "checkpoints" / "cpu"
    assert (ckpt / FROM_SCRATCH_MARKER).is_file() and len(list(ckpt.iterdir())) == 1
    assert setup("cpu", artifacts_dir=art, device="cpu", progress=False).pretrained_dirs == ()
    assert setup("smoke", artifacts_dir=art, device="cpu", progress=False).checkpoint_dir.is_dir()
    if (SHIPPED_WEIGHTS / "cpu").is_dir():    # without the marker the shipped weights are a fallback
        (ckpt / FROM_SCRATCH_MARKER).unlink()
        assert setup("cpu", artifacts_dir=art, device="cpu", progress=False).pretrained_dirs == (SHIPPED_WEIGHTS / "cpu",)
    (ckpt / "classifier.pt").write_bytes(b"trained before")
    moved = start_from_scratch(art, "cpu")
    assert moved is not None and moved.parent == ckpt.parent and moved.name.startswith("cpu.before-retrain-")
    assert (moved / "classifier.pt").read_bytes() == b"trained before"   # nothing the user trained is lost
    assert sorted(p.name for p in ckpt.iterdir()) == [FROM_SCRATCH_MARKER]
    assert start_from_scratch(art, "cpu") is None                  # an emptied folder is not moved again


def test_start_from_scratch_validates(tmp_path):
    from egan_lib.workflow import start_from_scratch
    with pytest.raises(TypeError, match="artifacts_dir"):
        start_from_scratch(None, "cpu")
    with pytest.raises(ValueError, match="unknown profile"):
        start_from_scratch(tmp_path, "huge")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "cpu").write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        start_from_scratch(tmp_path, "cpu")


def test_the_training_cli_runs_as_a_module_and_trains_a_defense(tmp_path, mnist):
    """``python -m egan_lib.workflow --train <defense>`` works as the README and chapter 08 say: run as
    ``__main__``, the module must still hand the registry its real Workspace (a regression)."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "egan_lib.workflow", "--profile", "smoke", "--device", "cpu",
                        "--threads", "1", "--artifacts-dir", str(tmp_path / "art"), "--train", "AutoEncoder"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "AutoEncoder:" in r.stdout
    assert (tmp_path / "art" / "checkpoints" / "smoke" / "autoencoder.pt").is_file()
