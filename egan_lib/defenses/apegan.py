"""APE-GAN (Jin et al., ICASSP 2019 / arXiv 1707.05474): a conv encoder-decoder G trained as a GAN on FGSM
examples (0.7 MSE + 0.3 adversarial loss), its discriminator, trainer, Defense and recipe."""
from __future__ import annotations

import torch
from torch import nn

from .._validate import check_eps, check_module, check_positive_float, check_positive_int
from ..models import check_image_shape
from ..checkpoints import model_sha256
from ..training import adversarial_step, check_fit_args, fgsm_signs, log_line, progress_bar, seeded_generator
from .base import DenoiserDefense, register


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
        check_image_shape(x, "APEGANGenerator")
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
        check_image_shape(x, "APEGANDiscriminator")
        return self.net(x).squeeze(1)


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
    images, epochs, batch_size, lr, seed, dev, n, steps = check_fit_args(generator, images, epochs, batch_size, lr, seed, device)
    eps = check_eps(eps, "eps")
    cw = check_positive_float(content_weight, "content_weight", allow_zero=True)
    aw = check_positive_float(adversarial_weight, "adversarial_weight", allow_zero=True)
    g_steps = check_positive_int(g_steps, "g_steps")
    signs = fgsm_signs(classifier, images, labels, dev)
    x_adv_all = (images + eps * signs).clamp_(0.0, 1.0)
    g = seeded_generator(seed)
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
        with progress_bar(total, "APE-GAN", progress) as bar:
            for ep in range(epochs):
                perm = torch.randperm(n, generator=g)
                ep_mse = 0.0
                for b in range(steps):
                    idx = perm[b * batch_size:(b + 1) * batch_size]
                    x, xa = images[idx].to(dev), x_adv_all[idx].to(dev)
                    r = adversarial_step(G, D, opt_g, opt_d, x, xa, g_steps=g_steps, content_weight=cw,
                                         adversarial_weight=aw, reuse_fake=False)
                    for k in keys:
                        acc[k] += r[k]
                    ep_mse += r["mse"]
                    cnt += 1; step += 1
                    if cnt == log_every or step == total:
                        for k in keys:
                            hist[k].append(acc[k] / cnt); acc[k] = 0.0
                        hist["step"].append(step); cnt = 0
                    bar.update(1)
                hist["epoch_mse"].append(ep_mse / steps)
                log_line(progress, f"APE-GAN epoch {ep + 1}/{epochs}: loss_D {r['loss_d']:.3f}  "
                                   f"loss_G {r['loss_g']:.3f}  MSE {hist['epoch_mse'][-1]:.4f} (epoch mean)")
    finally:
        G.eval(); D.eval()
    return hist


class APEGANDefense(DenoiserDefense):
    """APE-GAN (Jin et al.) as a purifier: x' = G_ape(x). Trained on FGSM examples against the classifier
    it protects, at one eps (see ``train_apegan``)."""
    name = "APE-GAN"


def get_apegan(ws):
    """(APE-GAN generator, history): load-or-train with the profile's ``apegan_*`` fields; D is used for
    training only and not stored (like the DCGAN's D)."""
    p = ws.profile
    C, _ = ws.classifier()

    def train(G):
        x, y = ws.train_subset(p.apegan_train_size)
        return train_apegan(G, APEGANDiscriminator(p.apegan_width), x, y, C, eps=p.apegan_train_eps,
                            epochs=p.apegan_epochs, batch_size=p.apegan_batch, lr=p.apegan_lr, seed=ws.seed,
                            device=ws.device, progress=ws.progress)
    return ws.trained("apegan", lambda: APEGANGenerator(p.apegan_width), train, width=p.apegan_width,
                      epochs=p.apegan_epochs, batch=p.apegan_batch, lr=p.apegan_lr, train_eps=p.apegan_train_eps,
                      train_size=p.train_size, n_images=p.apegan_train_size, classifier_sha256=model_sha256(C))


@register("APE-GAN", order=4)
def build(ws) -> APEGANDefense:
    return APEGANDefense(get_apegan(ws)[0], device=ws.device)
