"""The one interface every defense shares, the registry of methods, and helpers they use.

Every defense is a ``Defense``: ``purify(x)`` takes a validated batch of images in [0, 1]
(shape (N, 1, 28, 28)), works in batches on ``defense.device`` and returns a float32 CPU tensor of
the same shape in [0, 1]; ``forward(x)`` is the same purifier as a torch function with autograd
(exact for the differentiable ones; PixelDefend and Defense-GAN run their real, non-differentiable
purification there and an adaptive attack has to approximate their gradient, e.g. with BPDA).

Threat model. A purifier evaluated against an attack that ignores it (the paper's *oblivious*
FGSM, chapters 05/06) says nothing about an adaptive attacker: Athalye, Carlini & Wagner (ICML 2018)
broke PixelDefend and Defense-GAN with BPDA, and a differentiable purifier such as EGAN, DnCNN, the
autoencoder or APE-GAN can be attacked end to end (chapter 07). Never quote an accuracy without
its threat model.

Adding a method: write one module in this package with its network, trainer and ``Defense``, and a
recipe ``build(ws) -> Defense`` decorated with ``@register(name, order=..., expensive=...)``; import it
in ``egan_lib/defenses/__init__.py``; add its settings to ``egan_lib.config.Profile``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .._validate import check_images, check_module, check_positive_int
from ..config import device as _device
from ..models import check_image_shape
from ..torch_utils import model_device

__all__ = ["Defense", "DenoiserDefense", "Original", "Method", "REGISTRY", "register"]


@dataclass(frozen=True)
class Method:
    """A registered method: its display name, where it sorts in tables and figures, whether it is
    expensive (evaluated on the profile's smaller ``expensive_n_test``), its recipe
    ``build(ws) -> Defense`` (load-or-train of every network it needs, from a Workspace), and whether it
    is one of the paper's methods (the others, such as chapter 08's robust EGAN, are not in chapter 06)."""
    name: str
    order: int
    expensive: bool
    build: Callable
    paper: bool = True


#: name -> Method, filled by the ``@register`` decorators of the method modules.
REGISTRY: dict[str, Method] = {}


def register(name: str, *, order: int, expensive: bool = False, paper: bool = True):
    """Decorator of a method module's recipe ``build(ws) -> Defense``: adds it to ``REGISTRY``."""
    def deco(build):
        if name in REGISTRY:
            raise ValueError(f"defense {name!r} is registered twice")
        REGISTRY[name] = Method(name, int(order), bool(expensive), build, bool(paper))
        return build
    return deco


def _as_device(device) -> torch.device:
    return _device(device) if device is not None else torch.device("cpu")


class Defense:
    """The common interface: ``purify(x)`` on a batch of images in [0, 1]; ``forward(x)`` with autograd.

    name: the display name; differentiable: True when ``forward`` is the exact purifier as a differentiable
    torch function; device: where it runs. ``defense(x)`` is ``defense.purify(x)``.
    A purifier evaluated against an attack that ignores it (the paper's oblivious FGSM) says nothing
    about an adaptive attacker; see the module docstring.
    """
    name: str = "Defense"
    differentiable: bool = True
    batch_size: int = 256
    _needs_grad: bool = False      # purification itself runs gradient steps (Defense-GAN)

    def __init__(self, device=None):
        self.device = _as_device(device)

    def modules(self) -> list:
        """The networks this defense runs (moved by ``to``, kept in eval mode)."""
        return []

    def hyperparameters(self) -> dict:
        """The purification settings beyond the weights (steps, restarts, radius, precision...)."""
        return {}

    def settings(self) -> dict:
        """What produced this defense's outputs: its class, hyper-parameters and the sha256 of every
        network's weights (recorded next to every result, and the key of a stored evaluation)."""
        from ..checkpoints import model_sha256
        return {"name": self.name, "class": type(self).__name__, **self.hyperparameters(),
                "weights_sha256": [model_sha256(m) for m in self.modules()]}

    def to(self, device) -> "Defense":
        dev = _device(device)
        for m in self.modules():
            m.to(dev).eval()
        self.device = dev
        return self

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        check_image_shape(x, f"{self.name}.forward")
        if not x.is_floating_point():
            raise TypeError(f"{self.name}.forward: expected a floating-point tensor in [0, 1], got {x.dtype}")
        return x.to(self.device, torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _purify_batch(self, xb: torch.Tensor, start: int, context: dict) -> torch.Tensor:
        return self.forward(xb)

    def _context(self, n: int) -> dict:
        return {}

    def purify(self, x: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
        """Purify a batch: validated input (N, 1, 28, 28) float in [0, 1]; returns a float32 CPU tensor
        of the same shape in [0, 1], computed ``batch_size`` images at a time on ``self.device``."""
        x = check_images(x, f"{self.name}.purify: x")
        bs = self.batch_size if batch_size is None else check_positive_int(batch_size, "batch_size")
        for m in self.modules():
            m.eval()
        n = x.shape[0]
        ctx = self._context(n)
        out = torch.empty(x.shape, dtype=torch.float32)
        grad_mode = torch.no_grad() if self._needs_grad else torch.inference_mode()
        with grad_mode:
            for i in range(0, n, bs):
                xb = x[i:i + bs].detach().to(self.device, torch.float32)
                ob = self._purify_batch(xb, i, ctx)
                out[i:i + xb.shape[0]] = ob.detach().float().clamp(0.0, 1.0).cpu()
        return out

    def __call__(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.purify(x, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={str(self.device)!r})"


class Original(Defense):
    """No defense: the identity (the paper's "Original" curve)."""
    name = "Original"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._input(x)


class DenoiserDefense(Defense):
    """A learned image-to-image purifier x' = clamp(net(x), 0, 1): DnCNN, the autoencoder, APE-GAN's G.
    Differentiable: an adaptive attacker can optimise through it (chapter 07)."""

    def __init__(self, model: nn.Module, name: str | None = None, *, device=None):
        name = type(self).name if name is None else name      # subclasses set their display name
        if not isinstance(name, str) or not name.strip() or name == Defense.name:
            raise ValueError(f"name: expected a non-empty display name, got {name!r}")
        self.model = check_module(model, "model").eval()
        self.name = name
        super().__init__(device if device is not None else model_device(self.model))
        self.to(self.device)

    def modules(self) -> list:
        return [self.model]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self._input(x)).clamp(0.0, 1.0)


@register("Original", order=0)
def build_original(ws) -> Original:
    return Original(device=ws.device)
