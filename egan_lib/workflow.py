"""The book's shared setup: one ``Workspace`` per notebook run, with load-or-train getters.

Every chapter starts with ``ws = setup(profile, seed, device, data_dir, artifacts_dir)`` and then
asks the workspace for what it needs (``ws.mnist()``, ``ws.generator()``, ``ws.classifier()``,
``ws.encoder()``, ...). Each getter loads a verified checkpoint when one with the same producing
config exists (first the run's own ``artifacts_dir``, then the weights shipped with the project),
and trains and saves one otherwise. So chapters can run in any order, a rerun is fast, and
``retrain=True`` always trains from scratch.

A whole-book retrain (``python -m egan_lib.pipeline --retrain``) must train each model once, not
once per chapter that uses it: it calls ``start_from_scratch``, which moves the profile's old
checkpoints aside (nothing is deleted) and marks the new, empty folder so that the shipped weights
are never used to fill it; the chapters then run with ``retrain=False`` and share what the first of
them trains.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import __version__
from .checkpoints import load_or_train, model_sha256
from .config import Profile, device as pick_device, get_profile, native_bf16, seed_everything
from .data import Dataset, load_mnist, subset, to_float
from .models import build_classifier, build_discriminator, build_encoder, build_generator
from .training import train_classifier, train_encoder, train_gan

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights"   # installed with the package (Colab too)
FROM_SCRATCH_MARKER = ".from-scratch"   # in a checkpoint folder: never fill it from the shipped weights


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython  # noqa: PLC0415
        ip = get_ipython()
        return ip is not None and "IPKernelApp" in getattr(ip, "config", {})
    except Exception:  # noqa: BLE001
        return False


@dataclass
class Workspace:
    """What one run of a chapter works with: a profile, a seed, a device and two folders."""
    profile: Profile
    seed: int
    device: torch.device
    data_dir: Path | None
    artifacts_dir: Path
    progress: bool = False
    retrain: bool = False
    pretrained_dirs: tuple = ()
    _cache: dict = field(default_factory=dict, repr=False)
    timings: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ paths and configs
    @property
    def checkpoint_dir(self) -> Path:
        d = self.artifacts_dir / "checkpoints" / self.profile.name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def checkpoint_config(self, kind: str, **fields) -> dict:
        """The producing config stored with a checkpoint: profile name, seed and every field that
        changes the weights (a change in any of them makes the stored file a mismatch)."""
        return {"kind": kind, "profile": self.profile.name, "seed": self.seed, **fields}

    def load_or_train(self, kind: str, model: torch.nn.Module, config: dict, train) -> dict:
        """Load ``model`` from this run's checkpoint ``<kind>.pt`` (or the shipped weights) when its
        producing ``config`` matches, else ``train()`` it and save; returns the stored extras
        (history), and records the status and seconds in ``self.timings[kind]``."""
        t0 = time.perf_counter()
        extra = load_or_train(self.checkpoint_dir / f"{kind}.pt", model, config, train, kind=kind,
                              retrain=self.retrain, pretrained_dirs=self.pretrained_dirs, verbose=True)
        model.to(self.device).eval()
        self.timings[kind] = {"status": extra.get("_status"), "seconds": round(time.perf_counter() - t0, 2)}
        return extra

    def cached(self, key: str, build):
        """``build()`` once per workspace; later calls return the same object (models, data)."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"key: expected a non-empty string, got {key!r}")
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    # ------------------------------------------------------------------ data
    def mnist(self) -> Dataset:
        """Full MNIST as uint8 tensors (cached on disk and in memory)."""
        if "mnist" not in self._cache:
            self._cache["mnist"] = load_mnist(self.data_dir, verbose=True)
        return self._cache["mnist"]

    def train_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training images (float, [0,1]) and labels this profile trains on."""
        if "train" not in self._cache:
            ds = self.mnist()
            x, y = subset(ds.train_images, ds.train_labels, self.profile.train_size, seed=self.seed)
            self._cache["train"] = (to_float(x), y)
        return self._cache["train"]

    def test_set(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed evaluation subset (class-balanced, seeded): the same images for every method.
        ``n`` defaults to the profile's ``n_test``; a smaller ``n`` gives the first n of them."""
        if "test" not in self._cache:
            ds = self.mnist()
            x, y = subset(ds.test_images, ds.test_labels, self.profile.n_test, seed=self.seed)
            self._cache["test"] = (to_float(x), y)
        x, y = self._cache["test"]
        if n is not None:
            if not (isinstance(n, int) and 0 < n <= len(y)):
                raise ValueError(f"n: expected 1..{len(y)} (the profile's n_test), got {n!r}")
            x, y = x[:n], y[:n]
        return x, y

    def train_subset(self, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """A seeded, class-balanced subset of n training images (all of them when n is None or too big):
        what a baseline trains on when its profile field ``*_train_size`` shrinks it."""
        x, y = self.train_set()
        if n is None or n >= x.shape[0]:
            return x, y
        return subset(x, y, n, seed=self.seed)

    def full_test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        ds = self.mnist()
        return to_float(ds.test_images), ds.test_labels

    # ------------------------------------------------------------------ load-or-train
    def trained(self, kind: str, make, train, **config) -> tuple:
        """(model, history) of ``kind``, built once per workspace: ``make()`` builds the network; a
        verified checkpoint whose producing config is ``config`` (with the profile and seed) is loaded,
        else ``train(model)`` trains it in place and it is saved. Every model of the book comes from here."""
        def build():
            model = make()
            return model, self.load_or_train(kind, model, self.checkpoint_config(kind, **config), lambda: train(model))
        return self.cached(kind, build)

    def training_configs(self) -> dict:
        """{weights sha256: (kind, producing config)} of every network this workspace has loaded or trained:
        how each was trained (epochs, budgets, data sizes), to be recorded next to a result whose defense
        names those weights (``Defense.settings()["weights_sha256"]``)."""
        from .checkpoints import load_checkpoint
        out = {}
        for kind in self.timings:
            path = self.checkpoint_dir / f"{kind}.pt"
            model = self._cache.get(kind, (None,))[0]
            if path.is_file() and isinstance(model, torch.nn.Module):
                out[model_sha256(model)] = (kind, load_checkpoint(path, kind=kind).config)
        return out

    # ------------------------------------------------------------------ the paper's models
    def gan(self):
        """(G, D, history): the DCGAN trained on the training images (load-or-train). D is only needed to
        train G and is not stored: after a load it is a freshly initialised discriminator."""
        p = self.profile
        D = self.cached("discriminator", lambda: build_discriminator(p))

        def train(G):
            x, _ = self.train_set()
            return train_gan(G, D, x, epochs=p.gan_epochs, batch_size=p.gan_batch, lr=p.gan_lr,
                             seed=self.seed, device=self.device, progress=self.progress)
        G, hist = self.trained("generator", lambda: build_generator(p), train, **self.generator_config())
        return G, D, hist

    def generator_config(self) -> dict:
        """The fields of the profile that make G (what its checkpoint's config records)."""
        p = self.profile
        return {"latent_dim": p.latent_dim, "g_width": p.g_width, "d_width": p.d_width, "epochs": p.gan_epochs,
                "batch": p.gan_batch, "lr": p.gan_lr, "train_size": p.train_size}

    def encoder_config(self, generator) -> dict:
        """The fields that make E on this G (its checkpoint's config): the architecture, T, the budget
        (epochs, or image-steps), the schedule, batch, lr, the training precision and G's sha256."""
        p = self.profile
        cfg = {"channels": p.enc_channels, "same_blocks": p.enc_same_blocks, "valid_blocks": p.enc_valid_blocks,
               "latents": p.enc_latents, "epochs": None if p.enc_image_steps else p.enc_epochs, "batch": p.enc_batch,
               "lr": p.enc_lr, "bf16": p.enc_train_bf16, "channels_last": p.enc_train_bf16,
               "generator_sha256": model_sha256(generator)}
        if p.enc_image_steps or p.enc_schedule != "cosine":   # (absent from the configs of epoch-trained encoders)
            cfg.update(image_steps=p.enc_image_steps, schedule=p.enc_schedule)
        return cfg

    def generator(self):
        G, _, hist = self.gan()
        return G, hist

    def classifier(self):
        """(C, history): the paper's classifier trained on the training images (with the profile's random
        shifts of up to ``clf_shift`` pixels)."""
        p = self.profile
        shift = int(p.clf_shift)

        def train(C):
            x, y = self.train_set()
            return train_classifier(C, x, y, epochs=p.clf_epochs, batch_size=p.clf_batch, lr=p.clf_lr,
                                    seed=self.seed, device=self.device, progress=self.progress, augment_shift=shift)
        return self.trained("classifier", lambda: build_classifier(p), train, epochs=p.clf_epochs,
                            batch=p.clf_batch, lr=p.clf_lr, train_size=p.train_size, augment_shift=shift)

    def encoder(self):
        """(E, history): the paper's encoder trained to invert the frozen G (T latents drawn once)."""
        p = self.profile
        G, _ = self.generator()

        epochs = None if p.enc_image_steps else p.enc_epochs

        def train(E):
            if p.enc_train_bf16 and self.device.type == "cpu" and not native_bf16():
                print("encoder: its recipe trains under bf16 autocast, which this CPU only "
                      "emulates (many times slower than fp32); the shipped weights avoid this")
            return train_encoder(E, G, n_latents=p.enc_latents, epochs=epochs, image_steps=p.enc_image_steps,
                                 schedule=p.enc_schedule, batch_size=p.enc_batch, lr=p.enc_lr, seed=self.seed,
                                 device=self.device, progress=self.progress, bf16=p.enc_train_bf16,
                                 channels_last=p.enc_train_bf16)
        return self.trained("encoder", lambda: build_encoder(p), train, **self.encoder_config(G))

    def describe(self) -> dict:
        from .config import describe_runtime
        return {"profile": self.profile.name, "seed": self.seed, "egan_lib": __version__,
                "artifacts_dir": str(self.artifacts_dir), **describe_runtime(self.device)}


def setup(profile: str | Profile = "smoke", seed: int = 0, device: str | None = "auto", data_dir=None,
          artifacts_dir="artifacts", *, progress: bool | None = None, retrain: bool = False,
          use_shipped_weights: bool = True, threads: int | None = None) -> Workspace:
    """The setup cell of every chapter: seed everything, pick the device, make the folders.

    progress: None = tqdm bars in an interactive session, one line per epoch under papermill/CI
    (set ``EGAN_PROGRESS=0/1`` to force). use_shipped_weights: also look for verified weights under
    ``weights/<profile>/`` of the project before training.
    """
    prof = get_profile(profile)
    seed_everything(seed)
    dev = pick_device(device)
    if threads is not None:
        torch.set_num_threads(int(threads))
    if progress is None:
        env = os.environ.get("EGAN_PROGRESS")
        progress = (env == "1") if env is not None else (_in_notebook() and not os.environ.get("PAPERMILL_EXECUTION"))
    art = Path(artifacts_dir).expanduser()
    art.mkdir(parents=True, exist_ok=True)
    pre = ()
    if use_shipped_weights and not retrain and not (art / "checkpoints" / prof.name / FROM_SCRATCH_MARKER).exists():
        cand = SHIPPED_WEIGHTS / prof.name
        pre = (cand,) if cand.is_dir() else ()
    return Workspace(prof, seed, dev, Path(data_dir).expanduser() if data_dir else None, art,
                     progress=bool(progress), retrain=retrain, pretrained_dirs=pre)


def start_from_scratch(artifacts_dir, profile: str | Profile) -> Path | None:
    """Prepare ``<artifacts_dir>/checkpoints/<profile>/`` for training every model from scratch once.

    An existing, non-empty folder is renamed to ``<profile>.before-retrain-<UTC time>`` (returned; None
    when there was nothing to keep), a new empty one is made, and a marker file in it tells ``setup``
    not to load the shipped weights into it. Models are then trained by the first chapter that needs
    them and loaded by the later ones (plain load-or-train)."""
    import datetime as _dt
    if artifacts_dir is None or not isinstance(artifacts_dir, (str, os.PathLike)):
        raise TypeError(f"artifacts_dir: expected a folder path, got {type(artifacts_dir).__name__}")
    prof = get_profile(profile)
    ckpt = Path(artifacts_dir).expanduser() / "checkpoints" / prof.name
    if ckpt.exists() and not ckpt.is_dir():
        raise NotADirectoryError(f"artifacts_dir: {ckpt} exists and is not a folder")
    moved = None
    if ckpt.is_dir() and any(p.name != FROM_SCRATCH_MARKER for p in ckpt.iterdir()):
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        moved = ckpt.with_name(f"{prof.name}.before-retrain-{stamp}")
        ckpt.rename(moved)
    ckpt.mkdir(parents=True, exist_ok=True)
    (ckpt / FROM_SCRATCH_MARKER).write_text(
        "This folder was emptied by a from-scratch retrain; egan_lib.workflow.setup will not copy the shipped "
        "weights into it. Delete this file to allow them again.\n")
    return moved


def main(argv=None) -> int:
    """``python -m egan_lib.workflow --profile cpu --train gan classifier encoder``: train (or load)
    the named models in the background, with the same checkpoints the notebooks use; a defense's name
    (``--train EGAN-R``) trains every network that defense needs."""
    import argparse
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--artifacts-dir", default="artifacts")
    ap.add_argument("--train", nargs="+", default=["gan", "classifier", "encoder"])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    a = ap.parse_args(argv)
    ws = setup(a.profile, a.seed, a.device, a.data_dir, a.artifacts_dir, progress=False, threads=a.threads)
    from .defenses import REGISTRY, get_defenses
    models = ("gan", "generator", "classifier", "encoder")
    bad = [n for n in a.train if n not in models and n not in REGISTRY]
    if bad:
        ap.error(f"--train: unknown {bad}; choose models out of {models} or defenses out of {sorted(REGISTRY)}")
    for name in a.train:
        t0 = time.perf_counter()
        if name in models:
            getattr(ws, name)()
        else:
            get_defenses(ws, [name])
        print(f"{name}: {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    # run the imported module's main, not this __main__ copy: its Workspace is the class every other
    # module checks against (``python -m`` loads this file a second time under another name)
    from egan_lib.workflow import main as _main
    sys.exit(_main())
