import pytest
import torch

from egan_lib.eval import claims
from egan_lib.eval.results import Examples
from egan_lib.eval.schema import validate_results_json
from egan_lib.eval.stats import wilson_interval

NAMES = ["Original", "EGAN", "DnCNN", "AutoEncoder", "APE-GAN", "PixelDefend", "Defense-GAN"]
EPS = ["0.00", "0.25", "0.30", "0.50", "1.00"]


def make(acc: dict, spi: dict, n: int = 1000) -> dict:
    obj = {"dataset": "mnist", "profile": "test", "device": "cpu", "n_test": n, "threat_model": "oblivious",
           "git_commit": "abc", "methods": {}}
    for m in NAMES:
        a = acc.get(m, {})
        obj["methods"][m] = {"accuracy": {}, "ci95": {}, "seconds_per_image": spi.get(m, 1e-3), "n": n}
        for k in EPS:
            v = a.get(k, 0.1)
            obj["methods"][m]["accuracy"][k] = v
            obj["methods"][m]["ci95"][k] = list(wilson_interval(round(v * n), n))
    validate_results_json(obj)
    return obj


def test_clean_accuracy_claim():
    assert claims.claim_clean_accuracy(make({"Original": {"0.00": 0.99}}, {}))["verdict"] == claims.SUPPORTED
    assert claims.claim_clean_accuracy(make({"Original": {"0.00": 0.95}}, {}))["verdict"] == claims.NOT_SUPPORTED


def test_egan_best_claim_all_three_ways():
    hi = {k: 0.8 for k in EPS}
    assert claims.claim_egan_best_above(make({"EGAN": hi}, {}))["verdict"] == claims.SUPPORTED
    obj = make({"EGAN": {k: 0.3 for k in EPS}, "DnCNN": {k: 0.9 for k in EPS}}, {})
    r = claims.claim_egan_best_above(obj)
    assert r["verdict"] == claims.CONTRADICTED and "DnCNN" in r["measured"]
    obj = make({"EGAN": {"0.30": 0.8, "0.50": 0.3, "1.00": 0.8}, "DnCNN": {"0.50": 0.9}}, {})
    assert claims.claim_egan_best_above(obj)["verdict"] == claims.PARTLY


def test_speed_claim():
    acc = {"EGAN": {"0.50": 0.6}, "Defense-GAN": {"0.50": 0.61}}
    assert claims.claim_faster_than_defensegan(make(acc, {"EGAN": 1e-3, "Defense-GAN": 0.1}))["verdict"] == claims.SUPPORTED
    assert claims.claim_faster_than_defensegan(make(acc, {"EGAN": 1e-3, "Defense-GAN": 2e-3}))["verdict"] == claims.PARTLY
    acc = {"EGAN": {"0.50": 0.2}, "Defense-GAN": {"0.50": 0.9}}
    assert claims.claim_faster_than_defensegan(make(acc, {"EGAN": 1e-3, "Defense-GAN": 2e-3}))["verdict"] == claims.NOT_SUPPORTED


def test_apegan_claim():
    acc = {"EGAN": {"0.50": 0.7, "1.00": 0.5}, "APE-GAN": {"0.50": 0.2, "1.00": 0.1}}
    assert claims.claim_apegan_fast_but_weak(make(acc, {"APE-GAN": 1e-4, "EGAN": 1e-3}))["verdict"] == claims.SUPPORTED
    acc = {"APE-GAN": {"0.50": 0.9, "1.00": 0.9}}
    assert claims.claim_apegan_fast_but_weak(make(acc, {"APE-GAN": 1e-2, "EGAN": 1e-3}))["verdict"] == claims.NOT_SUPPORTED


def test_noise_free_claim():
    clean = torch.zeros(2, 1, 28, 28); clean[:, :, 10:18, 10:18] = 1
    att = (clean + 0.5).clamp(0, 1)
    ex = Examples(index=torch.arange(2), labels=torch.tensor([0, 1]), clean=clean, clean_preds=torch.tensor([0, 1]),
                  attacked={0.5: att}, attacked_preds={0.5: torch.tensor([1, 1])},
                  outputs={"EGAN": {0.5: clean.clone()}, "APE-GAN": {0.5: clean + 0.01}, "Defense-GAN": {0.5: att}},
                  preds={})
    r = claims.claim_noise_free(ex, eps=0.5)
    assert r["verdict"] == claims.PARTLY and "Defense-GAN 0.500" in r["measured"]
    assert claims.background_noise(clean, att) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        claims.background_noise(clean, att[:1])


def test_markdown_and_missing_method():
    rows = claims.paper_claims(make({"Original": {"0.00": 0.99}}, {}))
    md = claims.claims_markdown(rows)
    assert md.count("\n") == 1 + len(rows) and "**" in md
    obj = make({}, {}); del obj["methods"]["EGAN"]
    with pytest.raises(ValueError, match="EGAN"):
        claims.claim_egan_best_above(obj)


def test_a_tie_at_chance_is_no_support():
    # every method at 10% above eps 0.25: nothing to rank there
    at_chance = make({}, {"EGAN": 1e-3, "APE-GAN": 1e-4, "Defense-GAN": 0.1})
    assert claims.claim_egan_best_above(at_chance)["verdict"] == claims.NOT_TESTABLE
    assert claims.claim_apegan_fast_but_weak(at_chance)["verdict"] == claims.NOT_TESTABLE
    r = claims.claim_faster_than_defensegan(at_chance, chance=0.1)
    assert r["verdict"] == claims.PARTLY and "not testable" in r["measured"]     # fast, but no "similar accuracy"
    # one testable eps (0.30): the verdict rests on it alone, and the rest is said to be untestable
    obj = make({"EGAN": {"0.30": 0.7}, "APE-GAN": {"0.30": 0.5}}, {})
    r = claims.claim_egan_best_above(obj)
    assert r["verdict"] == claims.SUPPORTED and "1 of 1 testable" in r["measured"] and "not testable at eps 0.50" in r["measured"]


def test_the_fig2_claim_is_judged_against_chance():
    assert claims.claim_reconstructs_at_highest_eps(make({"EGAN": {"1.00": 0.4}}, {}))["verdict"] == claims.SUPPORTED
    r = claims.claim_reconstructs_at_highest_eps(make({"EGAN": {"1.00": 0.1}}, {}))
    assert r["verdict"] == claims.NOT_SUPPORTED and "eps 1.00" in r["measured"]
    rows = claims.paper_claims(make({"Original": {"0.00": 0.99}}, {}))
    assert any(row["paper"].startswith("Fig. 2") for row in rows)
