"""Adaptive attacks (chapter 07, "beyond the paper"): what happens when the attacker knows the defense.

The paper evaluates every defense in the *oblivious* (gray-box) threat model: FGSM's gradient is
taken through the classifier C alone and the defense then purifies that fixed x_adv. A defense that
only works because the attacker ignores it is not a defense (Athalye, Carlini & Wagner, "Obfuscated
Gradients Give a False Sense of Security", ICML 2018; Carlini et al., "On Evaluating Adversarial
Robustness", 2019). This module provides the attacks that take the defense into account.

Threat models (always reported next to a number, as the ``threat_model`` string of a result):

``"oblivious-pgd"``  (:func:`oblivious_pgd`) PGD through C alone, then every defense purifies
    the same x_adv: the paper's gray-box setting with a stronger attack than FGSM.
``"adaptive-pgd"``   (:func:`whitebox_accuracy`) white-box: the attacker knows the weights of the
    defense and of C and runs PGD on x -> C(purify(x)) with exact gradients (EGAN: C(G(E(x)))).
``"adaptive-bpda"``  (:func:`whitebox_accuracy`) the same for a non-differentiable purifier
    (PixelDefend's argmax, Defense-GAN's inner optimisation): BPDA, i.e. the real purification
    forward and the identity backward (Athalye et al. 2018, section 4.1).
``"adaptive-fgsm"`` / ``"adaptive-bpda-fgsm"``  one signed-gradient step through the defense.
``"on-manifold"``    (:func:`on_manifold_attack`) the attacker searches the generator's latent
    space for an image G(z) within the eps ball around x that C gets wrong.

Every attack here is an L-inf attack on images in [0, 1]: ||x_adv - x||_inf <= eps and
0 <= x_adv <= 1. The accuracy a function here reports is always measured on the *deployed*
pipeline, C(defense.purify(x_adv)), never on the attacker's own forward pass; for a randomised
defense (Defense-GAN's random restarts) this is a fresh draw, so no lucky draw is reported.

Results come as plain dicts that convert to the project's JSON schema with
:func:`to_method_entry`::

    {"threat_model": str, "accuracy": {eps: float}, "ci95": {eps: [lo, hi]}, "n": int, ...}

Reference lines (:data:`REFERENCE_LINES`) put the numbers in context: adversarially trained
classifiers on MNIST at eps = 0.3 under the strongest white-box attacks known.
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import (check_eps, check_images, check_labels, check_positive_float, check_positive_int)
from .config import device as _pick_device

__all__ = [
    "pgd", "fgsm_through", "bpda", "through", "Through", "whitebox_accuracy", "oblivious_pgd",
    "on_manifold_attack", "convergence_check", "HybridDefense", "guessing_bound_demo", "to_method_entry",
    "combine_eps", "ReferenceLine", "MADRY_PGD_AT_MNIST", "MADRY_PGD_AT_MNIST_BEST", "TRADES_MNIST",
    "REFERENCE_LINES", "THREAT_OBLIVIOUS_PGD", "THREAT_ADAPTIVE_PGD", "THREAT_ADAPTIVE_BPDA",
    "THREAT_ON_MANIFOLD",
]

THREAT_OBLIVIOUS_PGD = "oblivious-pgd"
THREAT_ADAPTIVE_PGD = "adaptive-pgd"
THREAT_ADAPTIVE_BPDA = "adaptive-bpda"
THREAT_ON_MANIFOLD = "on-manifold"
_LOSSES = ("ce", "cw")


# ---------------------------------------------------------------------------------------- reference lines
@dataclass(frozen=True)
class ReferenceLine:
    """A published robust accuracy on MNIST, for a horizontal line in a figure."""
    label: str
    accuracy: float      # fraction in [0, 1]
    eps: float           # L-inf budget on [0, 1] pixels
    attack: str          # the attack that produced the number
    source: str          # where the number is published


#: Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant to Adversarial
#: Attacks", ICLR 2018: a CNN adversarially trained with PGD (eps = 0.3). On the white-box
#: leaderboard of their MNIST challenge (github.com/MadryLab/mnist_challenge, README, "White-Box
#: Leaderboard"), 100-step PGD on the cross-entropy loss with 50 random restarts leaves 89.62%.
MADRY_PGD_AT_MNIST = ReferenceLine(
    label="PGD adversarial training (Madry et al. 2018)", accuracy=0.8962, eps=0.3,
    attack="100-step PGD, cross-entropy, 50 random restarts (white-box)",
    source="Madry et al., ICLR 2018; MadryLab/mnist_challenge white-box leaderboard (initial entry, Nov 2017)")

#: The same model under the strongest entry of that leaderboard: "Guided Local Attack" (Aug 2021): 88.00%.
#: Every entry since 2018 lies between 88.0% and 88.9%: the ~88-89% of the adversarial-training line.
MADRY_PGD_AT_MNIST_BEST = ReferenceLine(
    label="PGD adversarial training, best known attack", accuracy=0.8800, eps=0.3,
    attack="Guided Local Attack (best white-box leaderboard entry)",
    source="MadryLab/mnist_challenge white-box leaderboard (Aug 2021)")

#: Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan, "Theoretically Principled Trade-off between Robustness
#: and Accuracy" (TRADES), ICML 2019: their MNIST SmallCNN (natural accuracy 99.48%) keeps 96.07%
#: under 40-step PGD ("FGSM-40") and 92.46% under the best entry ("ITA", Aug 2021) of the white-box
#: leaderboard in github.com/yaodongyu/TRADES (README, MNIST, eps = 0.3); EWR-PGD 92.47%, Square 92.58%.
TRADES_MNIST = ReferenceLine(
    label="TRADES (Zhang et al. 2019)", accuracy=0.9246, eps=0.3,
    attack="ITA (best white-box leaderboard entry)",
    source="Zhang et al., ICML 2019; yaodongyu/TRADES white-box leaderboard (MNIST, Aug 2021)")

REFERENCE_LINES = (MADRY_PGD_AT_MNIST, MADRY_PGD_AT_MNIST_BEST, TRADES_MNIST)


# ---------------------------------------------------------------------------------------- helpers
def _wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson 95% interval (the project's own in egan_lib.evaluate when present; same formula)."""
    try:
        from .evaluate import wilson_interval
    except ImportError:  # pragma: no cover - evaluate.py is part of the library
        wilson_interval = None
    if wilson_interval is not None:
        return tuple(float(v) for v in wilson_interval(int(k), int(n)))
    z = 1.96
    p, z2 = k / n, z * z
    denom = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return (0.0 if k == 0 else max(0.0, center - half), 1.0 if k == n else min(1.0, center + half))


