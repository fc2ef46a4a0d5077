"""EGAN (Pérez-Bravo et al.): x' = G(E(x)), the paper's encoder E inverting the frozen DCGAN
generator G; the Defense, the one batched reconstruction helper, and its recipe."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from .._validate import check_images, check_module, check_positive_int
from ..torch_utils import model_device
from .base import Defense, register


class EGAN(Defense):
    """EGAN (the paper): x' = G(E(x)), E trained to invert the frozen DCGAN generator G.

    ``forward`` is differentiable end to end, so an adaptive attacker can take gradients through
    C(G(E(x))) (chapter 07): the oblivious FGSM numbers are an upper bound on robustness.
    bf16 / channels_last: optional speed-ups of E in ``purify`` only (``forward`` stays fp32)."""
    name = "EGAN"

    def __init__(self, encoder: nn.Module, generator: nn.Module, *, bf16: bool = False,
                 channels_last: bool = False, device=None):
        self.encoder = check_module(encoder, "encoder").eval()
        self.generator = check_module(generator, "generator").eval()
        self.bf16, self.channels_last = bool(bf16), bool(channels_last)
        super().__init__(device if device is not None else model_device(self.generator))
        self.to(self.device)

    def modules(self) -> list:
        return [self.encoder, self.generator]

    def hyperparameters(self) -> dict:
        return {"bf16": self.bf16, "channels_last": self.channels_last}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator(self.encoder(self._input(x)))

    def _purify_batch(self, xb, start, context):
        if self.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        amp = (torch.autocast(device_type=self.device.type, dtype=torch.bfloat16) if self.bf16
               else contextlib.nullcontext())
        with amp:
            z = self.encoder(xb)
        return self.generator(z.float())


@torch.inference_mode()
def reconstruct(encoder: nn.Module, generator: nn.Module, x: torch.Tensor, batch_size: int = 256,
                bf16: bool = False) -> torch.Tensor:
    """EGAN's purification G(E(x)) of a batch of images, in batches, without gradients (float32, CPU)."""
    check_module(encoder, "encoder"); check_module(generator, "generator")
    x = check_images(x)
    batch_size = check_positive_int(batch_size, "batch_size")
    return EGAN(encoder, generator, bf16=bf16).purify(x, batch_size=batch_size)


@register("EGAN", order=1)
def build(ws) -> EGAN:
    p, dev = ws.profile, ws.device
    G, _ = ws.generator()
    E, _ = ws.encoder()
    return EGAN(E, G, bf16=p.bf16 and dev.type == "cpu", channels_last=p.channels_last, device=dev)
