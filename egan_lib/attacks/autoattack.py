"""AutoAttack (Croce & Hein, ICML 2020), standard version, from the pinned torchattacks library: an
independent, parameter-free ensemble (APGD-CE, APGD-T, FAB-T, Square) run on any attacked function,
e.g. ``through(defense, C)``. Installed by the project with ``--no-deps`` (requirements-nodeps.txt).

torchattacks 3.5.1's ``AutoAttack`` class leaves APGD, APGD-T and FAB at their default of 10 iterations
and Square at its rescaled schedule, which is not the published standard version. We assemble the
ensemble from the library's components with the reference implementation's settings (fra31/auto-attack):
100 iterations each, 9 target classes for APGD-T and FAB-T, Square with 5,000 queries, one restart each,
each attack run only on the images the previous ones did not break (torchattacks' ``MultiAttack``)."""
from __future__ import annotations

import torch
from torch import nn

from .._validate import check_positive_int, check_seed
from ..torch_utils import EvalMode
from .base import check_attack_inputs, device_of, networks_of

VERSION = "3.5.1"
#: the standard version's settings (Croce & Hein 2020, reference implementation fra31/auto-attack)
STANDARD = {"apgd-ce": {"steps": 100, "n_restarts": 1, "loss": "ce"},
            "apgd-t": {"steps": 100, "n_restarts": 1, "n_target_classes": 9},
            "fab-t": {"steps": 100, "n_restarts": 1, "n_target_classes": 9},
            "square": {"n_queries": 5000, "n_restarts": 1, "p_init": 0.8, "resc_schedule": False}}


def _torchattacks():
    try:
        import torchattacks
    except ImportError as e:   # pragma: no cover - the project's install puts it there
        raise ImportError("autoattack needs torchattacks==3.5.1: pip install --no-deps torchattacks==3.5.1 scipy "
                          "(python3 dev.py install does it)") from e
    return torchattacks


class _Logits(nn.Module):
    """torchattacks wants an nn.Module returning logits: wrap any attacked callable."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def autoattack(model_fn, x: torch.Tensor, y: torch.Tensor, eps: float, *, version: str = "standard",
               seed: int = 0, batch_size: int = 256, device=None, n_classes: int = 10) -> torch.Tensor:
    """L-inf AutoAttack on ``model_fn`` (logits or log-probabilities), batched; returns x_adv (CPU float32)
    with ||x_adv - x||_inf <= eps, in [0, 1]. For a non-differentiable purifier pass ``through(defense,
    C)``, which uses BPDA (AutoAttack then attacks the BPDA gradient: report it as such)."""
    x, y, eps = check_attack_inputs(model_fn, x, y, eps)
    seed = check_seed(seed)
    batch_size = check_positive_int(batch_size, "batch_size")
    if version not in ("standard", "plus", "rand"):
        raise ValueError(f"version: expected 'standard', 'plus' or 'rand', got {version!r}")
    ta = _torchattacks()
    dev = device_of(model_fn, device)
    out = x.detach().cpu().clone()
    if eps == 0.0:
        return out
    model = model_fn if isinstance(model_fn, nn.Module) else _Logits(model_fn)
    with EvalMode(*networks_of(model_fn)):
        if version == "standard":
            attack = standard_ensemble(model, eps, seed=seed, n_classes=n_classes)
        else:
            attack = ta.AutoAttack(model, norm="Linf", eps=eps, version=version, n_classes=n_classes, seed=seed)
        for i in range(0, x.shape[0], batch_size):
            xb, yb = x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev)
            adv = attack(xb, yb).detach().cpu()
            out[i:i + batch_size] = torch.minimum(torch.maximum(adv, out[i:i + batch_size] - eps),
                                                  out[i:i + batch_size] + eps).clamp_(0.0, 1.0)
    return out


def standard_ensemble(model: nn.Module, eps: float, *, seed: int = 0, n_classes: int = 10):
    """AutoAttack's standard version (L-inf) with the reference settings ``STANDARD``, built from
    torchattacks' components: APGD-CE, then APGD-T (targeted DLR), FAB-T and Square on what is left."""
    ta = _torchattacks()
    from torchattacks.wrappers.multiattack import MultiAttack
    if n_classes - 1 != STANDARD["apgd-t"]["n_target_classes"]:
        raise ValueError(f"n_classes: the standard version targets the 9 other classes of 10, got {n_classes}")
    s = STANDARD
    return MultiAttack([
        ta.APGD(model, norm="Linf", eps=eps, steps=s["apgd-ce"]["steps"], n_restarts=1, loss="ce", seed=seed),
        ta.APGDT(model, norm="Linf", eps=eps, steps=s["apgd-t"]["steps"], n_restarts=1, n_classes=n_classes,
                 seed=seed + 1),
        ta.FAB(model, norm="Linf", eps=eps, steps=s["fab-t"]["steps"], n_restarts=1, multi_targeted=True,
               n_classes=n_classes, seed=seed + 2),
        ta.Square(model, norm="Linf", eps=eps, n_queries=s["square"]["n_queries"], n_restarts=1,
                  p_init=s["square"]["p_init"], resc_schedule=s["square"]["resc_schedule"], seed=seed + 3),
    ])
