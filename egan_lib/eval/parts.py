"""One campaign piece computed as stored parts of ``chunk`` images, so that an attack that runs for hours
(AutoAttack through a robust encoder, where most images survive to the last component) is written to
disk every few minutes and resumes at the first part that is not stored.

A part is an ordinary stored evaluation (``egan_lib.eval.store.load_or_evaluate``) of images
[start, stop) of the piece, next to the piece's file (``eps0.10.pt`` -> ``eps0.10.part0000-0100.pt``),
with its own settings (the part's images, its bounds) and seed (``seed + start``: every part draws its
own random starts). ``merge`` joins the parts into the result the whole piece would have: the
per-image outcomes concatenated in image order, accuracy and interval recomputed on all n images, the
cost per image averaged over images.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .._validate import check_positive_int
from .stats import accuracy_summary

_JOINED = {"threat_model", "accuracy", "ci95", "n", "correct", "correct_after_restart", "attacker_disagrees",
           "seconds_per_image", "adv", "attacked"}


def bounds(n: int, chunk: int) -> list:
    """[(start, stop)] of the parts of n images, ``chunk`` at a time (the last one may be shorter)."""
    n = check_positive_int(n, "n")
    chunk = check_positive_int(chunk, "chunk")
    return [(a, min(n, a + chunk)) for a in range(0, n, chunk)]


def part_path(path, start: int, stop: int) -> Path:
    """Where the part [start, stop) of the piece stored at ``path`` lives."""
    path = Path(path)
    return path.with_name(f"{path.stem}.part{start:04d}-{stop:04d}{path.suffix}")


def _none_attacked(part: dict) -> bool:
    return "attacked" in part and not any(bool(m.any()) for m in part["attacked"].values())


def merge(parts: list) -> dict:
    """The result of the whole piece from its parts' results, in image order (see the module docstring).
    Every part must hold the same eps values; the attack's description is the first part's, with its seed
    replaced by the rule of the parts' seeds."""
    if not isinstance(parts, (list, tuple)) or not parts:
        raise ValueError("parts: expected a non-empty list of part results")
    keys = [set(p["correct"]) for p in parts]
    if any(k != keys[0] for k in keys):
        raise ValueError(f"parts: every part must hold the same eps values, got {[sorted(k) for k in keys]}")
    first = parts[0]
    correct = {e: torch.cat([p["correct"][e] for p in parts]) for e in first["correct"]}
    src = next((p for p in parts if not _none_attacked(p)), first)   # a part whose attack ran, if any
    extra = {k: v for k, v in src.items() if k not in _JOINED}
    if isinstance(extra.get("attack"), dict) and "seed" in extra["attack"]:
        extra["attack"] = {**extra["attack"], "seed": f"{extra['attack']['seed']} + the first image index of each part",
                           "parts": len(parts)}
    res = accuracy_summary(correct, src["threat_model"], **extra)
    res["correct"] = correct
    with_restarts = [p for p in parts if "correct_after_restart" in p]
    if with_restarts and all("correct_after_restart" in p or _none_attacked(p) for p in parts):
        # a cascaded part that attacked no image (``egan_lib.eval.cascade``) ran no restart: all False
        k = {e: v.shape[0] for e, v in with_restarts[0]["correct_after_restart"].items()}
        res["correct_after_restart"] = {
            e: torch.cat([p["correct_after_restart"][e] if "correct_after_restart" in p else
                          torch.zeros(k[e], p["correct"][e].numel(), dtype=torch.bool) for p in parts], dim=1)
            for e in k}
    if all("attacked" in p for p in parts):
        res["attacked"] = {e: torch.cat([p["attacked"][e] for p in parts]) for e in first["attacked"]}
    if with_restarts and all("attacker_disagrees" in p or _none_attacked(p) for p in parts):
        res["attacker_disagrees"] = {e: sum(int(p.get("attacker_disagrees", {}).get(e, 0)) for p in parts)
                                     for e in with_restarts[0].get("attacker_disagrees", {})}
    n = [int(p["n"]) for p in parts]
    res["seconds_per_image"] = sum(float(p["seconds_per_image"]) * k for p, k in zip(parts, n)) / sum(n)
    return res
