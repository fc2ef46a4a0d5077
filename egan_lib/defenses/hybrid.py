"""EGAN + k Defense-GAN steps ("EGAN+DGAN-k"): start Defense-GAN's latent search at z = E(x).

The point between EGAN and Defense-GAN on the time/accuracy figure (paper Fig. 5). Not registered
among the paper's methods (``REGISTRY``): a chapter builds it with the k it studies.
"""
from __future__ import annotations

import torch
from torch import nn

from .._validate import check_positive_float, check_positive_int
from ..torch_utils import EvalMode, RowAdam, plain
from .egan import EGAN


class HybridDefense(EGAN):
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
    _needs_grad = True

    def __init__(self, encoder: nn.Module, generator: nn.Module, steps: int = 10, lr: float = 0.05, *,
                 device=None, batch_size: int = 256, name: str | None = None):
        super().__init__(encoder, generator, device=device)
        self.steps = check_positive_int(steps, "steps", minimum=0)
        self.lr = check_positive_float(lr, "lr")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.name = name if name is not None else f"EGAN+DGAN-{self.steps}"

    def _purify_batch(self, xb, start, context):
        return self.forward(xb)

    def hyperparameters(self) -> dict:
        return {"steps": self.steps, "lr": self.lr}

    def __repr__(self) -> str:
        return f"HybridDefense(name={self.name!r}, steps={self.steps}, lr={self.lr}, device={self.device})"

    def project(self, x: torch.Tensor, z0: torch.Tensor | None = None) -> torch.Tensor:
        """The best latent z (lowest ||G(z) - x||^2 per image) from z0 (default E(x)); on device."""
        x = plain(x.detach()).to(self.device)
        with EvalMode(self.encoder, self.generator):
            with torch.no_grad():
                z = self.encoder(x) if z0 is None else plain(z0.detach()).to(self.device)
                best_z = z.clone()
                best_err = ((self.generator(z) - x) ** 2).flatten(1).sum(1)
            opt = RowAdam(z, self.lr)
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
        with torch.no_grad(), EvalMode(self.generator):
            return self.generator(z).detach()
