"""BPDA (Athalye, Carlini & Wagner, ICML 2018, sec. 4.1) and the defended classifier as one function.

``through(defense, C)`` is x -> C(purify(x)): exact gradients through a differentiable purifier
(white-box, "adaptive-pgd"), or the real purification forward and the identity backward (BPDA,
"adaptive-bpda") through a non-differentiable one (PixelDefend's argmax, Defense-GAN's search).
"""
from __future__ import annotations

import torch
from torch import nn

from .._validate import check_callable
from ..torch_utils import autocast_bf16
from .base import THREAT_ADAPTIVE_BPDA, THREAT_ADAPTIVE_PGD
from .fast import attacker_copy, fold_batchnorm


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
    check_callable(fn, "fn")

    def approx(x: torch.Tensor) -> torch.Tensor:
        return _StraightThrough.apply(x, fn, enable_grad)

    approx.__name__ = f"bpda({getattr(fn, '__name__', type(fn).__name__)})"
    approx.__wrapped__ = fn
    return approx


class Through(nn.Module):
    """x -> classifier(purifier(x)): the defended pipeline as one differentiable function (see :func:`through`)."""

    def __init__(self, defense, classifier, use_bpda: bool, bf16: bool = False, fold: bool = False):
        super().__init__()
        self.bf16 = bool(bf16)
        self.fold = bool(fold) or self.bf16
        if self.fold:                           # the attacker's fast arithmetic: BN folded, channels_last
            defense = attacker_copy(defense)
            classifier = fold_batchnorm(classifier) if isinstance(classifier, nn.Module) else classifier
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
        if not self.bf16:
            return self.classifier(self.purifier(x))
        with autocast_bf16(self.device, True):     # the attacker's arithmetic, not the defense's
            out = self.classifier(self.purifier(x))
        return out.float()


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


def through(defense, classifier, *, bpda="auto", bf16: bool = False, fold: bool = False) -> Through:
    """The defended classifier x -> classifier(purify(x)) as a differentiable callable for PGD/FGSM.

    ``defense``: a Defense-like object (``name``, ``differentiable``, ``device``, ``forward(x)``:
    the purifier as a torch function on its device), or any purifier callable / nn.Module.
    ``bpda``: "auto" (default) takes exact gradients through a differentiable defense (white-box,
    threat model "adaptive-pgd") and BPDA through the others (``differentiable`` is False:
    PixelDefend, Defense-GAN; "adaptive-bpda"). True forces BPDA, False forces autograd (a
    non-differentiable purifier then gives a zero or missing gradient, and PGD says so).
    ``bf16``: the attacker's fast arithmetic: bf16 autocast on copies of the networks with BatchNorm folded
    into the convolutions, in channels_last (:mod:`egan_lib.attacks.fast`; on CPUs with native bf16 and on
    GPUs). The attacked examples are then judged by the defense itself, as deployed.
    ``fold``: the same folded, channels_last copies in fp32 (the fast arithmetic of CPUs that only emulate
    bf16; the function is the deployed one up to float rounding). ``bf16`` implies it.
    """
    check_callable(classifier, "classifier")
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
    if not isinstance(bf16, bool):
        raise TypeError(f"bf16: expected True or False, got {bf16!r}")
    if not isinstance(fold, bool):
        raise TypeError(f"fold: expected True or False, got {fold!r}")
    return Through(defense, classifier, use, bf16, fold)
