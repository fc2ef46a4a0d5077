"""The defenses the paper compares (chapter 05): one ``purify(x) -> x'`` interface for all seven.

    Original      identity (no defense)
    EGAN          G(E(x)): the paper's encoder E inverts the frozen DCGAN generator G
    DnCNN         Zhang et al. 2017, "Beyond a Gaussian Denoiser": a residual denoiser
    AutoEncoder   a convolutional denoising autoencoder (MagNet's MNIST reformer, Meng & Chen 2017)
    APE-GAN       Jin et al. 2019 (arXiv 1707.05474): a conv encoder-decoder trained as a GAN on FGSM examples
    PixelDefend   Song et al. 2018: autoregressive purification under a PixelCNN (van den Oord et al. 2016)
    Defense-GAN   Samangouei et al. 2018: project x onto G's range by gradient descent on z, R restarts

Every defense is a ``Defense``: ``purify(x)`` takes a validated batch of images in [0, 1]
(shape (N, 1, 28, 28)), works in batches on ``defense.device`` and returns a float32 CPU tensor of
the same shape in [0, 1]; ``forward(x)`` is the same purifier as a torch function with autograd
(exact for the five differentiable ones; PixelDefend and Defense-GAN run their real, non-differentiable
purification there and an adaptive attack has to approximate their gradient, e.g. with BPDA).

Threat model. The numbers of chapters 05/06 are those of the paper's *oblivious* (gray-box) setting:
FGSM computes its gradient through the classifier alone and never sees the defense. None of these
defenses is robust to an adaptive attacker who differentiates through (or around) the purifier:
Athalye, Carlini & Wagner (ICML 2018) broke PixelDefend and Defense-GAN with BPDA, and a
differentiable purifier such as EGAN, DnCNN, the autoencoder or APE-GAN can be attacked end to end.
Chapter 07 measures that; never quote an accuracy from here without its threat model.

The choices the papers leave open (and the shrinks of the CPU profile) are stated in the docstring
of the function that makes them, so the chapter can quote them.
"""
from __future__ import annotations

import contextlib
import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import (check_eps, check_images, check_labels, check_module, check_positive_float,
                        check_positive_int)
from .config import device as _device
from .models import _check_image_shape
from .training import _bar, _cosine, _fit, _log, _seeded_generator

ALL_DEFENSES = ("Original", "EGAN", "DnCNN", "AutoEncoder", "APE-GAN", "PixelDefend", "Defense-GAN")

#: PixelDefend's default purification radius: 32/255, the eps_defend Song et al. (2018) use on
#: Fashion-MNIST (the paper's 28x28 grey-scale data set; they attack it with eps = 8/255 and 25/255, so
#: eps_defend is set a little above the largest attack they expect). MNIST has no value of its own there.
PIXELDEFEND_EPS = 32 / 255
#: Defense-GAN's published reconstruction hyper-parameters (paper and code: REC_ITERS, REC_RR, REC_LR).
DEFENSEGAN_STEPS, DEFENSEGAN_RESTARTS, DEFENSEGAN_LR, DEFENSEGAN_MOMENTUM = 200, 10, 10.0, 0.7
#: DnCNN-B's blind noise range (Zhang et al. 2017: sigma in [0, 55] on the 0..255 scale).
DNCNN_SIGMA_MAX = 55 / 255


# ============================================================================================ helpers
def _as_device(device) -> torch.device:
    return _device(device) if device is not None else torch.device("cpu")


def _model_device(m: nn.Module) -> torch.device:
    p = next(m.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    return int(seed)


def _check_fraction(v, name: str) -> float:
    v = check_positive_float(v, name, allow_zero=True)
    if v > 1:
        raise ValueError(f"{name}: expected a number in [0, 1], got {v}")
    return v


@contextlib.contextmanager
def _threads(n: int, dev: torch.device):
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
def _frozen(*modules: nn.Module):
    """Temporarily switch off requires_grad of the modules' parameters (gradients w.r.t. inputs only)."""
    saved = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    for p, _ in saved:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


# ============================================================================================ models
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
        _check_image_shape(x, "DnCNN")
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.residual(x)).clamp(0.0, 1.0)


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
        _check_image_shape(x, "ConvAutoEncoder")
        return self.decoder(self.encoder(x))


