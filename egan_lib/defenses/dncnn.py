"""DnCNN (Zhang, Zuo, Chen, Meng & Zhang, IEEE TIP 2017, "Beyond a Gaussian Denoiser") as a purifier:
the network, its residual-learning trainer, the Defense and its load-or-train recipe."""
from __future__ import annotations

import torch
from torch import nn

from .._validate import check_eps, check_positive_float, check_positive_int
from ..models import check_image_shape
from ..checkpoints import model_sha256
from ..training import check_fit_args, fgsm_signs, fit, seeded_generator
from .base import DenoiserDefense, register

#: DnCNN-B's blind noise range (Zhang et al. 2017: sigma in [0, 55] on the 0..255 scale).
DNCNN_SIGMA_MAX = 55 / 255


class DnCNN(nn.Module):
    """DnCNN (Zhang, Zuo, Chen, Meng & Zhang, IEEE TIP 2017): ``layers`` 3x3 convolutions of
    ``channels`` maps: Conv+ReLU, (layers - 2) x Conv+BN+ReLU, Conv. Residual learning: the network
    predicts the perturbation v of y = x + v and the output is ``clamp(y - v, 0, 1)``.
    The published depth for blind denoising is 17 layers of 64 channels (the defaults)."""

    def __init__(self, layers: int = 17, channels: int = 64):
        super().__init__()
        layers = check_positive_int(layers, "layers", minimum=3)
        channels = check_positive_int(channels, "channels")
        body = [nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(layers - 2):
            body += [nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                     nn.ReLU(inplace=True)]
        body += [nn.Conv2d(channels, 1, 3, padding=1, bias=False)]
        self.net = nn.Sequential(*body)
        self.layers, self.channels = layers, channels

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted perturbation v(y) (what training fits to y - x)."""
        check_image_shape(x, "DnCNN")
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.residual(x)).clamp(0.0, 1.0)


def train_dncnn(model: nn.Module, images: torch.Tensor, *, labels: torch.Tensor | None = None,
                classifier: nn.Module | None = None, eps_max: float = 0.3, sigma_max: float = DNCNN_SIGMA_MAX,
                epochs: int = 2, batch_size: int = 128, lr: float = 1e-3, seed: int = 0, device=None,
                progress: bool = True, log_every: int = 50) -> dict:
    """Train a DnCNN by residual learning (Zhang et al. 2017): minimise (1/2) ||v(y) - (y - x)||^2 per image.

    Training pairs (our choice; the EGAN paper only says DnCNN is "trained to predict the noise"): for
    every image, with probability 1/2, an FGSM example y = clip(x + eps * sign(grad_x J(C(x), label)), 0, 1)
    with eps ~ U[0, eps_max] (FGSM against ``classifier``, the attacked model; eps_max = 0.3, the training
    eps of APE-GAN, so both learned denoisers see the same attack strengths), otherwise a Gaussian one
    y = clip(x + sigma * n, 0, 1), sigma ~ U[0, sigma_max], n ~ N(0, I) (DnCNN-B's blind range,
    sigma <= 55/255). Without a classifier all pairs are Gaussian.
    The FGSM signs are computed once, before training. Adam with cosine decay (the paper: SGD with
    momentum on 40x40 patches for 50 epochs; MNIST images are 28x28, so whole images are used).
    """
    images, epochs, batch_size, lr, seed, dev, n, steps = check_fit_args(model, images, epochs, batch_size, lr, seed, device)
    eps_max = check_eps(eps_max, "eps_max")
    sigma_max = check_positive_float(sigma_max, "sigma_max", allow_zero=True)
    if classifier is not None:
        if labels is None:
            raise ValueError("labels: needed with a classifier (FGSM needs the true class of every image)")
        signs = fgsm_signs(classifier, images, labels, dev)
    else:
        signs = None

    g = seeded_generator(seed)
    torch.manual_seed(seed)
    net = model.to(dev).train()

    def batch_loss(idx):
        x = images[idx]
        m = x.shape[0]
        sigma = torch.rand(m, 1, 1, 1, generator=g) * sigma_max
        noise = sigma * torch.randn(x.shape, generator=g)
        if signs is not None:      # half FGSM, half Gaussian (a fair coin per image)
            fgsm = torch.rand(m, 1, 1, 1, generator=g) * eps_max * signs[idx]
            noise = torch.where(torch.rand(m, 1, 1, 1, generator=g) < 0.5, fgsm, noise)
        y = (x + noise).clamp_(0.0, 1.0)
        x, y = x.to(dev), y.to(dev)
        return 0.5 * (net.residual(y) - (y - x)).flatten(1).pow(2).sum(1).mean()

    return fit(net, n=n, batch_size=batch_size, epochs=epochs, lr=lr, g=g, name="DnCNN", batch_loss=batch_loss,
                progress=progress, log_every=log_every, loss_unit="half the squared residual error per image")


class DnCNNDefense(DenoiserDefense):
    """DnCNN (Zhang et al. 2017) as a purifier: x' = clamp(x - v(x), 0, 1)."""
    name = "DnCNN"


def get_dncnn(ws):
    """(DnCNN, history): load-or-train with the profile's ``dncnn_*`` fields (see ``train_dncnn``)."""
    p = ws.profile
    C, _ = ws.classifier()

    def train(model):
        x, y = ws.train_subset(p.dncnn_train_size)
        return train_dncnn(model, x, labels=y, classifier=C, eps_max=p.dncnn_eps_max, sigma_max=p.dncnn_sigma_max,
                           epochs=p.dncnn_epochs, batch_size=p.dncnn_batch, lr=p.dncnn_lr, seed=ws.seed,
                           device=ws.device, progress=ws.progress)
    return ws.trained("dncnn", lambda: DnCNN(p.dncnn_layers, p.dncnn_channels), train, layers=p.dncnn_layers,
                      channels=p.dncnn_channels, epochs=p.dncnn_epochs, batch=p.dncnn_batch, lr=p.dncnn_lr,
                      train_size=p.train_size, n_images=p.dncnn_train_size, eps_max=p.dncnn_eps_max,
                      sigma_max=p.dncnn_sigma_max, classifier_sha256=model_sha256(C))


@register("DnCNN", order=2)
def build(ws) -> DnCNNDefense:
    return DnCNNDefense(get_dncnn(ws)[0], device=ws.device)
