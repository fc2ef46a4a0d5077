"""The on-manifold attack on EGAN: search the generator's latent space for an image G(z) within the eps
ball around x that the classifier gets wrong (threat model "on-manifold"; white-box on G, E and C)."""
from __future__ import annotations

import math

import torch

from .._validate import (check_callable, check_eps, check_images, check_labels, check_positive_float,
                         check_positive_int, check_seed)
from ..eval.stats import accuracy_summary, wilson_interval
from ..torch_utils import EvalMode, RowAdam, plain
from .base import THREAT_ON_MANIFOLD, check_attack_inputs, check_defense, device_of, margin, predict, purify_batched


def on_manifold_attack(generator, encoder, classifier, x: torch.Tensor, y: torch.Tensor, eps: float, *,
                       steps: int = 200, lr: float = 0.05, restarts: int = 1, seed: int = 0, penalty: float = 10.0,
                       restart_sigma: float = 0.5, through_encoder: bool = False, defense=None,
                       batch_size: int = 256, device=None, progress: bool = False) -> dict:
    """On-manifold attack on EGAN (threat model "on-manifold"; white-box on G, E and C).

    What it means: EGAN replaces an input by the generator's reconstruction G(E(x)), so it removes
    whatever the generator cannot draw. An attacker who searches the generator's own output space
    finds images that survive the purification: for each x it looks for a latent z such that

        x' = G(z) lies within the L-inf ball: ||G(z) - x||_inf <= eps, and C(G(z)) != y,

    i.e. an image *on the generator's manifold*, within the same eps budget as every other attack
    here, that the classifier gets wrong (cf. the "spanner" / on-manifold attacks on Defense-GAN,
    Athalye et al. 2018, sec. 5.3; Song et al., "Constructing Unrestricted Adversarial Examples
    with Generative Models", NeurIPS 2018). ``through_encoder=True`` attacks the whole pipeline,
    C(G(E(G(z)))) != y, instead of C(G(z)).

    Search (penalty method, Adam on z, ``steps`` steps per run): minimise, per image,
    margin(C(G(z)), y) + penalty * sum_pixels relu(|G(z) - x| - eps), where margin =
    out_y - max_{j != y} out_j. Run 1 starts at z = E(x); runs 2..``restarts`` start at
    E(x) + restart_sigma * N(0, I) (seeded). Only candidates that satisfy the constraint exactly
    are accepted; an image stops at its first accepted misclassified candidate.

    Returned images x': the first successful G(z); else the feasible G(z) with the smallest margin;
    else (no latent reached the eps ball: G cannot draw anything that close to x) x itself, i.e.
    the attacker submits the clean image. Every x' satisfies ||x' - x||_inf <= eps and [0, 1].

    Evaluation (precise): ``success_rate`` = fraction of images with an accepted G(z) that the
    attack's target (C(G(z)), or C(G(E(G(z)))) with ``through_encoder``) misclassifies;
    ``accuracy[eps]`` = mean(C(purify(x')) == y) on all n images, with purify = EGAN's
    G(E(.)) from the given generator and encoder (or ``defense.purify`` when a defense is given),
    with Wilson 95% intervals. ``feasible_rate`` = fraction with any accepted candidate (bounded
    by how well G can reproduce x within eps: at small eps often few).
    """
    check_callable(generator, "generator"); check_callable(encoder, "encoder")
    x, y, eps = check_attack_inputs(classifier, x, y, eps, "classifier")
    steps = check_positive_int(steps, "steps")
    restarts = check_positive_int(restarts, "restarts")
    lr = check_positive_float(lr, "lr")
    penalty = check_positive_float(penalty, "penalty", allow_zero=True)
    restart_sigma = check_positive_float(restart_sigma, "restart_sigma", allow_zero=True)
    batch_size = check_positive_int(batch_size, "batch_size")
    seed = check_seed(seed)
    if defense is not None:
        check_defense(defense)
    dev = device_of(generator, device)
    n = x.shape[0]
    x_cpu, y_cpu = x.detach().float().cpu(), y.cpu()
    x_out = x_cpu.clone()
    best_margin = torch.full((n,), float("inf"))
    feasible = torch.zeros(n, dtype=torch.bool)
    success = torch.zeros(n, dtype=torch.bool)
    gen = torch.Generator().manual_seed(seed)
    from tqdm.auto import tqdm

    def target(xg):
        return classifier(generator(encoder(xg))) if through_encoder else classifier(xg)

    with EvalMode(generator, encoder, classifier), tqdm(total=restarts * math.ceil(n / batch_size),
                                                         desc=f"on-manifold eps={eps:g}", disable=not progress,
                                                         leave=False) as bar:
        with torch.no_grad():
            z_enc = torch.cat([encoder(x_cpu[i:i + batch_size].to(dev)).float().cpu()
                               for i in range(0, n, batch_size)])
        z_out = z_enc.clone()
        for r in range(restarts):
            noise = torch.randn(z_enc.shape, generator=gen) * restart_sigma if r > 0 else None
            todo = torch.nonzero(~success).flatten()
            for i in range(0, todo.numel(), batch_size):
                rows = todo[i:i + batch_size]
                xb, yb = x_cpu[rows].to(dev), y_cpu[rows].to(dev)
                b_x, b_z, b_m = x_out[rows].to(dev), z_out[rows].to(dev), best_margin[rows].to(dev)
                b_feas, b_succ = feasible[rows].to(dev), success[rows].to(dev)
                z = (z_enc[rows] + (noise[rows] if noise is not None else 0.0)).to(dev)
                opt = RowAdam(z, lr)
                active = torch.arange(rows.numel(), device=dev)
                for t in range(steps + 1):
                    last = t == steps
                    zt = z.detach().requires_grad_(not last)
                    xa = xb[active]
                    with torch.enable_grad() if not last else torch.no_grad():
                        xg = generator(zt)
                        m = margin(target(xg), yb[active])
                        viol = (xg - xa).abs().sub(eps).clamp(min=0).flatten(1).sum(1)
                        obj = m + penalty * viol
                    xg_d, m_d = xg.detach(), m.detach()
                    ok = (xg_d - xa).abs().flatten(1).amax(1) <= eps      # accept only exact feasibility
                    hit = ok & (m_d < 0)
                    better = ok & (hit | (m_d < b_m[active]))
                    idx = active[better]
                    b_x[idx], b_z[idx], b_m[idx] = xg_d[better], zt.detach()[better], m_d[better]
                    b_feas[active[ok]] = True
                    b_succ[active[hit]] = True
                    if last:
                        break
                    (g,) = torch.autograd.grad(obj.sum(), zt)
                    z = opt.step(zt.detach(), g)
                    keep = ~hit
                    if not bool(keep.any()):
                        break
                    z, active = z[keep], active[keep]
                    opt.keep(keep)
                x_out[rows], z_out[rows], best_margin[rows] = b_x.float().cpu(), b_z.float().cpu(), b_m.float().cpu()
                feasible[rows], success[rows] = b_feas.cpu(), b_succ.cpu()
                bar.update(1)
            if bool(success.all()):
                break
    # the constraint holds by construction (accepted only when it held); clamp guards float noise in G
    x_out = torch.minimum(torch.maximum(x_out, x_cpu - eps), x_cpu + eps).clamp_(0.0, 1.0)
    if defense is not None:
        purified, how = purify_batched(defense, x_out, batch_size), getattr(defense, "name", "defense")
    else:
        with torch.no_grad(), EvalMode(generator, encoder):
            purified = torch.cat([generator(encoder(x_out[i:i + batch_size].to(dev))).float().cpu()
                                  for i in range(0, n, batch_size)])
        how = "EGAN G(E(x'))"
    correct = predict(classifier, purified, batch_size=batch_size, device=device) == y_cpu
    res = accuracy_summary({eps: correct}, THREAT_ON_MANIFOLD, defense=how)
    k = int(success.sum())
    res.update(eps=eps, success_rate=k / n, success_ci95=list(wilson_interval(k, n)),
               feasible_rate=float(feasible.float().mean()), x_adv=x_out.to(dtype=x.dtype), z=z_out,
               success=success, feasible=feasible,
               attack={"steps": steps, "lr": lr, "restarts": restarts, "seed": seed, "penalty": penalty,
                       "restart_sigma": restart_sigma, "through_encoder": through_encoder})
    return res
