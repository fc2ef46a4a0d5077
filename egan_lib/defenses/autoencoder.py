"""The denoising autoencoder baseline: MagNet's MNIST reformer (Meng & Chen, CCS 2017), its trainer,
the Defense and its load-or-train recipe."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_positive_float, check_positive_int
from ..models import check_image_shape
from ..training import check_fit_args, fit, seeded_generator
from .base import DenoiserDefense, register


class ConvAutoEncoder(nn.Module):
    """MagNet's MNIST autoencoder (Meng & Chen, CCS 2017; their reformer/detector "I"):
    Conv 3x3 (``channels``) -> AvgPool 2x2 -> Conv 3x3 -> Conv 3x3 -> Upsample 2x2 -> Conv 3x3 -> Conv 3x3 (1),
    every layer with a sigmoid. The bottleneck is channels x 14 x 14 (588 values for 3 channels < 784).
    ``channels`` and ``activation`` (hidden layers: "sigmoid" or "relu") may be changed; the defaults are
    MagNet's. Initialisation: Glorot-uniform weights and zero biases (Keras' default, which MagNet used)."""

    def __init__(self, channels: int = 3, activation: str = "sigmoid"):
        super().__init__()
        channels = check_positive_int(channels, "channels")
        acts = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}
        if activation not in acts:
            raise ValueError(f"activation: expected one of {sorted(acts)}, got {activation!r}")
        act = acts[activation]
        self.encoder = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), act(), nn.AvgPool2d(2),
                                     nn.Conv2d(channels, channels, 3, padding=1), act())
        self.decoder = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), act(),
                                     nn.Upsample(scale_factor=2, mode="nearest"),
                                     nn.Conv2d(channels, channels, 3, padding=1), act(),
                                     nn.Conv2d(channels, 1, 3, padding=1), nn.Sigmoid())
        self.channels = channels
        for m in self.modules():   # Keras' default init, as in MagNet's code (Glorot-uniform weights, zero biases):
            if isinstance(m, nn.Conv2d):   # PyTorch's default keeps the sigmoid net on the "output the mean
                nn.init.xavier_uniform_(m.weight)   # image" plateau for hundreds of steps longer
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_shape(x, "ConvAutoEncoder")
        return self.decoder(self.encoder(x))


def train_autoencoder(model: nn.Module, images: torch.Tensor, *, noise: float = 0.1, epochs: int = 5,
                      batch_size: int = 256, lr: float = 1e-3, seed: int = 0, device=None, progress: bool = True,
                      log_every: int = 50) -> dict:
    """Train a denoising autoencoder with MagNet's recipe (Meng & Chen 2017, their MNIST code):
    input clip(x + noise * n, 0, 1), n ~ N(0, I) ("volume" 0.1), target the clean x, mean squared error,
    Adam (lr 1e-3, here with cosine decay), batch 256. MagNet trains 100 epochs; the profiles say how many
    are used here. The noise is drawn afresh every batch (MagNet draws it once)."""
    images, epochs, batch_size, lr, seed, dev, n, steps = check_fit_args(model, images, epochs, batch_size, lr, seed, device)
    noise = check_positive_float(noise, "noise", allow_zero=True)

    g = seeded_generator(seed)
    torch.manual_seed(seed)
    net = model.to(dev).train()

    def batch_loss(idx):
        x = images[idx]
        y = (x + noise * torch.randn(x.shape, generator=g)).clamp_(0.0, 1.0)
        return F.mse_loss(net(y.to(dev)), x.to(dev))

    return fit(net, n=n, batch_size=batch_size, epochs=epochs, lr=lr, g=g, name="AutoEncoder",
                batch_loss=batch_loss, progress=progress, log_every=log_every, loss_fmt=".5f",
                loss_unit="MSE per pixel")


class AutoEncoderDefense(DenoiserDefense):
    """The denoising autoencoder (MagNet's reformer, Meng & Chen 2017) as a purifier: x' = AE(x)."""
    name = "AutoEncoder"


def get_autoencoder(ws):
    """(ConvAutoEncoder, history): load-or-train with the profile's ``ae_*`` fields (MagNet's recipe)."""
    p = ws.profile

    def train(model):
        x, _ = ws.train_subset(p.ae_train_size)
        return train_autoencoder(model, x, noise=p.ae_noise, epochs=p.ae_epochs, batch_size=p.ae_batch,
                                 lr=p.ae_lr, seed=ws.seed, device=ws.device, progress=ws.progress)
    return ws.trained("autoencoder", lambda: ConvAutoEncoder(p.ae_channels), train, channels=p.ae_channels,
                      epochs=p.ae_epochs, batch=p.ae_batch, lr=p.ae_lr, noise=p.ae_noise, train_size=p.train_size,
                      n_images=p.ae_train_size)


@register("AutoEncoder", order=3)
def build(ws) -> AutoEncoderDefense:
    return AutoEncoderDefense(get_autoencoder(ws)[0], device=ws.device)
