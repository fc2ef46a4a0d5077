"""Chapter 07's campaign at publication strength: the attacker's fast arithmetic, the stopping margin, the
restart record, the Defense-GAN surrogate, the plan from the profile, the worst case per eps, the report."""
import copy

import pytest
import torch

from conftest import LinearClassifier
from egan_lib.attack_spec import parse_attack
from egan_lib.attacks.autoattack import STANDARD, standard_ensemble
from egan_lib.attacks.bpda import through
from egan_lib.attacks.fast import attacker_copy, fold_batchnorm
from egan_lib.attacks.pgd import pgd
from egan_lib.config import get_profile
from egan_lib.defenses import EGAN, DefenseGAN, Original
from egan_lib.eval import campaign
from egan_lib.eval import campaign_report as report
from egan_lib.eval import carlini_checklist
from egan_lib.eval.adaptive import whitebox_accuracy, worst_case
from egan_lib.eval.schema import validate_results_json
from egan_lib.models import Encoder, Generator


def _trained_bn(module):
    """Give every BatchNorm non-trivial running statistics (a fresh BN is the identity in eval mode)."""
    torch.manual_seed(5)
    for m in module.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return module.eval()


def test_fold_batchnorm_is_the_same_function_and_leaves_the_original_alone():
    E = _trained_bn(Encoder(latent_dim=30, channels=4, same_blocks=1, valid_blocks=11))
    G = _trained_bn(Generator(latent_dim=30, width=4))
    x = torch.rand(5, 1, 28, 28)
    for net, inp in ((E, x), (G, torch.randn(5, 30))):
        before = copy.deepcopy(net.state_dict())
        f = fold_batchnorm(net)
        n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in f.modules())
        assert n_bn == 0 or net is G        # G's BatchNorm1d after a Linear is not folded; its 2d ones are
        assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) > 0
        with torch.no_grad():
            assert torch.allclose(f(inp), net(inp), atol=1e-4)
        assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    with pytest.raises(TypeError, match="nn.Module"):
        fold_batchnorm("E")


def test_attacker_copy_is_a_fast_twin_and_through_bf16_agrees_with_the_deployed_pipeline():
    E = _trained_bn(Encoder(latent_dim=30, channels=4, same_blocks=1, valid_blocks=11))
    G = _trained_bn(Generator(latent_dim=30, width=4))
    d = EGAN(E, G)
    twin = attacker_copy(d)
    assert twin is not d and twin.encoder is not d.encoder and d.encoder is E
    x = torch.rand(8, 1, 28, 28)
    C = LinearClassifier().eval()
    with torch.no_grad():
        exact, fast = through(d, C)(x), through(d, C, bf16=True)(x)
    assert fast.dtype == torch.float32 and (exact - fast).abs().max() < 0.5
    assert attacker_copy(Original()) is not None


def test_pgd_records_each_restart_and_a_margin_only_makes_it_stop_later():
    C = LinearClassifier().eval()
    x = torch.rand(12, 1, 28, 28)
    y = C(x).argmax(1)
    xa, det = pgd(C, x, y, 0.05, steps=3, restarts=3, return_details=True)
    far = det["fooled_after_restart"]
    assert far.shape == (3, 12) and torch.equal(far[-1], det["fooled"])
    assert all(bool((far[i] <= far[i + 1]).all()) for i in range(2))       # fooled stays fooled
    _, det2 = pgd(C, x, y, 0.05, steps=3, restarts=1, confidence=1e6, return_details=True)
    assert not det2["fooled"].any()        # no image can reach a margin of 1e6: none stops, none is "fooled"
    with pytest.raises(ValueError, match="confidence"):
        pgd(C, x, y, 0.05, steps=2, confidence=-1.0)


def test_a_judge_overrules_the_attacker_after_each_restart():
    C = LinearClassifier().eval()
    x = torch.rand(12, 1, 28, 28)
    y = C(x).argmax(1)
    seen = []

    def always_right(xa, rows):               # a deployed pipeline that no x_adv fools
        seen.append(rows.numel())
        return torch.ones(rows.numel(), dtype=torch.bool)
    _, plain_run = pgd(C, x, y, 0.3, steps=5, restarts=2, return_details=True)
    assert plain_run["fooled"].any()          # the attacker alone does fool the linear model
    _, det = pgd(C, x, y, 0.3, steps=5, restarts=2, return_details=True, judge=always_right)
    assert not det["fooled_after_restart"].any() and seen == [12, 12]   # every image attacked again
    assert int(det["attacker_disagrees"].sum()) == int(plain_run["fooled_after_restart"][0].sum())
    with pytest.raises(ValueError, match="judge"):
        pgd(C, x, y, 0.3, steps=2, judge=lambda xa, rows: torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="judge"):
        pgd(C, x, y, 0.3, steps=2, judge="deployed")


