"""Chapter 08's comparison: the paired test, the rows from stored pieces and references, the verdict."""
import math

import pytest
import torch

from conftest import LinearClassifier
from egan_lib.defenses import Original
from egan_lib.eval import references, robust_report


def _piece(correct):
    c = torch.tensor(correct, dtype=torch.bool)
    return {"correct": {0.3: c}, "seconds_per_image": 0.1}


def _res(egan, robust):
    return {"main": {"EGAN": {"pgd:ce:1x1": {0.3: _piece(egan)}}, "EGAN-R": {"pgd:ce:1x1": {0.3: _piece(robust)}}}}


def test_mcnemar_exact_counts_the_discordant_images_and_is_two_sided():
    a = torch.tensor([1, 1, 1, 1, 1, 1, 0, 0], dtype=torch.bool)
    b = torch.tensor([0, 0, 0, 0, 0, 0, 0, 0], dtype=torch.bool)
    only_a, only_b, pval = robust_report.mcnemar_exact(a, b)
    assert (only_a, only_b) == (6, 0) and math.isclose(pval, 2 / 2 ** 6)
    assert robust_report.mcnemar_exact(a, a) == (0, 0, 1.0)
    assert robust_report.mcnemar_exact(b, a)[2] == pval
    with pytest.raises(ValueError, match="same images"):
        robust_report.mcnemar_exact(a, b[:4])


def test_comparison_rows_markdown_and_a_verdict_that_follows_the_numbers():
    n = 40
    egan = [0] * n
    strong = [1] * 30 + [0] * 10
    clean = {"EGAN": {"accuracy": 0.95, "ci95": (0.9, 0.98), "n": n, "seconds_per_image": 0.01},
             "EGAN-R": {"accuracy": 0.9, "ci95": (0.85, 0.95), "n": n, "seconds_per_image": 0.01}}
    rows = robust_report.comparison(_res(egan, strong), clean, defenses=["EGAN", "EGAN-R", "Defense-GAN"],
                                    train_seconds={"EGAN-R": 600.0}, references=references.BEST_KNOWN,
                                    eps_values=(0.3,))
    assert [r["method"] for r in rows][:2] == ["EGAN", "EGAN-R"] and len(rows) == 2 + len(references.BEST_KNOWN)
    assert rows[1]["worst"][0.3][0] == 0.75 and rows[1]["train_minutes"] == 10.0
    table = robust_report.markdown(rows, (0.3,))
    assert "| EGAN-R |" in table and "75.0 [" in table and "92.5" in table and "| 10 |" in table
    assert "worst case per image over pgd:ce:1x1" in rows[0]["threat"]
    assert robust_report.plot_training({"EGAN-R": {"step": [1, 2], "loss": [2.0, 1.0]}}).axes[0].get_yscale() == "log"
    v = robust_report.verdict(rows, eps=0.3)
    assert "EGAN-R" in v and "beyond the noise" in v and "30 images only EGAN-R keeps" in v
    assert "EGAN-RC**: no stored pieces yet" in v
    same = robust_report.comparison(_res(egan, egan), clean, defenses=["EGAN", "EGAN-R"], train_seconds={},
                                    eps_values=(0.3,))
    assert "within the noise" in robust_report.verdict(same)
    assert "no verdict" in robust_report.verdict([])


def test_clean_accuracy_times_each_purifier_and_checks_its_inputs():
    torch.manual_seed(0)
    C = LinearClassifier().eval()
    x = torch.rand(6, 1, 28, 28)
    y = C(x).argmax(1)
    out = robust_report.clean_accuracy(C, {"Original": Original()}, x, y, batch_size=4)
    assert out["Original"]["accuracy"] == 1.0 and out["Original"]["n"] == 6 and out["Original"]["seconds_per_image"] > 0
    with pytest.raises(ValueError, match="defenses"):
        robust_report.clean_accuracy(C, {}, x, y)
    assert robust_report.clean_from_oblivious(None, "EGAN") is None
