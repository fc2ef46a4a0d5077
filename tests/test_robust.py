"""The robust encoder (chapter 08): the attack on E's input stays in the ball and finds worse inputs; the
label-free adversarial training lowers the adversarial reconstruction error and leaves G untouched."""
from __future__ import annotations

import pytest
import torch

from conftest import LinearClassifier
from egan_lib.robust import encoder_attack, robust_step, train_robust_encoder
from egan_lib.training import generate


def _recon(E, G, xa, x):
    with torch.no_grad():
        return float((G(E(xa)) - x).flatten(1).pow(2).sum(1).mean())


def test_encoder_attack_stays_in_the_ball_and_increases_its_objective(tiny_generator, tiny_encoder):
    G, E = tiny_generator, tiny_encoder.eval()
    x = generate(G, 16, seed=1)
    modes = [m.training for m in E.modules()]
    before = {k: v.clone() for k, v in E.state_dict().items()}
    for objective in ("reconstruction", "latent"):
        xa = encoder_attack(E, G, x, 0.1, steps=5, objective=objective, generator_rng=torch.Generator().manual_seed(0))
        assert (xa - x).abs().max() <= 0.1 + 1e-6 and xa.min() >= 0 and xa.max() <= 1
        if objective == "reconstruction":
            assert _recon(E, G, xa, x) > _recon(E, G, x, x)
        else:
            with torch.no_grad():
                assert float((E(xa) - E(x)).pow(2).sum(1).mean()) > 0
    assert [m.training for m in E.modules()] == modes
    assert all(torch.equal(v, before[k]) for k, v in E.state_dict().items())
    assert torch.equal(encoder_attack(E, G, x, 0.0), x)


def test_classifier_objective_needs_a_classifier_and_labels(tiny_generator, tiny_encoder):
    x = generate(tiny_generator, 4, seed=1)
    with pytest.raises(ValueError, match="needs the classifier and the labels"):
        encoder_attack(tiny_encoder, tiny_generator, x, 0.1, objective="classifier")
    with pytest.raises(ValueError, match="objective"):
        encoder_attack(tiny_encoder, tiny_generator, x, 0.1, objective="labels")
    xa = encoder_attack(tiny_encoder, tiny_generator, x, 0.1, objective="classifier", classifier=LinearClassifier(),
                        y=torch.tensor([0, 1, 2, 3]))
    assert xa.shape == x.shape


def test_label_free_adversarial_training_lowers_the_adversarial_error(tiny_generator, tiny_encoder):
    G, E = tiny_generator, tiny_encoder
    x = generate(G, 64, seed=5)
    g0 = {k: v.clone() for k, v in G.state_dict().items()}

    def adv_error():
        xa = encoder_attack(E, G, x, 0.1, steps=3, generator_rng=torch.Generator().manual_seed(0))
        return _recon(E.eval(), G, xa, x)
    before = adv_error()
    hist = train_robust_encoder(E, G, eps=0.1, image_steps=40 * 32, inner_steps=2, n_latents=512, batch_size=32,
                                lr=1e-2, schedule="cosine", progress=False, log_every=5)
    assert adv_error() < 0.9 * before
    assert hist["step"][-1] == 40 and hist["settings"]["objective"] == "reconstruction"
    assert all(torch.equal(v, g0[k]) for k, v in G.state_dict().items())
    assert all(q.requires_grad for q in G.parameters()) and not E.training


def test_classifier_variant_trains_on_labelled_digits(tiny_generator, tiny_encoder):
    x = generate(tiny_generator, 64, seed=5)
    y = torch.arange(64) % 10
    with pytest.raises(ValueError, match="needs"):
        train_robust_encoder(tiny_encoder, tiny_generator, eps=0.1, image_steps=64, objective="classifier",
                             progress=False)
    hist = train_robust_encoder(tiny_encoder, tiny_generator, eps=0.1, image_steps=4 * 16, inner_steps=1,
                                objective="classifier", images=x, labels=y, classifier=LinearClassifier(),
                                batch_size=16, progress=False, log_every=1)
    assert len(hist["loss"]) == 4 and hist["settings"]["data"] == "64 given images"
    with pytest.raises(ValueError, match="image_steps"):
        train_robust_encoder(tiny_encoder, tiny_generator, eps=0.1, image_steps=8, batch_size=16, progress=False)


