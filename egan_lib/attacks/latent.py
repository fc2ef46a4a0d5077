"""Attacks on EGAN's encoder path: PGD on an objective of E's input alone (chapter 08).

``encoder_attack`` maximises, within the eps ball, one of

* ``reconstruction``: ||G(E(x + δ)) - x||², the perturbation that spoils the purified image most;
* ``latent``: ||E(x + δ) - E(x)||², the one that moves the latent most (the *latent-path* attack:
  what a reader tries first against a robust encoder, since it needs neither C nor the labels);
* ``classifier``: the cross-entropy of C(G(E(x + δ))) against the label.

It is the inner maximisation of the robust encoder's training (``egan_lib.robust``) and, with
``latent_path_attack``, an attack of its own: restarts from random points of the ball, each image
judged by the deployed pipeline C(purify(x_adv)) after every restart, the broken ones kept.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import (check_eps, check_images, check_labels, check_module, check_positive_float,
                         check_positive_int, check_seed)
from ..torch_utils import EvalMode, autocast_bf16, plain
from .base import check_defense, predict, purify_batched
from .fast import fold_batchnorm

OBJECTIVES = ("reconstruction", "latent", "classifier")


def check_objective(objective: str, classifier, y) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
    if objective == "classifier":
        if classifier is None or y is None:
            raise ValueError("objective 'classifier': needs the classifier and the labels")
        check_module(classifier, "classifier")


def _inner_loss(E, G, xa, x, objective, classifier, y, z_clean, bf16):
    with autocast_bf16(xa.device, bf16):
        z = E(xa)
    z = z.float()
    if objective == "latent":
        return (z - z_clean).pow(2).sum(1)
    xr = G(z)
    if objective == "reconstruction":
        return (xr - x).flatten(1).pow(2).sum(1)
    return F.nll_loss(classifier(xr), y, reduction="none")


def encoder_attack(encoder: nn.Module, generator: nn.Module, x: torch.Tensor, eps: float, *, steps: int = 5,
                   step_size: float | None = None, objective: str = "reconstruction", classifier=None, y=None,
                   random_start: bool = True, generator_rng: torch.Generator | None = None,
                   bf16: bool = False) -> torch.Tensor:
    """x + δ with ||δ||_inf <= eps (and x + δ in [0, 1]) maximising the per-image ``objective`` by PGD
    (signed gradient steps of ``step_size``, default 2.5 eps / steps, from a uniform random start).
    E, G (and C) are used in eval mode and are not changed. Also an attack on its own: with
    ``objective="latent"`` it is the attack on the latent path of chapter 08."""
    check_module(encoder, "encoder"); check_module(generator, "generator")
    x = plain(check_images(x, "x"))
    eps = check_eps(eps, "eps")
    steps = check_positive_int(steps, "steps")
    check_objective(objective, classifier, y)
    if y is not None:
        y = check_labels(y, n=x.shape[0], name="y")
    alpha = 2.5 * eps / steps if step_size is None else check_positive_float(step_size, "step_size")
    if eps == 0:
        return x.clone()
    dev = x.device
    lo, hi = (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0)
    if random_start:
        u = torch.rand(x.shape, generator=generator_rng, device="cpu").to(dev)
        xa = torch.minimum(torch.maximum(x + eps * (2 * u - 1), lo), hi)
    else:
        xa = x.clone()
    with EvalMode(encoder, generator, classifier):
        z_clean = None
        if objective == "latent":
            with torch.no_grad(), autocast_bf16(dev, bf16):
                z_clean = encoder(x).float()
        for _ in range(steps):
            xa = xa.detach().requires_grad_(True)
            with torch.enable_grad():
                loss = _inner_loss(encoder, generator, xa, x, objective, classifier, y, z_clean, bf16).sum()
                (g,) = torch.autograd.grad(loss, xa)
            xa = torch.minimum(torch.maximum(xa.detach() + alpha * g.sign(), lo), hi)
    return xa.detach()


def latent_path_attack(defense, classifier, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 100,
                       restarts: int = 1, seed: int = 0, batch_size: int = 256, bf16: bool = False, device=None,
                       fold: bool = False):
    """The latent-path attack on an EGAN-like defense (one with ``encoder`` and ``generator``): per restart,
    ``encoder_attack(objective="latent")`` from a random start drawn from (seed, restart), then the deployed
    pipeline judges every image still standing; an image it misclassifies keeps that x_adv and is not
    attacked again. Returns (x_adv, {"fooled", "fooled_after_restart"}) like ``pgd``'s details.
    ``bf16``: the attacker's gradients under bf16 autocast; ``fold``: on fp32 copies of E and G with
    BatchNorm folded (``egan_lib.attacks.fast``), the deployed pipeline still judging."""
    check_defense(defense)
    if not (isinstance(getattr(defense, "encoder", None), nn.Module)
            and isinstance(getattr(defense, "generator", None), nn.Module)):
        raise TypeError(f"defense: the latent-path attack needs an encoder and a generator (EGAN), got "
                        f"{getattr(defense, 'name', type(defense).__name__)}")
    check_module(classifier, "classifier")
    x = plain(check_images(x)).detach().float().cpu()
    y = check_labels(y, n=x.shape[0]).cpu()
    eps = check_eps(eps)
    steps = check_positive_int(steps, "steps")
    restarts = check_positive_int(restarts, "restarts")
    batch_size = check_positive_int(batch_size, "batch_size")
    seed = check_seed(seed)
    if not isinstance(fold, bool):
        raise TypeError(f"fold: expected True or False, got {fold!r}")
    dev = defense.device
    E, G = (fold_batchnorm(defense.encoder), fold_batchnorm(defense.generator)) if fold else \
        (defense.encoder, defense.generator)
    best = x.clone()
    fooled = torch.zeros(len(y), dtype=torch.bool)
    after = []
    for r in range(restarts):
        todo = torch.nonzero(~fooled).flatten()
        rng = torch.Generator().manual_seed(seed * 1_000_003 + r)
        for i in range(0, todo.numel(), batch_size):
            rows = todo[i:i + batch_size]
            xa = encoder_attack(E, G, x[rows].to(dev), eps, steps=steps,
                                objective="latent", generator_rng=rng, bf16=bf16).cpu()
            wrong = predict(classifier, purify_batched(defense, xa, batch_size), batch_size=batch_size,
                            device=device).cpu() != y[rows]
            best[rows[wrong]] = xa[wrong]
            fooled[rows[wrong]] = True
            if r == restarts - 1:
                keep = rows[~wrong]
                best[keep] = xa[~wrong]             # the last restart's iterate for the images left
        after.append(fooled.clone())
    return best, {"fooled": fooled, "fooled_after_restart": torch.stack(after)}
