"""Training loops: the DCGAN alternating update, the paper's encoder algorithm, the classifier.

Each trainer trains a model in place and returns a small history dict (loss curves) that the
checkpoint stores, so a reloaded model can still show its curves. ``progress=True`` shows a tqdm
bar; ``progress=False`` prints one line per epoch (readable in papermill and CI logs).
"""
from __future__ import annotations

import contextlib
import math
import sys

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import (check_images, check_labels, check_module, check_positive_float, check_positive_int,
                        check_seed)
from .attacks import gradient_sign
from .config import device as _device
from .torch_utils import autocast_bf16


def progress_bar(total: int, desc: str, progress: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, disable=not progress, mininterval=1.0, file=sys.stderr, dynamic_ncols=False,
                ncols=90, leave=True)


def _to(x: torch.Tensor, dev: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(dev, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def log_line(progress: bool, msg: str) -> None:
    if not progress:
        print(msg, flush=True)


def _cosine(step: int, total: int, lr: float) -> float:
    return 0.5 * lr * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


SCHEDULES = ("cosine", "wsd")
WSD_DECAY_FRACTION = 0.1


def wsd_lr(step: int, total: int, lr: float, decay_fraction: float = WSD_DECAY_FRACTION) -> float:
    """Warmup-stable-decay without the warmup: ``lr`` for the first (1 - decay_fraction) of ``total`` steps,
    then a linear decay towards 0 (step i of the n decay steps uses lr * (1 - (i + 1) / (n + 1)))."""
    branch_at = int(round((1.0 - decay_fraction) * total))
    if step < branch_at:
        return lr
    n_decay = total - branch_at
    return lr * (1.0 - (min(step - branch_at, n_decay - 1) + 1) / (n_decay + 1))


def learning_rate(schedule: str, step: int, total: int, lr: float) -> float:
    """The learning rate of ``step`` (0-based) out of ``total`` under ``schedule`` ("cosine" or "wsd")."""
    if schedule == "cosine":
        return _cosine(step, total, lr)
    if schedule == "wsd":
        return wsd_lr(step, total, lr)
    raise ValueError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}")


@contextlib.contextmanager
def _eval_after(net: nn.Module):
    try:
        yield
    finally:
        net.eval()


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU torch.Generator seeded with ``seed`` (every random draw of a trainer comes from one)."""
    return torch.Generator().manual_seed(check_seed(seed))


def fit(net: nn.Module, *, n: int, batch_size: int, epochs: int, lr: float, g: torch.Generator, name: str,
         batch_loss, progress: bool, log_every: int, loss_fmt: str = ".4f", loss_unit: str = "",
         log_scale: float = 1.0, epoch_key: str = "epoch_loss", max_steps: int | None = None,
         schedule: str = "cosine") -> dict:
    """The mini-batch loop every trainer here shares (the DCGAN's two-player loop aside): per epoch one
    shuffle drawn from ``g``, then ``steps = max(1, n // batch_size)`` batches of indices; ``batch_loss(idx)``
    returns the loss of one batch (it may draw more random numbers from ``g``); Adam on ``net``'s
    parameters with a cosine decay from ``lr`` (``schedule="wsd"``: constant, then a linear decay over the last
    10%: ``wsd_lr``). ``max_steps`` stops after that many steps (the last epoch may be partial; ``epochs`` is
    then ignored). Returns the history {"loss": running means every
    ``log_every`` steps, "step", ``epoch_key``: epoch means}, every logged value being the loss times
    ``log_scale`` (e.g. nats to bits). The caller puts ``net`` in train mode and seeds; ``net`` is left
    in eval mode (also when training fails)."""
    steps = max(1, n // batch_size)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}")
    if max_steps is not None:
        max_steps = check_positive_int(max_steps, "max_steps")
        epochs = -(-max_steps // steps)
    total = max_steps if max_steps is not None else epochs * steps
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    hist = {"loss": [], "step": [], epoch_key: []}
    run, cnt, step = 0.0, 0, 0
    unit = f" ({loss_unit})" if loss_unit else ""
    with progress_bar(total, name, progress) as bar, _eval_after(net):
        for ep in range(epochs):
            perm = torch.randperm(n, generator=g)
            ep_sum = 0.0
            ep_steps = min(steps, total - step)
            for b in range(ep_steps):
                for group in opt.param_groups:
                    group["lr"] = learning_rate(schedule, step, total, lr)
                loss = batch_loss(perm[b * batch_size:(b + 1) * batch_size])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                lv = float(loss.detach()) * log_scale
                run += lv; ep_sum += lv; cnt += 1; step += 1
                if cnt == log_every or step == total:
                    hist["loss"].append(run / cnt); hist["step"].append(step); run, cnt = 0.0, 0
                bar.update(1)
            hist[epoch_key].append(ep_sum / ep_steps)
            log_line(progress, f"{name} epoch {ep + 1}/{epochs}: loss {hist[epoch_key][-1]:{loss_fmt}}{unit}")
    return hist


def check_fit_args(model: nn.Module, images: torch.Tensor, epochs, batch_size, lr, seed, device):
    """The checks every trainer makes: returns (images as float32, epochs, batch_size, lr, seed, device, n,
    steps per epoch)."""
    check_module(model, "model")
    images = check_images(images, "images")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    lr = check_positive_float(lr, "lr")
    seed = check_seed(seed)
    dev = _device(device)
    n = images.shape[0]
    steps = max(1, n // batch_size)
    return images, epochs, batch_size, lr, seed, dev, n, steps


def fgsm_signs(classifier, images, labels, dev) -> torch.Tensor:
    """sign(grad_x NLL(C(x), y)) of training images, computed once (the FGSM pairs of DnCNN and APE-GAN)."""
    check_module(classifier, "classifier")
    labels = check_labels(labels, n=images.shape[0], name="labels")
    classifier.to(dev)
    return gradient_sign(classifier, images, labels, device=dev)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Translate every image by its own random integer offset in [-max_shift, max_shift] (zero fill), batched."""
    x = check_images(x)
    max_shift = check_positive_int(max_shift, "max_shift", minimum=0)
    if max_shift == 0:
        return x
    n = x.shape[0]
    pad = F.pad(x, (max_shift,) * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator).to(x.device)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator).to(x.device)
    rows = (dy[:, None] + torch.arange(28, device=x.device)[None, :])            # (n, 28)
    cols = (dx[:, None] + torch.arange(28, device=x.device)[None, :])            # (n, 28)
    idx_n = torch.arange(n, device=x.device)[:, None, None]
    return pad[idx_n, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


def adversarial_step(G: nn.Module, D: nn.Module, opt_g, opt_d, real: torch.Tensor, g_input: torch.Tensor, *,
                     g_steps: int = 1, content_weight: float = 0.0, adversarial_weight: float = 1.0,
                     reuse_fake: bool = True) -> dict:
    """One GAN update on a batch, the step both GANs of the book share.

    D step: binary cross-entropy on logits, ``real`` -> 1 and G(``g_input``) -> 0. Then ``g_steps`` G
    steps on content_weight * MSE(G(g_input), real) + adversarial_weight * BCE(D(G(g_input)), 1) (the
    non-saturating -log D(G(.))). The DCGAN (Radford et al. 2016): g_input = z, one G step that reuses
    the D step's G(z) (``reuse_fake``), no content term. APE-GAN (Jin et al.): g_input = x_adv,
    0.7 MSE + 0.3 adversarial, two G steps, each with a fresh forward pass.
    Returns the batch's loss_d, loss_g, mse (content term, 0 without one), d_real, d_fake as floats."""
    fake = G(g_input)
    opt_d.zero_grad(set_to_none=True)
    out_r, out_f = D(real), D(fake.detach())
    loss_d = (F.binary_cross_entropy_with_logits(out_r, torch.ones_like(out_r))
              + F.binary_cross_entropy_with_logits(out_f, torch.zeros_like(out_f)))
    loss_d.backward()
    opt_d.step()
    mse = torch.zeros(())
    for k in range(g_steps):
        if k > 0 or not reuse_fake:
            fake = G(g_input)
        out_g = D(fake)
        adv = F.binary_cross_entropy_with_logits(out_g, torch.ones_like(out_g))
        if content_weight:
            mse = F.mse_loss(fake, real)
            loss_g = content_weight * mse + adversarial_weight * adv
        else:
            loss_g = adv if adversarial_weight == 1.0 else adversarial_weight * adv
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()), "mse": float(mse.detach()),
            "d_real": float(torch.sigmoid(out_r.detach()).mean()), "d_fake": float(torch.sigmoid(out_f.detach()).mean())}


def train_gan(generator: nn.Module, discriminator: nn.Module, images: torch.Tensor, *, epochs: int, batch_size: int = 128,
              lr: float = 2e-4, betas=(0.5, 0.999), seed: int = 0, device=None, progress: bool = True,
              log_every: int = 50) -> dict:
    """DCGAN (Radford et al. 2016): Adam(2e-4, beta1=0.5); per batch, one D step on real + fake
    (BCE with logits), then one G step with the non-saturating loss -log D(G(z))."""
    check_module(generator, "generator"); check_module(discriminator, "discriminator")
    images = check_images(images, "images")
    epochs = check_positive_int(epochs, "epochs"); batch_size = check_positive_int(batch_size, "batch_size")
    lr = check_positive_float(lr, "lr")
    dev = _device(device)
    g = seeded_generator(seed)
    torch.manual_seed(seed)
    G, D = generator.to(dev).train(), discriminator.to(dev).train()
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=tuple(betas))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=tuple(betas))
    n = images.shape[0]
    steps = n // batch_size if n >= batch_size else 1
    hist = {"loss_d": [], "loss_g": [], "d_real": [], "d_fake": [], "step": []}
    acc = {k: 0.0 for k in ("loss_d", "loss_g", "d_real", "d_fake")}
    cnt, step = 0, 0
    with progress_bar(epochs * steps, "GAN", progress) as bar:
        for ep in range(epochs):
            perm = torch.randperm(n, generator=g)
            for b in range(steps):
                real = images[perm[b * batch_size:(b + 1) * batch_size]].to(dev)
                m = real.shape[0]
                z = torch.randn(m, G.latent_dim, generator=g).to(dev)
                r = adversarial_step(G, D, opt_g, opt_d, real, z)
                for k in acc:
                    acc[k] += r[k]
                cnt += 1; step += 1
                if cnt == log_every or (ep == epochs - 1 and b == steps - 1):
                    for k in acc:
                        hist[k].append(acc[k] / cnt); acc[k] = 0.0
                    hist["step"].append(step); cnt = 0
                bar.update(1)
            log_line(progress, f"GAN epoch {ep + 1}/{epochs}: loss_D {hist['loss_d'][-1]:.3f}  loss_G {hist['loss_g'][-1]:.3f}")
    G.eval(); D.eval()
    return hist


