"""Profiles (smoke / cpu / paper), device selection and seeding.

A profile is the single papermill parameter that sets the scale of the whole book:

* ``smoke``: proves the plumbing on a 2-core CPU in minutes (tiny widths and subsets).
* ``cpu``:   the reference run on a 2-core CPU: the paper's architectures at full width,
             full MNIST for G and C, a test subset large enough for tight intervals.
* ``paper``: the paper's full scale on a GPU (full test set, Defense-GAN L=200 / R=10).

What each profile shrinks against the paper is stated in the book; the numbers live here only.
"""
from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class Profile:
    name: str
    # data and protocol
    train_size: int | None          # MNIST training images used for G, C and the baselines (None = all 60,000)
    n_test: int                     # evaluation subset of the MNIST test set (same images for every method)
    eps_step: float                 # FGSM grid 0, eps_step, ..., 1 (paper: 0.05)
    eval_batch: int = 256           # batch size of purification / evaluation
    eps_values: tuple | None = None # an explicit eps grid instead of 0, eps_step, ..., 1
    expensive_n_test: int | None = None  # PixelDefend / Defense-GAN: the first n of the same subset (None = n_test)
    # DCGAN (G and D), latent size L = 30
    latent_dim: int = 30
    g_width: int = 64
    d_width: int = 64
    gan_epochs: int = 10
    gan_batch: int = 128
    gan_lr: float = 2e-4
    # the paper's encoder E
    enc_channels: int = 100
    enc_same_blocks: int = 10
    enc_valid_blocks: int = 11
    enc_latents: int = 20_000       # T, drawn once
    enc_epochs: int = 4
    enc_batch: int = 64
    enc_lr: float = 1e-3
    bf16: bool = False              # bf16 autocast for the encoder on CPU
    channels_last: bool = False
    # the paper's classifier C
    clf_epochs: int = 10
    clf_batch: int = 128
    clf_lr: float = 2e-3
    # baselines (chapter 05)
    dncnn_layers: int = 17
    dncnn_channels: int = 64
    dncnn_epochs: int = 2
    ae_epochs: int = 5
    apegan_epochs: int = 2
    apegan_train_eps: float = 0.3
    pixelcnn_channels: int = 64
    pixelcnn_layers: int = 6
    pixelcnn_epochs: int = 3
    pixeldefend_eps: float = 0.1
    defensegan_steps: int = 200     # L
    defensegan_restarts: int = 10   # R
    defensegan_lr: float = 0.05
    # adaptive attacks (chapter 07)
    pgd_steps: int = 40
    adaptive_n_test: int = 500
    extra: dict = field(default_factory=dict)

    def replace(self, **changes) -> "Profile":
        """A copy with some fields changed (unknown field names are rejected)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown profile field(s) {unknown}; known fields: {sorted(names)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def eps_grid(self) -> list[float]:
        """The FGSM eps values this profile evaluates (always starts at 0 and ends at 1)."""
        if self.eps_values is not None:
            return [round(float(e), 2) for e in self.eps_values]
        from .attacks import eps_grid
        return eps_grid(self.eps_step)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", train_size=2_000, n_test=64, eps_step=0.25, eval_batch=64,
        g_width=16, d_width=16, gan_epochs=1, gan_batch=64,
        enc_channels=8, enc_same_blocks=1, enc_valid_blocks=11, enc_latents=512, enc_epochs=1, enc_batch=64,
        clf_epochs=1, clf_batch=128,
        dncnn_layers=5, dncnn_channels=16, dncnn_epochs=1, ae_epochs=1, apegan_epochs=1,
        pixelcnn_channels=16, pixelcnn_layers=3, pixelcnn_epochs=1,
        defensegan_steps=10, defensegan_restarts=2,
        pgd_steps=5, adaptive_n_test=32,
    ),
    "cpu": Profile(
        name="cpu", train_size=None, n_test=500, eps_step=0.05, eval_batch=250,
        eps_values=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0), expensive_n_test=200,
        gan_epochs=5, enc_latents=20_000, enc_epochs=3, bf16=True, channels_last=True,
        clf_epochs=12,
        defensegan_steps=100, defensegan_restarts=4,
        pgd_steps=40, adaptive_n_test=500,
    ),
    "paper": Profile(
        name="paper", train_size=None, n_test=10_000, eps_step=0.05, eval_batch=500,
        gan_epochs=30, enc_latents=60_000, enc_epochs=20, clf_epochs=20,
        dncnn_epochs=10, ae_epochs=20, apegan_epochs=10, pixelcnn_epochs=20, pixelcnn_layers=8,
        defensegan_steps=200, defensegan_restarts=10,
        pgd_steps=100, adaptive_n_test=10_000,
    ),
}


def get_profile(name: str | Profile, **overrides) -> Profile:
    """The profile called ``name`` (smoke, cpu or paper), optionally with fields overridden."""
    if isinstance(name, Profile):
        prof = name
    else:
        if not isinstance(name, str):
            raise TypeError(f"profile: expected a name out of {sorted(PROFILES)}, got {type(name).__name__}")
        if name not in PROFILES:
            raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
        prof = PROFILES[name]
    return prof.replace(**overrides) if overrides else prof


def device(name: str | torch.device | None = None) -> torch.device:
    """Pick the compute device: cuda, then mps, then cpu (``name`` = "auto" or None);
    or check that the named one ("cpu", "cuda", "cuda:1", "mps") is usable."""
    if isinstance(name, torch.device):
        name = str(name)
    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not isinstance(name, str):
        raise TypeError(f"device: expected 'auto', 'cpu', 'cuda' or 'mps', got {type(name).__name__}")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"device: {name!r} is not a device name ('auto', 'cpu', 'cuda', 'cuda:0', 'mps')") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was asked for but torch.cuda.is_available() is False on this machine")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device: 'mps' was asked for but it is not available on this machine")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device: unsupported device type {dev.type!r}")
    return dev


def synchronize(dev: torch.device | str) -> None:
    """Wait for queued GPU work (a no-op on CPU): call before reading a clock."""
    dev = torch.device(dev)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


def seed_everything(seed: int, deterministic: bool = True) -> int:
    """Seed Python, NumPy and torch (CPU and CUDA); make cuDNN deterministic."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    return seed


def describe_runtime(dev: torch.device | str | None = None) -> dict:
    """Device, threads and versions: what every timing and every results file reports."""
    import platform
    dev = device(dev)
    info = {
        "device": str(dev),
        "device_name": (torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine()),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    return info
