"""What a chapter shows of a campaign that is not finished (egan_lib.eval.plan_progress): the same first
images everywhere, at the eps complete for every job and defense, and other results cut to those images."""
import pytest
import torch

from egan_lib.eval import plan_progress
from egan_lib.eval.adaptive import worst_case


def _row(job, d, e, n_done, n=500):
    return {"job": job, "defense": d, "eps": e, "n": n, "n_done": n_done, "worst": None}


def test_ready_takes_the_largest_n_complete_everywhere_at_some_eps():
    rows = [_row("robust", "EGAN-R", 0.1, 0), _row("robust", "EGAN-R", 0.3, 300), _row("robust", "EGAN-RC", 0.1, 100),
            _row("robust", "EGAN-RC", 0.3, 200), _row("latent", "EGAN", 0.1, 500), _row("latent", "EGAN", 0.3, 500)]
    assert plan_progress.ready(rows) == (200, [0.3])           # EGAN-RC holds eps 0.3 back at 200; 0.1 has a 0
    rows[0]["n_done"] = 200
    rows[2]["n_done"] = 200
    assert plan_progress.ready(rows) == (200, [0.1, 0.3])
    assert plan_progress.ready([_row("robust", "EGAN-R", 0.3, 0)]) == (0, [])
    with pytest.raises(ValueError, match="rows"):
        plan_progress.ready([])


def test_first_images_cuts_every_per_image_outcome_and_recomputes_the_summary():
    torch.manual_seed(0)
    correct = torch.rand(10) > 0.5
    after = torch.rand(3, 10) > 0.5
    r = {"threat_model": "adaptive-pgd", "accuracy": {0.3: float(correct.float().mean())}, "ci95": {0.3: (0, 1)},
         "n": 10, "correct": {0.3: correct}, "correct_after_restart": {0.3: after}, "attacker_disagrees": {0.3: 4},
         "attacked": {0.3: torch.ones(10, dtype=torch.bool)}, "seconds_per_image": 1.5, "info": {"status": "reused"},
         "attack": {"steps": 100}}
    small = {"threat_model": "adaptive-pgd", "accuracy": {0.3: 0.5}, "ci95": {0.3: (0, 1)}, "n": 4,
             "correct": {0.3: torch.tensor([True, False, True, False])}}
    res = {"main": {"EGAN": {"pgd": {0.3: r}}}, "dgan": {"Defense-GAN": {"eot": {0.3: small}}},
           "onmanifold": {0.3: {"n": 10}}}
    cut = plan_progress.first_images(res, 6)
    c = cut["main"]["EGAN"]["pgd"][0.3]
    assert c["n"] == 6 and torch.equal(c["correct"][0.3], correct[:6])
    assert c["accuracy"][0.3] == pytest.approx(float(correct[:6].float().mean()))
    assert torch.equal(c["correct_after_restart"][0.3], after[:, :6]) and c["attacked"][0.3].shape == (6,)
    assert "attacker_disagrees" not in c                       # a count over all ten images: not cut, dropped
    assert c["seconds_per_image"] == 1.5 and c["info"] == {"status": "reused"} and c["attack"] == {"steps": 100}
    assert cut["dgan"]["Defense-GAN"]["eot"][0.3] is small      # 4 images: kept as it is
    assert "onmanifold" not in cut and r["n"] == 10             # the input is not changed
    assert worst_case({"pgd": c})["n"] == 6
    with pytest.raises(ValueError, match="n"):
        plan_progress.first_images(res, 0)


def test_the_banner_of_an_unfinished_evaluation_says_what_its_numbers_are_on():
    rows = [_row("robust", "EGAN-R", 0.1, 0), _row("robust", "EGAN-R", 0.3, 300), _row("robust", "EGAN-RC", 0.1, 0),
            _row("robust", "EGAN-RC", 0.3, 200)]
    text = plan_progress.unfinished_markdown(rows, "cpu")
    assert "on the first 200 test images at eps 0.3 " in text and "the plan is 500 images at eps 0.1, 0.3" in text
    assert "| robust | EGAN-RC | 0.10 | 0 of 500 | - |" in text and "--profile cpu --plan --chapter 8 --by-part" in text
    assert plan_progress.unfinished_markdown([_row("robust", "EGAN-R", 0.3, 500)], "cpu") == ""
