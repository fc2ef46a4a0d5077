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