def test_whitebox_accuracy_judges_a_surrogate_attack_by_the_deployed_defense():
    torch.manual_seed(0)
    G = Generator(latent_dim=30, width=4).eval()
    C = LinearClassifier().eval()
    x = torch.rand(6, 1, 28, 28)
    y = C(x).argmax(1)
    real = DefenseGAN(G, steps=3, restarts=2, seed=0)
    sur = DefenseGAN(G, steps=1, restarts=1, seed=9)
    r = whitebox_accuracy(real, C, x, y, [0.1], steps=2, eot_samples=2, attacker=sur, attack_bf16=True)
    assert r["attack"]["attacker_defense"]["L_steps"] == 1
    assert r["defense"] == "Defense-GAN" and r["attack"]["confidence"].startswith("none")   # a surrogate: no early stop
    r1 = whitebox_accuracy(Original(), C, x, y, [0.1], steps=2, attack_bf16=True)
    assert r1["attack"]["confidence"] == 1.0        # bf16, the deployed function itself: margin 1 by default
    assert set(r["correct_after_restart"]) == {0.1} and set(r["attacker_disagrees"]) == {0.1}
    with pytest.raises(TypeError):
        whitebox_accuracy(real, C, x, y, [0.1], steps=2, attacker="not a defense")


def test_worst_case_takes_at_each_eps_the_attacks_that_ran_there():
    t, f = True, False
    pgd_r = {"correct": {0.1: torch.tensor([t, t, f, t]), 0.3: torch.tensor([t, f, f, t])}}
    aa_r = {"correct": {0.3: torch.tensor([f, t, f, t])}}                      # AutoAttack at 0.3 only
    w = worst_case({"pgd": pgd_r, "aa": aa_r})
    assert w["accuracy"][0.1] == 0.75 and w["accuracy"][0.3] == 0.25
    assert w["attacks_at"][0.1] == ["pgd"] and w["attacks_at"][0.3] == ["pgd", "aa"]
    assert w["decisive"][0.3] == {"pgd": 1, "aa": 1} and set(w["per_attack"]["aa"]) == {0.3}


def test_attack_specs_and_profile_fields_are_checked():
    a = parse_attack("pgd:ce:100x1:bf16:m2")
    assert a.kwargs["confidence"] == 2.0 and a.kwargs["attack_bf16"] is True
    for bad in ("autoattack:m1", "pgd:ce:0x5", "pgd:xx:1x1"):
        with pytest.raises(ValueError):
            parse_attack(bad)
    for field, value in (("campaign_attacks", ("pgd:zz:1x1",)), ("steps_curve", (30, 10)),
                         ("dgan_attacker", (5,)), ("campaign_eps", (0.0, 0.3)), ("campaign_defenses", ("EGAN", "EGAN"))):
        with pytest.raises(ValueError, match=field):
            get_profile("smoke", **{field: value})


def test_the_plan_follows_the_profile_and_reuses_the_restarts_attack_for_its_step_count():
    p = get_profile("cpu")
    jobs = {j.name: j for j in campaign.plan(p)}
    assert set(jobs) == {"main", "pixeldefend", "restarts", "steps", "autoattack", "dgan", "onmanifold"}
    assert jobs["restarts"].attacks == (p.restarts_attack,) and jobs["restarts"].eps == p.restarts_eps
    assert jobs["autoattack"].defenses == jobs["restarts"].defenses == tuple(p.campaign_defenses)
    assert jobs["pixeldefend"].n == p.pixeldefend_n and jobs["pixeldefend"].batch == p.eval_batch
    assert jobs["main"].defenses[0] == "Original" and jobs["main"].n == p.campaign_n
    specs = campaign.steps_curve_specs(p)
    assert specs[100] == p.restarts_attack == "pgd:ce:100x10:bf16" and p.restarts_attack not in jobs["steps"].attacks
    assert specs[300] == "pgd:ce:300x1:bf16" and jobs["dgan"].attacker == p.dgan_attacker


