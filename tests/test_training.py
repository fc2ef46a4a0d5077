"""The three trainers each lower their loss on a tiny run, and are reproducible for a seed."""
from __future__ import annotations

import pytest
import torch

from egan_lib.attacks import accuracy
from egan_lib.models import Classifier, Discriminator, Encoder, Generator
from egan_lib.training import (generate, random_shift, reconstruction_loss, train_classifier, train_encoder,
                               train_gan)


@pytest.fixture(scope="module")
def small_train(train_batch):
    x, y = train_batch
    return x[:512], y[:512]


def _state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_train_gan_lowers_the_discriminator_loss_and_moves_g_towards_the_data(small_train):
    x, _ = small_train
    torch.manual_seed(0)
    G, D = Generator(width=4), Discriminator(width=4)
    before = generate(G, 256, seed=5)
    hist = train_gan(G, D, x, epochs=4, batch_size=32, lr=2e-3, seed=0, progress=False, log_every=4)
    after = generate(G, 256, seed=5)
    assert set(hist) >= {"loss_d", "loss_g", "d_real", "d_fake", "step"}
    assert hist["step"][-1] == 4 * (512 // 32)
    # D learns to tell real from fake: its loss falls from ~2 ln 2
    assert hist["loss_d"][-1] < hist["loss_d"][0] - 0.5
    assert hist["d_real"][-1] > hist["d_fake"][-1]
    # G learns too: its mean brightness moves from 0.5 (untrained sigmoid) towards MNIST's ~0.13
    target = float(x.mean())
    assert abs(float(after.mean()) - target) < abs(float(before.mean()) - target) - 0.1
    assert not G.training and not D.training


def test_train_encoder_lowers_the_reconstruction_loss_and_keeps_g_frozen(tiny_generator, tiny_encoder):
    G, E = tiny_generator, tiny_encoder
    g0 = _state(G)
    hist = train_encoder(E, G, n_latents=256, epochs=3, batch_size=32, lr=1e-2, seed=0, progress=False, log_every=2)
    el = hist["epoch_loss"]
    assert len(el) == 3
    assert el[-1] < 0.85 * el[0]
    assert hist["loss"][-1] < hist["loss"][0]
    for k, v in G.state_dict().items():          # G is frozen: weights and BN statistics untouched
        assert torch.equal(v, g0[k]), k
    assert all(p.requires_grad for p in G.parameters())   # ... and handed back trainable
    assert not E.training


def test_wsd_schedule_is_constant_then_decays_linearly_to_near_zero():
    from egan_lib.training import learning_rate, wsd_lr
    lrs = [wsd_lr(s, 100, 1.0) for s in range(100)]
    assert lrs[:90] == [1.0] * 90
    assert all(b < a for a, b in zip(lrs[89:], lrs[90:])) and lrs[-1] == pytest.approx(1 / 11)
    assert learning_rate("cosine", 0, 100, 1.0) == 1.0 and learning_rate("cosine", 50, 100, 1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="schedule"):
        learning_rate("step", 0, 10, 1.0)


def test_train_encoder_with_an_image_step_budget_stops_there(tiny_generator, tiny_encoder):
    hist = train_encoder(tiny_encoder, tiny_generator, n_latents=64, image_steps=5 * 32, batch_size=32, lr=1e-2,
                         schedule="wsd", progress=False, log_every=1)
    assert hist["step"][-1] == 5 and len(hist["epoch_loss"]) == 3          # 2 + 2 + 1 steps
    with pytest.raises(ValueError, match="exactly one of epochs and image_steps"):
        train_encoder(tiny_encoder, tiny_generator, n_latents=64, epochs=1, image_steps=64, progress=False)
    with pytest.raises(ValueError, match="less than one batch"):
        train_encoder(tiny_encoder, tiny_generator, n_latents=64, image_steps=10, batch_size=32, progress=False)
    with pytest.raises(ValueError, match="schedule"):
        train_encoder(tiny_encoder, tiny_generator, n_latents=64, epochs=1, schedule="step", progress=False)


def test_train_encoder_loss_is_the_papers_reconstruction_loss(tiny_generator, tiny_encoder):
    """The reported epoch loss is (1/T) sum ||X_i - G(E(X_i))||^2 (per image, not per pixel)."""
    x = generate(tiny_generator, 64, seed=0)
    with torch.no_grad():
        xh = tiny_generator.eval()(tiny_encoder.eval()(x))
    manual = float(((x - xh) ** 2).flatten(1).sum(1).mean())
    assert float(reconstruction_loss(x, xh)) == pytest.approx(manual, rel=1e-5)
    assert float(reconstruction_loss(x, x)) == 0.0


def test_train_classifier_lowers_its_loss_and_learns(small_train, test_batch):
    x, y = small_train
    c = Classifier()
    hist = train_classifier(c, x, y, epochs=3, batch_size=64, lr=5e-3, seed=0, progress=False, log_every=4)
    el = hist["epoch_loss"]
    assert el[-1] < 0.6 * el[0]
    assert hist["loss"][-1] < hist["loss"][0]
    tx, ty = test_batch
    assert accuracy(c, tx, ty) > 0.6            # far above chance (0.1) on unseen test images
    assert not c.training


def test_trainers_are_reproducible_for_a_seed(small_train):
    x, y = small_train
    runs = []
    for _ in range(2):
        torch.manual_seed(123)                   # same init
        c = Classifier()
        h = train_classifier(c, x[:256], y[:256], epochs=1, batch_size=64, seed=7, progress=False, augment_shift=2)
        runs.append((h["epoch_loss"], _state(c)))
    assert runs[0][0] == runs[1][0]
    for k in runs[0][1]:
        assert torch.equal(runs[0][1][k], runs[1][1][k]), k


def test_generate_is_seeded(tiny_generator):
    a, za = generate(tiny_generator, 10, seed=3, return_latents=True)
    b = generate(tiny_generator, 10, seed=3, batch_size=3)
    c = generate(tiny_generator, 10, seed=4)
    assert a.shape == (10, 1, 28, 28) and za.shape == (10, 30)
    assert torch.allclose(a, b, atol=1e-6) and not torch.allclose(a, c, atol=1e-3)
    assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_random_shift_translates_each_image_with_zero_fill():
    x = torch.zeros(50, 1, 28, 28)
    x[:, :, 14, 14] = 1.0
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.equal(out.sum((1, 2, 3)), torch.ones(50))          # the pixel moved, nothing else appeared
    pos = out[:, 0].flatten(1).argmax(1)
    r, c = pos // 28, pos % 28
    assert int((r - 14).abs().max()) <= 2 and int((c - 14).abs().max()) <= 2
    assert len(set(zip(r.tolist(), c.tolist()))) > 5                # different offsets per image
    assert torch.equal(random_shift(x, 0), x)
