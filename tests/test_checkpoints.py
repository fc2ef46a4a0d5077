"""Checkpoints: round trip, corruption and config-mismatch detection, atomic writes, load-or-train."""
from __future__ import annotations

import os

import pytest
import torch

from egan_lib.checkpoints import (CheckpointError, CheckpointMismatch, load_checkpoint, load_or_train,
                                  model_sha256, save_checkpoint)
from egan_lib.models import Classifier

CFG = {"kind": "classifier", "epochs": 3, "lr": 0.002, "train_size": None, "seed": 0}


def _model(seed=0):
    torch.manual_seed(seed)
    return Classifier()


def _equal_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _files(d):
    return sorted(p.name for p in d.iterdir())  # iterdir lists dot files too


def test_round_trip(tmp_path):
    m = _model(0)
    path = save_checkpoint(tmp_path / "c.pt", m, CFG, kind="classifier", extra={"loss": [1.0, 0.5]})
    ck = load_checkpoint(path, expected_config=CFG, kind="classifier")
    assert ck.config == CFG and ck.kind == "classifier" and ck.extra == {"loss": [1.0, 0.5]}
    assert ck.sha256 == model_sha256(m)
    fresh = _model(1)
    assert not _equal_weights(fresh, m)
    fresh.load_state_dict(ck.state_dict)
    assert _equal_weights(fresh, m)


def test_half_precision_round_trip(tmp_path):
    m = _model(0)
    save_checkpoint(tmp_path / "h.pt", m, CFG, kind="classifier", half=True)
    ck = load_checkpoint(tmp_path / "h.pt")
    for k, v in m.state_dict().items():
        if v.is_floating_point():
            assert ck.state_dict[k].dtype == torch.float16
            assert torch.allclose(ck.state_dict[k].float(), v, atol=1e-3, rtol=1e-3)