class APEGANGenerator(nn.Module):
    """APE-GAN's MNIST generator (Jin et al., ICASSP 2019 / arXiv 1707.05474; the layout of their MNIST
    code): Conv(1->w, 4, s2) BN LReLU -> Conv(w->2w, 4, s2) BN LReLU -> ConvT(2w->w, 4, s2) BN LReLU ->
    ConvT(w->1, 4, s2) -> tanh; 28 -> 14 -> 7 -> 14 -> 28, w = 64. Their tanh output is rescaled here
    to [0, 1], the range of our images ((tanh + 1) / 2); LeakyReLU slope 0.2 (DCGAN's)."""

    def __init__(self, width: int = 64):
        super().__init__()
        w = check_positive_int(width, "width")
        self.net = nn.Sequential(
            nn.Conv2d(1, w, 4, 2, 1), nn.BatchNorm2d(w), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2, True),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.BatchNorm2d(w), nn.LeakyReLU(0.2, True),
            nn.ConvTranspose2d(w, 1, 4, 2, 1), nn.Tanh(),
        )
        self.width = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_image_shape(x, "APEGANGenerator")
        return 0.5 * (self.net(x) + 1.0)


class APEGANDiscriminator(nn.Module):
    """APE-GAN's MNIST discriminator: Conv(1->w, 3, s2) LReLU -> Conv(w->2w, 3, s2) BN LReLU ->
    Conv(2w->4w, 3, s2) BN LReLU -> Linear(4w*2*2, 1); 28 -> 13 -> 6 -> 2. Returns one logit per image
    (their sigmoid is folded into the loss)."""

    def __init__(self, width: int = 64):
        super().__init__()
        w = check_positive_int(width, "width")
        self.net = nn.Sequential(
            nn.Conv2d(1, w, 3, 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w, 2 * w, 3, 2), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * w, 4 * w, 3, 2), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2, True),
            nn.Flatten(), nn.Linear(4 * w * 2 * 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_image_shape(x, "APEGANDiscriminator")
        return self.net(x).squeeze(1)


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
        _check_image_shape(x, "PixelCNN")
        h = self.input_conv(self.encode(x))
        for blk in self.blocks:
            h = h + blk(F.relu(h))
        return self.head2(F.relu(self.head1(F.relu(h))))


def _to_levels(x) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (uint8 (N,28,28)/(N,1,28,28), or float in [0,1]) -> (float images on the 8-bit grid, int64 levels)."""
    if isinstance(x, torch.Tensor) and x.dtype == torch.uint8:
        from .data import to_float
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
    dev = _model_device(model)
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


# ============================================================================================ trainers
def _prepare(model: nn.Module, images: torch.Tensor, epochs, batch_size, lr, seed, device):
    check_module(model, "model")
    check_images(images, "images")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    lr = check_positive_float(lr, "lr")
    seed = _check_seed(seed)
    dev = _device(device)
    n = images.shape[0]
    steps = max(1, n // batch_size)
    return epochs, batch_size, lr, seed, dev, n, steps


def _fgsm_signs(classifier, images, labels, dev) -> torch.Tensor:
    from .attacks import gradient_sign
    check_module(classifier, "classifier")
    labels = check_labels(labels, n=images.shape[0], name="labels")
    classifier.to(dev)
    return gradient_sign(classifier, images, labels, device=dev)


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
    epochs, batch_size, lr, seed, dev, n, steps = _prepare(model, images, epochs, batch_size, lr, seed, device)
    eps_max = check_eps(eps_max, "eps_max")
    sigma_max = check_positive_float(sigma_max, "sigma_max", allow_zero=True)
    if classifier is not None:
        if labels is None:
            raise ValueError("labels: needed with a classifier (FGSM needs the true class of every image)")
        signs = _fgsm_signs(classifier, images, labels, dev)
    else:
        signs = None

    g = _seeded_generator(seed)
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

    try:
        return _fit(net, n=n, batch_size=batch_size, epochs=epochs, lr=lr, g=g, name="DnCNN", batch_loss=batch_loss,
                    progress=progress, log_every=log_every, loss_unit="half the squared residual error per image")
    finally:
        net.eval()


def train_autoencoder(model: nn.Module, images: torch.Tensor, *, noise: float = 0.1, epochs: int = 5,
                      batch_size: int = 256, lr: float = 1e-3, seed: int = 0, device=None, progress: bool = True,
                      log_every: int = 50) -> dict:
    """Train a denoising autoencoder with MagNet's recipe (Meng & Chen 2017, their MNIST code):
    input clip(x + noise * n, 0, 1), n ~ N(0, I) ("volume" 0.1), target the clean x, mean squared error,
    Adam (lr 1e-3, here with cosine decay), batch 256. MagNet trains 100 epochs; the profiles say how many
    are used here. The noise is drawn afresh every batch (MagNet draws it once)."""
    epochs, batch_size, lr, seed, dev, n, steps = _prepare(model, images, epochs, batch_size, lr, seed, device)
    noise = check_positive_float(noise, "noise", allow_zero=True)

    g = _seeded_generator(seed)
    torch.manual_seed(seed)
    net = model.to(dev).train()

    def batch_loss(idx):
        x = images[idx]
        y = (x + noise * torch.randn(x.shape, generator=g)).clamp_(0.0, 1.0)
        return F.mse_loss(net(y.to(dev)), x.to(dev))

    try:
        return _fit(net, n=n, batch_size=batch_size, epochs=epochs, lr=lr, g=g, name="AutoEncoder",
                    batch_loss=batch_loss, progress=progress, log_every=log_every, loss_fmt=".5f",
                    loss_unit="MSE per pixel")
    finally:
        net.eval()


def train_apegan(generator: nn.Module, discriminator: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 classifier: nn.Module, *, eps: float = 0.3, epochs: int = 2, batch_size: int = 128,
                 lr: float = 2e-4, betas=(0.5, 0.999), content_weight: float = 0.7,
                 adversarial_weight: float = 0.3, g_steps: int = 2, seed: int = 0, device=None,
                 progress: bool = True, log_every: int = 50) -> dict:
    """Train APE-GAN (Jin et al.; arXiv 1707.05474): G maps an FGSM example x_adv to x_hat, D tells x from
    x_hat. Loss of G: 0.7 * MSE(x_hat, x) + 0.3 * BCE(D(x_hat), real) (their xi1, xi2); loss of D: BCE on
    real x and on x_hat. Per batch one D step, then ``g_steps`` = 2 G steps; Adam(2e-4, betas (0.5, 0.999)),
    batch 128, 2 epochs: the settings of the public MNIST code (owruby/APE-GAN, train.py).

    Training data: FGSM examples of the training images against ``classifier`` (the attacked model C),
    computed once, at one eps. ``eps`` = 0.3 is the MNIST FGSM strength of the APE-GAN paper (the public
    PyTorch code generates its MNIST training set at 0.15 by default). Like the paper we train on one eps
    only; chapter 06 shows how it fares on the others.
    """
    check_module(discriminator, "discriminator")
    epochs, batch_size, lr, seed, dev, n, steps = _prepare(generator, images, epochs, batch_size, lr, seed, device)
    eps = check_eps(eps, "eps")
    cw = check_positive_float(content_weight, "content_weight", allow_zero=True)
    aw = check_positive_float(adversarial_weight, "adversarial_weight", allow_zero=True)
    g_steps = check_positive_int(g_steps, "g_steps")
    signs = _fgsm_signs(classifier, images, labels, dev)
    x_adv_all = (images + eps * signs).clamp_(0.0, 1.0)
    g = _seeded_generator(seed)
    torch.manual_seed(seed)
    G, D = generator.to(dev).train(), discriminator.to(dev).train()
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=tuple(betas))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=tuple(betas))
    total = epochs * steps
    keys = ("loss_d", "loss_g", "mse")
    hist = {k: [] for k in keys} | {"step": [], "epoch_mse": [], "train_eps": eps}
    acc = {k: 0.0 for k in keys}
    cnt, step = 0, 0
    try:
        with _bar(total, "APE-GAN", progress) as bar:
            for ep in range(epochs):
                perm = torch.randperm(n, generator=g)
                ep_mse = 0.0
                for b in range(steps):
                    idx = perm[b * batch_size:(b + 1) * batch_size]
                    x, xa = images[idx].to(dev), x_adv_all[idx].to(dev)
                    # D step: clean -> 1, purified -> 0
                    out_r, out_f = D(x), D(G(xa).detach())
                    loss_d = (F.binary_cross_entropy_with_logits(out_r, torch.ones_like(out_r))
                              + F.binary_cross_entropy_with_logits(out_f, torch.zeros_like(out_f)))
                    opt_d.zero_grad(set_to_none=True)
                    loss_d.backward()
                    opt_d.step()
                    # G steps: content (MSE) + adversarial loss
                    for _ in range(g_steps):
                        x_hat = G(xa)
                        out_g = D(x_hat)
                        mse = F.mse_loss(x_hat, x)
                        loss_g = cw * mse + aw * F.binary_cross_entropy_with_logits(out_g, torch.ones_like(out_g))
                        opt_g.zero_grad(set_to_none=True)
                        loss_g.backward()
                        opt_g.step()
                    acc["loss_d"] += float(loss_d.detach()); acc["loss_g"] += float(loss_g.detach())
                    acc["mse"] += float(mse.detach()); ep_mse += float(mse.detach())
                    cnt += 1; step += 1
                    if cnt == log_every or step == total:
                        for k in keys:
                            hist[k].append(acc[k] / cnt); acc[k] = 0.0
                        hist["step"].append(step); cnt = 0
                    bar.update(1)
                hist["epoch_mse"].append(ep_mse / steps)
                _log(progress, f"APE-GAN epoch {ep + 1}/{epochs}: loss_D {float(loss_d.detach()):.3f}  "
                               f"loss_G {float(loss_g.detach()):.3f}  MSE {hist['epoch_mse'][-1]:.4f} (epoch mean)")
    finally:
        G.eval(); D.eval()
    return hist


def train_pixelcnn(model: nn.Module, images: torch.Tensor, *, epochs: int = 3, batch_size: int = 64,
                   lr: float = 1e-3, seed: int = 0, device=None, progress: bool = True,
                   test_images: torch.Tensor | None = None, log_every: int = 50) -> dict:
    """Maximum likelihood: minimise the 256-way cross-entropy of every pixel given the pixels before it
    (Adam with cosine decay). The loss is logged in bits per dimension; ``test_images`` (optional) adds
    ``hist["test_bits_per_dim"]`` after training (PixelDefend's detection statistic is this quantity)."""
    epochs, batch_size, lr, seed, dev, n, steps = _prepare(model, images, epochs, batch_size, lr, seed, device)
    if test_images is not None:
        check_images(test_images, "test_images")
    xq, levels = _to_levels(images)
    g = _seeded_generator(seed)
    torch.manual_seed(seed)
    net = model.to(dev).train()

    def batch_loss(idx):
        return F.cross_entropy(net(xq[idx].to(dev)), levels[idx, 0].to(dev))   # nats per pixel

    try:
        hist = _fit(net, n=n, batch_size=batch_size, epochs=epochs, lr=lr, g=g, name="PixelCNN",
                    batch_loss=batch_loss, progress=progress, log_every=log_every, loss_unit="bits/dim, training set",
                    log_scale=1.0 / math.log(2), epoch_key="epoch_bits_per_dim")
    finally:
        net.eval()
    if test_images is not None:
        hist["test_bits_per_dim"] = bits_per_dim(net, test_images)
        hist["test_n"] = int(test_images.shape[0])
        _log(progress, f"PixelCNN: {hist['test_bits_per_dim']:.4f} bits/dim on {hist['test_n']} test images")
    return hist


# ============================================================================================ defenses
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

    def to(self, device) -> "Defense":
        dev = _device(device)
        for m in self.modules():
            m.to(dev).eval()
        self.device = dev
        return self

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        _check_image_shape(x, f"{self.name}.forward")
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
        check_images(x, f"{self.name}.purify: x")
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
        super().__init__(device if device is not None else _model_device(self.generator))
        self.to(self.device)

    def modules(self) -> list:
        return [self.encoder, self.generator]

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


class DenoiserDefense(Defense):
    """A learned image-to-image purifier x' = clamp(net(x), 0, 1): DnCNN, the autoencoder, APE-GAN's G.
    Differentiable: an adaptive attacker can optimise through it (chapter 07)."""

    def __init__(self, model: nn.Module, name: str, *, device=None):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name: expected a non-empty display name, got {name!r}")
        self.model = check_module(model, "model").eval()
        self.name = name
        super().__init__(device if device is not None else _model_device(self.model))
        self.to(self.device)

    def modules(self) -> list:
        return [self.model]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self._input(x)).clamp(0.0, 1.0)


class DnCNNDefense(DenoiserDefense):
    """DnCNN (Zhang et al. 2017) as a purifier: x' = clamp(x - v(x), 0, 1)."""

    def __init__(self, model: nn.Module, *, device=None):
        super().__init__(model, "DnCNN", device=device)


class AutoEncoderDefense(DenoiserDefense):
    """The denoising autoencoder (MagNet's reformer, Meng & Chen 2017) as a purifier: x' = AE(x)."""

    def __init__(self, model: nn.Module, *, device=None):
        super().__init__(model, "AutoEncoder", device=device)


class APEGANDefense(DenoiserDefense):
    """APE-GAN (Jin et al.) as a purifier: x' = G_ape(x). Trained on FGSM examples against the classifier
    it protects, at one eps (see ``train_apegan``)."""

    def __init__(self, model: nn.Module, *, device=None):
        super().__init__(model, "APE-GAN", device=device)


def _pixeldefend_batch(model: PixelCNN, x: torch.Tensor, eps: float, *, bf16: bool = False,
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
    with amp, _threads(1, dev) if small else contextlib.nullcontext():
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
    Batched over images; exact incremental evaluation of the PixelCNN (see ``_pixeldefend_batch``).

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
        super().__init__(device if device is not None else _model_device(pixelcnn))
        self.to(self.device)

    def modules(self) -> list:
        return [self.pixelcnn]

    def _purify_batch(self, xb, start, context):
        return _pixeldefend_batch(self.pixelcnn, xb, self.eps_def, bf16=self.bf16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xb = self._input(x).detach()
        self.pixelcnn.eval()
        with torch.inference_mode():
            out = _pixeldefend_batch(self.pixelcnn, xb.clamp(0.0, 1.0), self.eps_def, bf16=self.bf16)
        return out.clone()


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
        self.momentum = _check_fraction(momentum, "momentum")
        self.lr_decay = _check_fraction(lr_decay, "lr_decay")
        self.decay_at = _check_fraction(decay_at, "decay_at")
        self.init_std = check_positive_float(init_std, "init_std")
        self.seed = _check_seed(seed)
        super().__init__(device if device is not None else _model_device(self.generator))
        self.to(self.device)

    def modules(self) -> list:
        return [self.generator]

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
        with torch.enable_grad(), _frozen(G):
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
        check_images(x, "Defense-GAN.project: x")
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


# ============================================================================================ workspace
def _subset(ws, n: int | None):
    """The first-choice training images of a baseline: a seeded, class-balanced subset of ws.train_set()."""
    from .data import subset
    x, y = ws.train_set()
    if n is None or n >= x.shape[0]:
        return x, y
    return subset(x, y, n, seed=ws.seed)


def _cached(ws, key: str, build):
    k = f"defenses:{key}"
    if k not in ws._cache:
        ws._cache[k] = build()
    return ws._cache[k]


def get_dncnn(ws):
    """(DnCNN, history): load-or-train with the profile's ``dncnn_*`` fields (see ``train_dncnn``)."""
    def build():
        from .checkpoints import model_sha256
        p = ws.profile
        C, _ = ws.classifier()
        model = DnCNN(p.dncnn_layers, p.dncnn_channels)
        cfg = ws._config("dncnn", layers=p.dncnn_layers, channels=p.dncnn_channels, epochs=p.dncnn_epochs,
                         batch=p.dncnn_batch, lr=p.dncnn_lr, train_size=p.train_size, n_images=p.dncnn_train_size,
                         eps_max=p.dncnn_eps_max, sigma_max=p.dncnn_sigma_max, classifier_sha256=model_sha256(C))

        def train():
            x, y = _subset(ws, p.dncnn_train_size)
            return train_dncnn(model, x, labels=y, classifier=C, eps_max=p.dncnn_eps_max, sigma_max=p.dncnn_sigma_max,
                               epochs=p.dncnn_epochs, batch_size=p.dncnn_batch, lr=p.dncnn_lr, seed=ws.seed,
                               device=ws.device, progress=ws.progress)
        return model, ws._load_or_train("dncnn", model, cfg, train)
    return _cached(ws, "dncnn", build)


def get_autoencoder(ws):
    """(ConvAutoEncoder, history): load-or-train with the profile's ``ae_*`` fields (MagNet's recipe)."""
    def build():
        p = ws.profile
        model = ConvAutoEncoder(p.ae_channels)
        cfg = ws._config("autoencoder", channels=p.ae_channels, epochs=p.ae_epochs, batch=p.ae_batch, lr=p.ae_lr,
                         noise=p.ae_noise, train_size=p.train_size, n_images=p.ae_train_size)

        def train():
            x, _ = _subset(ws, p.ae_train_size)
            return train_autoencoder(model, x, noise=p.ae_noise, epochs=p.ae_epochs, batch_size=p.ae_batch,
                                     lr=p.ae_lr, seed=ws.seed, device=ws.device, progress=ws.progress)
        return model, ws._load_or_train("autoencoder", model, cfg, train)
    return _cached(ws, "autoencoder", build)


def get_apegan(ws):
    """(APE-GAN generator, history): load-or-train with the profile's ``apegan_*`` fields; D is used for
    training only and not stored (like the DCGAN's D)."""
    def build():
        from .checkpoints import model_sha256
        p = ws.profile
        C, _ = ws.classifier()
        G = APEGANGenerator(p.apegan_width)
        cfg = ws._config("apegan", width=p.apegan_width, epochs=p.apegan_epochs, batch=p.apegan_batch,
                         lr=p.apegan_lr, train_eps=p.apegan_train_eps, train_size=p.train_size,
                         n_images=p.apegan_train_size, classifier_sha256=model_sha256(C))

        def train():
            x, y = _subset(ws, p.apegan_train_size)
            D = APEGANDiscriminator(p.apegan_width)
            return train_apegan(G, D, x, y, C, eps=p.apegan_train_eps, epochs=p.apegan_epochs,
                                batch_size=p.apegan_batch, lr=p.apegan_lr, seed=ws.seed, device=ws.device,
                                progress=ws.progress)
        return G, ws._load_or_train("apegan", G, cfg, train)
    return _cached(ws, "apegan", build)


def get_pixelcnn(ws):
    """(PixelCNN, history): load-or-train with the profile's ``pixelcnn_*`` fields. ``history
    ["test_bits_per_dim"]`` is measured after training on the first ``pixelcnn_test_size`` images of the
    MNIST test set (``history["test_n"]`` of them)."""
    def build():
        p = ws.profile
        model = PixelCNN(p.pixelcnn_channels, p.pixelcnn_layers)
        cfg = ws._config("pixelcnn", channels=p.pixelcnn_channels, layers=p.pixelcnn_layers, epochs=p.pixelcnn_epochs,
                         batch=p.pixelcnn_batch, lr=p.pixelcnn_lr, train_size=p.train_size,
                         n_images=p.pixelcnn_train_size, n_test=p.pixelcnn_test_size)

        def train():
            x, _ = _subset(ws, p.pixelcnn_train_size)
            xt, _ = ws.full_test_set()
            return train_pixelcnn(model, x, epochs=p.pixelcnn_epochs, batch_size=p.pixelcnn_batch, lr=p.pixelcnn_lr,
                                  seed=ws.seed, device=ws.device, progress=ws.progress,
                                  test_images=xt[:p.pixelcnn_test_size])
        return model, ws._load_or_train("pixelcnn", model, cfg, train)
    return _cached(ws, "pixelcnn", build)


def get_defenses(ws, names=ALL_DEFENSES) -> dict:
    """The named defenses of a ``Workspace`` (load-or-train of every network they need), in the order
    asked, on ``ws.device``: {name: Defense}. Names out of ``ALL_DEFENSES``."""
    from .workflow import Workspace
    if not isinstance(ws, Workspace):
        raise TypeError(f"ws: expected an egan_lib.workflow.Workspace (from egan_lib.setup), got {type(ws).__name__}")
    if isinstance(names, str):
        names = (names,)
    names = list(names)
    if not names:
        raise ValueError(f"names: expected at least one of {ALL_DEFENSES}")
    unknown = [n for n in names if n not in ALL_DEFENSES]
    if unknown:
        raise ValueError(f"names: unknown defense(s) {unknown}; choose from {ALL_DEFENSES}")
    if len(set(names)) != len(names):
        raise ValueError(f"names: duplicates in {names}")
    p, dev = ws.profile, ws.device
    out: dict = {}
    for name in names:
        if name == "Original":
            d = Original(device=dev)
        elif name == "EGAN":
            G, _ = ws.generator()
            E, _ = ws.encoder()
            d = EGAN(E, G, bf16=p.bf16 and dev.type == "cpu", channels_last=p.channels_last, device=dev)
        elif name == "DnCNN":
            d = DnCNNDefense(get_dncnn(ws)[0], device=dev)
        elif name == "AutoEncoder":
            d = AutoEncoderDefense(get_autoencoder(ws)[0], device=dev)
        elif name == "APE-GAN":
            d = APEGANDefense(get_apegan(ws)[0], device=dev)
        elif name == "PixelDefend":
            d = PixelDefend(get_pixelcnn(ws)[0], eps_def=p.pixeldefend_eps, device=dev)
        else:
            G, _ = ws.generator()
            d = DefenseGAN(G, steps=p.defensegan_steps, restarts=p.defensegan_restarts, lr=p.defensegan_lr,
                           seed=ws.seed, device=dev)
        d.batch_size = p.eval_batch
        out[name] = d
    return out
