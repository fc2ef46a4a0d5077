"""Small torch helpers the library shares (one copy each): eval mode with restore, autograd-safe copies
of inference tensors, per-row Adam for latent searches, the device of a model, frozen parameters, and
a temporary thread count."""
from __future__ import annotations

import contextlib

import torch
from torch import nn


def autocast_bf16(device: torch.device, enabled: bool):
    """bf16 autocast on ``device`` when ``enabled`` (else a no-op context): the encoder's speed-up on CPUs
    with native bf16 and on GPUs."""
    if enabled:
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class EvalMode:
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


def plain(t: torch.Tensor) -> torch.Tensor:
    """A tensor made under torch.inference_mode() cannot enter autograd: use a normal copy of it."""
    return t.clone() if t.is_inference() else t


class RowAdam:
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


def model_device(m: nn.Module) -> torch.device:
    p = next(m.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@contextlib.contextmanager
def threads(n: int, dev: torch.device):
    """Temporarily use ``n`` intra-op threads on CPU (a no-op elsewhere). For loops of many tiny
    operations (PixelDefend's 784 steps) thread hand-offs cost more than the arithmetic: on a 2-core
    machine one thread was 6-13x faster than two (measured)."""
    if dev.type != "cpu" or torch.get_num_threads() == n:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def frozen(*modules: nn.Module):
    """Temporarily switch off requires_grad of the modules' parameters (gradients w.r.t. inputs only)."""
    saved = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    for p, _ in saved:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)
