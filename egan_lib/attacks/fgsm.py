"""FGSM (Goodfellow, Shlens & Szegedy, ICLR 2015): one signed-gradient step, batched, on any device.

    x_adv = clip(x + eps * sign(grad_x J(f(x), y)), 0, 1)

With f = the classifier C this is the paper's *oblivious* attack (the gradient never sees the defense);
with f = ``through(defense, C)`` it is one step of the adaptive attack (chapter 07). The sign does not
depend on eps, so ``fgsm_grid`` computes it once and returns every eps of a grid.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validate import (check_callable, check_eps, check_eps_list, check_images, check_labels, check_module,
                         check_positive_int)
from ..torch_utils import EvalMode, plain
from .base import check_attack_inputs, check_loss, device_of, input_grad, networks_of, per_image_loss


def gradient_sign(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 512,
                  device=None) -> torch.Tensor:
    """sign(grad_x NLL(model(x), y)) for a batch, computed in chunks; model in eval mode.

    ``model`` may return logits or log-probabilities (cross-entropy treats both alike).
    Returns a CPU tensor of -1/0/+1 with the shape of x.
    """
    check_module(model, "model")
    x = check_images(x)
    y = check_labels(y, n=x.shape[0])
    batch_size = check_positive_int(batch_size, "batch_size")
    dev = device_of(model, device)
    out = torch.empty(x.shape, dtype=x.dtype)
    with EvalMode(model), torch.enable_grad():
        if True:
            for i in range(0, x.shape[0], batch_size):
                # clone: x may be an inference-mode tensor, which cannot require grad
                xb = x[i:i + batch_size].to(dev).clone().requires_grad_(True)
                yb = y[i:i + batch_size].to(dev).clone()
                loss = F.cross_entropy(model(xb), yb, reduction="sum")
                (g,) = torch.autograd.grad(loss, xb)
                out[i:i + batch_size] = g.sign().to(out.device)
    return out


def fgsm(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, batch_size: int = 512,
         device=None) -> torch.Tensor:
    """FGSM adversarial examples: clip(x + eps * sign(grad_x J), 0, 1). eps = 0 returns x unchanged."""
    eps = check_eps(eps)
    x = check_images(x)
    s = gradient_sign(model, x, y, batch_size=batch_size, device=device)
    return (x + eps * s).clamp_(0.0, 1.0)


def fgsm_grid(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps_values, *, batch_size: int = 512,
              device=None) -> dict[float, torch.Tensor]:
    """FGSM at every eps of ``eps_values`` from one gradient: {eps: x_adv}."""
    eps_values = check_eps_list(eps_values, sorted_unique=False, unique=False)
    x = check_images(x)
    s = gradient_sign(model, x, y, batch_size=batch_size, device=device)
    return {e: (x + e * s).clamp_(0.0, 1.0) for e in eps_values}


def fgsm_through(model_fn, x: torch.Tensor, y: torch.Tensor, eps: float, *, batch_size: int = 256, device=None,
                 loss: str = "ce") -> torch.Tensor:
    """FGSM (Goodfellow et al., ICLR 2015) on any differentiable ``model_fn``:
    clip(x + eps * sign(grad_x loss(model_fn(x), y)), 0, 1).

    With ``model_fn = classifier`` this is the paper's attack (``egan_lib.attacks.fgsm``); with
    ``model_fn = through(defense, classifier)`` it is one step of the adaptive attack.
    """
    x, y, eps = check_attack_inputs(model_fn, x, y, eps)
    batch_size = check_positive_int(batch_size, "batch_size")
    kind = check_loss(loss)
    dev = device_of(model_fn, device)
    out = torch.empty_like(x)
    with EvalMode(*networks_of(model_fn)), torch.enable_grad():
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size].detach().to(dev).requires_grad_(True)
            per = per_image_loss(model_fn(xb), y[i:i + batch_size].to(dev), kind)
            g = input_grad(per.sum(), xb, "fgsm_through")
            out[i:i + batch_size] = (xb.detach() + eps * g.sign()).clamp_(0.0, 1.0).to(out.device)
    return out