def test_chapter_08_has_its_own_plan_from_the_robust_fields():
    p = get_profile("cpu")
    jobs = {j.name: j for j in campaign.robust_plan(p)}
    assert set(jobs) == {"robust", "robust-latent-egan"}
    r = jobs["robust"]
    assert r.defenses == ("EGAN-R", "EGAN-RC") == tuple(p.robust_defenses) and r.eps == (0.1, 0.2, 0.3) and r.cascade
    # the cascade: the restarts attack first on every image (its restart curve is the convergence check), then
    # PGD-CW (PGD-CE 100 x 5 is the first 5 restarts of PGD-CE 100 x 10: not run twice), the latent path, AutoAttack
    # in the profile's arithmetic: fp32 on BatchNorm-folded copies (chapter 07's specs are bf16)
    assert p.robust_attack_arithmetic == "fold" and p.restarts_attack.endswith(":bf16")
    assert r.attacks == ("pgd:ce:100x10:fold", "pgd:cw:100x5:fold", "latent:100x5:fold", "autoattack:fold")
    assert parse_attack(r.attacks[2]).kwargs["attack"] == "latent"
    assert all(parse_attack(a).kwargs["attack_fold"] for a in r.attacks)
    assert jobs["robust-latent-egan"].defenses == ("EGAN",) and jobs["robust-latent-egan"].attacks == ("latent:100x5:fold",)
    # "": chapter 07's specs as they are
    as_07 = campaign.robust_plan(p.replace(robust_attack_arithmetic=""))[0].attacks
    assert as_07 == ("pgd:ce:100x10:bf16", "pgd:cw:100x5:bf16", p.robust_latent_attack, p.autoattack)
    assert not jobs["robust-latent-egan"].cascade and not any(j.cascade for j in campaign.plan(p))
    # AutoAttack at other eps than the evaluation's runs on its own, on every image
    other = {j.name: j for j in campaign.robust_plan(p.replace(robust_autoattack_eps=(0.3,)))}
    assert "autoattack:fold" not in other["robust"].attacks and other["robust-autoattack"].eps == (0.3,)
    assert other["robust-autoattack"].attacks == ("autoattack:fold",)
    assert all(j.n == p.campaign_n for j in jobs.values())
    assert all(j.chunk == p.robust_eval_chunk == 100 for j in jobs.values())   # stored 100 images at a time
    assert all(j.chunk is None for j in campaign.plan(p))                      # chapter 07's pieces: one file
    assert not {j.name for j in campaign.plan(p)} & set(jobs)          # chapter 07's plan stays its own
    smoke = {j.name for j in campaign.robust_plan(get_profile("smoke"))}
    assert smoke == {"robust", "robust-latent-egan"}
    assert get_profile("smoke").autoattack not in campaign.robust_plan(get_profile("smoke"))[0].attacks
    with pytest.raises(ValueError, match="chapter"):
        campaign.run_plan(None, "unused", chapter=9)
    # restricting a cascade to its first attacks (e.g. the PGD attacks before AutoAttack) is allowed
    casc = jobs["robust"]
    assert campaign.restrict_attacks(casc, None) == list(casc.attacks)
    assert campaign.restrict_attacks(casc, casc.attacks[:2]) == list(casc.attacks[:2])
    assert campaign.restrict_attacks(jobs["robust-latent-egan"], casc.attacks[:2]) == []
    with pytest.raises(ValueError, match="first attacks"):
        campaign.restrict_attacks(casc, casc.attacks[1:2])   # a later attack needs the ones before it
    with pytest.raises(ValueError, match="robust_defenses"):
        get_profile("cpu").replace(robust_defenses=("EGAN-R", "EGAN-R"))
    with pytest.raises(ValueError, match="robust_attack_arithmetic"):
        get_profile("cpu").replace(robust_attack_arithmetic="fp16")


def test_an_attack_spec_names_its_arithmetic_and_can_change_it():
    from egan_lib.attack_spec import arithmetic, with_arithmetic
    assert arithmetic(parse_attack("pgd:ce:10x1:fold")) == "fold" and parse_attack("pgd:ce:10x1:fold").kwargs["attack_fold"]
    assert arithmetic(parse_attack("autoattack:bf16")) == "bf16" and arithmetic(parse_attack("latent:3x2")) == "fp32"
    assert with_arithmetic("pgd:cw:100x5:bf16:m2", "fold") == "pgd:cw:100x5:fold:m2"
    assert with_arithmetic("eot4:pgd:ce:100x1:bf16", "fp32") == "eot4:pgd:ce:100x1"
    assert with_arithmetic("latent:100x5", "bf16") == "latent:100x5:bf16"
    with pytest.raises(ValueError, match="arith"):
        with_arithmetic("latent:100x5", "fp16")
    with pytest.raises(ValueError, match="attack spec"):
        parse_attack("pgd:ce:1x1:bf16:fold")        # one arithmetic per attack
    with pytest.raises(ValueError, match="attack spec"):
        with_arithmetic("pgd:ce:0x1", "fold")


