"""Robust EGAN (chapter 08, beyond the paper): EGAN whose encoder is adversarially fine-tuned.

    EGAN-R    label-free: E learns to map x + δ back near the latent of x, δ found by PGD on the
              reconstruction error ||G(E(x + δ)) - x||² (or the latent distance); no classifier, no
              labels, so the purifier stays class- and classifier-agnostic as the paper insists
    EGAN-RC   gives that up: δ maximises the classifier's loss through C(G(E(x + δ))) and the outer
              loss adds it (the purifier's analogue of Madry et al.'s adversarial training)

Both start from the converged encoder of the paper's EGAN (``ws.encoder()``) and keep its G and C.
Their recipe is ``egan_lib.robust.train_robust_encoder`` with the profile's ``robust_*`` fields; the
training is resumable (its state is ``<checkpoints>/<kind>.partial.pt`` until it finishes), so
``python -m egan_lib.workflow --profile cpu --train EGAN-R`` can run in the background and be
stopped at any moment.
"""
from __future__ import annotations

import copy

from ..checkpoints import model_sha256
from ..robust import train_robust_encoder
from .base import register
from .egan import EGAN

#: variant name -> (checkpoint kind, objective of the inner maximisation or None for the profile's
#: label-free one, uses the classifier and the labels)
VARIANTS = {"EGAN-R": ("robust_encoder", None, False), "EGAN-RC": ("robust_encoder_clf", "classifier", True)}


def robust_config(ws, variant: str, E, G, C=None) -> dict:
    """The producing config of a robust encoder's checkpoint: every ``robust_*`` field it uses and the
    sha256 of the networks it starts from (E) and trains against (G, and C for EGAN-RC)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {sorted(VARIANTS)}, got {variant!r}")
    p = ws.profile
    _, objective, uses_c = VARIANTS[variant]
    cfg = {"objective": objective or p.robust_objective, "eps": p.robust_eps, "inner_steps": p.robust_inner_steps,
           "clean_fraction": p.robust_clean_fraction, "image_steps": p.robust_image_steps, "batch": p.robust_batch,
           "lr": p.robust_lr, "schedule": p.robust_schedule, "n_latents": None if uses_c else p.robust_latents,
           "bf16": p.robust_bf16, "encoder_sha256": model_sha256(E), "generator_sha256": model_sha256(G)}
    if uses_c:
        cfg.update(ce_weight=p.robust_ce_weight, classifier_sha256=model_sha256(C),
                   train_size=p.train_size)
    return cfg


def robust_encoder(ws, variant: str = "EGAN-R"):
    """(E_robust, history) of ``variant``, load-or-train from the Workspace (cached)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {sorted(VARIANTS)}, got {variant!r}")
    kind, objective, uses_c = VARIANTS[variant]
    p = ws.profile
    G, _ = ws.generator()
    E0, _ = ws.encoder()
    C = ws.classifier()[0] if uses_c else None
    cfg = robust_config(ws, variant, E0, G, C)
    partial = ws.checkpoint_dir / f"{kind}.partial.pt"

    def train(E):
        x, y = ws.train_set() if uses_c else (None, None)
        hist = train_robust_encoder(E, G, eps=p.robust_eps, image_steps=p.robust_image_steps,
                                    inner_steps=p.robust_inner_steps, objective=cfg["objective"],
                                    clean_fraction=p.robust_clean_fraction, images=x, labels=y,
                                    n_latents=p.robust_latents, classifier=C, ce_weight=p.robust_ce_weight,
                                    batch_size=p.robust_batch, lr=p.robust_lr, schedule=p.robust_schedule,
                                    seed=ws.seed, device=ws.device, bf16=p.robust_bf16, progress=ws.progress,
                                    resume=partial)
        return {"history": hist, "train_seconds": hist["seconds"]}
    E, hist = ws.trained(kind, lambda: copy.deepcopy(E0), train, **cfg)
    if partial.exists() and ws.timings.get(kind, {}).get("status") == "trained":
        partial.unlink()                     # the final checkpoint is saved and verified: the state is spent
    return E, hist


def _build(ws, variant: str) -> EGAN:
    p, dev = ws.profile, ws.device
    G, _ = ws.generator()
    E, _ = robust_encoder(ws, variant)
    d = EGAN(E, G, bf16=p.bf16 and dev.type == "cpu", channels_last=p.channels_last, device=dev)
    d.name = variant
    return d


@register("EGAN-R", order=20, paper=False)
def build_label_free(ws) -> EGAN:
    return _build(ws, "EGAN-R")


@register("EGAN-RC", order=21, paper=False)
def build_with_classifier(ws) -> EGAN:
    return _build(ws, "EGAN-RC")