def test_an_interrupted_robust_training_resumes_to_the_same_weights(tiny_generator, tiny_encoder, tmp_path,
                                                                     monkeypatch):
    import copy
    import egan_lib.robust as R
    G = tiny_generator
    kw = dict(eps=0.1, image_steps=12 * 16, inner_steps=1, n_latents=64, batch_size=16, lr=1e-2,
              schedule="cosine", progress=False, log_every=4, checkpoint_every_s=1e-9)
    E_full, E_cut = copy.deepcopy(tiny_encoder), copy.deepcopy(tiny_encoder)
    full = train_robust_encoder(E_full, G, **kw)
    state = tmp_path / "robust.partial.pt"
    calls = {"n": 0}
    real = R.encoder_attack

    def dies_at_step_7(*a, **k):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(R, "encoder_attack", dies_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        train_robust_encoder(copy.deepcopy(tiny_encoder), G, resume=state, **kw)
    monkeypatch.setattr(R, "encoder_attack", real)
    assert torch.load(state, weights_only=False)["step"] == 6
    resumed = train_robust_encoder(E_cut, G, resume=state, **kw)        # starts again from the same base E
    assert resumed["step"] == full["step"] and resumed["loss"] == pytest.approx(full["loss"])
    assert all(torch.allclose(a, b) for a, b in zip(E_full.state_dict().values(), E_cut.state_dict().values()))
    with pytest.raises(ValueError, match="another run"):
        train_robust_encoder(copy.deepcopy(tiny_encoder), G, resume=state, **{**kw, "eps": 0.2})
    state.write_bytes(b"not a state")
    with pytest.raises(ValueError, match="not a readable training state"):
        train_robust_encoder(copy.deepcopy(tiny_encoder), G, resume=state, **kw)


def test_the_latent_path_attack_is_judged_by_the_deployed_pipeline(tiny_generator, tiny_encoder):
    from egan_lib.attack_spec import parse_attack
    from egan_lib.attacks.latent import latent_path_attack
    from egan_lib.defenses import EGAN, Original
    from egan_lib.eval.adaptive import whitebox_accuracy
    G, E = tiny_generator, tiny_encoder.eval()
    C = LinearClassifier().eval()
    x = generate(G, 12, seed=3)
    d = EGAN(E, G)
    with torch.no_grad():
        y = C(d.purify(x)).argmax(1)                 # every image right when clean
    xa, det = latent_path_attack(d, C, x, y, 0.3, steps=3, restarts=2, seed=1)
    assert (xa - x).abs().max() <= 0.3 + 1e-6 and det["fooled_after_restart"].shape == (2, 12)
    with torch.no_grad():
        wrong = C(d.purify(xa)).argmax(1) != y
    assert torch.equal(wrong[det["fooled"]], torch.ones(int(det["fooled"].sum()), dtype=torch.bool))
    r = whitebox_accuracy(d, C, x, y, [0.3], **parse_attack("latent:3x2").kwargs)
    assert r["threat_model"] == "adaptive-latent" and r["attack"]["loss"] == "latent distance"
    assert r["correct_after_restart"][0.3].shape == (2, 12)
    with pytest.raises(TypeError, match="encoder and a generator"):
        latent_path_attack(Original(), C, x, y, 0.3)
    for bad in ("latent:0x1", "eot2:latent:3x1", "latent:3x1:m1"):
        with pytest.raises(ValueError):
            parse_attack(bad)


def test_one_robust_step_attacks_the_perturbed_share_only_and_checks_its_inputs(tiny_generator, tiny_encoder):
    import copy
    G = tiny_generator.eval()
    x = generate(G, 8, seed=2)
    E_clean, E_adv = copy.deepcopy(tiny_encoder), copy.deepcopy(tiny_encoder)
    opts = [torch.optim.SGD(E.parameters(), lr=1e-2) for E in (E_clean, E_adv)]
    kw = dict(eps=0.2, inner_steps=3, objective="reconstruction")
    l_clean = robust_step(E_clean, G, opts[0], x, None, n_clean=8, **kw)       # nothing perturbed: plain inversion
    l_adv = robust_step(E_adv, G, opts[1], x, None, n_clean=0, rng=torch.Generator().manual_seed(0), **kw)
    assert l_adv > l_clean > 0                                # the perturbed batch is harder to reconstruct
    assert any(not torch.equal(a, b) for a, b in zip(E_clean.state_dict().values(), tiny_encoder.state_dict().values()))
    with pytest.raises(ValueError, match="n_clean"):
        robust_step(E_adv, G, opts[1], x, None, n_clean=9, **kw)
    with pytest.raises(TypeError, match="opt"):
        robust_step(E_adv, G, "adam", x, None, n_clean=0, **kw)
    with pytest.raises(ValueError, match="needs the classifier"):
        robust_step(E_adv, G, opts[1], x, None, n_clean=0, eps=0.2, inner_steps=1, objective="classifier")
