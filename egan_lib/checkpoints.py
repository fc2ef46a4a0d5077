"""Load-or-train with checkpoint files that are written atomically and verified when loaded.

A checkpoint stores the weights, the config that produced them, the library version, a sha256 of
the weights and any small extras (loss curves). It is written to a temporary file in the same
folder and renamed into place, so an interrupted write never leaves a half file under the real
name. Loading uses ``torch.load(weights_only=True)``, recomputes the sha256 and compares the
stored config with the one asked for: a corrupt file or a config mismatch raises (or retrains
when asked), it is never loaded silently.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ._validate import check_callable

FORMAT = 1


class CheckpointError(RuntimeError):
    """The checkpoint file is unreadable, truncated or its weights do not match their checksum."""


class CheckpointMismatch(CheckpointError):
    """The checkpoint was produced by a different config than the one asked for."""


def _normalise(config) -> dict:
    if not isinstance(config, dict):
        raise TypeError(f"config: expected a dict of JSON-serialisable values, got {type(config).__name__}")
    try:
        return json.loads(json.dumps(config, sort_keys=True))
    except (TypeError, ValueError) as e:
        raise TypeError(f"config: must be JSON-serialisable ({e})") from e


def state_sha256(state_dict: dict) -> str:
    """sha256 over the names, dtypes, shapes and bytes of every tensor, in name order."""
    h = hashlib.sha256()
    for k in sorted(state_dict):
        t = state_dict[k]
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"state_dict[{k!r}] is not a tensor")
        t = t.detach().to("cpu").contiguous()
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        # reshape(-1): a 0-dim tensor (BatchNorm's num_batches_tracked) cannot be viewed as bytes directly
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_sha256(model: torch.nn.Module) -> str:
    """sha256 of a model's weights (used to chain configs: E's config names the G it inverts)."""
    return state_sha256(model.state_dict())


@dataclass
class Checkpoint:
    state_dict: dict
    config: dict
    library_version: str
    sha256: str
    kind: str
    extra: dict = field(default_factory=dict)
    path: Path | None = None


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module | dict, config: dict, *, kind: str,
                    extra: dict | None = None, half: bool = False) -> Path:
    """Write weights + config + version atomically (temp file in the same folder, fsync, rename)."""
    from . import __version__
    path = Path(path)
    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    if not isinstance(state, dict) or not state:
        raise TypeError("model: expected a torch.nn.Module or a non-empty state_dict")
    state = {k: v.detach().to("cpu").clone() for k, v in state.items()}
    if half:
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    payload = {
        "format": FORMAT, "kind": str(kind), "state_dict": state, "config": _normalise(config),
        "library_version": __version__, "sha256": state_sha256(state), "extra": _normalise(extra or {}),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    from ._atomic import atomic_write
    return atomic_write(path, lambda f: torch.save(payload, f))


def _config_diff(stored: dict, wanted: dict) -> list[str]:
    keys = sorted(set(stored) | set(wanted))
    return [f"{k}: file has {stored.get(k, '<missing>')!r}, asked for {wanted.get(k, '<missing>')!r}"
            for k in keys if stored.get(k, "<missing>") != wanted.get(k, "<missing>")]


def load_checkpoint(path: str | os.PathLike, *, expected_config: dict | None = None, kind: str | None = None) -> Checkpoint:
    """Read and verify a checkpoint (weights_only=True, sha256, kind and config checked)."""
    from . import __version__
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise CheckpointError(f"{path}: unreadable or corrupt checkpoint ({type(e).__name__}: {e}); "
                              "delete it or load with retrain=True") from e
    need = ("format", "kind", "state_dict", "config", "library_version", "sha256")
    if not isinstance(d, dict) or any(k not in d for k in need):
        raise CheckpointError(f"{path}: not an egan_lib checkpoint (missing fields)")
    if d["format"] != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {d['format']}, this library reads {FORMAT}")
    digest = state_sha256(d["state_dict"])
    if digest != d["sha256"]:
        raise CheckpointError(f"{path}: weights do not match their stored sha256 (file corrupted); "
                              "delete it or load with retrain=True")
    if kind is not None and d["kind"] != kind:
        raise CheckpointMismatch(f"{path}: holds a {d['kind']!r} checkpoint, expected {kind!r}")
    if expected_config is not None:
        diff = _config_diff(d["config"], _normalise(expected_config))
        if diff:
            raise CheckpointMismatch(f"{path}: produced by a different config:\n  " + "\n  ".join(diff)
                                     + "\n(retrain with retrain=True, or point to another artifacts folder)")
    if d["library_version"] != __version__:
        warnings.warn(f"{path}: written by egan_lib {d['library_version']}, this is {__version__}", stacklevel=2)
    return Checkpoint(d["state_dict"], d["config"], d["library_version"], d["sha256"], d["kind"],
                      d.get("extra", {}), path)


def _apply(model: torch.nn.Module, ckpt: Checkpoint) -> None:
    ref = model.state_dict()
    state = {k: (v.to(ref[k].dtype) if k in ref and v.is_floating_point() else v) for k, v in ckpt.state_dict.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointMismatch(f"{ckpt.path}: weights do not fit this model: {e}") from e


def load_or_train(path: str | os.PathLike, model: torch.nn.Module, config: dict, train: Callable[[], dict | None], *,
                  kind: str, retrain: bool = False, on_mismatch: str = "error",
                  pretrained_dirs=(), verbose: bool = True) -> dict:
    """Load ``model``'s weights from ``path`` if a verified checkpoint with this ``config`` is there;
    otherwise call ``train()`` (which trains ``model`` in place and returns extras such as loss
    curves), then save. Shipped weights in ``pretrained_dirs`` (same file name) are tried before
    training. Returns the extras, with ``"_status"`` = "loaded" / "loaded-pretrained" / "trained".

    on_mismatch: "error" (default: raise CheckpointMismatch/CheckpointError) or "retrain".
    """
    if on_mismatch not in ("error", "retrain"):
        raise ValueError(f"on_mismatch: expected 'error' or 'retrain', got {on_mismatch!r}")
    check_callable(train, "train", "a callable that trains the model in place")
    config = _normalise(config)
    path = Path(path)
    log = (lambda m: print(m, file=sys.stderr)) if verbose else (lambda m: None)
    if not retrain:
        candidates = [(path, "loaded")] + [(Path(d) / path.name, "loaded-pretrained") for d in pretrained_dirs]
        for cand, status in candidates:
            if not cand.exists():
                continue
            try:
                ckpt = load_checkpoint(cand, expected_config=config, kind=kind)
                _apply(model, ckpt)
            except CheckpointMismatch as e:
                if status == "loaded-pretrained":
                    log(f"[egan_lib] shipped weights {cand} not used: {str(e).splitlines()[0]}")
                    continue
                if on_mismatch == "error":
                    raise
                log(f"[egan_lib] {e}\n[egan_lib] retraining {kind}")
                break
            except CheckpointError:
                if status == "loaded-pretrained" or on_mismatch == "error":
                    raise
                log(f"[egan_lib] corrupt checkpoint {cand}; retraining {kind}")
                break
            log(f"[egan_lib] {kind}: {status} {cand}")
            extra = dict(ckpt.extra)
            extra["_status"] = status
            if status == "loaded-pretrained" and cand != path:
                save_checkpoint(path, model, config, kind=kind, extra=ckpt.extra)
            return extra
    t0 = time.perf_counter()
    extra = train() or {}
    extra = dict(extra)
    extra.setdefault("train_seconds", time.perf_counter() - t0)
    save_checkpoint(path, model, config, kind=kind, extra=extra)
    log(f"[egan_lib] {kind}: trained in {extra['train_seconds']:.1f} s, saved {path}")
    extra["_status"] = "trained"
    return extra
