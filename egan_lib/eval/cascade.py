"""A cascade of attacks: each attack runs only on the images every attack before it failed on, as
AutoAttack's standard version runs its four components (Croce & Hein, 2020).

The per-image worst case over the attacks is the same as if each attack had run on every image (an
image already broken stays broken whatever a later attack does), and the cost falls with the share of
images broken early: against a robust purifier, most of the cost of AutoAttack and the latent-path
attack goes to the images the restarts PGD could not break. What a cascaded piece no longer tells is
each attack's accuracy *alone*: its ``correct`` is the worst case over it and the attacks before it
(an image not attacked counts as broken), ``attacked`` says which images it ran on, and
``attack["cascade_after"]`` names the attacks before it. A piece's settings hold the digest of the
images it attacked, so when an earlier piece is recomputed with another outcome, the later ones are too.
"""
from __future__ import annotations

import hashlib

import torch

from .stats import accuracy_summary


def _check_mask(mask) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.dim() != 1:
        raise ValueError("mask: expected a 1-D boolean tensor (one entry per image)")
    return mask


def mask_sha256(mask: torch.Tensor) -> str:
    """The digest of a boolean per-image mask (which images a cascaded piece attacks)."""
    mask = _check_mask(mask)
    return hashlib.sha256(mask.cpu().numpy().tobytes()).hexdigest()


def settings(after: list, mask: torch.Tensor) -> dict:
    """What a cascaded piece adds to its settings: the attacks before it and the images it attacks."""
    return {"after": list(after), "attacked": int(mask.sum()), "attacked_sha256": mask_sha256(mask)}


def on_survivors(run_attack, mask: torch.Tensor, eps: float, *, threat_model: str, after: list, **extra) -> dict:
    """Run ``run_attack(rows)`` (a white-box result on the images ``rows`` of the piece, ``correct`` {eps:
    (len(rows),) bool}) on the images where ``mask`` is True and return the piece's result on all of
    them: ``correct`` False where the image was not attacked (an earlier attack broke it),
    ``correct_after_restart`` likewise, ``attacked`` {eps: mask}. With no image left, nothing runs and
    ``threat_model`` and ``extra`` (defense, attack) describe the result."""
    mask = _check_mask(mask)
    rows = mask.nonzero().flatten()
    n = mask.numel()
    correct = torch.zeros(n, dtype=torch.bool)
    r = run_attack(rows) if len(rows) else {"threat_model": threat_model, **extra}
    if len(rows):
        got = r["correct"][eps].cpu().bool()
        if got.numel() != len(rows):
            raise ValueError(f"run_attack: returned {got.numel()} outcomes for {len(rows)} attacked images")
        correct[rows] = got
    keep = {k: v for k, v in r.items() if k not in ("threat_model", "accuracy", "ci95", "n", "correct",
                                                    "correct_after_restart", "adv")}
    if isinstance(keep.get("attack"), dict):
        keep["attack"] = {**keep["attack"], "cascade_after": list(after)}
    out = accuracy_summary({eps: correct}, r["threat_model"], **keep)
    out["correct"] = {eps: correct}
    out["attacked"] = {eps: mask.clone()}
    if "correct_after_restart" in r:
        c = r["correct_after_restart"][eps].cpu().bool()
        full = torch.zeros(c.shape[0], n, dtype=torch.bool)
        full[:, rows] = c
        out["correct_after_restart"] = {eps: full}
    return out
