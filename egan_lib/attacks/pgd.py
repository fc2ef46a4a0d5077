"""Projected gradient descent under an L-inf budget (Madry, Makelov, Schmidt, Tsipras & Vladu, ICLR 2018).

    x_{t+1} = Proj_{B(x, eps) ∩ [0,1]^d} ( x_t + alpha * sign(grad_x loss(f(x_t), y)) ),   alpha = 2.5 eps / steps

f is the classifier alone (oblivious) or ``through(defense, C)`` (white-box / BPDA).
"""
from __future__ import annotations

import math
import warnings

import torch

from .._validate import (check_callable, check_eps, check_images, check_labels, check_positive_float,
                         check_positive_int, check_seed)
from ..torch_utils import EvalMode, plain
from .base import check_attack_inputs, check_loss, device_of, input_grad, margin, networks_of, per_image_loss


def _pgd_restart(fn, x, y, start, eps, steps, alpha, kind, best, best_loss, fooled, confidence=0.0):
    """One PGD run from ``start`` on a batch (everything on the attack device). Updates in place, per
    image, best/best_loss/fooled: the first misclassified iterate, else the highest-loss one.
    An image leaves the batch as soon as it is misclassified (its first adversarial result is kept).
    Returns whether the first input gradient was exactly zero everywhere (gradient masking)."""
    lo, hi = (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)
    x_adv = start.clone()
    active = torch.arange(x.shape[0], device=x.device)
    zero_grad = None
    for t in range(steps + 1):
        last = t == steps
        xa = x_adv[active].detach().requires_grad_(not last)
        with torch.enable_grad() if not last else torch.no_grad():
            out = fn(xa)
            per = per_image_loss(out, y[active], kind)
        wrong = (out.detach().argmax(1) != y[active]) if confidence == 0.0 else \
            (-margin(out.detach().float(), y[active]) > confidence)
        better = wrong | (per.detach() > best_loss[active])
        idx = active[better]
        best[idx] = xa.detach()[better]
        best_loss[idx] = per.detach()[better]
        fooled[active[wrong]] = True
        if last:
            break
        g = input_grad(per.sum(), xa, "pgd")
        if zero_grad is None:
            zero_grad = bool((g == 0).all())
        x_adv[active] = torch.minimum(torch.maximum(xa.detach() + alpha * g.sign(), lo[active]), hi[active])
        active = active[~wrong]
        if active.numel() == 0:
            break
    return zero_grad