def _plain(t: torch.Tensor) -> torch.Tensor:
    """A tensor made under torch.inference_mode() cannot enter autograd: use a normal copy of it."""
    return t.clone() if t.is_inference() else t


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
    return int(seed)


def _check_callable(fn, name: str):
    if not callable(fn):
        raise TypeError(f"{name}: expected a callable (an nn.Module or a function x -> outputs), "
                        f"got {type(fn).__name__}")
    return fn


def _check_loss(loss) -> str:
    if loss not in _LOSSES:
        raise ValueError(f"loss: expected one of {list(_LOSSES)} (cross-entropy or the Carlini-Wagner margin), "
                         f"got {loss!r}")
    return loss


def _check_eps_values(eps_values) -> list[float]:
    if eps_values is None or isinstance(eps_values, (numbers.Real, str)):
        raise ValueError(f"eps_values: expected a non-empty list of eps in [0, 1], got {eps_values!r}")
    eps = [check_eps(e, "eps_values[]") for e in eps_values]
    if not eps:
        raise ValueError("eps_values: empty list; expected at least one eps in [0, 1]")
    if len({round(e, 9) for e in eps}) != len(eps):
        raise ValueError(f"eps_values: duplicate eps in {eps}")
    return eps


def _device_of(fn, device):
    """Explicit device > fn.device (defenses, Through) > device of fn's first parameter > cpu."""
    if device is not None:
        return _pick_device(device)
    d = getattr(fn, "device", None)
    if d is not None and not callable(d):
        return torch.device(str(d))
    if isinstance(fn, nn.Module):
        p = next(fn.parameters(), None)
        if p is not None:
            return p.device
    return torch.device("cpu")


class _EvalMode:
    """Put the nn.Modules among ``modules`` in eval mode (BatchNorm!) and restore their modes after."""

    def __init__(self, *modules):
        self.modules = [m for m in modules if isinstance(m, nn.Module)]

    def __enter__(self):
        # every submodule's own flag: restoring only the top one would cascade train() into children
        self.modes = [(sub, sub.training) for m in self.modules for sub in m.modules()]
        for m in self.modules:
            m.eval()
        return self

    def __exit__(self, *exc):
        for sub, t in self.modes:
            sub.training = t
        return False


def _nets(fn) -> list:
    return fn.networks() if isinstance(fn, Through) else [fn]


