"""The PixelCNN PixelDefend purifies with (van den Oord, Kalchbrenner & Kavukcuoglu, ICML 2016):
masked convolutions, the network, its likelihood (bits per dimension) and its maximum-likelihood trainer."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_images, check_module, check_positive_int
from ..models import check_image_shape
from ..training import check_fit_args, fit, log_line, seeded_generator
from ..torch_utils import model_device


class MaskedConv2d(nn.Conv2d):
    """A PixelCNN convolution whose kernel sees only pixels above, or left in the same row. Type "A"
    also hides the centre pixel (first layer: a pixel never sees itself); type "B" lets it through."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str):
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type: expected 'A' or 'B', got {mask_type!r}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size: expected an odd size, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        c = kernel_size // 2
        mask = torch.ones_like(self.weight)
        mask[:, :, c, c + (1 if mask_type == "B" else 0):] = 0
        mask[:, :, c + 1:, :] = 0
        self.register_buffer("mask", mask, persistent=False)
        self.mask_type = mask_type

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.masked_weight(), self.bias, padding=self.padding)


class PixelCNN(nn.Module):
    """A PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu, ICML 2016) for 28x28 grey-scale images:
    masked 7x7 conv of type A, then ``layers`` residual blocks h <- h + MaskedConv3x3_B(ReLU(h)), then
    ReLU -> 1x1 conv -> ReLU -> 1x1 conv to 256 logits per pixel: p(x_ij = v | pixels before ij in
    raster order), v = 0..255 (a 256-way softmax, as PixelDefend's PixelCNN++ variant).

    Input: images in [0, 1] (N, 1, 28, 28) (the 8-bit value v enters as v/255); output: logits
    (N, 256, 28, 28). Each output depends on the pixels above it and to its left only (no blind-spot
    fix, no gating: the plain 2016 PixelCNN). Receptive field: 3 + ``layers`` rows above."""

    def __init__(self, channels: int = 64, layers: int = 6):
        super().__init__()
        self.channels = check_positive_int(channels, "channels")
        self.layers = check_positive_int(layers, "layers", minimum=0)
        self.input_conv = MaskedConv2d(1, channels, 7, "A")
        self.blocks = nn.ModuleList([MaskedConv2d(channels, channels, 3, "B") for _ in range(layers)])
        self.head1 = nn.Conv2d(channels, channels, 1)
        self.head2 = nn.Conv2d(channels, 256, 1)

    @staticmethod
    def encode(x: torch.Tensor) -> torch.Tensor:
        """What the network reads: x in [0, 1] centred to [-1, 1]."""
        return x * 2.0 - 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_shape(x, "PixelCNN")
        h = self.input_conv(self.encode(x))
        for blk in self.blocks:
            h = h + blk(F.relu(h))
        return self.head2(F.relu(self.head1(F.relu(h))))


def _to_levels(x) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (uint8 (N,28,28)/(N,1,28,28), or float in [0,1]) -> (float images on the 8-bit grid, int64 levels)."""
    if isinstance(x, torch.Tensor) and x.dtype == torch.uint8:
        from ..data import to_float
        xf = to_float(x)
    else:
        xf = check_images(x)
    levels = (xf.detach() * 255.0).round().long().clamp_(0, 255)
    return levels.float() / 255.0, levels


def pixelcnn_nll(model: nn.Module, x, *, batch_size: int = 256) -> torch.Tensor:
    """Negative log-likelihood in nats of every image under the PixelCNN, shape (N,) on CPU.

    x: uint8 images (N, 28, 28) or (N, 1, 28, 28), or float images in [0, 1] (quantised to the nearest
    of the 256 levels v/255 first). Batched, inference mode, the model's device."""
    check_module(model, "model")
    batch_size = check_positive_int(batch_size, "batch_size")
    xf, levels = _to_levels(x)
    dev = model_device(model)
    was = model.training
    model.eval()
    out = []
    try:
        with torch.inference_mode():
            for i in range(0, xf.shape[0], batch_size):
                xb = xf[i:i + batch_size].to(dev)
                tb = levels[i:i + batch_size, 0].to(dev)
                nll = F.cross_entropy(model(xb).float(), tb, reduction="none").flatten(1).sum(1)
                out.append(nll.cpu())
    finally:
        model.train(was)
    return torch.cat(out)


def bits_per_dim(model: nn.Module, x, *, batch_size: int = 256) -> float:
    """Mean bits per dimension of the images under the PixelCNN: NLL / (784 ln 2), averaged (lower is better)."""
    return float(pixelcnn_nll(model, x, batch_size=batch_size).mean() / (784 * math.log(2)))


def train_pixelcnn(model: nn.Module, images: torch.Tensor, *, epochs: int = 3, batch_size: int = 64,
                   lr: float = 1e-3, seed: int = 0, device=None, progress: bool = True,
                   test_images: torch.Tensor | None = None, log_every: int = 50) -> dict:
    """Maximum likelihood: minimise the 256-way cross-entropy of every pixel given the pixels before it
    (Adam with cosine decay). The loss is logged in bits per dimension; ``test_images`` (optional) adds
    ``hist["test_bits_per_dim"]`` after training (PixelDefend's detection statistic is this quantity)."""
    images, epochs, batch_size, lr, seed, dev, n, steps = check_fit_args(model, images, epochs, batch_size, lr, seed, device)
    if test_images is not None:
        test_images = check_images(test_images, "test_images")
    xq, levels = _to_levels(images)
    g = seeded_generator(seed)
    torch.manual_seed(seed)
    net = model.to(dev).train()

    def batch_loss(idx):
        return F.cross_entropy(net(xq[idx].to(dev)), levels[idx, 0].to(dev))   # nats per pixel

    hist = fit(net, n=n, batch_size=batch_size, epochs=epochs, lr=lr, g=g, name="PixelCNN",
                batch_loss=batch_loss, progress=progress, log_every=log_every, loss_unit="bits/dim, training set",
                log_scale=1.0 / math.log(2), epoch_key="epoch_bits_per_dim")
    if test_images is not None:
        hist["test_bits_per_dim"] = bits_per_dim(net, test_images)
        hist["test_n"] = int(test_images.shape[0])
        log_line(progress, f"PixelCNN: {hist['test_bits_per_dim']:.4f} bits/dim on {hist['test_n']} test images")
    return hist