def pgd(model_fn, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 40, step_size: float | None = None,
        random_start: bool = True, restarts: int = 1, seed: int = 0, batch_size: int = 256, device=None,
        loss: str = "ce", return_details: bool = False, progress: bool = False, confidence: float = 0.0,
        judge=None):
    """L-inf projected gradient descent (Madry et al., ICLR 2018) on any differentiable ``model_fn``.

    Maximises the loss of ``model_fn(x) -> logits or log-probabilities`` over the ball
    ||x_adv - x||_inf <= eps intersected with [0, 1]^d by signed-gradient ascent:
    x <- Proj(x + step_size * sign(grad_x loss)). The threat model is whatever ``model_fn`` is:
    the classifier alone (oblivious), or ``through(defense, classifier)`` (white-box / BPDA).

    * ``step_size`` defaults to 2.5 * eps / steps (Madry et al.), so a run can cross the ball.
    * ``random_start``: the first run starts at a uniform point of the ball (x + U(-eps, eps),
      clipped); restarts 2..R always start at random points. Noise is drawn on the CPU from
      ``seed``, per restart for the whole input (in the images' logical order), so the random starts
      depend neither on ``batch_size`` nor on the memory layout of x.
    * Every iterate is checked: per image the *first* misclassified iterate is kept (that image
      then stops); otherwise the iterate with the highest loss over all steps and restarts. A
      restart runs only on the images not fooled yet.
    * ``loss``: "ce" (cross-entropy) or "cw" (Carlini-Wagner margin max_{j!=y} z_j - z_y).
    * ``confidence`` (>= 0): an iterate stops its image only when max_{j!=y} z_j - z_y > confidence.
      0 is "misclassified"; an attacker whose arithmetic differs from the deployed pipeline's (bf16)
      asks for a margin so that rounding cannot stop an image the deployed defense still gets right.
      ``inf``: no image stops within a restart (each keeps its highest-loss iterate), for an attacker
      whose function is random or a surrogate and so cannot tell whether the deployed one is fooled.
    * ``judge`` (optional): ``judge(x_adv, rows) -> bool tensor``, True where the *deployed* pipeline still
      classifies the images ``rows`` (CPU indices into x) right at ``x_adv`` (CPU). After every restart the
      judge sees the best iterate of each image that restart ran on, and its verdict replaces the
      attacker's: an image the attacker stopped but the judge finds still right is attacked again in the
      next restart (a white-box attacker may query the deployed defense), and ``fooled_after_restart``
      is then the deployed pipeline's verdict after each restart.
    * An nn.Module ``model_fn`` runs in eval mode (BatchNorm statistics), its mode restored after.

    Returns x_adv with the device and dtype of x; with ``return_details``, also a dict of CPU
    tensors: ``loss`` (the attacker's loss at x_adv), ``fooled`` (model_fn misclassified x_adv; with a
    judge, the judge found x_adv misclassified), ``fooled_after_restart`` (restarts, n): fooled after
    restart 1, 2, ... (the accuracy-vs-restarts curve of one run), and with a judge ``attacker_disagrees``
    (n,): images the attacker stopped at some restart that the judge still found right.
    """
    x, y, eps = check_attack_inputs(model_fn, x, y, eps)
    steps = check_positive_int(steps, "steps")
    restarts = check_positive_int(restarts, "restarts")
    batch_size = check_positive_int(batch_size, "batch_size")
    seed = check_seed(seed)
    kind = check_loss(loss)
    alpha = 2.5 * eps / steps if step_size is None else check_positive_float(step_size, "step_size")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 <= confidence:
        raise ValueError(f"confidence: expected a number >= 0 (a logit margin; inf: never stop), got {confidence!r}")
    confidence = float(confidence)
    if judge is not None:
        check_callable(judge, "judge")
    dev = device_of(model_fn, device)
    n = x.shape[0]
    x_cpu, y_cpu = x.detach().float().cpu().contiguous(), y.cpu()
    best = x_cpu.clone()
    best_loss = torch.full((n,), float("-inf"))
    fooled = torch.zeros(n, dtype=torch.bool)
    if eps == 0.0:  # nothing to search: evaluate x once
        restarts, steps = 1, 0
    gen = torch.Generator().manual_seed(seed)
    zero_grad_batches = []
    fooled_after = []                               # (restarts run, n): fooled after restart r
    disagree = torch.zeros(n, dtype=torch.bool)
    from tqdm.auto import tqdm
    bar = tqdm(total=restarts * math.ceil(n / batch_size), desc=f"PGD eps={eps:g}", disable=not progress, leave=False)
    with EvalMode(*networks_of(model_fn)), bar:
        for r in range(restarts):
            noise = torch.empty(x_cpu.shape).uniform_(-eps, eps, generator=gen) if eps > 0 else None
            todo = torch.nonzero(~fooled).flatten()
            for i in range(0, todo.numel(), batch_size):
                rows = todo[i:i + batch_size]
                xb, yb = x_cpu[rows], y_cpu[rows]
                start = xb if (r == 0 and not random_start) or noise is None else (xb + noise[rows]).clamp_(0.0, 1.0)
                b_best, b_loss, b_fooled = best[rows].to(dev), best_loss[rows].to(dev), fooled[rows].to(dev)
                zg = _pgd_restart(model_fn, xb.to(dev), yb.to(dev), start.to(dev), eps, steps, alpha, kind,
                                  b_best, b_loss, b_fooled, confidence)
                best[rows], best_loss[rows], fooled[rows] = b_best.cpu(), b_loss.cpu(), b_fooled.cpu()
                if zg is not None:
                    zero_grad_batches.append(zg)
                bar.update(1)
            if judge is not None and todo.numel():
                right = torch.as_tensor(judge(best[todo].clone(), todo.clone())).reshape(-1).cpu()
                if right.dtype != torch.bool or right.numel() != todo.numel():
                    raise ValueError(f"judge: expected a bool tensor of {todo.numel()} verdicts, got "
                                     f"{right.dtype} with {right.numel()} elements")
                disagree[todo[fooled[todo] & right]] = True
                fooled[todo] = ~right
            fooled_after.append(fooled.clone())
            if bool(fooled.all()):
                break
    if zero_grad_batches and all(zero_grad_batches):
        warnings.warn("pgd: the input gradient was exactly zero on every batch (gradient masking?): PGD cannot "
                      "move. If model_fn contains a non-differentiable purifier, attack it with BPDA "
                      "(through(defense, classifier, bpda=True)).", RuntimeWarning, stacklevel=2)
    x_adv = best.to(device=x.device, dtype=x.dtype)
    if return_details:
        while len(fooled_after) < restarts:           # stopped early: every image already fooled
            fooled_after.append(fooled.clone())
        det = {"loss": best_loss, "fooled": fooled, "fooled_after_restart": torch.stack(fooled_after)}
        if judge is not None:
            det["attacker_disagrees"] = disagree
        return x_adv, det
    return x_adv
