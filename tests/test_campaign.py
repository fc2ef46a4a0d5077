"""The attack campaign: stored per (defense, attack, eps), resumed, summarised as the per-image worst case."""
import pytest
import torch

from conftest import LinearClassifier
from egan_lib.defenses import DefenseGAN, Original
from egan_lib.eval import campaign
from egan_lib.models import Generator


def test_parse_attack():
    a = campaign.parse_attack("pgd:cw:100x5")
    assert a.kwargs == {"eot_samples": 1, "attack": "pgd", "loss": "cw", "steps": 100, "restarts": 5}
    assert campaign.parse_attack("eot4:pgd:ce:10x1").kwargs["eot_samples"] == 4
    assert campaign.parse_attack("autoattack").kwargs["attack"] == "autoattack"
    assert campaign.parse_attack("pgd:ce:100x5:bf16").kwargs["attack_bf16"] is True
    assert "attack_bf16" not in campaign.parse_attack("pgd:ce:100x5").kwargs
    for bad in ("pgd:xx:1x1", "pgd:ce:10", "fgsm", ""):
        with pytest.raises(ValueError, match="attack spec"):
            campaign.parse_attack(bad)


def test_campaign_stores_each_piece_resumes_and_takes_the_worst_case(tmp_path):
    torch.manual_seed(3)
    C = LinearClassifier().eval()
    x = torch.rand(6, 1, 28, 28)
    y = C(x).argmax(1)
    defs = {"Original": Original(), "Defense-GAN": DefenseGAN(Generator(width=4).eval(), steps=1, restarts=1)}
    attacks = ["pgd:ce:3x1", "pgd:cw:3x1", "eot2:pgd:ce:2x1"]
    logs = []
    res = campaign.run(C, defs, x, y, attacks, [0.1, 0.3], tmp_path, log=logs.append)
    assert set(res["Original"]) == {"pgd:ce:3x1", "pgd:cw:3x1"}            # EOT only for randomised defenses
    assert set(res["Defense-GAN"]) == set(attacks)
    assert (tmp_path / "Original" / "pgd_ce_3x1" / "eps0.10.pt").is_file()
    logs2 = []
    res2 = campaign.run(C, defs, x, y, attacks, [0.1, 0.3], tmp_path, log=logs2.append)
    assert all("reused" in m for m in logs2) and len(logs2) == len(logs)
    assert torch.equal(res2["Original"]["pgd:ce:3x1"][0.3]["correct"][0.3], res["Original"]["pgd:ce:3x1"][0.3]["correct"][0.3])
    s = campaign.summary(res2)
    for name, v in s.items():
        for e, acc in v["worst"]["accuracy"].items():
            assert acc <= min(p[e] for p in v["per_attack"].values()) + 1e-9
        assert all(c > 0 for c in v["cost"].values())
    md = campaign.markdown(s)
    assert "| Original | 0.10 |" in md and "worst case" in md


def test_a_piece_in_parts_resumes_at_its_first_missing_part_and_merges_like_the_whole(tmp_path, monkeypatch):
    from egan_lib.eval import adaptive, parts
    torch.manual_seed(4)
    C = LinearClassifier().eval()
    x = torch.rand(7, 1, 28, 28)
    y = C(x).argmax(1)
    defs = {"Original": Original()}
    assert parts.bounds(7, 3) == [(0, 3), (3, 6), (6, 7)]
    calls = []
    real = adaptive.whitebox_accuracy

    def counted(d, c, xs, ys, *a, **k):
        calls.append(len(ys))
        if len(calls) == 2 and k.get("seed") == 3 and fail["on"]:
            raise KeyboardInterrupt                       # the machine stops inside the second part
        return real(d, c, xs, ys, *a, **k)
    fail = {"on": True}
    monkeypatch.setattr(campaign, "whitebox_accuracy", counted)
    with pytest.raises(KeyboardInterrupt):
        campaign.run(C, defs, x, y, ["pgd:ce:3x2"], [0.3], tmp_path, chunk=3, log=lambda m: None)
    piece = tmp_path / "Original" / "pgd_ce_3x2" / "eps0.30.pt"
    assert not piece.exists() and parts.part_path(piece, 0, 3).is_file()
    fail["on"], calls[:] = False, []
    res = campaign.run(C, defs, x, y, ["pgd:ce:3x2"], [0.3], tmp_path, chunk=3, log=lambda m: None)
    assert calls == [3, 1]                                 # resumed: the first part was not attacked again
    r = res["Original"]["pgd:ce:3x2"][0.3]
    assert piece.is_file() and r["n"] == 7 and r["correct"][0.3].shape == (7,)
    assert r["correct_after_restart"][0.3].shape == (2, 7)
    assert abs(r["accuracy"][0.3] - float(r["correct"][0.3].float().mean())) < 1e-12
    assert r["attack"]["parts"] == 3 and "each part" in r["attack"]["seed"]
    # each part's outcomes are those of the same attack run on those images alone, with the part's seed
    alone = real(defs["Original"], C, x[3:6], y[3:6], [0.3], seed=3, steps=3, restarts=2)
    assert torch.equal(r["correct"][0.3][3:6], alone["correct"][0.3])
    calls[:] = []
    campaign.run(C, defs, x, y, ["pgd:ce:3x2"], [0.3], tmp_path, chunk=3, log=lambda m: None)
    assert calls == []                                     # the merged piece is reused
    # the whole piece without parts has other settings (a different seed per image): not mixed up
    logs = []
    campaign.run(C, defs, x, y, ["pgd:ce:3x2"], [0.3], tmp_path, log=logs.append)
    assert calls == [7] and any("other settings" in m for m in logs)
    with pytest.raises(ValueError, match="parts"):
        parts.merge([])
