"""Expectation over transformation (Athalye, Engstrom, Ilyas & Kwok, ICML 2018): against a randomised
defense, attack the expected prediction over its randomness, not one draw of it.

``eot(make_fn, samples)`` returns x -> log( mean_k softmax(f_k(x)) ): the log of the class probabilities
averaged over ``samples`` draws f_k = make_fn(k) (e.g. Defense-GAN with a fresh set of random restarts
per draw, attacked through BPDA). PGD on it follows the gradient of the expected probabilities.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .._validate import check_callable, check_positive_int


class EOT(nn.Module):
    """The averaged attacked function; ``networks()`` lists every draw's networks (eval mode in attacks)."""

    def __init__(self, fns: list):
        super().__init__()
        self.fns = list(fns)
        self.name = f"EOT({getattr(self.fns[0], 'name', type(self.fns[0]).__name__)}, {len(self.fns)} samples)"
        dev = getattr(self.fns[0], "device", None)
        self.device = dev if dev is not None and not callable(dev) else torch.device("cpu")

    def networks(self) -> list:
        nets = []
        for f in self.fns:
            got = f.networks() if callable(getattr(f, "networks", None)) else [f]
            nets += [m for m in got if isinstance(m, nn.Module) and all(m is not n for n in nets)]
        return nets

    @property
    def threat_model(self) -> str:
        return getattr(self.fns[0], "threat_model", "adaptive-bpda") + "+eot"

    @property
    def uses_bpda(self) -> bool:
        return bool(getattr(self.fns[0], "uses_bpda", False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = torch.stack([torch.log_softmax(f(x), dim=1) for f in self.fns])
        return torch.logsumexp(logp, dim=0) - math.log(len(self.fns))


def eot(make_fn, samples: int) -> EOT:
    """``samples`` draws ``make_fn(k)`` (k = 0, 1, ...), each an attacked function x -> logits."""
    check_callable(make_fn, "make_fn")
    samples = check_positive_int(samples, "samples")
    fns = [make_fn(k) for k in range(samples)]
    for k, f in enumerate(fns):
        check_callable(f, f"make_fn({k})")
    return EOT(fns)
