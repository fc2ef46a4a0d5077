"""FGSM (Goodfellow et al. 2015) in the paper's oblivious setting, batched, on any device.

x_adv = clip(x + eps * sign(grad_x J(C(x), y)), 0, 1), with J the classifier's NLL loss.
The gradient is taken through the classifier alone (the paper's threat model); chapter 07 adds
attacks that go through the defense too. The sign does not depend on eps, so ``fgsm_grid``
computes it once and returns every eps of a grid from one backward pass.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._validate import check_eps, check_images, check_labels, check_module, check_positive_int
from .config import device as _device


def eps_grid(step: float = 0.05, maximum: float = 1.0) -> list[float]:
    """[0, step, 2*step, ..., maximum], rounded to 1e-6 (the paper: step 0.05 up to 1)."""
    step = check_eps(step, "step")
    maximum = check_eps(maximum, "maximum")
    if step == 0:
        raise ValueError("step: must be > 0")
    n = int(round(maximum / step))
    if abs(n * step - maximum) > 1e-9:
        raise ValueError(f"step: {step} does not divide maximum {maximum} into whole steps")
    return [round(i * step, 6) for i in range(n + 1)]


def _run_eval(model):
    was_training = model.training
    model.eval()
    return was_training


def gradient_sign(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 512,
                  device=None) -> torch.Tensor:
    """sign(grad_x NLL(model(x), y)) for a batch, computed in chunks; model in eval mode.

    ``model`` may return logits or log-probabilities (cross-entropy treats both alike).
    Returns a CPU tensor of -1/0/+1 with the shape of x.
    """
    check_module(model, "model")
    check_images(x)
    y = check_labels(y, n=x.shape[0])
    batch_size = check_positive_int(batch_size, "batch_size")
    dev = _device(device) if device is not None else next(model.parameters()).device
    was_training = _run_eval(model)
    out = torch.empty(x.shape, dtype=x.dtype)
    try:
        with torch.enable_grad():
            for i in range(0, x.shape[0], batch_size):
                # clone: x may be an inference-mode tensor, which cannot require grad
                xb = x[i:i + batch_size].to(dev).clone().requires_grad_(True)
                yb = y[i:i + batch_size].to(dev).clone()
                loss = F.cross_entropy(model(xb), yb, reduction="sum")
                (g,) = torch.autograd.grad(loss, xb)
                out[i:i + batch_size] = g.sign().to(out.device)
    finally:
        model.train(was_training)
    return out


def fgsm(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, batch_size: int = 512,
         device=None) -> torch.Tensor:
    """FGSM adversarial examples: clip(x + eps * sign(grad_x J), 0, 1). eps = 0 returns x unchanged."""
    eps = check_eps(eps)
    s = gradient_sign(model, x, y, batch_size=batch_size, device=device)
    return (x + eps * s).clamp_(0.0, 1.0)


def fgsm_grid(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps_values, *, batch_size: int = 512,
              device=None) -> dict[float, torch.Tensor]:
    """FGSM at every eps of ``eps_values`` from one gradient: {eps: x_adv}."""
    if isinstance(eps_values, (int, float)) or len(eps_values) == 0:
        raise ValueError(f"eps_values: expected a non-empty list of eps, got {eps_values!r}")
    eps_values = [check_eps(e) for e in eps_values]
    s = gradient_sign(model, x, y, batch_size=batch_size, device=device)
    return {e: (x + e * s).clamp_(0.0, 1.0) for e in eps_values}


@torch.inference_mode()
def predict(model: torch.nn.Module, x: torch.Tensor, *, batch_size: int = 1024, device=None) -> torch.Tensor:
    """Predicted class of every image (argmax of the model's output), batched; returns int64 on CPU."""
    check_module(model, "model")
    check_images(x)
    batch_size = check_positive_int(batch_size, "batch_size")
    dev = _device(device) if device is not None else next(model.parameters()).device
    was_training = _run_eval(model)
    try:
        preds = [model(x[i:i + batch_size].to(dev)).argmax(1).cpu() for i in range(0, x.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(preds)


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024, device=None) -> float:
    """Fraction of images the model classifies correctly."""
    y = check_labels(y, n=x.shape[0] if isinstance(x, torch.Tensor) else None)
    return float((predict(model, x, batch_size=batch_size, device=device) == y.cpu()).float().mean())