def _per_image_loss(out: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """The attacker's objective per image, to be maximised. ``out``: logits or log-probabilities.

    ce: cross-entropy (= NLL for log-probabilities). cw: Carlini & Wagner's margin
    max_{j != y} out_j - out_y (> 0 exactly when the image is misclassified).
    """
    if out.dim() != 2 or out.shape[0] != y.shape[0]:
        raise ValueError(f"model_fn: expected outputs of shape (N, classes) = ({y.shape[0]}, K), "
                         f"got {tuple(out.shape)}")
    if kind == "ce":
        return F.cross_entropy(out, y, reduction="none")
    true = out.gather(1, y[:, None]).squeeze(1)
    other = out.masked_fill(F.one_hot(y, out.shape[1]).bool(), float("-inf")).amax(1)
    return other - true


def _margin(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """out_y - max_{j != y} out_j: < 0 exactly when the image is misclassified."""
    return -_per_image_loss(out, y, "cw")


def _input_grad(loss: torch.Tensor, x: torch.Tensor, what: str) -> torch.Tensor:
    if not loss.requires_grad:
        raise RuntimeError(f"{what}: the output does not depend differentiably on the input (no autograd graph; "
                           "a purifier that returns a detached tensor?). Attack it with BPDA: "
                           "through(defense, classifier, bpda=True), or wrap the purifier in bpda(fn).")
    (g,) = torch.autograd.grad(loss, x, allow_unused=True)
    if g is None:
        raise RuntimeError(f"{what}: the output does not depend on the input through autograd; use BPDA "
                           "(through(defense, classifier, bpda=True))")
    return g


# ---------------------------------------------------------------------------------------- PGD / FGSM
def _pgd_restart(fn, x, y, start, eps, steps, alpha, kind, best, best_loss, fooled):
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
            per = _per_image_loss(out, y[active], kind)
        wrong = out.detach().argmax(1) != y[active]
        better = wrong | (per.detach() > best_loss[active])
        idx = active[better]
        best[idx] = xa.detach()[better]
        best_loss[idx] = per.detach()[better]
        fooled[active[wrong]] = True
        if last:
            break
        g = _input_grad(per.sum(), xa, "pgd")
        if zero_grad is None:
            zero_grad = bool((g == 0).all())
        x_adv[active] = torch.minimum(torch.maximum(xa.detach() + alpha * g.sign(), lo[active]), hi[active])
        active = active[~wrong]
        if active.numel() == 0:
            break
    return zero_grad


def pgd(model_fn, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 40, step_size: float | None = None,
        random_start: bool = True, restarts: int = 1, seed: int = 0, batch_size: int = 256, device=None,
        loss: str = "ce", return_details: bool = False, progress: bool = False):
    """L-inf projected gradient descent (Madry et al., ICLR 2018) on any differentiable ``model_fn``.

    Maximises the loss of ``model_fn(x) -> logits or log-probabilities`` over the ball
    ||x_adv - x||_inf <= eps intersected with [0, 1]^d by signed-gradient ascent:
    x <- Proj(x + step_size * sign(grad_x loss)). The threat model is whatever ``model_fn`` is:
    the classifier alone (oblivious), or ``through(defense, classifier)`` (white-box / BPDA).

    * ``step_size`` defaults to 2.5 * eps / steps (Madry et al.), so a run can cross the ball.
    * ``random_start``: the first run starts at a uniform point of the ball (x + U(-eps, eps),
      clipped); restarts 2..R always start at random points. Noise is drawn on the CPU from
      ``seed``, per restart for the whole input, so the random starts do not depend on ``batch_size``.
    * Every iterate is checked: per image the *first* misclassified iterate is kept (that image
      then stops); otherwise the iterate with the highest loss over all steps and restarts. A
      restart runs only on the images not fooled yet.
    * ``loss``: "ce" (cross-entropy) or "cw" (Carlini-Wagner margin max_{j!=y} z_j - z_y).
    * An nn.Module ``model_fn`` runs in eval mode (BatchNorm statistics), its mode restored after.

    Returns x_adv with the device and dtype of x; with ``return_details``, also a dict of CPU
    tensors: ``loss`` (the attacker's loss at x_adv), ``fooled`` (model_fn misclassified x_adv).
    """
    _check_callable(model_fn, "model_fn")
    check_images(x)
    y = _plain(check_labels(y, n=x.shape[0]))
    x = _plain(x)
    eps = check_eps(eps)
    steps = check_positive_int(steps, "steps")
    restarts = check_positive_int(restarts, "restarts")
    batch_size = check_positive_int(batch_size, "batch_size")
    seed = _check_seed(seed)
    kind = _check_loss(loss)
    alpha = 2.5 * eps / steps if step_size is None else check_positive_float(step_size, "step_size")
    dev = _device_of(model_fn, device)
    n = x.shape[0]
    x_cpu, y_cpu = x.detach().float().cpu(), y.cpu()
    best = x_cpu.clone()
    best_loss = torch.full((n,), float("-inf"))
    fooled = torch.zeros(n, dtype=torch.bool)
    if eps == 0.0:  # nothing to search: evaluate x once
        restarts, steps = 1, 0
    gen = torch.Generator().manual_seed(seed)
    zero_grad_batches = []
    from tqdm.auto import tqdm
    bar = tqdm(total=restarts * math.ceil(n / batch_size), desc=f"PGD eps={eps:g}", disable=not progress, leave=False)
    with _EvalMode(*_nets(model_fn)), bar:
        for r in range(restarts):
            noise = torch.empty_like(x_cpu).uniform_(-eps, eps, generator=gen) if eps > 0 else None
            todo = torch.nonzero(~fooled).flatten()
            for i in range(0, todo.numel(), batch_size):
                rows = todo[i:i + batch_size]
                xb, yb = x_cpu[rows], y_cpu[rows]
                start = xb if (r == 0 and not random_start) or noise is None else (xb + noise[rows]).clamp_(0.0, 1.0)
                b_best, b_loss, b_fooled = best[rows].to(dev), best_loss[rows].to(dev), fooled[rows].to(dev)
                zg = _pgd_restart(model_fn, xb.to(dev), yb.to(dev), start.to(dev), eps, steps, alpha, kind,
                                  b_best, b_loss, b_fooled)
                best[rows], best_loss[rows], fooled[rows] = b_best.cpu(), b_loss.cpu(), b_fooled.cpu()
                if zg is not None:
                    zero_grad_batches.append(zg)
                bar.update(1)
            if bool(fooled.all()):
                break
    if zero_grad_batches and all(zero_grad_batches):
        warnings.warn("pgd: the input gradient was exactly zero on every batch (gradient masking?): PGD cannot "
                      "move. If model_fn contains a non-differentiable purifier, attack it with BPDA "
                      "(through(defense, classifier, bpda=True)).", RuntimeWarning, stacklevel=2)
    x_adv = best.to(device=x.device, dtype=x.dtype)
    if return_details:
        return x_adv, {"loss": best_loss, "fooled": fooled}
    return x_adv


def fgsm_through(model_fn, x: torch.Tensor, y: torch.Tensor, eps: float, *, batch_size: int = 256, device=None,
                 loss: str = "ce") -> torch.Tensor:
    """FGSM (Goodfellow et al., ICLR 2015) on any differentiable ``model_fn``:
    clip(x + eps * sign(grad_x loss(model_fn(x), y)), 0, 1).

    With ``model_fn = classifier`` this is the paper's attack (``egan_lib.attacks.fgsm``); with
    ``model_fn = through(defense, classifier)`` it is one step of the adaptive attack.
    """
    _check_callable(model_fn, "model_fn")
    check_images(x)
    y = _plain(check_labels(y, n=x.shape[0]))
    x = _plain(x)
    eps = check_eps(eps)
    batch_size = check_positive_int(batch_size, "batch_size")
    kind = _check_loss(loss)
    dev = _device_of(model_fn, device)
    out = torch.empty_like(x)
    with _EvalMode(*_nets(model_fn)), torch.enable_grad():
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size].detach().to(dev).requires_grad_(True)
            per = _per_image_loss(model_fn(xb), y[i:i + batch_size].to(dev), kind)
            g = _input_grad(per.sum(), xb, "fgsm_through")
            out[i:i + batch_size] = (xb.detach() + eps * g.sign()).clamp_(0.0, 1.0).to(out.device)
    return out


# ---------------------------------------------------------------------------------------- BPDA / through
class _StraightThrough(torch.autograd.Function):
    """Forward: the real purification fn(x). Backward: the identity (BPDA with g(x) = x)."""

    @staticmethod
    def forward(ctx, x, fn, enable_grad):
        with torch.enable_grad() if enable_grad else torch.no_grad():
            out = fn(x.detach())
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"bpda: the purifier must return a tensor shaped like its input {tuple(x.shape)}, "
                             f"got {got}")
        return out.detach().to(dtype=x.dtype, device=x.device)

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out, None, None


