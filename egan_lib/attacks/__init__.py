"""The attacks, one per module, on a shared base (input checks, eval mode, devices, losses).

    fgsm        FGSM (Goodfellow et al. 2015): the paper's attack; also one step through a defense
    pgd         PGD (Madry et al. 2018) with random restarts, cross-entropy or CW margin loss
    bpda        BPDA (Athalye et al. 2018) and ``through(defense, C)``: the defended classifier as one function
    onmanifold  a latent search for G(z) within the eps ball that the classifier gets wrong
    base        threat-model names, losses, predict/accuracy, purify_batched

Every attack is an L-inf attack on images in [0, 1]. The threat model of every number is named
where it is reported (``egan_lib.attacks.base.THREAT_MODELS``).
"""
from __future__ import annotations

from ..config import eps_grid
from .base import (LOSSES, THREAT_ADAPTIVE_BPDA, THREAT_ADAPTIVE_PGD, THREAT_MODELS, THREAT_OBLIVIOUS,
                   THREAT_OBLIVIOUS_PGD, THREAT_ON_MANIFOLD, accuracy, predict, purify_batched)
from .autoattack import autoattack
from .bpda import Through, bpda, through
from .eot import EOT, eot
from .fgsm import fgsm, fgsm_grid, fgsm_through, gradient_sign
from .onmanifold import on_manifold_attack
from .pgd import pgd

__all__ = ["eps_grid", "fgsm", "fgsm_grid", "fgsm_through", "gradient_sign", "pgd", "bpda", "through", "Through",
           "on_manifold_attack", "autoattack", "eot", "EOT", "predict", "accuracy", "purify_batched", "LOSSES", "THREAT_MODELS",
           "THREAT_OBLIVIOUS", "THREAT_OBLIVIOUS_PGD", "THREAT_ADAPTIVE_PGD", "THREAT_ADAPTIVE_BPDA",
           "THREAT_ON_MANIFOLD"]