def test_truncated_file_is_detected(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _model(), CFG, kind="classifier")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_flipped_bytes_are_detected(tmp_path):
    """Flip bytes inside a stored weight tensor: the file may still unpickle, the sha256 must not match."""
    m = _model()
    w = m.head[1].weight  # Linear(160, 50): 8,000 floats
    with torch.no_grad():
        w.copy_(torch.arange(w.numel(), dtype=torch.float32).view_as(w) * 1e-3)
    path = save_checkpoint(tmp_path / "c.pt", m, CFG, kind="classifier")
    data = bytearray(path.read_bytes())
    needle = w.detach().flatten()[100:108].numpy().tobytes()
    at = bytes(data).find(needle)
    assert at > 0, "weights not found in the file"
    data[at + 5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256|corrupt"):
        load_checkpoint(path)


def test_edited_weights_fail_the_sha256_check(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _model(), CFG, kind="classifier")
    d = torch.load(path, weights_only=True)
    d["state_dict"]["head.1.weight"][0, 0] += 1.0
    torch.save(d, path)
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="not an egan_lib checkpoint"):
        load_checkpoint(tmp_path / "x.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_config_mismatch_names_the_differing_keys(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _model(), CFG, kind="classifier")
    wanted = dict(CFG, epochs=4, lr=0.001)
    with pytest.raises(CheckpointMismatch) as info:
        load_checkpoint(path, expected_config=wanted)
    msg = str(info.value)
    assert "epochs: file has 3, asked for 4" in msg
    assert "lr: file has 0.002, asked for 0.001" in msg
    assert "seed" not in msg and "train_size" not in msg      # only the keys that differ
    with pytest.raises(CheckpointMismatch, match="new_key: file has '<missing>', asked for 1"):
        load_checkpoint(path, expected_config=dict(CFG, new_key=1))
    with pytest.raises(CheckpointMismatch, match="expected 'encoder'"):
        load_checkpoint(path, kind="encoder")
    assert issubclass(CheckpointMismatch, CheckpointError)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    save_checkpoint(tmp_path / "c.pt", _model(0), CFG, kind="classifier")
    save_checkpoint(tmp_path / "c.pt", _model(1), CFG, kind="classifier")   # overwrite
    assert _files(tmp_path) == ["c.pt"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_checkpoints_get_the_processs_normal_file_mode(tmp_path, umask, mode):
    """Not mkstemp's 0600 whatever the umask: 0o666 & ~umask, as open() would give (0o644 under 022)."""
    from egan_lib._atomic import atomic_write, current_umask
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        save_checkpoint(tmp_path / "c.pt", _model(0), CFG, kind="classifier")
        save_checkpoint(tmp_path / "c.pt", _model(1), CFG, kind="classifier")   # an overwrite too
        atomic_write(tmp_path / "r.json", lambda f: f.write(b"{}"))
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "c.pt").st_mode & 0o777 == mode
    assert os.stat(tmp_path / "r.json").st_mode & 0o777 == mode
    assert os.umask(old) == old                                   # reading the umask left it alone


def test_interrupted_write_keeps_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    old = _model(0)
    save_checkpoint(tmp_path / "c.pt", old, CFG, kind="classifier")
    real_save = torch.save

    def dying_save(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        f.truncate(100)                       # half written, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "c.pt", _model(1), CFG, kind="classifier")
    monkeypatch.undo()
    assert _files(tmp_path) == ["c.pt"]
    fresh = _model(2)
    fresh.load_state_dict(load_checkpoint(tmp_path / "c.pt").state_dict)
    assert _equal_weights(fresh, old)


class _Trainer:
    """A train() callable that counts its calls and changes the weights deterministically."""

    def __init__(self, model, value=0.5):
        self.model, self.value, self.calls = model, value, 0

    def __call__(self):
        self.calls += 1
        with torch.no_grad():
            for p in self.model.parameters():
                p.fill_(self.value)
        return {"loss": [2.0, 1.0]}


def test_load_or_train_trains_once_then_loads(tmp_path):
    path = tmp_path / "ck" / "classifier.pt"
    m1 = _model(0)
    t1 = _Trainer(m1)
    extra = load_or_train(path, m1, CFG, t1, kind="classifier", verbose=False)
    assert t1.calls == 1 and extra["_status"] == "trained" and extra["loss"] == [2.0, 1.0]
    assert "train_seconds" in extra and path.exists()

    m2 = _model(1)
    t2 = _Trainer(m2, value=9.0)
    extra2 = load_or_train(path, m2, CFG, t2, kind="classifier", verbose=False)
    assert t2.calls == 0                                   # not trained the second time
    assert extra2["_status"] == "loaded" and extra2["loss"] == [2.0, 1.0]
    assert _equal_weights(m2, m1)


def test_load_or_train_retrain_true_retrains(tmp_path):
    path = tmp_path / "c.pt"
    load_or_train(path, _model(), CFG, _Trainer(_model()), kind="classifier", verbose=False)
    m = _model(1)
    t = _Trainer(m, value=0.25)
    extra = load_or_train(path, m, CFG, t, kind="classifier", retrain=True, verbose=False)
    assert t.calls == 1 and extra["_status"] == "trained"
    assert float(load_checkpoint(path).state_dict["head.1.weight"][0, 0]) == 0.25   # the new weights were saved


def test_load_or_train_reports_a_config_mismatch_or_retrains_when_asked(tmp_path):
    path = tmp_path / "c.pt"
    load_or_train(path, _model(), CFG, _Trainer(_model()), kind="classifier", verbose=False)
    other = dict(CFG, epochs=5)
    t = _Trainer(_model())
    with pytest.raises(CheckpointMismatch, match="epochs: file has 3, asked for 5"):
        load_or_train(path, _model(), other, t, kind="classifier", verbose=False)
    assert t.calls == 0
    extra = load_or_train(path, _model(), other, t, kind="classifier", on_mismatch="retrain", verbose=False)
    assert t.calls == 1 and extra["_status"] == "trained"
    assert load_checkpoint(path).config == other


def test_load_or_train_corrupt_file_raises_or_retrains(tmp_path):
    path = tmp_path / "c.pt"
    load_or_train(path, _model(), CFG, _Trainer(_model()), kind="classifier", verbose=False)
    path.write_bytes(path.read_bytes()[:500])
    t = _Trainer(_model())
    with pytest.raises(CheckpointError):
        load_or_train(path, _model(), CFG, t, kind="classifier", verbose=False)
    assert t.calls == 0
    extra = load_or_train(path, _model(), CFG, t, kind="classifier", on_mismatch="retrain", verbose=False)
    assert t.calls == 1 and extra["_status"] == "trained"
    load_checkpoint(path, expected_config=CFG)            # a good file again


def test_load_or_train_uses_shipped_weights(tmp_path):
    shipped = tmp_path / "weights"
    ref = _model(0)
    save_checkpoint(shipped / "classifier.pt", ref, CFG, kind="classifier", extra={"loss": [3.0]})
    run_path = tmp_path / "artifacts" / "classifier.pt"
    m = _model(1)
    t = _Trainer(m)
    extra = load_or_train(run_path, m, CFG, t, kind="classifier", pretrained_dirs=[shipped], verbose=False)
    assert t.calls == 0 and extra["_status"] == "loaded-pretrained" and extra["loss"] == [3.0]
    assert _equal_weights(m, ref)
    assert run_path.exists()                               # copied into the run's own folder
    m2 = _model(2)
    assert load_or_train(run_path, m2, CFG, t, kind="classifier", verbose=False)["_status"] == "loaded"
    assert _equal_weights(m2, ref)


def test_shipped_weights_with_another_config_are_not_used(tmp_path):
    shipped = tmp_path / "weights"
    save_checkpoint(shipped / "classifier.pt", _model(0), dict(CFG, epochs=99), kind="classifier")
    m = _model(1)
    t = _Trainer(m)
    extra = load_or_train(tmp_path / "a" / "classifier.pt", m, CFG, t, kind="classifier",
                          pretrained_dirs=[shipped], verbose=False)
    assert t.calls == 1 and extra["_status"] == "trained"


def test_load_or_train_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="on_mismatch"):
        load_or_train(tmp_path / "c.pt", _model(), CFG, lambda: None, kind="c", on_mismatch="ignore")
    with pytest.raises(TypeError, match="callable"):
        load_or_train(tmp_path / "c.pt", _model(), CFG, None, kind="c")
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(tmp_path / "c.pt", _model(), {"x": object()}, kind="c")
    assert not os.listdir(tmp_path)
