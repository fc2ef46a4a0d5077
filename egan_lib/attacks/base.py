"""What every attack shares: the threat-model names, the attacker's losses, input gradients that say
when a purifier blocks them, the device and networks of an attacked function, and batched predictions
with every network held in eval mode (and its mode restored after).

Every attack here is an L-inf attack on images in [0, 1]: ||x_adv - x||_inf <= eps, 0 <= x_adv <= 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_callable, check_eps, check_images, check_labels, check_module, check_positive_int
from ..config import device as _pick_device
from ..torch_utils import EvalMode, plain

#: Threat models, reported next to every number (the ``threat_model`` of a result).
THREAT_OBLIVIOUS = "oblivious"             # the paper's: FGSM through C alone, every defense purifies that x_adv
THREAT_OBLIVIOUS_PGD = "oblivious-pgd"     # the same with PGD
THREAT_ADAPTIVE_PGD = "adaptive-pgd"       # white-box PGD through C(purify(x)) with exact gradients
THREAT_ADAPTIVE_BPDA = "adaptive-bpda"     # the same through a non-differentiable purifier, with BPDA
THREAT_ON_MANIFOLD = "on-manifold"         # a latent search for G(z) within the eps ball that C gets wrong
THREAT_ADAPTIVE_LATENT = "adaptive-latent"  # PGD on ||E(x + δ) - E(x)||, judged through C(G(E(x_adv)))
THREAT_MODELS = (THREAT_OBLIVIOUS, THREAT_ADAPTIVE_PGD, THREAT_ADAPTIVE_BPDA, THREAT_ON_MANIFOLD)
LOSSES = ("ce", "cw")


def check_attack_inputs(fn, x, y, eps, name: str = "model_fn"):
    """The checks every attack makes first: a callable, images, one label per image, a budget.
    Returns (x, y, eps) as plain tensors (copies of inference-mode tensors, so autograd can use them)."""
    check_callable(fn, name)
    x = check_images(x)
    y = plain(check_labels(y, n=x.shape[0]))
    return plain(x), y, check_eps(eps)


def check_loss(loss) -> str:
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {list(LOSSES)} (cross-entropy or the Carlini-Wagner margin), "
                         f"got {loss!r}")
    return loss


def device_of(fn, device):
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


def networks_of(fn) -> list:
    """The nn.Modules an attacked function runs (a ``Through`` lists the classifier and the defense's
    networks), to hold them in eval mode during an attack."""
    nets = getattr(fn, "networks", None)
    return list(nets()) if callable(nets) else [fn]


def per_image_loss(out: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
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


def margin(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """out_y - max_{j != y} out_j: < 0 exactly when the image is misclassified."""
    return -per_image_loss(out, y, "cw")


def input_grad(loss: torch.Tensor, x: torch.Tensor, what: str) -> torch.Tensor:
    if not loss.requires_grad:
        raise RuntimeError(f"{what}: the output does not depend differentiably on the input (no autograd graph; "
                           "a purifier that returns a detached tensor?). Attack it with BPDA: "
                           "through(defense, classifier, bpda=True), or wrap the purifier in bpda(fn).")
    (g,) = torch.autograd.grad(loss, x, allow_unused=True)
    if g is None:
        raise RuntimeError(f"{what}: the output does not depend on the input through autograd; use BPDA "
                           "(through(defense, classifier, bpda=True))")
    return g


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024, device=None) -> torch.Tensor:
    """Predicted class of every image (argmax of the model's output), batched, the model in eval mode
    (its own and its submodules' modes restored after); returns int64 on the CPU."""
    check_module(model, "model")
    x = check_images(x)
    batch_size = check_positive_int(batch_size, "batch_size")
    dev = device_of(model, device)
    with EvalMode(model):
        preds = [model(x[i:i + batch_size].to(dev)).argmax(1).cpu() for i in range(0, x.shape[0], batch_size)]
    return torch.cat(preds)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024, device=None) -> float:
    """Fraction of images the model classifies correctly."""
    y = check_labels(y, n=x.shape[0] if isinstance(x, torch.Tensor) else None)
    return float((predict(model, x, batch_size=batch_size, device=device) == y.cpu()).float().mean())


def purify_batched(defense, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """``defense.purify(x)`` for a Defense, or a bare purifier callable applied in batches without
    gradients; checks that the output is shaped like x; returns float32 on the CPU."""
    name = getattr(defense, "name", type(defense).__name__)
    if callable(getattr(defense, "purify", None)):
        out = defense.purify(x, batch_size=batch_size)
    elif callable(defense):
        b = batch_size or 256
        with torch.no_grad():
            out = torch.cat([defense(x[i:i + b]).detach().cpu() for i in range(0, x.shape[0], b)])
    else:
        raise TypeError(f"defense: expected a Defense (with .purify) or a purifier callable, got {type(defense).__name__}")
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{name}.purify: expected a tensor shaped like its input {tuple(x.shape)}, got {got}")
    return check_images(out.detach().float().cpu(), f"{name}.purify (output)")


def check_defense(defense, what="defense"):
    if not callable(getattr(defense, "purify", None)) and not callable(defense):
        raise TypeError(f"{what}: expected a Defense-like object with .purify(x, batch_size=None), "
                        f"got {type(defense).__name__}")
    return defense
