"""A robust encoder for EGAN: adversarial training of E, with or without labels (chapter 08).

EGAN purifies x into G(E(x)). An attacker who differentiates through C∘G∘E finds a small δ that
moves E(x + δ) to the latent of another digit (chapter 07). Adversarial training of E closes that
door the way Madry et al. close it for a classifier: a min-max problem

    min_E  E_x [ max_{||δ||_inf <= eps}  ℓ(E, x, δ) ],

with the inner maximisation done by a few PGD steps (``egan_lib.attacks.latent.encoder_attack``) and the
outer minimisation
by Adam on E. The inner objective decides what E must resist:

* ``reconstruction`` (label-free): ||G(E(x + δ)) - x||² — the perturbation that spoils the purified image most;
* ``latent`` (label-free): ||E(x + δ) - E(x)||² — the one that moves the latent most;
* ``classifier`` (gives up EGAN's agnosticism): the cross-entropy of C(G(E(x + δ))) against the label,
  the purifier's analogue of adversarial training of a classifier.

The outer loss is always the reconstruction of the clean image from the perturbed one,
||G(E(x + δ)) - x||² (so E stays an inverter of G), plus, for ``classifier``, ``ce_weight`` times the
cross-entropy of C(G(E(x + δ))). Label-free training runs on generated images G(z), as the paper's E
does; the classifier variant on real training digits with their labels. A share ``clean_fraction``
of each batch is left unperturbed.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import (check_eps, check_fraction, check_images, check_labels, check_module, check_positive_float,
                        check_positive_int, check_seed)
from .config import device as pick_device
from .torch_utils import autocast_bf16
from ._atomic import atomic_write
from .checkpoints import state_sha256
from .attacks.fast import fold_batchnorm
from .attacks.latent import OBJECTIVES, check_objective, encoder_attack  # noqa: F401  (re-exported)
from .training import SCHEDULES, generate, learning_rate, log_line, progress_bar, reconstruction_loss, seeded_generator

_STATE_FORMAT = 1           # the resumable training state's layout


def _save_partial(path: Path, state: dict) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def _load_partial(path: Path, settings: dict, start_sha: str) -> dict:
    """The resumable state at ``path``, verified: same settings, same starting encoder, intact weights."""
    try:
        st = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same error for the user
        raise ValueError(f"resume: {path} is not a readable training state ({type(e).__name__}: {e}); "
                         "delete it to start over") from None
    if not isinstance(st, dict) or st.get("format") != _STATE_FORMAT:
        raise ValueError(f"resume: {path} is not a robust-encoder training state; delete it to start over")
    diff = sorted(k for k in set(settings) | set(st["settings"]) if settings.get(k) != st["settings"].get(k))
    if diff or st["start_sha256"] != start_sha:
        what = ", ".join(f"{k}: stored {st['settings'].get(k)!r}, asked {settings.get(k)!r}" for k in diff) or \
            "the starting encoder's weights differ"
        raise ValueError(f"resume: {path} was made by another run ({what}); delete it or choose another path")
    if state_sha256(st["encoder"]) != st["encoder_sha256"]:
        raise ValueError(f"resume: {path}: the stored encoder weights fail their sha256 check; delete it")
    return st


def robust_step(E, G, opt, xb, yb, *, eps: float, inner_steps: int, objective: str, n_clean: int,
                classifier=None, ce_weight: float = 1.0, bf16: bool = False, rng=None) -> float:
    """One step of the min-max problem on the batch ``xb``: the inner maximisation perturbs the images
    after the first ``n_clean`` (PGD on ``objective`` within ``eps``, E in eval mode with BatchNorm folded,
    about 1.7x faster per PGD step on 2 CPU cores: ``egan_lib.attacks.fast``), then one step of ``opt`` on
    the outer loss ||G(E(x + δ)) - x||² (+ ``ce_weight`` x the classifier's cross-entropy for
    ``classifier``), E in train mode. Returns the outer loss."""
    check_module(E, "E"); check_module(G, "G")
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"opt: expected a torch optimizer over E's parameters, got {type(opt).__name__}")
    xb = check_images(xb, "xb")
    check_objective(objective, classifier, yb)
    if isinstance(n_clean, bool) or not isinstance(n_clean, int) or not 0 <= n_clean <= xb.shape[0]:
        raise ValueError(f"n_clean: expected an integer in [0, {xb.shape[0]}], got {n_clean!r}")
    xa = xb.clone()
    if n_clean < xb.shape[0]:
        xa[n_clean:] = encoder_attack(fold_batchnorm(E), G, xb[n_clean:], eps, steps=inner_steps,
                                      objective=objective, classifier=classifier,
                                      y=None if yb is None else yb[n_clean:], generator_rng=rng, bf16=bf16)
    E.train()
    with autocast_bf16(xb.device, bf16):
        z = E(xa)
    xr = G(z.float())
    loss = reconstruction_loss(xb, xr)
    if objective == "classifier":
        loss = loss + ce_weight * F.nll_loss(classifier(xr), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def train_robust_encoder(encoder: nn.Module, generator: nn.Module, *, eps: float, image_steps: int,
                         inner_steps: int = 5, objective: str = "reconstruction", clean_fraction: float = 0.5,
                         images: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                         n_latents: int = 60_000, classifier=None, ce_weight: float = 1.0, batch_size: int = 64,
                         lr: float = 1e-4, schedule: str = "wsd", seed: int = 0, device=None, bf16: bool = False,
                         progress: bool = True, log_every: int = 20, resume=None,
                         checkpoint_every_s: float = 180.0) -> dict:
    """Adversarial training of ``encoder`` (in place; start from a converged E) against its own inverse G.

    Each step: a batch of training images x (G(z) for the label-free objectives, drawn once from
    ``n_latents`` latents; ``images`` / ``labels`` when given, required for ``classifier``); the last
    (1 - clean_fraction) of the batch is perturbed by ``encoder_attack`` (``inner_steps`` PGD steps
    within ``eps``, E in eval mode, BatchNorm folded); one Adam step on the outer loss (module docstring),
    E in train mode, at the learning rate of ``schedule`` (``egan_lib.training.learning_rate``).
    Budget: ``image_steps`` (steps x batch). Every random draw depends only on (seed, step): the batch
    order on the epoch, the attack's random start on the step, so a resumed run is the same run.

    ``resume``: a file for the training state (weights, Adam's moments, step, history), written
    atomically every ``checkpoint_every_s`` seconds and at the end; when it exists, training continues
    from it, after checking that it was made with the same settings and starting encoder.
    Returns the history {"loss", "step", "seconds", "settings"}."""
    check_module(encoder, "encoder"); check_module(generator, "generator")
    eps = check_eps(eps, "eps")
    image_steps = check_positive_int(image_steps, "image_steps")
    inner_steps = check_positive_int(inner_steps, "inner_steps")
    clean_fraction = check_fraction(clean_fraction, "clean_fraction")
    batch_size = check_positive_int(batch_size, "batch_size")
    lr = check_positive_float(lr, "lr")
    ce_weight = check_positive_float(ce_weight, "ce_weight")
    log_every = check_positive_int(log_every, "log_every")
    checkpoint_every_s = check_positive_float(checkpoint_every_s, "checkpoint_every_s")
    seed = check_seed(seed)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}")
    if image_steps < batch_size:
        raise ValueError(f"image_steps: {image_steps:,} is less than one batch of {batch_size}")
    check_objective(objective, classifier, labels)
    dev = pick_device(device)
    G = generator.to(dev).eval()
    if images is None:
        if objective == "classifier":
            raise ValueError("objective 'classifier': needs real training images and their labels")
        X = generate(G, check_positive_int(n_latents, "n_latents"), seed=seed, device=dev)
    else:
        X = check_images(images, "images").to(dev)
    Y = None if labels is None else check_labels(labels, n=X.shape[0], name="labels").to(dev)
    if X.shape[0] < batch_size:
        raise ValueError(f"images: {X.shape[0]} training images are fewer than one batch of {batch_size}")
    C = None
    if classifier is not None:
        C = classifier.to(dev).eval()
    settings = {"objective": objective, "eps": eps, "inner_steps": inner_steps,
                "clean_fraction": clean_fraction, "image_steps": image_steps, "batch": batch_size, "lr": lr,
                "schedule": schedule, "ce_weight": ce_weight if objective == "classifier" else None,
                "data": "G(z)" if images is None else f"{X.shape[0]} given images",
                "n_latents": n_latents if images is None else None, "bf16": bf16, "seed": seed}
    E = encoder.to(dev)
    start_sha = state_sha256(E.state_dict())
    opt = torch.optim.Adam(E.parameters(), lr=lr)
    total, per_epoch = image_steps // batch_size, X.shape[0] // batch_size
    hist = {"loss": [], "step": [], "seconds": 0.0}
    step, run, cnt = 0, 0.0, 0         # run / cnt: the loss summed since the last logged step
    resume = None if resume is None else Path(resume)
    if resume is not None and resume.exists():
        st = _load_partial(resume, settings, start_sha)
        E.load_state_dict(st["encoder"])
        opt.load_state_dict(st["optimizer"])
        step, hist = int(st["step"]), st["history"]
        run, cnt = st["running"]
        log_line(progress, f"Robust encoder: resumed {resume} at step {step:,} of {total:,}")
    n_clean = int(round(clean_fraction * batch_size))
    frozen = [q for m in (G, C) if m is not None for q in m.parameters()]
    flags = [q.requires_grad for q in frozen]

    def state():
        w = {k: v.detach().cpu().clone() for k, v in E.state_dict().items()}
        return {"format": _STATE_FORMAT, "settings": settings, "start_sha256": start_sha, "step": step,
                "encoder": w, "encoder_sha256": state_sha256(w), "optimizer": opt.state_dict(), "history": hist,
                "running": (run, cnt)}

    perm, perm_epoch = None, -1
    t_last = t0 = time.perf_counter()
    seconds0 = hist["seconds"]
    try:
        for q in frozen:
            q.requires_grad_(False)
        with progress_bar(total - step, "Robust encoder", progress) as bar:
            while step < total:
                ep, b = divmod(step, per_epoch)
                if ep != perm_epoch:
                    perm, perm_epoch = torch.randperm(X.shape[0], generator=seeded_generator(seed + 1 + ep)), ep
                idx = perm[b * batch_size:(b + 1) * batch_size].to(dev)
                xb, yb = X[idx], None if Y is None else Y[idx]
                for group in opt.param_groups:
                    group["lr"] = learning_rate(schedule, step, total, lr)
                loss = robust_step(E, G, opt, xb, yb, eps=eps, inner_steps=inner_steps, objective=objective,
                                   n_clean=n_clean, classifier=C, ce_weight=ce_weight, bf16=bf16,
                                   rng=seeded_generator(seed + 1_000_003 + step))
                step += 1
                run += loss; cnt += 1
                now = time.perf_counter()
                hist["seconds"] = seconds0 + now - t0
                if cnt == log_every or step == total:
                    hist["loss"].append(run / cnt); hist["step"].append(step); run, cnt = 0.0, 0
                    log_line(progress, f"Robust encoder: step {step:,} of {total:,}, loss {hist['loss'][-1]:.3f}, "
                                       f"{hist['seconds'] / step:.1f} s per step")
                bar.update(1)
                if resume is not None and (now - t_last >= checkpoint_every_s or step == total):
                    _save_partial(resume, state())
                    t_last = now
    finally:
        for q, f in zip(frozen, flags):
            q.requires_grad_(f)
        E.eval()
    log_line(progress, f"Robust encoder: {total:,} steps, last logged loss {hist['loss'][-1]:.3f}")
    return {**hist, "settings": settings}