@torch.inference_mode()
def generate(generator: nn.Module, n: int, *, seed: int = 0, batch_size: int = 1024, device=None,
             return_latents: bool = False):
    """n images G(z) with z ~ N(0, I) drawn from a seeded generator (G in eval mode)."""
    check_module(generator, "generator")
    n = check_positive_int(n, "n")
    dev = _device(device) if device is not None else next(generator.parameters()).device
    g = seeded_generator(seed)
    z = torch.randn(n, generator.latent_dim, generator=g)
    was = generator.training
    generator.eval()
    xs = torch.cat([generator(z[i:i + batch_size].to(dev)).float().cpu() for i in range(0, n, batch_size)])
    generator.train(was)
    return (xs, z) if return_latents else xs


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """The paper's loss (eq. 4): mean over images of the squared Euclidean norm of the flattened difference."""
    for t, name in ((x, "x"), (x_hat, "x_hat")):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor of images (N, 1, 28, 28), got {type(t).__name__}")
    if x.shape != x_hat.shape or x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"reconstruction_loss: expected x and x_hat of the same non-empty shape (N, 1, 28, 28), "
                         f"got {tuple(x.shape)} and {tuple(x_hat.shape)}")
    return (x - x_hat).flatten(1).pow(2).sum(1).mean()


