"""The defenses the paper compares (chapter 05), one module per method, behind one ``purify(x)`` interface.

    Original      identity (no defense)                                              base.py
    EGAN          G(E(x)): the paper's encoder E inverts the frozen DCGAN generator G  egan.py
    DnCNN         Zhang et al. 2017, "Beyond a Gaussian Denoiser": a residual denoiser  dncnn.py
    AutoEncoder   MagNet's MNIST denoising autoencoder (Meng & Chen 2017)               autoencoder.py
    APE-GAN       Jin et al. 2019 (arXiv 1707.05474): a GAN trained on FGSM examples     apegan.py
    PixelDefend   Song et al. 2018: autoregressive purification under a PixelCNN         pixelcnn.py, pixeldefend.py
    Defense-GAN   Samangouei et al. 2018: project x onto G's range, R restarts            defensegan.py
    (EGAN+DGAN-k  the hybrid: k Defense-GAN steps from z = E(x); not one of the paper's)  hybrid.py
    (EGAN-R, EGAN-RC  EGAN with an adversarially fine-tuned encoder; chapter 08)          robust_egan.py

Each method module holds its network, its trainer, its ``Defense`` and its load-or-train recipe
(registered with ``@register``); ``get_defenses(ws, names)`` builds them from a Workspace in the
registry's order. The interface and the threat-model warning are in ``egan_lib.defenses.base``.
The choices the papers leave open (and the shrinks of the cpu profile) are stated in the docstring
of the function that makes them, so the chapter can quote them.
"""
from __future__ import annotations

from . import apegan, autoencoder, defensegan, dncnn, egan, pixeldefend, robust_egan  # noqa: F401  (registers them)
from .apegan import APEGANDefense, APEGANDiscriminator, APEGANGenerator, get_apegan, train_apegan
from .autoencoder import AutoEncoderDefense, ConvAutoEncoder, get_autoencoder, train_autoencoder
from .base import REGISTRY, Defense, DenoiserDefense, Method, Original, register
from .defensegan import (DEFENSEGAN_LR, DEFENSEGAN_MOMENTUM, DEFENSEGAN_RESTARTS, DEFENSEGAN_STEPS,
                         DefenseGAN)
from .dncnn import DNCNN_SIGMA_MAX, DnCNN, DnCNNDefense, get_dncnn, train_dncnn
from .egan import EGAN, reconstruct
from .hybrid import HybridDefense
from .pixelcnn import MaskedConv2d, PixelCNN, bits_per_dim, pixelcnn_nll, train_pixelcnn
from .pixeldefend import PIXELDEFEND_EPS, PixelDefend, get_pixelcnn, pixeldefend_batch

#: The paper's methods, in the order of its tables and figures (chapters 05-07).
ALL_DEFENSES = tuple(sorted((k for k in REGISTRY if REGISTRY[k].paper), key=lambda k: REGISTRY[k].order))
#: The registered methods beyond the paper (chapter 08's robust EGAN variants).
BEYOND_PAPER = tuple(sorted((k for k in REGISTRY if not REGISTRY[k].paper), key=lambda k: REGISTRY[k].order))
#: The methods evaluated on the profile's smaller ``expensive_n_test`` (their purification is slow).
EXPENSIVE = tuple(k for k in ALL_DEFENSES if REGISTRY[k].expensive)


def get_defenses(ws, names=ALL_DEFENSES) -> dict:
    """The named defenses of a ``Workspace`` (load-or-train of every network they need), in the order
    asked, on ``ws.device``, with the profile's evaluation batch size: {name: Defense}."""
    from ..workflow import Workspace
    if not isinstance(ws, Workspace):
        raise TypeError(f"ws: expected an egan_lib.workflow.Workspace (from egan_lib.setup), got {type(ws).__name__}")
    if isinstance(names, str):
        names = (names,)
    try:
        names = list(names)
    except TypeError as e:
        raise TypeError(f"names: expected a list of names out of {ALL_DEFENSES + BEYOND_PAPER}, got "
                        f"{type(names).__name__}") from e
    if not names:
        raise ValueError(f"names: expected at least one of {ALL_DEFENSES}")
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"names: unknown defense(s) {unknown}; choose from {ALL_DEFENSES + BEYOND_PAPER}")
    if len(set(names)) != len(names):
        raise ValueError(f"names: duplicates in {names}")
    out: dict = {}
    for name in names:
        d = REGISTRY[name].build(ws)
        d.batch_size = ws.profile.eval_batch
        out[name] = d
    return out


__all__ = ["ALL_DEFENSES", "BEYOND_PAPER", "EXPENSIVE", "REGISTRY", "Method", "register", "get_defenses",
           "Defense", "DenoiserDefense", "Original", "EGAN", "reconstruct", "HybridDefense",
           "DnCNN", "DnCNNDefense", "train_dncnn", "get_dncnn", "DNCNN_SIGMA_MAX",
           "ConvAutoEncoder", "AutoEncoderDefense", "train_autoencoder", "get_autoencoder",
           "APEGANGenerator", "APEGANDiscriminator", "APEGANDefense", "train_apegan", "get_apegan",
           "MaskedConv2d", "PixelCNN", "pixelcnn_nll", "bits_per_dim", "train_pixelcnn", "get_pixelcnn",
           "PixelDefend", "PIXELDEFEND_EPS", "pixeldefend_batch",
           "DefenseGAN", "DEFENSEGAN_STEPS", "DEFENSEGAN_RESTARTS", "DEFENSEGAN_LR", "DEFENSEGAN_MOMENTUM"]
