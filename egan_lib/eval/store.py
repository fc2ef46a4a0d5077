"""Expensive evaluations are artifacts, like weights.

An evaluation (chapter 06's protocol over every method and eps, say) is stored with the settings
that produced it: the data (a digest of the evaluated images and labels), the eps grid and sizes,
the classifier's weights and every defense's ``settings()`` (its hyper-parameters and the sha256 of
its networks). ``load_or_evaluate`` reuses the stored result when those settings are exactly the
same, says so (which run, machine, date, how long it took), and recomputes when asked
(``reevaluate=True``, the pipeline's ``--reevaluate``) or when anything it depends on changed.
Files are written atomically with their settings and a sha256 of the settings (the key).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import io
import json
import time
from pathlib import Path

import torch

from .. import __version__
from .._atomic import atomic_write
from .._validate import check_callable, check_images, check_labels, check_module
from ..checkpoints import model_sha256
from ..config import describe_runtime
from .results import Examples, Results, git_commit

FORMAT = 1


def tensor_sha256(*tensors: torch.Tensor) -> str:
    """sha256 of tensors' values (dtype, shape and bytes): the digest of an evaluated data set."""
    h = hashlib.sha256()
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tensor_sha256: expected tensors, got {type(t).__name__}")
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    return h.hexdigest()


def settings_key(settings: dict) -> str:
    """sha256 of the settings written as canonical JSON (sorted keys): equal settings, equal key."""
    if not isinstance(settings, dict) or not settings:
        raise ValueError("settings: expected a non-empty dict of what produced the evaluation")
    try:
        text = json.dumps(settings, sort_keys=True, allow_nan=False, default=str)
    except (TypeError, ValueError) as e:
        raise ValueError(f"settings: not JSON-serialisable ({e})") from e
    return hashlib.sha256(text.encode()).hexdigest()


def protocol_settings(classifier, defenses, x: torch.Tensor, y: torch.Tensor, eps_values, **extra) -> dict:
    """The settings of an evaluation with ``egan_lib.eval.protocol.evaluate``: data digest, eps grid,
    the classifier's weights, every defense's settings, and ``extra`` (sizes, batch, seed, ...)."""
    check_module(classifier, "classifier")
    x = check_images(x)
    y = check_labels(y, n=x.shape[0])
    defenses = list(defenses.values()) if isinstance(defenses, dict) else list(defenses)
    return {"protocol": "egan_lib.eval.protocol.evaluate", "data_sha256": tensor_sha256(x, y), "n": int(len(y)),
            "eps": [round(float(e), 6) for e in eps_values], "classifier_sha256": model_sha256(classifier),
            "defenses": [d.settings() for d in defenses], **extra}


def results_state(res: Results) -> dict:
    """A ``Results`` (examples and predictions included) as plain dicts and tensors, for torch.save."""
    if not isinstance(res, Results):
        raise TypeError(f"res: expected an egan_lib.eval.results.Results, got {type(res).__name__}")
    return dataclasses.asdict(res)


def results_from_state(state: dict) -> Results:
    d = dict(state)
    if d.get("examples") is not None:
        d["examples"] = Examples(**d["examples"])
    return Results(**d)


def _diff(stored: dict, wanted: dict) -> list[str]:
    keys = sorted(set(stored) | set(wanted))
    return [k for k in keys if json.dumps(stored.get(k), sort_keys=True, default=str)
            != json.dumps(wanted.get(k), sort_keys=True, default=str)]


def load_stored(path, settings: dict, *, from_state=results_from_state, log=print):
    """(result, info) of the evaluation stored at ``path`` when it was made with exactly ``settings``, else
    None (no file, another key, an unreadable file: said in ``log``). Reads only: nothing is computed or
    written. ``info`` as in :func:`load_or_evaluate`, with status "reused"."""
    path = Path(path)
    key = settings_key(settings)
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        ok = isinstance(stored, dict) and stored.get("format") == FORMAT
    except Exception as e:  # noqa: BLE001 - an unreadable file is the same as no file, and said so
        log(f"[store] {path.name}: unreadable ({type(e).__name__})")
        return None
    if ok and stored["key"] == key:
        return from_state(stored["result"]), {"status": "reused", "path": str(path), "key": key, **stored["provenance"]}
    if ok:
        log(f"[store] {path.name}: made with other settings ({', '.join(_diff(stored['settings'], settings))})")
    return None


def load_or_evaluate(path, settings: dict, compute, *, reevaluate: bool = False, to_state=results_state,
                     from_state=results_from_state, log=print):
    """(result, info): the stored evaluation at ``path`` when it was made with exactly ``settings``,
    else ``compute()`` (timed) stored there. ``info``: status ("reused" / "computed"), the settings'
    key, and the provenance of the result (machine, device, threads, date, seconds, commit, library)."""
    path = Path(path)
    check_callable(compute, "compute")
    key = settings_key(settings)
    if not reevaluate:
        got = load_stored(path, settings, from_state=from_state, log=lambda m: log(m + "; recomputing"))
        if got is not None:
            return got
    t0 = time.perf_counter()
    result = compute()
    seconds = time.perf_counter() - t0
    rt = describe_runtime()
    provenance = {"machine": rt["device_name"], "device": rt["device"], "threads": rt["torch_threads"],
                  "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  "seconds": round(seconds, 1), "git_commit": git_commit(), "egan_lib": __version__}
    payload = {"format": FORMAT, "key": key, "settings": json.loads(json.dumps(settings, default=str)),
               "provenance": provenance, "result": to_state(result)}
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    return result, {"status": "computed", "path": str(path), "key": key, **provenance}


def describe(info: dict) -> str:
    """One line for a chapter: where the numbers come from."""
    what = "reused the stored evaluation" if info["status"] == "reused" else "computed and stored the evaluation"
    return (f"{what} {Path(info['path']).name} (settings key {info['key'][:12]}): made {info['date']} on "
            f"{info['machine']} ({info['threads']} threads) in {info['seconds']:.0f} s, commit {info['git_commit']}"
            + ("" if info["status"] == "computed" else "; --reevaluate (or reevaluate=True) recomputes it"))