def bpda(fn, *, enable_grad: bool = True):
    """Backward Pass Differentiable Approximation (Athalye, Carlini & Wagner, ICML 2018, sec. 4.1).

    Returns x -> fn(x) whose forward pass is the real, possibly non-differentiable purification
    (an argmax, a rounding, an inner optimisation) and whose backward pass is the identity: the
    gradient of a loss L(C(fn(x))) w.r.t. x is taken to be grad_{x'} L(C(x')) at x' = fn(x). This is
    the right approximation for purifiers with fn(x) ~ x (their output stays close to the input).

    ``enable_grad=True`` runs fn with autograd on: a purifier that optimises internally
    (Defense-GAN's latent search) needs it; pure inference functions may pass False (cheaper).
    """
    _check_callable(fn, "fn")

    def approx(x: torch.Tensor) -> torch.Tensor:
        return _StraightThrough.apply(x, fn, enable_grad)

    approx.__name__ = f"bpda({getattr(fn, '__name__', type(fn).__name__)})"
    approx.__wrapped__ = fn
    return approx


class Through(nn.Module):
    """x -> classifier(purifier(x)): the defended pipeline as one differentiable function (see :func:`through`)."""

    def __init__(self, defense, classifier, use_bpda: bool):
        super().__init__()
        self.classifier = classifier            # registered when it is an nn.Module (eval mode, device)
        if isinstance(defense, nn.Module):
            self.defense = defense
        else:
            object.__setattr__(self, "defense", defense)
        purifier = defense if isinstance(defense, nn.Module) or not hasattr(defense, "forward") else defense.forward
        self.uses_bpda = bool(use_bpda)
        self.purifier = bpda(purifier) if use_bpda else purifier
        self.name = getattr(defense, "name", type(defense).__name__)
        self.device = _defense_device(defense, classifier)

    def networks(self) -> list:
        """Every nn.Module the pipeline runs: this wrapper (with the classifier) and the defense's networks
        (a Defense lists them in ``modules()``); the attacks hold them all in eval mode."""
        nets = [self]
        if not isinstance(self.defense, nn.Module) and callable(getattr(self.defense, "modules", None)):
            try:
                listed = list(self.defense.modules())
            except TypeError:
                listed = []
            nets += [m for m in listed if isinstance(m, nn.Module)]
        return nets

    @property
    def threat_model(self) -> str:
        return THREAT_ADAPTIVE_BPDA if self.uses_bpda else THREAT_ADAPTIVE_PGD

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.purifier(x))


def _defense_device(defense, classifier) -> torch.device:
    d = getattr(defense, "device", None)
    c = None
    if isinstance(classifier, nn.Module):
        p = next(classifier.parameters(), None)
        c = p.device if p is not None else None
    if d is None or callable(d):
        return c if c is not None else torch.device("cpu")
    d = torch.device(str(d))
    if c is not None and (c.type, c.index or 0) != (d.type, d.index or 0):
        raise ValueError(f"through: the defense runs on {d} but the classifier's weights are on {c}; "
                         f"move the classifier there (classifier.to('{d}'))")
    return d


def through(defense, classifier, *, bpda="auto") -> Through:
    """The defended classifier x -> classifier(purify(x)) as a differentiable callable for PGD/FGSM.

    ``defense``: a Defense-like object (``name``, ``differentiable``, ``device``, ``forward(x)``:
    the purifier as a torch function on its device), or any purifier callable / nn.Module.
    ``bpda``: "auto" (default) takes exact gradients through a differentiable defense (white-box,
    threat model "adaptive-pgd") and BPDA through the others (``differentiable`` is False:
    PixelDefend, Defense-GAN; "adaptive-bpda"). True forces BPDA, False forces autograd (a
    non-differentiable purifier then gives a zero or missing gradient, and PGD says so).
    """
    _check_callable(classifier, "classifier")
    if not (callable(defense) or callable(getattr(defense, "forward", None))):
        raise TypeError(f"defense: expected a Defense-like object with .forward(x) or a purifier callable, "
                        f"got {type(defense).__name__}")
    if bpda == "auto":
        diff = getattr(defense, "differentiable", True)
        if not isinstance(diff, bool):
            raise TypeError(f"defense.differentiable: expected a bool, got {type(diff).__name__}")
        use = not diff
    elif isinstance(bpda, bool):
        use = bpda
    else:
        raise ValueError(f"bpda: expected 'auto', True or False, got {bpda!r}")
    return Through(defense, classifier, use)