def train_encoder(encoder: nn.Module, generator: nn.Module, *, n_latents: int, epochs: int | None = None,
                  batch_size: int = 64, lr: float = 1e-3, seed: int = 0, device=None, progress: bool = True,
                  bf16: bool = False, channels_last: bool = False, log_every: int = 20,
                  image_steps: int | None = None, schedule: str = "cosine") -> dict:
    """The paper's algorithm: draw T = n_latents latents once, X_i = G(z_i) with G frozen, then
    minimise (1/T) sum ||X_i - G(E(X_i))||^2 over E's parameters with Adam (the paper says only
    "stochastic gradient descent") for ``epochs`` epochs, or for a budget of ``image_steps``
    (= steps x batch_size) when given. ``schedule``: "cosine" decay of the learning rate, or "wsd"
    (constant, then linear to 0 over the last 10%: what the budget study of chapter 03 chose).

    bf16 / channels_last speed up E on CPU (the loss is still computed in fp32).
    """
    check_module(encoder, "encoder"); check_module(generator, "generator")
    n_latents = check_positive_int(n_latents, "n_latents")
    batch_size = check_positive_int(batch_size, "batch_size"); lr = check_positive_float(lr, "lr")
    if (epochs is None) == (image_steps is None):
        raise ValueError("train_encoder: give exactly one of epochs and image_steps (the training budget)")
    max_steps = None
    if image_steps is not None:
        image_steps = check_positive_int(image_steps, "image_steps")
        if image_steps < batch_size:
            raise ValueError(f"image_steps: {image_steps:,} is less than one batch of {batch_size}")
        max_steps, epochs = image_steps // batch_size, 1
    epochs = check_positive_int(epochs, "epochs")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}")
    dev = _device(device)
    G = generator.to(dev).eval()
    for p in G.parameters():
        p.requires_grad_(False)
    X = generate(G, n_latents, seed=seed, device=dev)            # steps 1-2: T images, drawn once
    g = seeded_generator(seed + 1)
    torch.manual_seed(seed)
    E = encoder.to(dev).train()
    if channels_last:
        E = E.to(memory_format=torch.channels_last)

    def batch_loss(idx):
        xb = X[idx].to(dev)
        with autocast_bf16(dev, bf16):
            z = E(_to(xb, dev, channels_last))
        return reconstruction_loss(xb, G(z.float()))

    try:
        return fit(E, n=n_latents, batch_size=batch_size, epochs=epochs, lr=lr, g=g, name="Encoder",
                    batch_loss=batch_loss, progress=progress, log_every=log_every, loss_fmt=".3f",
                    loss_unit="sum of squares per image", max_steps=max_steps, schedule=schedule)
    finally:
        for p in G.parameters():
            p.requires_grad_(True)
        E.eval()
        if channels_last:
            E.to(memory_format=torch.contiguous_format)


def train_classifier(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int,
                     batch_size: int = 128, lr: float = 2e-3, seed: int = 0, device=None, progress: bool = True,
                     augment_shift: int = 0, log_every: int = 50) -> dict:
    """Supervised training with the NLL loss on clean images (Adam, cosine decay, optional random shifts)."""
    check_module(classifier, "classifier")
    images = check_images(images, "images")
    labels = check_labels(labels, n=images.shape[0], name="labels")
    epochs = check_positive_int(epochs, "epochs"); batch_size = check_positive_int(batch_size, "batch_size")
    lr = check_positive_float(lr, "lr")
    dev = _device(device)
    g = seeded_generator(seed)
    torch.manual_seed(seed)
    C = classifier.to(dev).train()

    def batch_loss(idx):
        xb = random_shift(images[idx], augment_shift, g).to(dev)
        return F.nll_loss(C(xb), labels[idx].to(dev))

    return fit(C, n=images.shape[0], batch_size=batch_size, epochs=epochs, lr=lr, g=g, name="Classifier",
               batch_loss=batch_loss, progress=progress, log_every=log_every)
