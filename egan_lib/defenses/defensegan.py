"""Defense-GAN (Samangouei, Kabkab & Chellappa, ICLR 2018): project x onto the generator's range by
gradient descent on z from R random restarts; the same G as EGAN."""
from __future__ import annotations

import math

import torch
from torch import nn

from .._validate import (check_fraction, check_images, check_module, check_positive_float, check_positive_int,
                         check_seed)
from ..torch_utils import frozen, model_device
from .base import Defense, register

#: Defense-GAN's published reconstruction hyper-parameters (paper and code: REC_ITERS, REC_RR, REC_LR).
DEFENSEGAN_STEPS, DEFENSEGAN_RESTARTS, DEFENSEGAN_LR, DEFENSEGAN_MOMENTUM = 200, 10, 10.0, 0.7


class DefenseGAN(Defense):
    """Defense-GAN (Samangouei, Kabkab & Chellappa, ICLR 2018): x' = G(z*), z* = argmin over R random
    restarts of L gradient steps on ||G(z) - x||^2. The same G as EGAN; EGAN replaces this inner
    optimisation by one pass of its encoder.

    As published (paper and code, kabkabm/defensegan): L = 200 steps, R = 10 restarts, optimiser SGD with
    momentum 0.7 at lr 10 on the per-image *mean* squared error (mean over the 784 pixels, summed over
    images so each z gets its own gradient), lr x 0.1 after 80 % of the steps (their schedule; in their
    TF code the step counter that drives it is never incremented, so the decay never fires there).
    The R restarts run in parallel as one batch of N*R latents; the best z per image is kept.
    z_0 ~ N(0, init_std^2 I): init_std = 1, the prior our G was trained with (their code: sqrt(1/dim z)).
    Restarts are drawn from a generator seeded with ``seed``: the same input gives the same output.

    Not differentiable in practice (L unrolled steps): ``forward`` runs the real projection and returns a
    detached G(z*); Athalye et al. (2018) circumvented Defense-GAN with BPDA (chapter 07).
    """
    name = "Defense-GAN"
    differentiable = False
    batch_size = 256
    _needs_grad = True

    def __init__(self, generator: nn.Module, steps: int = DEFENSEGAN_STEPS, restarts: int = DEFENSEGAN_RESTARTS,
                 lr: float = DEFENSEGAN_LR, *, momentum: float = DEFENSEGAN_MOMENTUM, lr_decay: float = 0.1,
                 decay_at: float = 0.8, init_std: float = 1.0, seed: int = 0, device=None):
        self.generator = check_module(generator, "generator").eval()
        self.latent_dim = int(getattr(generator, "latent_dim", 0)) or None
        if self.latent_dim is None:
            raise TypeError("generator: expected an egan_lib Generator with a latent_dim attribute")
        self.steps = check_positive_int(steps, "steps", minimum=0)
        self.restarts = check_positive_int(restarts, "restarts")
        self.lr = check_positive_float(lr, "lr", allow_zero=True)
        self.momentum = check_fraction(momentum, "momentum")
        self.lr_decay = check_fraction(lr_decay, "lr_decay")
        self.decay_at = check_fraction(decay_at, "decay_at")
        self.init_std = check_positive_float(init_std, "init_std")
        self.seed = check_seed(seed)
        super().__init__(device if device is not None else model_device(self.generator))
        self.to(self.device)

    def modules(self) -> list:
        return [self.generator]

    def reseeded(self, seed: int) -> "DefenseGAN":
        """The same defense with another draw of its random restarts (for EOT, and fresh evaluation draws)."""
        import copy
        other = copy.copy(self)
        other.seed = check_seed(seed)
        return other

    def hyperparameters(self) -> dict:
        return {"L_steps": self.steps, "R_restarts": self.restarts, "lr": self.lr, "momentum": self.momentum,
                "lr_decay": self.lr_decay, "decay_at": self.decay_at, "init_std": self.init_std, "seed": self.seed}

    def initial_latents(self, n: int) -> torch.Tensor:
        """The R starting points of every image, (n, R, dim z), from the seeded generator (on CPU)."""
        n = check_positive_int(n, "n")
        g = torch.Generator().manual_seed(self.seed)
        return torch.randn(n, self.restarts, self.latent_dim, generator=g) * self.init_std

    def _project_batch(self, xb: torch.Tensor, z0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z*, mean squared error of G(z*)) for a batch xb (B, 1, 28, 28) from starts z0 (B, R, dim z)."""
        B, R, L = z0.shape
        G = self.generator.eval()
        target = xb.detach().repeat_interleave(R, dim=0)
        z = z0.reshape(B * R, L).to(self.device, torch.float32).clone()
        vel = torch.zeros_like(z)
        decay_step = int(math.ceil(self.steps * self.decay_at))
        with torch.enable_grad(), frozen(G):
            for t in range(self.steps):
                lr = self.lr * (self.lr_decay if t >= decay_step else 1.0)
                z.requires_grad_(True)
                err = (G(z) - target).flatten(1).pow(2).mean(1)
                (grad,) = torch.autograd.grad(err.sum(), z)
                with torch.no_grad():
                    vel.mul_(self.momentum).add_(grad)
                    z = z.detach() - lr * vel
        with torch.no_grad():
            err = (G(z.detach()) - target).flatten(1).pow(2).mean(1).view(B, R)
            best = err.argmin(1)
            rows = torch.arange(B, device=z.device)
            return z.detach().view(B, R, L)[rows, best], err[rows, best]

    def _starts(self, x: torch.Tensor, z0) -> torch.Tensor:
        n = x.shape[0]
        if z0 is None:
            return self.initial_latents(n)
        if not isinstance(z0, torch.Tensor) or not z0.is_floating_point():
            raise TypeError(f"z0: expected a float tensor of shape (N, {self.latent_dim}) or "
                            f"(N, R, {self.latent_dim}), got {type(z0).__name__}")
        if z0.dim() == 2:
            z0 = z0.unsqueeze(1)
        if z0.dim() != 3 or z0.shape[0] != n or z0.shape[2] != self.latent_dim or z0.shape[1] == 0:
            raise ValueError(f"z0: expected shape ({n}, {self.latent_dim}) or ({n}, R, {self.latent_dim}), "
                             f"got {tuple(z0.shape)}")
        if not bool(torch.isfinite(z0).all()):
            raise ValueError("z0: contains NaN or inf")
        return z0.detach().float().cpu()

    def project(self, x: torch.Tensor, z0: torch.Tensor | None = None, *, batch_size: int | None = None,
                return_error: bool = False):
        """The best latent z* of every image, (N, dim z) on CPU (and its per-pixel mean squared error, (N,),
        when ``return_error``). z0: optional starting points, (N, dim z) (one start per image, e.g. E(x) for
        an EGAN + Defense-GAN hybrid) or (N, R', dim z); default: R seeded random restarts."""
        x = check_images(x, "Defense-GAN.project: x")
        bs = self.batch_size if batch_size is None else check_positive_int(batch_size, "batch_size")
        starts = self._starts(x, z0)
        zs, errs = [], []
        with torch.no_grad():
            for i in range(0, x.shape[0], bs):
                z, e = self._project_batch(x[i:i + bs].to(self.device, torch.float32), starts[i:i + bs])
                zs.append(z.cpu()); errs.append(e.cpu())
        z, e = torch.cat(zs), torch.cat(errs)
        return (z, e) if return_error else z

    def _context(self, n: int) -> dict:
        return {"z0": self.initial_latents(n)}

    def _purify_batch(self, xb, start, context):
        z, _ = self._project_batch(xb, context["z0"][start:start + xb.shape[0]])
        return self.generator(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xb = self._input(x).detach()
        z, _ = self._project_batch(xb, self.initial_latents(xb.shape[0]))
        with torch.no_grad():
            return self.generator(z).clamp(0.0, 1.0)


@register("Defense-GAN", order=6, expensive=True)
def build(ws) -> DefenseGAN:
    p = ws.profile
    G, _ = ws.generator()
    return DefenseGAN(G, steps=p.defensegan_steps, restarts=p.defensegan_restarts, lr=p.defensegan_lr,
                      seed=ws.seed, device=ws.device)
