import pytest
import torch
import torch.nn as nn

from egan_lib.eval import study
from egan_lib.eval.schema import validate_results_json


class Identity:
    def __init__(self, name, differentiable=True):
        self.name, self.differentiable, self.device = name, differentiable, torch.device("cpu")

    def forward(self, x):
        return x if self.differentiable else x.detach().round()

    def purify(self, x, batch_size=None):
        return self.forward(x).detach().clamp(0, 1)

    def modules(self):
        return []


def tiny_classifier():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()


def test_study_runs_every_threat_model_and_makes_valid_entries():
    C = tiny_classifier()
    x, y = torch.rand(12, 1, 28, 28), torch.arange(12) % 10
    defs = {"Original": Identity("Original"), "PixelDefend": Identity("PixelDefend", differentiable=False),
            "Defense-GAN": Identity("Defense-GAN", differentiable=False)}
    s = study.adaptive_study(C, defs, x, y, [0.1, 0.3], n_main=12, n_expensive=4, steps=3, steps_expensive=2,
                             log=lambda m: None)
    res = s["results"]
    assert set(res) == {"oblivious-pgd", "adaptive-pgd", "adaptive-bpda"}
    # PixelDefend (3 ms per image) is attacked on every image; Defense-GAN, the expensive one, on n_expensive
    assert res["adaptive-pgd"]["Original"]["n"] == 12 and res["adaptive-bpda"]["PixelDefend"]["n"] == 12
    assert res["adaptive-bpda"]["Defense-GAN"]["n"] == 4
    # attacking through an identity defense = attacking the classifier alone
    assert res["adaptive-pgd"]["Original"]["accuracy"] == res["oblivious-pgd"]["Original"]["accuracy"]
    entries = study.study_entries(s, dataset="mnist", profile="test", device="cpu", git_commit="x",
                                  seconds_per_image={"Original": 1e-6, "PixelDefend": 1e-3, "Defense-GAN": 1.0})
    validate_results_json(entries)
    md = study.accuracy_table(entries, [0.1, 0.3])
    assert md.count("| Original |") == 2 and "eps 0.30" in md
    fig = study.plot_threat_models(entries, "Original", [0.1, 0.3])
    assert fig.axes[0].get_ylabel() == "accuracy (%)"
    with pytest.raises(ValueError, match="seconds_per_image"):
        study.study_entries(s, dataset="mnist", profile="t", device="cpu", git_commit="x", seconds_per_image={})


@pytest.mark.parametrize("bad", [{"eps_values": []}, {"eps_values": [1.5]}, {"defenses": {}}, {"n_main": 0}])
def test_study_rejects_bad_input(bad):
    kw = dict(classifier=tiny_classifier(), defenses={"Original": Identity("Original")}, x=torch.rand(2, 1, 28, 28),
              y=torch.tensor([0, 1]), eps_values=[0.1], n_main=2, n_expensive=1)
    kw.update(bad)
    with pytest.raises(ValueError):
        study.adaptive_study(**kw)


def test_threat_model_figure_leaves_out_the_on_manifold_search_and_draws_references_as_points():
    from egan_lib.eval.references import BEST_KNOWN
    def entry(tm, acc):
        return {"threat_model": tm, "n_test": 10,
                "methods": {"EGAN": {"accuracy": {"0.10": acc, "0.30": acc}, "ci95": {"0.10": [0, 1], "0.30": [0, 1]},
                                     "n": 10}}}
    fig = study.plot_threat_models([entry("adaptive-pgd", 0.1), entry("on-manifold", 0.9)], "EGAN", [0.1, 0.3],
                                   reference_lines=BEST_KNOWN)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert not any("on-manifold" in t for t in labels) and any("adaptive-pgd" in t for t in labels)
    refs = [l for l in ax.get_lines() if l.get_label().startswith(("PGD adversarial", "TRADES", "CROWN"))]
    assert len(refs) == 3 and all(list(l.get_xdata()) == [0.3] for l in refs)
    table = study.accuracy_table([entry("adaptive-pgd", 0.1), entry("on-manifold", 0.9)], [0.1], exclude=("on-manifold",))
    assert "on-manifold" not in table and "adaptive-pgd" in table


def test_feasibility_table_gives_rates_with_intervals():
    t = study.feasibility_table({"n": 50, "feasible_rate": {0.1: 0.0, 0.3: 0.02}, "success_rate": {0.1: 0.0, 0.3: 0.0}},
                                [0.1, 0.3])
    assert "| 0.30 | 2.0% [0.4%, 10.5%] | 0.0% [0.0%, 7.1%] | 50 |" in t and "| 0.10 | 0.0% [0.0%, 7.1%]" in t
