"""The input contract end to end: images of any floating dtype (numpy gives float64; float16 and
bfloat16 come from mixed precision) are accepted by every public function that takes images and
treated as float32, never crash inside torch; random starts do not depend on memory layout; a broken
results object gets no verdict."""
from __future__ import annotations

import pytest
import torch


from egan_lib import explore
from egan_lib.attacks import fgsm, fgsm_grid, fgsm_through, gradient_sign, on_manifold_attack, pgd, predict, through
from egan_lib.defenses import (EGAN, ConvAutoEncoder, DefenseGAN, DnCNN, DnCNNDefense, HybridDefense, PixelCNN,
                               PixelDefend, bits_per_dim, pixelcnn_nll, train_autoencoder, train_dncnn,
                               train_pixelcnn)
from egan_lib.eval import claims
from egan_lib.eval.adaptive import whitebox_accuracy
from egan_lib.eval.protocol import evaluate
from egan_lib.eval.timing import time_per_image
from egan_lib.models import Classifier, Discriminator, Encoder, Generator
from egan_lib.training import random_shift, train_classifier, train_gan

DTYPES = [torch.float64, torch.float16, torch.bfloat16]


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    C = Classifier().eval()
    G = Generator(width=8).eval()
    E = Encoder(channels=4, same_blocks=0, valid_blocks=11).eval()
    return C, G, E


def _batch(dtype, n=6):
    torch.manual_seed(1)
    return torch.rand(n, 1, 28, 28).to(dtype), torch.arange(n) % 10


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_attacks_accept_any_float_dtype(nets, dtype):
    C, G, E = nets
    x, y = _batch(dtype)
    ref = x.float()
    assert predict(C, x).tolist() == predict(C, ref).tolist()
    assert torch.equal(gradient_sign(C, x, y), gradient_sign(C, ref, y))
    assert fgsm(C, x, y, 0.1).dtype == torch.float32
    assert set(fgsm_grid(C, x, y, [0.0, 0.1])) == {0.0, 0.1}
    adv = fgsm_through(through(EGAN(E, G), C), x, y, 0.1)
    assert adv.dtype == torch.float32 and (adv - ref).abs().max() <= 0.1 + 1e-6
    # the float16 trap: the gradient must not underflow, the attack must move the pixels
    assert (adv != ref).float().mean() > 0.5
    assert pgd(C, x, y, 0.1, steps=2).dtype == torch.float32
    r = whitebox_accuracy(EGAN(E, G), C, x, y, [0.1], steps=2)
    assert r["n"] == len(y)
    r = on_manifold_attack(G, E, C, x, y, 0.3, steps=2)
    assert r["x_adv"].dtype == torch.float32


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_defenses_and_measurements_accept_any_float_dtype(nets, dtype):
    C, G, E = nets
    x, y = _batch(dtype)
    for d in (EGAN(E, G), DnCNNDefense(DnCNN(3, 4)), PixelDefend(PixelCNN(4, 1)), DefenseGAN(G, steps=2, restarts=1),
              HybridDefense(E, G, steps=1)):
        out = d.purify(x)
        assert out.dtype == torch.float32 and out.shape == x.shape, d.name
    assert DefenseGAN(G, steps=1, restarts=1).project(x).shape == (len(y), G.latent_dim)
    assert explore.reconstruct(E, G, x).dtype == torch.float32
    assert explore.squared_error(x, x.float()).abs().max() == 0
    assert time_per_image(EGAN(E, G), x, repeats=1)["seconds_per_image"] > 0
    assert pixelcnn_nll(PixelCNN(4, 1), x).shape == (len(y),) and bits_per_dim(PixelCNN(4, 1), x) > 0
    assert random_shift(x, 1).dtype == torch.float32
    res = evaluate(C, [EGAN(E, G)], x, y, [0.0, 0.1], timing_repeats=1, timing_batch=2)
    assert res.n["EGAN"] == len(y)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_trainers_accept_any_float_dtype(dtype):
    x, y = _batch(dtype, n=8)
    assert "loss" in train_classifier(Classifier(), x, y, epochs=1, batch_size=4, progress=False)
    assert "loss_d" in train_gan(Generator(width=4), Discriminator(width=4), x, epochs=1, batch_size=4, progress=False)
    assert "loss" in train_dncnn(DnCNN(3, 4), x, epochs=1, batch_size=4, progress=False)
    assert "loss" in train_autoencoder(ConvAutoEncoder(2), x, epochs=1, batch_size=4, progress=False)
    assert "loss" in train_pixelcnn(PixelCNN(4, 1), x, epochs=1, batch_size=4, progress=False, test_images=x)


def test_integer_images_are_refused_clearly(nets):
    C, _, _ = nets
    with pytest.raises(TypeError, match="to_float"):
        predict(C, torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


def test_pgd_random_start_does_not_depend_on_memory_layout(nets):
    C, _, _ = nets
    x, y = _batch(torch.float32, n=8)
    xt = x.transpose(2, 3).contiguous().transpose(2, 3)     # same values, other strides
    assert torch.equal(x, xt) and x.stride() != xt.stride()
    a = pgd(C, x, y, 0.2, steps=3, seed=5)
    b = pgd(C, xt, y, 0.2, steps=3, seed=5)
    assert torch.equal(a, b)


def test_claims_give_no_verdict_on_an_impossible_accuracy():
    obj = {"dataset": "mnist", "profile": "t", "device": "cpu", "n_test": 10, "threat_model": "oblivious",
           "git_commit": "abc1234",
           "methods": {"Original": {"accuracy": {"0.00": 1.7}, "ci95": {"0.00": [0.9, 1.0]},
                                    "seconds_per_image": 1e-3, "n": 10}}}
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        claims.claim_clean_accuracy(obj)