def test_autoattack_uses_the_reference_settings_not_torchattacks_defaults():
    pytest.importorskip("torchattacks")
    C = LinearClassifier().eval()
    ens = standard_ensemble(C, 0.1)
    steps = [getattr(a, "steps", None) for a in ens.attacks]
    assert steps[:3] == [STANDARD["apgd-ce"]["steps"]] * 3 == [100] * 3
    assert ens.attacks[3].n_queries == 5000 and ens.attacks[3].rescale_schedule is False
    assert ens.attacks[1].n_target_classes == 9 and ens.attacks[2].n_target_classes == 9
    x = torch.rand(4, 1, 28, 28)
    y = C(x).argmax(1)
    r = whitebox_accuracy(Original(), C, x, y, [0.3], attack="autoattack", batch_size=4)
    assert r["accuracy"][0.3] == 0.0 and r["attack"]["components"]["apgd-ce"]["steps"] == 100
    assert "autoattack" not in {j.name for j in campaign.plan(get_profile("smoke"))}


def test_campaign_pieces_a_missing_one_is_refused_when_asked_and_the_report_reads_them(tmp_path):
    torch.manual_seed(3)
    C = LinearClassifier().eval()
    x = torch.rand(8, 1, 28, 28)
    y = C(x).argmax(1)
    G = Generator(latent_dim=30, width=4).eval()
    defs = {"Original": Original(), "Defense-GAN": DefenseGAN(G, steps=1, restarts=1)}
    with pytest.raises(FileNotFoundError, match="no stored piece"):
        campaign.run(C, defs, x, y, ["pgd:ce:2x2"], [0.1], tmp_path, compute_missing=False)
    gone = []
    assert campaign.run(C, defs, x, y, ["pgd:ce:2x2"], [0.1], tmp_path, compute_missing=False, missing=gone) == {}
    assert [(d, a, e) for d, a, e, _ in gone] == [("Original", "pgd:ce:2x2", 0.1), ("Defense-GAN", "pgd:ce:2x2", 0.1)]
    assert "2 pieces of the plan are not computed yet" in report.missing_markdown(gone, "smoke")
    orig = {"Original": defs["Original"]}
    main = campaign.run(C, orig, x, y, ["pgd:ce:2x2", "pgd:cw:2x2"], [0.1, 0.5], tmp_path)
    again = campaign.run(C, orig, x, y, ["pgd:ce:2x2", "pgd:cw:2x2"], [0.1, 0.5], tmp_path, compute_missing=False)
    assert all(r["info"]["status"] == "reused" for d in again.values() for a in d.values() for r in a.values())
    dg = campaign.run(C, {"Defense-GAN": defs["Defense-GAN"]}, x[:4], y[:4], ["eot2:pgd:ce:2x1"], [0.3], tmp_path,
                      attackers={"Defense-GAN": DefenseGAN(G, steps=1, restarts=1, seed=4)})
    res = {"main": main, "dgan": dg}
    table = report.worst_case_table(res)
    assert "| Original | 8 |" in table and "| Defense-GAN | 4 |" in table
    at = report.attacks_table(res)
    assert "PGD, CW margin" in at and "surrogate" in at and "attacker/deployed disagreements" in at
    orig_ce = next(r for r in at.splitlines() if r.startswith("| Original | PGD, cross-entropy"))
    assert orig_ce.endswith("| 0 |")            # fp32 attacker: it and the deployed pipeline never disagree
    assert "pieces" in report.provenance(res)
    entries = report.json_entries(res, dataset="mnist", profile="smoke", device="cpu", git_commit="abc",
                                  purify_seconds={"Original": 1e-6, "Defense-GAN": 0.5})
    validate_results_json(entries)
    tms = [e["threat_model"] for e in entries]
    assert "worst-case" in tms and any(t.startswith("white-box pgd:ce:2x2") for t in tms)
    ce = next(e for e in entries if e["threat_model"].startswith("white-box pgd:ce:2x2"))
    assert ce["methods"]["Original"]["settings"]["steps"] == 2 and ce["methods"]["Original"]["settings"]["restarts"] == 2
    p = get_profile("smoke", campaign_attacks=("pgd:ce:2x2", "pgd:cw:2x2"), steps_curve=(2,), steps_curve_eps=0.1,
                    restarts_attack="pgd:ce:2x2", restarts_eps=(0.1,))
    conv = report.convergence(res, p, "Original")
    assert conv["steps"][0][0] == 2 and len(conv["restarts"][("pgd:ce:2x2", 0.1)]) == 2
    rows = carlini_checklist.rows(res, p, defense="Original")
    status = {r[0]: r[2] for r in rows}
    assert status["A large enough budget reaches 100% success"] in ("pass", "open")
    assert status["Randomised defenses: attack the expectation (EOT)"] == "pass"
    assert "| checklist item |" in carlini_checklist.markdown(rows)
    fig = report.plot_worst_case(res)
    assert fig.axes[0].get_ylabel() == "accuracy (%)"
    with pytest.raises(ValueError, match="not attacked"):
        carlini_checklist.rows(res, p, defense="EGAN")
