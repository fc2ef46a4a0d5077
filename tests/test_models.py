"""The paper's networks: shapes, parameter counts and the encoder's exact layer layout."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from egan_lib.config import get_profile
from egan_lib.models import (LATENT_DIM, Classifier, Discriminator, Encoder, Generator, build_classifier,
                             build_discriminator, build_encoder, build_generator, count_parameters)


def test_encoder_at_100_channels_has_the_papers_2005530_parameters():
    assert count_parameters(Encoder()) == 2_005_530
    assert count_parameters(Encoder(channels=100, same_blocks=10, valid_blocks=11)) == 2_005_530


def test_classifier_has_the_papers_10630_parameters():
    assert count_parameters(Classifier()) == 10_630


def test_count_parameters_counts_only_trainable_ones():
    c = Classifier()
    c.head[-2].weight.requires_grad_(False)  # Linear(50, 10): 500 weights
    assert count_parameters(c) == 10_630 - 500
    with pytest.raises(TypeError, match="torch.nn.Module"):
        count_parameters("not a model")


def test_encoder_layout_is_the_papers():
    """1 block 1->100 (pad 1), 10 blocks 100->100 (pad 1), 11 blocks 100->100 (pad 0), Linear(3600, 30);
    a block is Conv2d 3x3 + BatchNorm + LeakyReLU(0.2)."""
    e = Encoder()
    blocks = list(e.features)
    assert len(blocks) == 22
    for i, blk in enumerate(blocks):
        conv, bn, act = blk
        assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and isinstance(act, nn.LeakyReLU)
        assert conv.kernel_size == (3, 3) and conv.stride == (1, 1)
        assert act.negative_slope == pytest.approx(0.2)
        assert conv.in_channels == (1 if i == 0 else 100) and conv.out_channels == 100
        assert conv.padding == ((1, 1) if i <= 10 else (0, 0))
    lin = e.head[-1]
    assert isinstance(lin, nn.Linear) and (lin.in_features, lin.out_features) == (3600, 30)


def test_encoder_full_width_shapes():
    e = Encoder().eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        f = e.features(x)
        z = e.head(f)
    assert f.shape == (2, 100, 6, 6)
    assert z.shape == (2, LATENT_DIM)
    assert torch.isfinite(z).all()


def test_small_encoder_shapes(tiny_encoder):
    z = tiny_encoder(torch.rand(3, 1, 28, 28))
    assert z.shape == (3, 30)
    # valid blocks shrink 28 by 2 each: 13 blocks -> 2x2
    e = Encoder(channels=2, same_blocks=0, valid_blocks=13)
    assert e.features(torch.rand(2, 1, 28, 28)).shape == (2, 2, 2, 2)
    with pytest.raises(ValueError, match="at most 13"):
        Encoder(valid_blocks=14)


def test_classifier_shapes_and_log_probabilities():
    c = Classifier().eval()
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        assert c.features(x).shape == (5, 10, 4, 4)
        out = c(x)
    assert out.shape == (5, 10)
    assert torch.allclose(out.exp().sum(1), torch.ones(5), atol=1e-5)


@pytest.mark.parametrize("width", [4, 64])
def test_generator_maps_latents_to_images_in_unit_interval(width):
    g = Generator(width=width).eval()
    with torch.no_grad():
        x = g(torch.randn(6, 30) * 3)
    assert x.shape == (6, 1, 28, 28)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


@pytest.mark.parametrize("width", [4, 64])
def test_discriminator_returns_one_logit_per_image(width):
    d = Discriminator(width=width)
    out = d(torch.rand(6, 1, 28, 28))
    assert out.shape == (6,)


def test_generator_and_discriminator_layout():
    g, d = Generator(), Discriminator()
    convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(convs) == 2 and all(c.stride == (2, 2) for c in convs)
    assert isinstance(g.net[-1], nn.Sigmoid)
    assert any(isinstance(m, nn.BatchNorm2d) for m in g.modules())
    assert all(m.negative_slope == pytest.approx(0.2) for m in d.modules() if isinstance(m, nn.LeakyReLU))
    assert all(c.stride == (2, 2) for c in d.modules() if isinstance(c, nn.Conv2d))


def test_builders_follow_the_profile():
    p = get_profile("smoke")
    g, d, e, c = build_generator(p), build_discriminator(p), build_encoder(p), build_classifier(p)
    assert g.latent_dim == p.latent_dim
    assert e.features[0][0].out_channels == p.enc_channels
    assert len(e.features) == 1 + p.enc_same_blocks + p.enc_valid_blocks
    assert d.net[0].out_channels == p.d_width
    assert count_parameters(c) == 10_630
    z = torch.randn(2, p.latent_dim)
    x = g(z)
    assert e(x).shape == (2, p.latent_dim) and d(x).shape == (2,) and c(x).shape == (2, 10)