# ---------------------------------------------------------------------------------------- accuracy
@torch.no_grad()
def _predict(classifier, x: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    dev = _device_of(classifier, device)
    with _EvalMode(classifier):
        return torch.cat([classifier(x[i:i + batch_size].to(dev)).argmax(1).cpu()
                          for i in range(0, x.shape[0], batch_size)])


def _purify(defense, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    name = getattr(defense, "name", type(defense).__name__)
    if callable(getattr(defense, "purify", None)):
        out = defense.purify(x, batch_size=batch_size)
    else:  # a bare purifier callable
        with torch.no_grad():
            out = torch.cat([defense(x[i:i + batch_size]).detach().cpu() for i in range(0, x.shape[0], batch_size)])
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{name}.purify: expected a tensor shaped like its input {tuple(x.shape)}, got {got}")
    return out.detach().float().cpu()


def _summary(correct: dict, threat_model: str, **extra) -> dict:
    n = next(iter(correct.values())).numel()
    acc = {e: float(c.float().mean()) for e, c in correct.items()}
    ci = {e: list(_wilson(int(c.sum()), n)) for e, c in correct.items()}
    return {"threat_model": threat_model, "accuracy": acc, "ci95": ci, "n": int(n), **extra}


def _check_defense(defense, what="defense"):
    if not callable(getattr(defense, "purify", None)) and not callable(defense):
        raise TypeError(f"{what}: expected a Defense-like object with .purify(x, batch_size=None), "
                        f"got {type(defense).__name__}")
    return defense


def whitebox_accuracy(defense, classifier, x: torch.Tensor, y: torch.Tensor, eps_values, *, attack: str = "pgd",
                      steps: int = 40, restarts: int = 1, step_size: float | None = None, random_start: bool = True,
                      seed: int = 0, bpda="auto", loss: str = "ce", batch_size: int = 256, device=None,
                      return_adv: bool = False, progress: bool = False) -> dict:
    """Accuracy of the defended classifier under an attack that goes *through* the defense.

    Threat model: white-box. The attacker knows the weights of the purifier and of C and attacks
    x -> C(purify(x)) (:func:`through`): exact gradients for a differentiable defense
    ("adaptive-pgd"; EGAN: through C(G(E(x)))), BPDA for a non-differentiable one ("adaptive-bpda").
    ``attack``: "pgd" (Madry et al. 2018; ``steps``, ``restarts``, ``step_size``) or "fgsm"
    ("adaptive-fgsm" / "adaptive-bpda-fgsm").

    Evaluation: for each eps, accuracy = mean(argmax C(defense.purify(x_adv)) == y) on all n images,
    with its Wilson 95% interval. Returns ``{"threat_model", "accuracy": {eps: float},
    "ci95": {eps: [lo, hi]}, "n", "defense", "attack": {...}}`` (+ ``"adv": {eps: x_adv}``).
    """
    _check_defense(defense)
    check_images(x)
    y = _plain(check_labels(y, n=x.shape[0]))
    x = _plain(x)
    eps_values = _check_eps_values(eps_values)
    if attack not in ("pgd", "fgsm"):
        raise ValueError(f"attack: expected 'pgd' or 'fgsm', got {attack!r}")
    batch_size = check_positive_int(batch_size, "batch_size")
    fn = through(defense, classifier, bpda=bpda)
    tm = fn.threat_model if attack == "pgd" else ("adaptive-bpda-fgsm" if fn.uses_bpda else "adaptive-fgsm")
    correct, adv = {}, {}
    from tqdm.auto import tqdm
    for e in tqdm(eps_values, desc=f"{attack} through {fn.name}", disable=not progress, leave=False):
        if attack == "pgd":
            xa = pgd(fn, x, y, e, steps=steps, step_size=step_size, random_start=random_start, restarts=restarts,
                     seed=seed, batch_size=batch_size, device=device, loss=loss)
        else:
            xa = fgsm_through(fn, x, y, e, batch_size=batch_size, device=device, loss=loss)
        pred = _predict(classifier, _purify(defense, xa, batch_size), batch_size, device)
        correct[e] = pred == y.cpu()
        if return_adv:
            adv[e] = xa
    params = {"attack": attack, "loss": loss, "bpda": fn.uses_bpda, "batch_size": batch_size}
    if attack == "pgd":
        params.update(steps=steps, restarts=restarts, random_start=random_start, seed=seed,
                      step_size=("2.5*eps/steps" if step_size is None else float(step_size)))
    res = _summary(correct, tm, defense=fn.name, attack=params)
    if return_adv:
        res["adv"] = adv
    return res


def oblivious_pgd(defense, classifier, x: torch.Tensor, y: torch.Tensor, eps_values, *, steps: int = 40,
                  restarts: int = 1, step_size: float | None = None, random_start: bool = True, seed: int = 0,
                  loss: str = "ce", batch_size: int = 256, device=None, return_adv: bool = False,
                  progress: bool = False):
    """PGD through the classifier alone, then purify: the paper's oblivious (gray-box) threat model
    with PGD (Madry et al. 2018) instead of FGSM (threat model "oblivious-pgd").

    x_adv is computed once per eps from C's gradient and every defense purifies the same x_adv.
    ``defense``: one Defense-like object -> one result dict (as :func:`whitebox_accuracy`); a list
    or dict of them -> {name: result}, all on the same x_adv.
    """
    single = not isinstance(defense, (list, tuple, dict))
    defenses = [defense] if single else list(defense.values() if isinstance(defense, dict) else defense)
    if not defenses:
        raise ValueError("defense: empty list; expected at least one defense")
    for i, d in enumerate(defenses):
        _check_defense(d, f"defense[{i}]" if not single else "defense")
    names = [getattr(d, "name", type(d).__name__) for d in defenses]
    if len(set(names)) != len(names):
        raise ValueError(f"defense: duplicate names {names}")
    _check_callable(classifier, "classifier")
    check_images(x)
    y = _plain(check_labels(y, n=x.shape[0]))
    x = _plain(x)
    eps_values = _check_eps_values(eps_values)
    batch_size = check_positive_int(batch_size, "batch_size")
    correct = {nm: {} for nm in names}
    adv = {}
    from tqdm.auto import tqdm
    for e in tqdm(eps_values, desc="oblivious PGD", disable=not progress, leave=False):
        xa = pgd(classifier, x, y, e, steps=steps, step_size=step_size, random_start=random_start, restarts=restarts,
                 seed=seed, batch_size=batch_size, device=device, loss=loss)
        adv[e] = xa
        for nm, d in zip(names, defenses):
            correct[nm][e] = _predict(classifier, _purify(d, xa, batch_size), batch_size, device) == y.cpu()
    params = {"attack": "pgd", "loss": loss, "steps": steps, "restarts": restarts, "random_start": random_start,
              "seed": seed, "step_size": "2.5*eps/steps" if step_size is None else float(step_size),
              "gradient": "classifier alone"}
    out = {}
    for nm in names:
        out[nm] = _summary(correct[nm], THREAT_OBLIVIOUS_PGD, defense=nm, attack=dict(params))
        if return_adv:
            out[nm]["adv"] = adv
    return out[names[0]] if single else out


def to_method_entry(result: dict, seconds_per_image: float) -> dict:
    """One method's entry of the results JSON: {"accuracy": {"0.30": ...}, "ci95": {...},
    "seconds_per_image": s, "n": n} (eps keys with two decimals; the threat model goes on the file)."""
    from .evaluate import eps_key
    if not isinstance(result, dict) or not {"accuracy", "ci95", "n"} <= set(result):
        raise ValueError("result: expected a dict with 'accuracy', 'ci95' and 'n' (from whitebox_accuracy, "
                         "oblivious_pgd or on_manifold_attack)")
    s = check_positive_float(seconds_per_image, "seconds_per_image")
    return {"accuracy": {eps_key(e): float(a) for e, a in sorted(result["accuracy"].items())},
            "ci95": {eps_key(e): [float(v) for v in c] for e, c in sorted(result["ci95"].items())},
            "seconds_per_image": s, "n": int(result["n"])}


def combine_eps(*results) -> dict:
    """Merge single-eps results (e.g. :func:`on_manifold_attack` at several eps) into one result."""
    if not results:
        raise ValueError("combine_eps: nothing to combine")
    first = results[0]
    for r in results:
        if r.get("threat_model") != first.get("threat_model") or r.get("n") != first.get("n"):
            raise ValueError("combine_eps: results must share threat_model and n, got "
                             f"{[(q.get('threat_model'), q.get('n')) for q in results]}")
    acc, ci = {}, {}
    for r in results:
        acc.update(r["accuracy"])
        ci.update(r["ci95"])
    return {"threat_model": first["threat_model"], "accuracy": dict(sorted(acc.items())),
            "ci95": dict(sorted(ci.items())), "n": first["n"]}


# ---------------------------------------------------------------------------------------- on-manifold
class _Adam:
    """Adam (Kingma & Ba 2015) on a tensor whose rows are independent problems; rows can be dropped."""

    def __init__(self, z: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, (self.b1, self.b2), self.eps = lr, betas, eps
        self.m, self.v, self.t = torch.zeros_like(z), torch.zeros_like(z), 0

    def step(self, z: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        self.t += 1
        self.m.mul_(self.b1).add_(g, alpha=1 - self.b1)
        self.v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
        mhat = self.m / (1 - self.b1 ** self.t)
        vhat = self.v / (1 - self.b2 ** self.t)
        return z - self.lr * mhat / (vhat.sqrt() + self.eps)

    def keep(self, mask: torch.Tensor) -> None:
        self.m, self.v = self.m[mask], self.v[mask]


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
    for m, nm in ((generator, "generator"), (encoder, "encoder"), (classifier, "classifier")):
        _check_callable(m, nm)
    check_images(x)
    y = _plain(check_labels(y, n=x.shape[0]))
    x = _plain(x)
    eps = check_eps(eps)
    steps = check_positive_int(steps, "steps")
    restarts = check_positive_int(restarts, "restarts")
    lr = check_positive_float(lr, "lr")
    penalty = check_positive_float(penalty, "penalty", allow_zero=True)
    restart_sigma = check_positive_float(restart_sigma, "restart_sigma", allow_zero=True)
    batch_size = check_positive_int(batch_size, "batch_size")
    seed = _check_seed(seed)
    if defense is not None:
        _check_defense(defense)
    dev = _device_of(generator, device)
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

    with _EvalMode(generator, encoder, classifier), tqdm(total=restarts * math.ceil(n / batch_size),
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
                opt = _Adam(z, lr)
                active = torch.arange(rows.numel(), device=dev)
                for t in range(steps + 1):
                    last = t == steps
                    zt = z.detach().requires_grad_(not last)
                    xa = xb[active]
                    with torch.enable_grad() if not last else torch.no_grad():
                        xg = generator(zt)
                        m = _margin(target(xg), yb[active])
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
        purified, how = _purify(defense, x_out, batch_size), getattr(defense, "name", "defense")
    else:
        with torch.no_grad(), _EvalMode(generator, encoder):
            purified = torch.cat([generator(encoder(x_out[i:i + batch_size].to(dev))).float().cpu()
                                  for i in range(0, n, batch_size)])
        how = "EGAN G(E(x'))"
    correct = _predict(classifier, purified, batch_size, device) == y_cpu
    res = _summary({eps: correct}, THREAT_ON_MANIFOLD, defense=how)
    k = int(success.sum())
    res.update(eps=eps, success_rate=k / n, success_ci95=list(_wilson(k, n)),
               feasible_rate=float(feasible.float().mean()), x_adv=x_out.to(dtype=x.dtype), z=z_out,
               success=success, feasible=feasible,
               attack={"steps": steps, "lr": lr, "restarts": restarts, "seed": seed, "penalty": penalty,
                       "restart_sigma": restart_sigma, "through_encoder": through_encoder})
    return res


# ---------------------------------------------------------------------------------------- convergence
def convergence_check(fn_accuracy, base_steps: int, base_restarts: int, *, tolerance: float = 0.01) -> dict:
    """Is the attack converged? Run ``fn_accuracy(steps, restarts)`` at (steps, restarts),
    (2 * steps, restarts) and (steps, 2 * restarts) and compare (Carlini et al. 2019, "On Evaluating
    Adversarial Robustness": an evaluation must show that more iterations / restarts do not help).

    ``fn_accuracy`` returns an accuracy (float in [0, 1]), a dict {eps: accuracy}, or a result dict
    with an "accuracy" entry. Deltas are base - doubled (positive: the stronger attack lowered the
    accuracy). Converged when every |delta| < ``tolerance`` (default 0.01 = one percentage point).
    """
    _check_callable(fn_accuracy, "fn_accuracy")
    base_steps = check_positive_int(base_steps, "base_steps")
    base_restarts = check_positive_int(base_restarts, "base_restarts")
    tolerance = check_positive_float(tolerance, "tolerance")

    def acc(steps, restarts):
        a = fn_accuracy(steps, restarts)
        if isinstance(a, dict) and "accuracy" in a:
            a = a["accuracy"]
        if isinstance(a, dict):
            if not a:
                raise ValueError("fn_accuracy: returned an empty {eps: accuracy} dict")
            return {k: float(v) for k, v in a.items()}
        if isinstance(a, bool) or not isinstance(a, numbers.Real) or not 0.0 <= float(a) <= 1.0:
            raise ValueError(f"fn_accuracy: expected an accuracy in [0, 1] or a dict of them, got {a!r}")
        return float(a)

    base = acc(base_steps, base_restarts)
    ds = acc(2 * base_steps, base_restarts)
    dr = acc(base_steps, 2 * base_restarts)

    def delta(a, b):
        if isinstance(a, dict):
            if not isinstance(b, dict) or set(a) != set(b):
                raise ValueError("fn_accuracy: the runs returned different eps keys")
            return {k: a[k] - b[k] for k in a}
        return a - b

    d_steps, d_restarts = delta(base, ds), delta(base, dr)
    flat = [abs(v) for d in (d_steps, d_restarts) for v in (d.values() if isinstance(d, dict) else [d])]
    worst = max(flat)
    converged = worst < tolerance
    msg = (f"converged: doubling steps ({base_steps} -> {2 * base_steps}) or restarts ({base_restarts} -> "
           f"{2 * base_restarts}) changes accuracy by at most {100 * worst:.2f} points (< {100 * tolerance:g})"
           if converged else
           f"NOT converged: doubling steps ({base_steps} -> {2 * base_steps}) or restarts ({base_restarts} -> "
           f"{2 * base_restarts}) changes accuracy by up to {100 * worst:.2f} points (>= {100 * tolerance:g}); "
           "the reported accuracy is only an upper bound - run the stronger attack")
    return {"base": base, "double_steps": ds, "double_restarts": dr, "delta_steps": d_steps,
            "delta_restarts": d_restarts, "max_abs_delta": worst, "tolerance": tolerance,
            "converged": converged, "message": msg, "base_steps": base_steps, "base_restarts": base_restarts}


# ---------------------------------------------------------------------------------------- hybrid defense
class HybridDefense:
    """EGAN + a few Defense-GAN steps ("EGAN+DGAN-k"): the point between EGAN and Defense-GAN on the
    time/accuracy figure (paper Fig. 5).

    Defense-GAN (Samangouei, Kabkab & Chellappa, ICLR 2018) searches z minimising ||G(z) - x||^2 from
    R random starts with L gradient steps each; EGAN replaces the search by one encoder pass
    z = E(x). The hybrid starts the search at z0 = E(x) and runs ``steps`` Adam steps of size ``lr``
    on ||G(z) - x||^2 (per image; the rows of a batch are independent), keeping the best z seen
    (z0 included, so steps = 0 is exactly EGAN). Purification: x -> G(z_best).

    Interface as the other defenses: ``name``, ``differentiable`` (False: the inner optimisation
    is attacked with BPDA), ``device``, ``forward(x)`` (on device, returns a detached tensor),
    ``purify(x, batch_size=None)`` (validated, batched, CPU float32 in [0, 1]),
    ``project(x, z0=None)`` (the best z).
    """

    differentiable = False

    def __init__(self, encoder: nn.Module, generator: nn.Module, steps: int = 10, lr: float = 0.05, *,
                 device=None, batch_size: int = 256, name: str | None = None):
        _check_callable(encoder, "encoder")
        _check_callable(generator, "generator")
        self.encoder, self.generator = encoder, generator
        self.steps = check_positive_int(steps, "steps", minimum=0)
        self.lr = check_positive_float(lr, "lr")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.device = _device_of(generator, device)
        self.name = name if name is not None else f"EGAN+DGAN-{self.steps}"

    def __repr__(self) -> str:
        return f"HybridDefense(name={self.name!r}, steps={self.steps}, lr={self.lr}, device={self.device})"

    def project(self, x: torch.Tensor, z0: torch.Tensor | None = None) -> torch.Tensor:
        """The best latent z (lowest ||G(z) - x||^2 per image) from z0 (default E(x)); on device."""
        x = _plain(x.detach()).to(self.device)
        with _EvalMode(self.encoder, self.generator):
            with torch.no_grad():
                z = self.encoder(x) if z0 is None else _plain(z0.detach()).to(self.device)
                best_z = z.clone()
                best_err = ((self.generator(z) - x) ** 2).flatten(1).sum(1)
            opt = _Adam(z, self.lr)
            for _ in range(self.steps):
                zt = z.detach().requires_grad_(True)
                with torch.enable_grad():
                    err = ((self.generator(zt) - x) ** 2).flatten(1).sum(1)
                    (g,) = torch.autograd.grad(err.sum(), zt)
                better = err.detach() < best_err
                best_z[better], best_err[better] = zt.detach()[better], err.detach()[better]
                z = opt.step(zt.detach(), g)
            with torch.no_grad():  # the last step's point
                err = ((self.generator(z) - x) ** 2).flatten(1).sum(1)
                better = err < best_err
                best_z[better] = z[better]
        return best_z.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.project(x)
        with torch.no_grad(), _EvalMode(self.generator):
            return self.generator(z).detach()

    __call__ = forward

    def purify(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        check_images(x)
        b = self.batch_size if batch_size is None else check_positive_int(batch_size, "batch_size")
        return torch.cat([self.forward(x[i:i + b]).float().cpu() for i in range(0, x.shape[0], b)]).clamp_(0.0, 1.0)


# ---------------------------------------------------------------------------------------- eps >= 0.5
def guessing_bound_demo(x: torch.Tensor, y: torch.Tensor, eps: float = 0.5, *, classifier=None, defense=None,
                        num_classes: int = 10, batch_size: int = 256, device=None) -> dict:
    """Why no defense can exceed guessing at eps >= 0.5 (L-inf, pixels in [0, 1]).

    Every pixel value v in [0, 1] satisfies |v - 0.5| <= 0.5, so *every* image lies within
    L-inf distance 0.5 of the constant gray image g = 0.5. An attacker with eps >= 0.5 can submit
    g for every input, whatever its class. Any (deterministic) defended classifier maps g to one
    class c, so its accuracy is the frequency of c among the labels: at most the largest class
    frequency (MNIST test set: digit 1, 1135 / 10000 = 11.35%). A randomised defense does no better
    in expectation. This holds in every threat model (even a black-box attacker who knows nothing).

    Returns {"gray": (1, 1, 28, 28) tensor of 0.5, "x_adv": g for every image (N, 1, 28, 28),
    "max_linf": max_i ||x_i - g||_inf (<= 0.5), "bound": max class frequency, "majority_class",
    "class_frequency": list, "eps"}; with a ``classifier`` (and optionally a ``defense``):
    "predicted_class" of (purified) g and "accuracy" = the accuracy the attack leaves (<= bound).
    """
    check_images(x)
    num_classes = check_positive_int(num_classes, "num_classes", minimum=2)
    y = check_labels(y, n=x.shape[0], num_classes=num_classes)
    eps = check_eps(eps)
    if eps < 0.5:
        raise ValueError(f"eps: the guessing bound needs eps >= 0.5 (then every pixel can reach 0.5), got {eps}")
    gray = torch.full((1, 1, 28, 28), 0.5, dtype=x.dtype)
    freq = torch.bincount(y.cpu(), minlength=num_classes).float() / y.numel()
    res = {"gray": gray, "x_adv": gray.expand_as(x).clone(), "max_linf": float((x.detach().cpu() - 0.5).abs().max()),
           "bound": float(freq.max()), "majority_class": int(freq.argmax()), "class_frequency": freq.tolist(),
           "eps": eps}
    if classifier is not None:
        g = _purify(defense, gray, 1) if defense is not None else gray
        c = int(_predict(classifier, g.float(), batch_size, device)[0])
        res["predicted_class"] = c
        res["accuracy"] = float(freq[c])
    return res
