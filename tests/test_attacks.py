"""FGSM (the paper's oblivious setting), the eps grid, predict and accuracy."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from egan_lib.attacks import accuracy, eps_grid, fgsm, fgsm_grid, gradient_sign, predict


@pytest.fixture(scope="module")
def batch(test_batch):
    x, y = test_batch
    return x[:96], y[:96]


def _loss_per_image(model, x, y):
    with torch.no_grad():
        return F.nll_loss(model(x), y, reduction="none")


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.3, 1.0])
def test_fgsm_stays_within_eps_and_in_unit_interval(trained_classifier, batch, eps):
    x, y = batch
    adv = fgsm(trained_classifier, x, y, eps)
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert float((adv - x).abs().max()) <= eps + 1e-6
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    # it really moves: every pixel with a non-zero gradient that is not already at the bound moves by eps
    assert float((adv - x).abs().max()) == pytest.approx(eps, abs=1e-6)


def test_fgsm_eps_zero_is_the_identity(trained_classifier, batch):
    x, y = batch
    assert torch.equal(fgsm(trained_classifier, x, y, 0.0), x)
    assert torch.equal(fgsm(trained_classifier, x, y, 0), x)


def test_fgsm_follows_the_gradient_sign(trained_classifier, batch):
    x, y = batch
    s = gradient_sign(trained_classifier, x, y)
    assert set(s.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert torch.equal(fgsm(trained_classifier, x, y, 0.2), (x + 0.2 * s).clamp(0, 1))


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.2])
def test_fgsm_raises_the_loss_on_average(trained_classifier, batch, eps):
    x, y = batch
    clean = _loss_per_image(trained_classifier, x, y)
    adv = _loss_per_image(trained_classifier, fgsm(trained_classifier, x, y, eps), y)
    assert float(adv.mean()) > float(clean.mean()) + 0.05
    assert float((adv > clean).float().mean()) > 0.8


def test_fgsm_lowers_accuracy(trained_classifier, batch):
    x, y = batch
    clean = accuracy(trained_classifier, x, y)
    adv = accuracy(trained_classifier, fgsm(trained_classifier, x, y, 0.3), y)
    assert clean > 0.7          # the fixture's classifier is a real (if briefly trained) one
    assert adv < clean - 0.2


def test_fgsm_grid_equals_fgsm_for_every_eps(trained_classifier, batch):
    x, y = batch
    grid = [0.0, 0.05, 0.25, 0.5, 1.0]
    out = fgsm_grid(trained_classifier, x, y, grid)
    assert list(out) == grid
    for e in grid:
        assert torch.equal(out[e], fgsm(trained_classifier, x, y, e)), e


def test_fgsm_does_not_depend_on_the_batch_size(trained_classifier, batch):
    x, y = batch
    assert torch.equal(fgsm(trained_classifier, x, y, 0.1, batch_size=7),
                       fgsm(trained_classifier, x, y, 0.1, batch_size=512))


def test_attack_leaves_model_mode_and_input_untouched(batch):
    from egan_lib.models import Classifier
    c = Classifier().train()
    x, y = batch
    x0 = x.clone()
    w0 = {k: v.clone() for k, v in c.state_dict().items()}
    fgsm(c, x, y, 0.1)
    assert c.training                                   # mode restored
    assert torch.equal(x, x0)                           # input not modified in place
    for k, v in c.state_dict().items():                 # eval mode: BN running stats untouched
        assert torch.equal(v, w0[k]), k
    assert all(p.grad is None for p in c.parameters())  # no gradient left on the weights


def test_predict_and_accuracy_agree(trained_classifier, batch):
    x, y = batch
    p = predict(trained_classifier, x, batch_size=10)
    assert p.dtype == torch.int64 and p.shape == y.shape
    assert torch.equal(p, predict(trained_classifier, x))
    assert accuracy(trained_classifier, x, y) == pytest.approx(float((p == y).float().mean()))
    with torch.no_grad():
        assert torch.equal(p, trained_classifier(x).argmax(1))


def test_eps_grid():
    g = eps_grid(0.05)
    assert len(g) == 21 and g[0] == 0.0 and g[-1] == 1.0 and g[1] == 0.05 and g[10] == 0.5
    assert eps_grid(0.25) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert eps_grid(0.1, maximum=0.3) == [0.0, 0.1, 0.2, 0.3]
    with pytest.raises(ValueError, match="does not divide"):
        eps_grid(0.3)
    with pytest.raises(ValueError, match="must be > 0"):
        eps_grid(0.0)
