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
