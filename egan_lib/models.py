"""The paper's four networks: DCGAN generator G and discriminator D, encoder E, classifier C.

Read top to bottom: each class is the architecture as the paper (or, for G/D, the standard
MNIST DCGAN) describes it. Widths and depths are arguments only so the smoke profile can shrink
them; the defaults are the paper's numbers (E: 2,005,530 parameters; C: 10,630).
"""
from __future__ import annotations

import torch
from torch import nn

from ._validate import check_positive_int

LATENT_DIM = 30


def check_image_shape(x: torch.Tensor, who: str) -> None:
    """Shape check of a forward pass (cheap: no data-dependent test, so no device sync)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: expected a torch.Tensor of images with shape (N, 1, 28, 28), got {type(x).__name__}")
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"{who}: expected images of shape (N, 1, 28, 28), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{who}: empty batch (N = 0); expected at least one image")


def dcgan_init(module: nn.Module) -> None:
    """DCGAN weight init (Radford et al.): conv weights ~ N(0, 0.02), BN weights ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """DCGAN generator for 28x28x1: z (N, L) -> linear -> 7x7 map -> two stride-2 transposed convs -> [0, 1]."""

    def __init__(self, latent_dim: int = LATENT_DIM, width: int = 64):
        super().__init__()
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        width = check_positive_int(width, "width")
        c = 2 * width
        self.project = nn.Sequential(nn.Linear(latent_dim, c * 7 * 7, bias=False), nn.BatchNorm1d(c * 7 * 7), nn.ReLU(True))
        self.net = nn.Sequential(
            nn.ConvTranspose2d(c, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),  # 7 -> 14
            nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Sigmoid(),                                     # 14 -> 28
        )
        self._c = c
        dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"Generator: expected a torch.Tensor of latents (N, {self.latent_dim}), got {type(z).__name__}")
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"Generator: expected latents of shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        if z.shape[0] == 0:
            raise ValueError("Generator: empty batch (N = 0); expected at least one latent")
        h = self.project(z).view(-1, self._c, 7, 7)
        return self.net(h)


class Discriminator(nn.Module):
    """DCGAN discriminator for 28x28x1: strided convs, BN, LeakyReLU(0.2); returns one logit per image."""

    def __init__(self, width: int = 64):
        super().__init__()
        width = check_positive_int(width, "width")
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1), nn.LeakyReLU(0.2, True),                                        # 28 -> 14
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2, True),  # -> 7
            nn.Flatten(), nn.Linear(2 * width * 7 * 7, 1),
        )
        dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_shape(x, "Discriminator")
        return self.net(x).squeeze(1)


def _enc_block(cin: int, cout: int, padding: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=padding), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True))


class Encoder(nn.Module):
    """The paper's encoder E: image (N, 1, 28, 28) -> latent (N, L).

    1 block 1 -> C channels (padding 1); ``same_blocks`` blocks C -> C keeping 28x28 (padding 1);
    ``valid_blocks`` blocks C -> C with padding 0 (28 -> 26 -> ... -> 6 for 11 blocks);
    flatten (C*6*6 = 3600) and Linear(3600, L). A block is Conv2d 3x3 + BatchNorm + LeakyReLU(0.2).
    """

    def __init__(self, latent_dim: int = LATENT_DIM, channels: int = 100, same_blocks: int = 10, valid_blocks: int = 11):
        super().__init__()
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        channels = check_positive_int(channels, "channels")
        same_blocks = check_positive_int(same_blocks, "same_blocks", minimum=0)
        valid_blocks = check_positive_int(valid_blocks, "valid_blocks", minimum=0)
        if valid_blocks > 13:
            raise ValueError(f"valid_blocks: at most 13 (each removes 2 pixels from 28), got {valid_blocks}")
        side = 28 - 2 * valid_blocks
        layers = [_enc_block(1, channels, 1)]
        layers += [_enc_block(channels, channels, 1) for _ in range(same_blocks)]
        layers += [_enc_block(channels, channels, 0) for _ in range(valid_blocks)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * side * side, latent_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_shape(x, "Encoder")
        return self.head(self.features(x))


class Classifier(nn.Module):
    """The paper's classifier C (10,630 parameters): returns log-probabilities (N, 10).

    Conv2d(1, 20, 3, stride 2) + BN + ReLU -> 13x13; Conv2d(20, 10, 3, stride 3, padding 0) + BN + ReLU
    -> 4x4x10; Linear(160, 50) + ReLU; Linear(50, 10); LogSoftmax.
    """

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 20, 3, stride=2), nn.BatchNorm2d(20), nn.ReLU(True),
            nn.Conv2d(20, 10, 3, stride=3), nn.BatchNorm2d(10), nn.ReLU(True),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(160, 50), nn.ReLU(True), nn.Linear(50, 10), nn.LogSoftmax(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_shape(x, "Classifier")
        return self.head(self.features(x))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_generator(profile) -> Generator:
    return Generator(profile.latent_dim, profile.g_width)


def build_discriminator(profile) -> Discriminator:
    return Discriminator(profile.d_width)


def build_encoder(profile) -> Encoder:
    return Encoder(profile.latent_dim, profile.enc_channels, profile.enc_same_blocks, profile.enc_valid_blocks)


def build_classifier(profile=None) -> Classifier:
    return Classifier()
