"""Adaptive attacks (egan_lib.attacks, egan_lib.eval.adaptive): PGD, BPDA, attacks through a defense, the on-manifold attack,
the convergence check, the EGAN+Defense-GAN hybrid and the eps >= 0.5 guessing bound.

Everything runs on tiny synthetic problems (no MNIST, no checkpoints): ten random prototype images,
noisy copies of them, and a small MLP trained for a few dozen steps; the stand-in defenses below
implement the duck-typed Defense interface of egan_lib.defenses.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from egan_lib.attacks import bpda, fgsm_through, on_manifold_attack, pgd, through
from egan_lib.defenses import HybridDefense
from egan_lib.eval.adaptive import convergence_check, guessing_bound_demo, oblivious_pgd, whitebox_accuracy
from egan_lib.eval.references import MADRY_PGD_AT_MNIST, MADRY_PGD_AT_MNIST_BEST, REFERENCE_LINES, TRADES_MNIST
from egan_lib.eval.results import combine_eps, to_method_entry
from egan_lib._validate import check_images
from egan_lib.attacks import fgsm


# ---------------------------------------------------------------------------------------- fixtures
def _synthetic(n: int, seed: int):
    protos = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.arange(n) % 10
    noise = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    return (0.6 * protos[y] + 0.4 * noise).clamp(0, 1), y


@pytest.fixture(scope="module")
def clf():
    """A small MLP (log-probabilities) trained to 100% clean accuracy on the synthetic classes."""
    torch.manual_seed(0)
    x, y = _synthetic(400, 1)
    c = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10), nn.LogSoftmax(1))
    opt = torch.optim.Adam(c.parameters(), 1e-2)
    for _ in range(60):
        opt.zero_grad()
        F.nll_loss(c(x), y).backward()
        opt.step()
    return c.eval()


@pytest.fixture(scope="module")
def batch():
    return _synthetic(64, 2)


class StandIn:
    """A Defense-like stand-in: name, differentiable, device, forward (on device), purify (validated)."""

    def __init__(self, name, fn, differentiable):
        self.name, self.fn, self.differentiable, self.device = name, fn, differentiable, torch.device("cpu")

    def forward(self, x):
        return self.fn(x)

    def purify(self, x, batch_size=None):
        check_images(x)
        with torch.no_grad():
            return self.fn(x).detach().float().cpu().clamp(0, 1)


def identity_defense():
    return StandIn("Original", lambda x: x, True)


def rounding_defense():
    """Binarisation: round(x). Its autograd gradient is zero everywhere (gradient masking)."""
    return StandIn("Round", torch.round, False)


def _acc(c, x, y):
    with torch.no_grad():
        return float((c(x).argmax(1) == y).float().mean())


def _loss(c, x, y):
    with torch.no_grad():
        return F.nll_loss(c(x), y, reduction="none")


# ---------------------------------------------------------------------------------------- PGD
@pytest.mark.parametrize("eps", [0.05, 0.1, 0.3])
def test_pgd_stays_in_the_eps_ball_and_in_unit_interval(clf, batch, eps):
    x, y = batch
    adv = pgd(clf, x, y, eps, steps=10)
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert float((adv - x).abs().max()) <= eps + 1e-6
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0


def test_pgd_is_at_least_as_strong_as_fgsm(clf, batch):
    x, y = batch
    eps = 0.1
    xf = fgsm(clf, x, y, eps)
    xp = pgd(clf, x, y, eps, steps=10)
    assert _acc(clf, xp, y) <= _acc(clf, xf, y)
    assert float(_loss(clf, xp, y).mean()) >= float(_loss(clf, xf, y).mean())
    assert _acc(clf, xp, y) < _acc(clf, x, y)  # and it does something


def test_fgsm_through_the_classifier_is_the_papers_fgsm(clf, batch):
    x, y = batch
    assert torch.equal(fgsm_through(clf, x, y, 0.1), fgsm(clf, x, y, 0.1))


def test_pgd_eps_zero_returns_x(clf, batch):
    x, y = batch
    assert torch.equal(pgd(clf, x, y, 0.0), x)


def test_pgd_restarts_only_add_adversarial_examples(clf, batch):
    x, y = batch
    _, one = pgd(clf, x, y, 0.1, steps=5, restarts=1, seed=3, return_details=True)
    _, three = pgd(clf, x, y, 0.1, steps=5, restarts=3, seed=3, return_details=True)
    assert bool((three["fooled"] | ~one["fooled"]).all())          # fooled once, fooled still
    assert int(three["fooled"].sum()) > int(one["fooled"].sum())    # the restarts found more
    keep = ~one["fooled"] & ~three["fooled"]
    assert bool((three["loss"][keep] >= one["loss"][keep] - 1e-6).all())


def test_pgd_details_match_the_returned_images(clf, batch):
    x, y = batch
    adv, d = pgd(clf, x, y, 0.1, steps=5, restarts=2, return_details=True)
    with torch.no_grad():
        out = clf(adv)
    assert torch.equal(d["fooled"], out.argmax(1) != y)
    assert torch.allclose(d["loss"], F.nll_loss(out, y, reduction="none"), atol=1e-5)


def test_pgd_is_reproducible_for_a_fixed_seed(clf, batch):
    x, y = batch
    assert torch.equal(pgd(clf, x, y, 0.1, steps=3, seed=7), pgd(clf, x, y, 0.1, steps=3, seed=7))


def test_pgd_cw_loss_also_attacks(clf, batch):
    x, y = batch
    adv = pgd(clf, x, y, 0.1, steps=10, loss="cw")
    assert _acc(clf, adv, y) < _acc(clf, x, y)


# ---------------------------------------------------------------------------------------- through / BPDA
def test_attacking_through_the_identity_equals_attacking_the_classifier(clf, batch):
    x, y = batch
    a = pgd(through(identity_defense(), clf), x, y, 0.1, steps=5, restarts=2, seed=1)
    b = pgd(clf, x, y, 0.1, steps=5, restarts=2, seed=1)
    assert torch.equal(a, b)
    wb = whitebox_accuracy(identity_defense(), clf, x, y, [0.0, 0.1], steps=5, restarts=2, seed=1)
    ob = oblivious_pgd(identity_defense(), clf, x, y, [0.0, 0.1], steps=5, restarts=2, seed=1)
    assert wb["accuracy"] == ob["accuracy"]
    assert wb["threat_model"] == "adaptive-pgd" and ob["threat_model"] == "oblivious-pgd"


def _input_grad(fn, x, y):
    xr = x.clone().requires_grad_(True)
    F.nll_loss(fn(xr), y, reduction="sum").backward()
    return xr.grad


def test_bpda_passes_a_gradient_where_the_true_one_is_zero(clf, batch):
    x, y = batch
    d = rounding_defense()
    true = _input_grad(through(d, clf, bpda=False), x, y)
    assert float(true.abs().max()) == 0.0                          # round() masks the gradient
    approx = _input_grad(through(d, clf), x, y)                  # auto -> BPDA (differentiable=False)
    assert float(approx.abs().max()) > 0.0
    assert torch.allclose(approx, _input_grad(clf, torch.round(x), y), atol=1e-7)  # = C's gradient at round(x)


def test_bpda_helper_forward_is_the_real_function():
    x = torch.rand(4, 1, 28, 28)
    f = bpda(torch.round)
    xr = x.clone().requires_grad_(True)
    out = f(xr)
    assert torch.equal(out.detach(), torch.round(x))
    out.sum().backward()
    assert torch.equal(xr.grad, torch.ones_like(x))                # identity backward


def test_pgd_warns_on_masked_gradients_and_bpda_breaks_the_mask(clf, batch):
    x, y = batch
    d = rounding_defense()
    with pytest.warns(RuntimeWarning, match="gradient was exactly zero"):
        pgd(through(d, clf, bpda=False), x, y, 0.3, steps=3, random_start=False)
    res = whitebox_accuracy(d, clf, x, y, [0.0, 0.3], steps=10)
    assert res["threat_model"] == "adaptive-bpda"
    assert res["accuracy"][0.3] < res["accuracy"][0.0]


def test_pgd_explains_a_detached_purifier(clf, batch):
    x, y = batch
    detached = StandIn("Detached", lambda t: t.detach().clone(), False)
    with pytest.raises(RuntimeError, match="BPDA"):
        pgd(through(detached, clf, bpda=False), x, y, 0.1, steps=2)


@pytest.mark.parametrize("mode", [False, True])
def test_attacks_run_in_eval_mode_and_restore_every_module(batch, mode):
    x, y = batch
    torch.manual_seed(0)
    c = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    c.train(mode)
    a = pgd(through(identity_defense(), c), x[:8], y[:8], 0.1, steps=2)
    assert c.training is mode and all(m.training is mode for m in c.modules())
    c.eval()
    b = pgd(c, x[:8], y[:8], 0.1, steps=2)
    assert torch.equal(a, b)          # BatchNorm used its running statistics in both runs


def test_defense_networks_run_in_eval_mode_during_the_attack(clf, batch):
    x, y = batch
    net = nn.BatchNorm2d(1).train()
    seen = []

    class WithNetworks(StandIn):
        def modules(self):
            return [net]

    def fn(t):
        seen.append(net.training)
        return net(t).clamp(0, 1)

    pgd(through(WithNetworks("BN", fn, True), clf), x[:8], y[:8], 0.1, steps=2)
    assert seen and not any(seen)     # eval mode inside the attack
    assert net.training               # train mode given back


def test_whitebox_result_converts_to_the_results_schema(clf, batch):
    from egan_lib.eval.schema import validate_results_json
    x, y = batch
    res = whitebox_accuracy(identity_defense(), clf, x, y, [0.0, 0.05, 0.1], steps=3, attack="pgd")
    assert res["n"] == 64 and set(res["accuracy"]) == {0.0, 0.05, 0.1}
    assert res["accuracy"][0.0] == pytest.approx(_acc(clf, x, y))
    for e, a in res["accuracy"].items():
        lo, hi = res["ci95"][e]
        assert lo <= a <= hi
    entry = to_method_entry(res, 1e-3)
    assert set(entry["accuracy"]) == {"0.00", "0.05", "0.10"}
    validate_results_json({"dataset": "synthetic", "profile": "test", "device": "cpu", "n_test": 64,
                           "threat_model": res["threat_model"], "git_commit": "x", "methods": {"Original": entry}})
    fg = whitebox_accuracy(identity_defense(), clf, x, y, [0.1], attack="fgsm")
    assert fg["threat_model"] == "adaptive-fgsm"
    assert fg["accuracy"][0.1] == pytest.approx(_acc(clf, fgsm(clf, x, y, 0.1), y))


def test_oblivious_pgd_shares_x_adv_across_defenses(clf, batch):
    x, y = batch
    out = oblivious_pgd([identity_defense(), rounding_defense()], clf, x, y, [0.1], steps=3, return_adv=True)
    assert set(out) == {"Original", "Round"}
    assert out["Original"]["adv"][0.1] is out["Round"]["adv"][0.1]
    adv = out["Round"]["adv"][0.1]
    assert out["Round"]["accuracy"][0.1] == pytest.approx(_acc(clf, torch.round(adv), y))
    assert out["Original"]["accuracy"][0.1] == pytest.approx(_acc(clf, adv, y))
    assert torch.equal(adv, pgd(clf, x, y, 0.1, steps=3))       # the gradient of C alone


# ---------------------------------------------------------------------------------------- on-manifold
@pytest.mark.parametrize("eps", [0.3, 0.6])
def test_on_manifold_attack_respects_the_eps_ball(clf, batch, tiny_generator, tiny_encoder, eps):
    x, y = batch[0][:16], batch[1][:16]
    res = on_manifold_attack(tiny_generator, tiny_encoder, clf, x, y, eps, steps=15, lr=0.1, restarts=2)
    adv, feas, succ = res["x_adv"], res["feasible"], res["success"]
    assert adv.shape == x.shape
    assert float((adv - x).abs().max()) <= eps + 1e-6
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    with torch.no_grad():
        gz = tiny_generator.eval()(res["z"])
    # every returned image is either a generator output that met the constraint, or the clean x
    assert torch.allclose(adv[feas], gz[feas], atol=1e-6)
    assert torch.equal(adv[~feas], x[~feas])
    assert bool((~succ | feas).all())
    assert res["success_rate"] == pytest.approx(float(succ.float().mean()))
    with torch.no_grad():
        assert bool((clf(adv[succ]).argmax(1) != y[succ]).all())            # successes fool C
        egan = tiny_generator(tiny_encoder.eval()(adv))
    assert res["accuracy"][eps] == pytest.approx(_acc(clf, egan, y))         # evaluated through EGAN
    assert res["threat_model"] == "on-manifold" and res["n"] == 16


def test_on_manifold_attack_finds_something_with_a_loose_budget(clf, batch, tiny_generator, tiny_encoder):
    x, y = batch[0][:16], batch[1][:16]
    res = on_manifold_attack(tiny_generator, tiny_encoder, clf, x, y, 1.0, steps=10, lr=0.1)
    assert res["feasible_rate"] == 1.0 and res["success_rate"] > 0.5


# ---------------------------------------------------------------------------------------- convergence
def test_convergence_check_reports_deltas():
    calls = []

    def flat(steps, restarts):
        calls.append((steps, restarts))
        return 0.50 - 0.001 * (steps > 10)

    ok = convergence_check(flat, 10, 2)
    assert calls == [(10, 2), (20, 2), (10, 4)]
    assert ok["converged"] and ok["delta_steps"] == pytest.approx(0.001) and ok["delta_restarts"] == 0.0

    def improving(steps, restarts):
        return {0.3: 0.50 - 0.05 * (restarts > 2), 0.1: 0.9}

    bad = convergence_check(improving, 10, 2)
    assert not bad["converged"] and "NOT converged" in bad["message"]
    assert bad["delta_restarts"][0.3] == pytest.approx(0.05)


# ---------------------------------------------------------------------------------------- hybrid
def test_hybrid_defense_starts_at_egan_and_improves_the_reconstruction(tiny_generator, tiny_encoder, batch):
    x = batch[0][:8]
    g, e = tiny_generator.eval(), tiny_encoder.eval()
    h0 = HybridDefense(e, g, steps=0)
    h5 = HybridDefense(e, g, steps=5, lr=0.1)
    assert h5.name == "EGAN+DGAN-5" and h5.differentiable is False
    with torch.no_grad():
        egan = g(e(x))
    p0, p5 = h0.purify(x), h5.purify(x, batch_size=3)
    assert torch.allclose(p0, egan, atol=1e-6)
    err0, err5 = ((p0 - x) ** 2).flatten(1).sum(1), ((p5 - x) ** 2).flatten(1).sum(1)
    assert bool((err5 <= err0 + 1e-5).all()) and float(err5.mean()) < float(err0.mean())
    assert p5.dtype == torch.float32 and p5.device.type == "cpu" and 0 <= float(p5.min()) <= float(p5.max()) <= 1
    assert torch.allclose(p5, h5.purify(x), atol=1e-5)             # batching does not change the result
    assert through(h5, nn.Identity()).uses_bpda                   # attacked with BPDA
    with pytest.raises(ValueError, match="shape"):
        h5.purify(torch.rand(2, 28, 28))


# ---------------------------------------------------------------------------------------- eps >= 0.5
def test_guessing_bound_image_is_gray_and_reachable_from_every_input(clf):
    x = torch.rand(50, 1, 28, 28)
    x[0].zero_()
    x[1].fill_(1.0)
    y = torch.tensor([1] * 20 + [7] * 10 + list(range(10)) * 2)
    r = guessing_bound_demo(x, y, 0.5, classifier=clf)
    assert torch.equal(r["gray"], torch.full((1, 1, 28, 28), 0.5))
    assert float((r["x_adv"] - x).abs().max()) <= 0.5 and r["max_linf"] == 0.5
    assert torch.equal(r["x_adv"], r["gray"].expand_as(x))
    assert r["bound"] == pytest.approx(22 / 50) and r["majority_class"] == 1
    assert r["accuracy"] <= r["bound"]
    assert r["accuracy"] == pytest.approx(float((y == r["predicted_class"]).float().mean()))
    with pytest.raises(ValueError, match="0.5"):
        guessing_bound_demo(x, y, 0.4)


def test_reference_lines_are_the_published_figures():
    assert MADRY_PGD_AT_MNIST.accuracy == 0.8962 and MADRY_PGD_AT_MNIST_BEST.accuracy == 0.8800
    assert TRADES_MNIST.accuracy == 0.9246
    assert all(r.eps == 0.3 and r.source for r in REFERENCE_LINES)


# ---------------------------------------------------------------------------------------- validation
def _bad_inputs():
    x, y = _synthetic(4, 5)
    nan = x.clone()
    nan[0, 0, 0, 0] = float("nan")
    return [
        ("nan", nan, y, 0.1, "NaN"),
        ("shape", x[:, :, :27], y, 0.1, r"shape \(N, 1, 28, 28\)"),
        ("empty", x[:0], y[:0], 0.1, "empty batch"),
        ("negative eps", x, y, -0.1, "must be >= 0"),
        ("labels", x, y[:3], 0.1, "expected 4 labels"),
        ("range", x * 2, y, 0.1, r"\[0, 1\]"),
    ]


@pytest.mark.parametrize("case", _bad_inputs(), ids=lambda c: c[0])
def test_attacks_reject_bad_inputs(clf, tiny_generator, tiny_encoder, case):
    _, x, y, eps, msg = case
    calls = [
        lambda: pgd(clf, x, y, eps, steps=1),
        lambda: fgsm_through(clf, x, y, eps),
        lambda: whitebox_accuracy(identity_defense(), clf, x, y, [eps], steps=1),
        lambda: oblivious_pgd(identity_defense(), clf, x, y, [eps], steps=1),
        lambda: on_manifold_attack(tiny_generator, tiny_encoder, clf, x, y, eps, steps=1),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=msg):
            call()


def test_attacks_reject_bad_options(clf, batch):
    x, y = batch
    with pytest.raises(ValueError, match="loss"):
        pgd(clf, x, y, 0.1, loss="mse")
    with pytest.raises(ValueError, match="steps"):
        pgd(clf, x, y, 0.1, steps=0)
    with pytest.raises(TypeError, match="model_fn"):
        pgd("not a model", x, y, 0.1)
    with pytest.raises(ValueError, match="bpda"):
        through(identity_defense(), clf, bpda="yes")
    with pytest.raises(ValueError, match="eps_values"):
        whitebox_accuracy(identity_defense(), clf, x, y, [])
    with pytest.raises(ValueError, match="attack"):
        whitebox_accuracy(identity_defense(), clf, x, y, [0.1], attack="cw")
    with pytest.raises(TypeError, match="torch.Tensor"):
        pgd(clf, x.numpy(), y, 0.1)
    assert not math.isnan(pgd(clf, x[:1], y[:1], 0.1, steps=1).sum().item())


def test_attacks_accept_tensors_made_in_inference_mode(clf, batch, tiny_generator, tiny_encoder):
    with torch.inference_mode():
        x, y = batch[0][:4].clone(), batch[1][:4].clone()
    assert x.is_inference() and y.is_inference()
    pgd(clf, x, y, 0.1, steps=2, random_start=False)
    fgsm_through(clf, x, y, 0.1)
    on_manifold_attack(tiny_generator, tiny_encoder, clf, x, y, 0.6, steps=2)
    HybridDefense(tiny_encoder, tiny_generator, steps=2).purify(x)


def test_combine_eps_and_to_method_entry():
    a = {"threat_model": "on-manifold", "accuracy": {0.3: 0.5}, "ci95": {0.3: [0.4, 0.6]}, "n": 10}
    b = {"threat_model": "on-manifold", "accuracy": {0.1: 0.9}, "ci95": {0.1: [0.6, 0.98]}, "n": 10}
    both = combine_eps(a, b)
    assert list(both["accuracy"]) == [0.1, 0.3] and both["n"] == 10
    assert to_method_entry(both, 0.5)["ci95"] == {"0.10": [0.6, 0.98], "0.30": [0.4, 0.6]}
    with pytest.raises(ValueError, match="share"):
        combine_eps(a, dict(b, n=11))
    with pytest.raises(ValueError, match="seconds_per_image"):
        to_method_entry(both, 0.0)


def test_through_the_projects_own_defenses(clf, batch, tiny_generator, tiny_encoder):
    """The duck-typed interface against egan_lib.defenses (exact gradients for EGAN, BPDA for Defense-GAN)."""
    D = pytest.importorskip("egan_lib.defenses")
    x, y = batch[0][:8], batch[1][:8]
    egan = D.EGAN(tiny_encoder, tiny_generator)
    dgan = D.DefenseGAN(tiny_generator, steps=2, restarts=2)
    assert not through(egan, clf).uses_bpda and through(dgan, clf).uses_bpda
    for d in (D.Original(), egan, dgan):
        r = whitebox_accuracy(d, clf, x, y, [0.0, 0.3], steps=2)
        assert r["defense"] == d.name and r["n"] == 8
        assert r["threat_model"] == ("adaptive-bpda" if not d.differentiable else "adaptive-pgd")
    g = _input_grad(through(egan, clf), x, y)
    assert float(g.abs().max()) > 0   # the white-box gradient through C(G(E(x))) exists


def test_whitebox_attack_in_bf16_is_judged_by_the_defense_in_its_own_precision(clf, batch):
    x, y = batch
    full = whitebox_accuracy(identity_defense(), clf, x, y, [0.1], steps=5, attack="pgd", return_adv=True)
    half = whitebox_accuracy(identity_defense(), clf, x, y, [0.1], steps=5, attack="pgd", attack_bf16=True,
                             return_adv=True)
    assert half["attack"]["attack_precision"].startswith("bf16 autocast, BatchNorm folded") and full["attack"]["attack_precision"] == "fp32"
    # the reported accuracy is the fp32 defended classifier's on the bf16 attacker's examples
    assert half["accuracy"][0.1] == pytest.approx(_acc(clf, half["adv"][0.1], y))
    assert half["accuracy"][0.1] < _acc(clf, x, y)
    with pytest.raises(TypeError, match="attack_bf16"):
        whitebox_accuracy(identity_defense(), clf, x, y, [0.1], steps=1, attack_bf16="yes")


def test_the_folded_fp32_attacker_follows_the_deployed_gradient(clf, batch, tiny_generator, tiny_encoder):
    from egan_lib.defenses import EGAN
    x, y = batch
    egan = EGAN(tiny_encoder, tiny_generator)
    deployed, folded = through(egan, clf), through(egan, clf, fold=True)
    assert folded.fold and not folded.bf16 and not deployed.fold
    with torch.no_grad():
        assert torch.allclose(folded(x), deployed(x), atol=1e-4)
    g0, g1 = _input_grad(deployed, x, y), _input_grad(folded, x, y)
    assert float(g0.abs().max()) > 0 and torch.allclose(g1, g0, atol=1e-5, rtol=1e-3)
    # the deployed networks are not touched: still BatchNorm, still the deployed layout
    assert any(isinstance(m, nn.BatchNorm2d) for m in egan.encoder.modules())
    r = whitebox_accuracy(egan, clf, x, y, [0.1], steps=3, attack="pgd", attack_fold=True)
    assert r["attack"]["attack_precision"] == "fp32, BatchNorm folded, channels_last"
    lat = whitebox_accuracy(egan, clf, x, y, [0.1], steps=2, attack="latent", attack_fold=True)
    assert lat["attack"]["attack_precision"] == "fp32, BatchNorm folded, channels_last" and lat["n"] == len(y)
    with pytest.raises(TypeError, match="attack_fold"):
        whitebox_accuracy(egan, clf, x, y, [0.1], steps=1, attack_fold=1)
    with pytest.raises(TypeError, match="fold"):
        through(egan, clf, fold="yes")
