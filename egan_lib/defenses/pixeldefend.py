"""PixelDefend (Song, Kim, Nowozin, Ermon & Kushman, ICLR 2018): autoregressive purification under a
PixelCNN, exact and incremental, batched; the Defense and its load-or-train recipe."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_eps
from ..torch_utils import model_device, threads
from .base import Defense, register
from .pixelcnn import PixelCNN, train_pixelcnn

#: PixelDefend's default purification radius: 32/255, the eps_defend Song et al. (2018) use on
#: Fashion-MNIST (the paper's 28x28 grey-scale data set; they attack it with eps = 8/255 and 25/255, so
#: eps_defend is set a little above the largest attack they expect). MNIST has no value of its own there.
PIXELDEFEND_EPS = 32 / 255


def pixeldefend_batch(model: PixelCNN, x: torch.Tensor, eps: float, *, bf16: bool = False,
                       return_logits: bool = False):
    """PixelDefend on one batch (Song et al. 2018, Algorithm 1), exact and incremental.

    Pixels are visited in raster order; pixel (r, c) becomes the most likely 8-bit value v/255 with
    |v/255 - x_rc| <= eps under p(v | purified pixels before (r, c)). A layer's activation at (r, c)
    depends only on pixels before (r, c), and those never change again once purified, so each layer's
    activation at (r, c) is computed exactly once, from the cached activations of the rows above and of the
    pixels to its left (the idea of fast PixelCNN generation, Ramachandran et al. 2017). The whole
    purification then costs about one full forward pass per image instead of 784: the rows above are never
    recomputed. Returns the purified batch (and the logits used for every pixel, shape (N, 256, 28, 28),
    when ``return_logits``; they equal ``model(output)``).
    """
    n, dev = x.shape[0], x.device
    C, L = model.channels, model.layers
    # pre-masked kernels cropped to the rows that can be non-zero (the rows above and the current one),
    # laid out (row, col, channel) to match the channels-last caches below
    w0 = model.input_conv.masked_weight()[:, 0, :4, :].reshape(C, 28).t().contiguous()           # (28, C)
    b0 = model.input_conv.bias
    wb = [blk.masked_weight()[:, :, :2, :].permute(0, 2, 3, 1).reshape(C, 6 * C).t().contiguous()
          for blk in model.blocks]                                                                 # (6C, C)
    bb = [blk.bias for blk in model.blocks]
    w1, b1 = model.head1.weight.view(C, C).t().contiguous(), model.head1.bias
    w2, b2 = model.head2.weight.view(256, C).t().contiguous(), model.head2.bias
    # caches: the centred input padded by 3 (top, left, right); ReLU(h) of every layer padded by 1,
    # channels last (what the next masked conv reads; zero padding stays zero under ReLU)
    xin = torch.zeros(n, 31, 34, device=dev)
    acts = [torch.zeros(n, 29, 30, C, device=dev) for _ in range(L)]
    # the allowed window of levels of every pixel: |v/255 - x| <= eps (the nearest level if none fits)
    lo = torch.ceil((x - eps) * 255.0 - 1e-4).clamp_(0, 255)
    hi = torch.floor((x + eps) * 255.0 + 1e-4).clamp_(0, 255)
    empty = lo > hi
    near = (x * 255.0).round()
    lo = torch.where(empty, near, lo).long()[:, 0]
    hi = torch.where(empty, near, hi).long()[:, 0]
    levels = torch.arange(256, device=dev)
    out = torch.empty(n, 28, 28, dtype=torch.long, device=dev)
    all_logits = torch.empty(n, 256, 28, 28, device=dev) if return_logits else None
    amp = torch.autocast(device_type=dev.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    small = n * 6 * C * C < 16_000_000          # multiply-adds of one masked-conv step
    with amp, threads(1, dev) if small else contextlib.nullcontext():
        for r in range(28):
            for c in range(28):
                h = torch.addmm(b0, xin[:, r:r + 4, c:c + 7].reshape(n, 28), w0)
                for i in range(L):
                    acts[i][:, r + 1, c + 1] = F.relu(h)
                    h = h + torch.addmm(bb[i], acts[i][:, r:r + 2, c:c + 3].reshape(n, 6 * C), wb[i])
                logits = torch.addmm(b2, F.relu(torch.addmm(b1, F.relu(h), w1)), w2).float()
                if return_logits:
                    all_logits[:, :, r, c] = logits
                allowed = (levels >= lo[:, r, c, None]) & (levels <= hi[:, r, c, None])
                v = logits.masked_fill(~allowed, float("-inf")).argmax(1)
                out[:, r, c] = v
                xin[:, r + 3, c + 3] = v.float() * (2.0 / 255.0) - 1.0
    purified = (out.float() / 255.0).unsqueeze(1)
    return (purified, all_logits) if return_logits else purified


class PixelDefend(Defense):
    """PixelDefend (Song, Kim, Nowozin, Ermon & Kushman, ICLR 2018): purify x by walking the 784 pixels in
    raster order and setting each to its most likely 8-bit value within [x - eps_def, x + eps_def] under
    the PixelCNN conditional given the already purified pixels (greedy argmax, their Algorithm 1).
    Batched over images; exact incremental evaluation of the PixelCNN (see ``pixeldefend_batch``).

    eps_def default 32/255 = 0.125: the value of the paper for Fashion-MNIST, set a little above the attack
    eps they expected (8/255 and 25/255). It cannot undo a larger perturbation: against FGSM with
    eps >> eps_def the output stays within eps_def of the attacked image.

    Not differentiable (argmax, 784 sequential steps): ``forward`` runs the real purification and returns a
    detached tensor. Athalye et al. (2018) broke it with BPDA; an adaptive attacker must be evaluated
    (chapter 07) before quoting robustness.
    """
    name = "PixelDefend"
    differentiable = False
    batch_size = 256

    def __init__(self, pixelcnn: nn.Module, eps_def: float = PIXELDEFEND_EPS, *, bf16: bool = False, device=None):
        if not isinstance(pixelcnn, PixelCNN):
            raise TypeError(f"pixelcnn: expected an egan_lib.defenses.PixelCNN, got {type(pixelcnn).__name__}")
        self.pixelcnn = pixelcnn.eval()
        self.eps_def = check_eps(eps_def, "eps_def")
        self.bf16 = bool(bf16)
        super().__init__(device if device is not None else model_device(pixelcnn))
        self.to(self.device)

    def modules(self) -> list:
        return [self.pixelcnn]

    def hyperparameters(self) -> dict:
        return {"eps_def": self.eps_def, "bf16": self.bf16}

    def _purify_batch(self, xb, start, context):
        return pixeldefend_batch(self.pixelcnn, xb, self.eps_def, bf16=self.bf16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xb = self._input(x).detach()
        self.pixelcnn.eval()
        with torch.inference_mode():
            out = pixeldefend_batch(self.pixelcnn, xb.clamp(0.0, 1.0), self.eps_def, bf16=self.bf16)
        return out.clone()


def get_pixelcnn(ws):
    """(PixelCNN, history): load-or-train with the profile's ``pixelcnn_*`` fields. ``history
    ["test_bits_per_dim"]`` is measured after training on the first ``pixelcnn_test_size`` images of the
    MNIST test set (``history["test_n"]`` of them)."""
    p = ws.profile

    def train(model):
        x, _ = ws.train_subset(p.pixelcnn_train_size)
        xt, _ = ws.full_test_set()
        return train_pixelcnn(model, x, epochs=p.pixelcnn_epochs, batch_size=p.pixelcnn_batch, lr=p.pixelcnn_lr,
                              seed=ws.seed, device=ws.device, progress=ws.progress,
                              test_images=xt[:p.pixelcnn_test_size])
    return ws.trained("pixelcnn", lambda: PixelCNN(p.pixelcnn_channels, p.pixelcnn_layers), train,
                      channels=p.pixelcnn_channels, layers=p.pixelcnn_layers, epochs=p.pixelcnn_epochs,
                      batch=p.pixelcnn_batch, lr=p.pixelcnn_lr, train_size=p.train_size,
                      n_images=p.pixelcnn_train_size, n_test=p.pixelcnn_test_size)


@register("PixelDefend", order=5)
def build(ws) -> PixelDefend:
    return PixelDefend(get_pixelcnn(ws)[0], eps_def=ws.profile.pixeldefend_eps, device=ws.device)
