"""AutoAttack through a defense, EOT over a randomised defense, and the per-image worst case over attacks."""
from __future__ import annotations

import pytest
import torch

from egan_lib.attacks import autoattack, eot, through
from egan_lib.defenses import DefenseGAN, Original
from egan_lib.eval.adaptive import whitebox_accuracy, worst_case
from conftest import LinearClassifier
from egan_lib.models import Generator




@pytest.fixture(scope="module")
def data():
    torch.manual_seed(2)
    C = LinearClassifier().eval()
    x = torch.rand(8, 1, 28, 28)
    return C, x, C(x).argmax(1)


def test_autoattack_through_a_defense_stays_in_the_ball_and_breaks_a_linear_model(data):
    C, x, y = data
    adv = autoattack(through(Original(), C), x, y, 0.3)
    assert adv.shape == x.shape and (adv - x).abs().max() <= 0.3 + 1e-6 and 0 <= adv.min() and adv.max() <= 1
    assert (C(adv).argmax(1) == y).float().mean() < 0.5
    assert torch.equal(autoattack(C, x, y, 0.0), x)
    r = whitebox_accuracy(Original(), C, x, y, [0.3], attack="autoattack")
    assert r["attack"]["attack"] == "autoattack" and r["accuracy"][0.3] < 0.5 and r["correct"][0.3].shape == (8,)


def test_eot_averages_the_probabilities_of_several_draws(data):
    C, x, y = data
    f = eot(lambda k: (lambda z, k=k: C(z) + k), 3)       # shifted logits: same softmax for every draw
    assert torch.allclose(f(x), C(x), atol=1e-5)
    g = Generator(width=4).eval()
    dg = DefenseGAN(g, steps=2, restarts=1, seed=5)
    assert dg.reseeded(7).seed == 7 and dg.seed == 5
    r = whitebox_accuracy(dg, C, x, y, [0.1], steps=2, eot_samples=2)
    assert r["threat_model"].endswith("+eot") and r["attack"]["eot_samples"] == 2
    with pytest.raises(TypeError, match="reseeded"):
        whitebox_accuracy(Original(), C, x, y, [0.1], steps=2, eot_samples=2)


def test_worst_case_counts_an_image_only_if_every_attack_failed():
    t, f = True, False
    a = {"correct": {0.1: torch.tensor([t, t, f, t]), 0.3: torch.tensor([f, f, f, t])}}
    b = {"correct": {0.1: torch.tensor([t, f, t, t]), 0.3: torch.tensor([f, f, f, f])}}
    w = worst_case({"pgd": a, "aa": b})
    assert w["accuracy"][0.1] == 0.5 and w["accuracy"][0.3] == 0.0 and w["n"] == 4
    assert w["decisive"][0.1] == {"pgd": 1, "aa": 1} and w["decisive"][0.3] == {"pgd": 0, "aa": 1}
    assert w["per_attack"]["pgd"][0.3] == 0.25 and w["threat_model"] == "worst-case"
    with pytest.raises(ValueError, match="different numbers"):
        worst_case({"pgd": a, "short": {"correct": {0.1: torch.tensor([t])}}})
