"""Every public function rejects bad input (NaN/inf, wrong shape, pixels outside [0, 1], negative eps,
empty batches, bad labels) with an error that says what was expected and what came."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from egan_lib import attacks, data, training
from egan_lib.models import Classifier, Discriminator, Encoder, Generator


def _labels(x):
    n = x.shape[0] if isinstance(x, torch.Tensor) and x.dim() > 0 else 4
    return torch.arange(n) % 10


_C = Classifier()
_G = Generator(width=4)
_D = Discriminator(width=4)
_E = Encoder(channels=2, same_blocks=0, valid_blocks=11)

# public functions that take a batch of float images, each as f(x)
IMAGE_FUNCTIONS = {
    "attacks.gradient_sign": lambda x: attacks.gradient_sign(_C, x, _labels(x)),
    "attacks.fgsm": lambda x: attacks.fgsm(_C, x, _labels(x), 0.1),
    "attacks.fgsm_grid": lambda x: attacks.fgsm_grid(_C, x, _labels(x), [0.0, 0.1]),
    "attacks.predict": lambda x: attacks.predict(_C, x),
    "attacks.accuracy": lambda x: attacks.accuracy(_C, x, _labels(x)),
    "training.train_gan": lambda x: training.train_gan(_G, _D, x, epochs=1, batch_size=2, progress=False),
    "training.train_classifier": lambda x: training.train_classifier(_C, x, _labels(x), epochs=1, batch_size=2,
                                                                     progress=False),
    "training.random_shift": lambda x: training.random_shift(x, 2),
}
# forward passes and shape-only checks (no data-dependent test on the hot path)
SHAPE_FUNCTIONS = {
    "Classifier.forward": lambda x: _C(x),
    "Encoder.forward": lambda x: _E(x),
    "Discriminator.forward": lambda x: _D(x),
    "training.reconstruction_loss": lambda x: training.reconstruction_loss(x, torch.rand(4, 1, 28, 28)),
    "data.to_float": lambda x: data.to_float((x * 255).to(torch.uint8) if isinstance(x, torch.Tensor) else x),
}

GOOD = torch.rand(4, 1, 28, 28)


def _with(value):
    x = GOOD.clone()
    x[1, 0, 3, 4] = value
    return x


BAD_VALUES = {
    "nan": (_with(float("nan")), ValueError, r"NaN or inf; expected finite pixel values in \[0, 1\]"),
    "inf": (_with(float("inf")), ValueError, "NaN or inf"),
    "above_1": (_with(1.5), ValueError, r"must lie in \[0, 1\], got min .* and max 1.5"),
    "below_0": (_with(-0.25), ValueError, r"must lie in \[0, 1\], got min -0.25"),
    "uint8": ((GOOD * 255).to(torch.uint8), TypeError, r"expected a floating-point tensor .* got dtype torch.uint8"),
}
BAD_SHAPES = {
    "wrong_size": (torch.rand(4, 1, 32, 32), ValueError, r"expected .*shape \(N, 1, 28, 28\).* got \(4, 1, 32, 32\)"),
    "three_channels": (torch.rand(4, 3, 28, 28), ValueError, r"expected .*shape \(N, 1, 28, 28\).* got \(4, 3, 28, 28\)"),
    "no_batch_dim": (torch.rand(1, 28, 28), ValueError, r"expected .*shape \(N, 1, 28, 28\).* got \(1, 28, 28\)"),
    "empty": (torch.rand(0, 1, 28, 28), ValueError, r"empty batch \(N = 0\)"),
    "not_a_tensor": (np.random.rand(4, 1, 28, 28), TypeError, r"expected a .*torch.Tensor.*got ndarray"),
}


@pytest.mark.parametrize("bad", list(BAD_VALUES) + list(BAD_SHAPES))
@pytest.mark.parametrize("fn", list(IMAGE_FUNCTIONS))
def test_image_functions_reject_bad_images(fn, bad):
    x, exc, msg = {**BAD_VALUES, **BAD_SHAPES}[bad]
    with pytest.raises(exc, match=msg):
        IMAGE_FUNCTIONS[fn](x)


@pytest.mark.parametrize("fn, bad", [(f, b) for f in SHAPE_FUNCTIONS for b in BAD_SHAPES
                                     # (1, 28, 28) uint8 is one image for to_float, which accepts (N, 28, 28)
                                     if not (f == "data.to_float" and b == "no_batch_dim")])
def test_forward_passes_and_helpers_reject_bad_shapes(fn, bad):
    x, exc, msg = BAD_SHAPES[bad]
    if fn == "training.reconstruction_loss" and exc is ValueError:
        msg = r"same non-empty shape \(N, 1, 28, 28\)"
    if fn == "data.to_float" and exc is ValueError and bad != "empty":
        msg = r"expected shape \(N, 28, 28\) or \(N, 1, 28, 28\)"
    with pytest.raises(exc, match=msg):
        SHAPE_FUNCTIONS[fn](x)


@pytest.mark.parametrize("fn", list(IMAGE_FUNCTIONS) + list(SHAPE_FUNCTIONS))
def test_good_images_are_accepted(fn):
    torch.manual_seed(0)
    (IMAGE_FUNCTIONS | SHAPE_FUNCTIONS)[fn](GOOD.clone())


# ---------------------------------------------------------------------------- eps
BAD_EPS = {
    "negative": (-0.1, ValueError, r"eps: must be >= 0, got -0.1"),
    "nan": (math.nan, ValueError, r"eps: expected a finite number >= 0, got nan"),
    "inf": (math.inf, ValueError, r"finite"),
    "above_1": (1.5, ValueError, r"eps: must be <= 1.0 for images in \[0, 1\], got 1.5"),
    "string": ("0.1", TypeError, r"eps: expected a real number >= 0, got str"),
    "bool": (True, TypeError, r"eps: expected a real number"),
    "tensor": (torch.tensor([0.1, 0.2]), TypeError, r"eps: expected a real number"),
}


@pytest.mark.parametrize("bad", list(BAD_EPS))
def test_fgsm_rejects_bad_eps(bad):
    eps, exc, msg = BAD_EPS[bad]
    with pytest.raises(exc, match=msg):
        attacks.fgsm(_C, GOOD, _labels(GOOD), eps)
    with pytest.raises(exc, match=msg.replace("eps:", r"eps_values\[1\]:")):   # the list check names the entry
        attacks.fgsm_grid(_C, GOOD, _labels(GOOD), [0.0, eps])


def test_fgsm_grid_rejects_an_empty_grid_and_eps_grid_bad_steps():
    with pytest.raises(ValueError, match="non-empty list of eps"):
        attacks.fgsm_grid(_C, GOOD, _labels(GOOD), [])
    with pytest.raises(ValueError, match="non-empty list of eps"):
        attacks.fgsm_grid(_C, GOOD, _labels(GOOD), 0.1)
    with pytest.raises(ValueError, match="step: must be >= 0, got -0.05"):
        attacks.eps_grid(-0.05)
    with pytest.raises(ValueError, match="step: expected a finite number"):
        attacks.eps_grid(math.nan)


# ---------------------------------------------------------------------------- labels
BAD_LABELS = {
    "wrong_length": (torch.zeros(3, dtype=torch.long), ValueError, r"expected 4 labels \(one per image\), got 3"),
    "float": (torch.zeros(4), TypeError, r"expected integer labels \(int64\), got dtype torch.float32"),
    "too_large": (torch.tensor([0, 1, 2, 10]), ValueError, r"labels must lie in \[0, 9\], got min 0 and max 10"),
    "negative": (torch.tensor([0, -1, 2, 3]), ValueError, r"labels must lie in \[0, 9\], got min -1"),
    "two_dim": (torch.zeros(4, 1, dtype=torch.long), ValueError, r"expected shape \(N,\), got \(4, 1\)"),
    "list": ([0, 1, 2, 3], TypeError, r"expected a torch.Tensor of int64 labels, got list"),
}
LABEL_FUNCTIONS = {
    "attacks.gradient_sign": lambda y: attacks.gradient_sign(_C, GOOD, y),
    "attacks.fgsm": lambda y: attacks.fgsm(_C, GOOD, y, 0.1),
    "attacks.fgsm_grid": lambda y: attacks.fgsm_grid(_C, GOOD, y, [0.1]),
    "attacks.accuracy": lambda y: attacks.accuracy(_C, GOOD, y),
    "training.train_classifier": lambda y: training.train_classifier(_C, GOOD, y, epochs=1, progress=False),
}


@pytest.mark.parametrize("bad", list(BAD_LABELS))
@pytest.mark.parametrize("fn", list(LABEL_FUNCTIONS))
def test_functions_with_labels_reject_bad_labels(fn, bad):
    y, exc, msg = BAD_LABELS[bad]
    with pytest.raises(exc, match=msg):
        LABEL_FUNCTIONS[fn](y)


# ---------------------------------------------------------------------------- other arguments
BAD_ARGUMENTS = {
    "fgsm model": (lambda: attacks.fgsm("model", GOOD, _labels(GOOD), 0.1), TypeError, "model: expected a torch.nn.Module"),
    "fgsm batch_size": (lambda: attacks.fgsm(_C, GOOD, _labels(GOOD), 0.1, batch_size=0), ValueError,
                        "batch_size: expected an integer >= 1, got 0"),
    "predict batch_size": (lambda: attacks.predict(_C, GOOD, batch_size=1.5), TypeError, "batch_size: expected an integer"),
    "train_gan epochs": (lambda: training.train_gan(_G, _D, GOOD, epochs=0, progress=False), ValueError,
                         "epochs: expected an integer >= 1, got 0"),
    "train_gan lr": (lambda: training.train_gan(_G, _D, GOOD, epochs=1, lr=-1e-3, progress=False), ValueError,
                     "lr: expected a finite number > 0"),
    "train_gan generator": (lambda: training.train_gan(None, _D, GOOD, epochs=1), TypeError,
                            "generator: expected a torch.nn.Module"),
    "train_gan seed": (lambda: training.train_gan(_G, _D, GOOD, epochs=1, seed=-1, progress=False), ValueError,
                       "seed: expected a non-negative integer"),
    "train_encoder n_latents": (lambda: training.train_encoder(_E, _G, n_latents=0, epochs=1, progress=False),
                                ValueError, "n_latents: expected an integer >= 1, got 0"),
    "train_encoder epochs": (lambda: training.train_encoder(_E, _G, n_latents=8, epochs=-1, progress=False),
                             ValueError, "epochs: expected an integer >= 1, got -1"),
    "train_encoder lr": (lambda: training.train_encoder(_E, _G, n_latents=8, epochs=1, lr=math.nan, progress=False),
                         ValueError, "lr: expected a finite number > 0, got nan"),
    "train_encoder encoder": (lambda: training.train_encoder("E", _G, n_latents=8, epochs=1), TypeError,
                              "encoder: expected a torch.nn.Module"),
    "train_classifier batch_size": (lambda: training.train_classifier(_C, GOOD, _labels(GOOD), epochs=1, batch_size=0,
                                                                      progress=False), ValueError, "batch_size"),
    "generate n": (lambda: training.generate(_G, 0), ValueError, "n: expected an integer >= 1, got 0"),
    "generate seed": (lambda: training.generate(_G, 2, seed=-3), ValueError, "seed: expected a non-negative integer"),
    "random_shift max_shift": (lambda: training.random_shift(GOOD, -1), ValueError,
                               "max_shift: expected an integer >= 0, got -1"),
    "Generator wrong latent size": (lambda: _G(torch.randn(4, 31)), ValueError,
                                    r"expected latents of shape \(N, 30\), got \(4, 31\)"),
    "Generator 1-D latent": (lambda: _G(torch.randn(30)), ValueError, r"expected latents of shape \(N, 30\), got \(30,\)"),
    "Generator empty": (lambda: _G(torch.randn(0, 30)), ValueError, r"empty batch"),
    "to_float float input": (lambda: data.to_float(torch.rand(4, 28, 28)), TypeError,
                             "images: expected dtype uint8, got torch.float32"),
    "subset mismatch": (lambda: data.subset(torch.zeros(5, 28, 28), torch.zeros(4, dtype=torch.long), 2), ValueError,
                        r"expected one label per image, got \(5, 28, 28\) images and 4 labels"),
    "subset empty": (lambda: data.subset(torch.zeros(0, 28, 28), torch.zeros(0, dtype=torch.long), None), ValueError,
                     r"empty batch \(N = 0\)"),
    "subset too many": (lambda: data.subset(torch.zeros(5, 28, 28), torch.arange(5), 6), ValueError,
                        "asked for n=6 examples but only 5 exist"),
    "subset n=0": (lambda: data.subset(torch.zeros(5, 28, 28), torch.arange(5), 0), ValueError,
                   "n: expected an integer >= 1, got 0"),
    "subset n float": (lambda: data.subset(torch.zeros(5, 28, 28), torch.arange(5), 2.5), TypeError,
                       "n: expected an integer"),
    "subset 2-D labels": (lambda: data.subset(torch.zeros(5, 28, 28), torch.zeros(5, 1, dtype=torch.long), 2),
                          ValueError, r"expected labels of shape \(N,\)"),
    "subset not tensors": (lambda: data.subset([1, 2], torch.arange(2), 1), TypeError, "must be torch.Tensors"),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_arguments_are_rejected_with_what_was_expected(case):
    fn, exc, msg = BAD_ARGUMENTS[case]
    with pytest.raises(exc, match=msg):
        fn()

