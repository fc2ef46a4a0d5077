"""The budget study resumes where it stopped and reports what it measured (tables, figure)."""
import json

from egan_lib.studies import budget, budget_report


def test_budget_study_runs_resumes_and_reports(tmp_path, mnist):
    out = tmp_path / "b"
    def args(*budgets):
        return ["--out", str(out), "--threads", "1", "--train-size", "256", "--n-test", "20", "--gan-epochs", "1", "2",
                "--short-latents", "64", "--short-epochs", "1", "--latents", "256", "--profile", "smoke",
                "--precision", "fp32", "--budgets", *map(str, budgets)]
    assert budget.main(args(320, 640)) == 0
    res = json.loads((out / "budget.json").read_text())
    assert [s["epochs"] for s in res["gan"]["snapshots"]] == [1, 2]
    # a stop between saving a G snapshot and measuring it: the resumed run measures it first
    res_cut = dict(res, gan=dict(res["gan"], snapshots=res["gan"]["snapshots"][:1]))
    (out / "budget.json").write_text(json.dumps(res_cut))
    assert budget.main(args(320, 640)) == 0
    res = json.loads((out / "budget.json").read_text())
    assert [s["epochs"] for s in res["gan"]["snapshots"]] == [1, 2]
    assert [b["image_steps"] for b in res["encoder"]["budgets"]] == [320, 640]
    b = res["encoder"]["budgets"][0]
    assert b["steps"] == 5 and b["decay_steps"] == 1           # branched at 0.9 B: 4 constant + 1 decay step
    assert set(b["egan"]) == {"0.00", "0.10", "0.30", "0.50"} and b["egan"]["0.00"]["n"] == 20
    # a longer budget list resumes the trunk (no retraining of G or of the finished budgets)
    assert budget.main(args(320, 640, 1280)) == 0
    res2 = json.loads((out / "budget.json").read_text())
    assert [b["image_steps"] for b in res2["encoder"]["budgets"]] == [320, 640, 1280]
    assert res2["gan"]["snapshots"] == res["gan"]["snapshots"]
    assert "| 640 |" in budget_report.encoder_table(res2) and "| 2 |" in budget_report.gan_table(res2)
    # every row has as many cells as the header (no "|" inside a cell: the table would not render)
    for table in (budget_report.encoder_table(res2), budget_report.gan_table(res2)):
        rows = [r for r in table.splitlines() if r.startswith("|")]
        assert len({r.count("|") for r in rows}) == 1, table
    fig = budget_report.plot_budget(res2)
    assert len(fig.axes) == 2 and fig.axes[0].get_xscale() == "log"
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["320", "640", "1.28k"]
    # rows made on another machine (a second run) are marked by a dotted line
    res3 = json.loads(json.dumps(res2))
    res3["encoder"]["budgets"][2]["machine"] = "another CPU"
    assert len(budget_report.plot_budget(res3).axes[1].lines) == len(budget_report.plot_budget(res2).axes[1].lines) + 1
    f = budget_report.encoder_findings(res2)
    assert f["first"]["image_steps"] == 320 and f["last"]["image_steps"] == 1280
    assert f["last_doubling_recon_real"] == res2["encoder"]["budgets"][2]["recon_real"]["mean"] - \
        res2["encoder"]["budgets"][1]["recon_real"]["mean"]
    assert isinstance(f["accuracy_flat"], bool)


def test_encoder_findings_on_the_committed_study():
    """The reference study's file: its findings read as the chapter quotes them (and the trend is real)."""
    from egan_lib.explore import repository_file
    res = json.loads(repository_file("book/results/mnist-cpu-budget.json").read_text())
    f = budget_report.encoder_findings(res)
    assert f["last"]["recon_gen"] < f["first"]["recon_gen"]          # more training, better inversion of G
    assert f["first"]["clean"].count("[") == 1



def test_generator_choice_prefers_balance_among_statistical_ties():
    def snap(ep, acc, lo, hi, share):
        return {"epochs": ep, "egan_clean": {"accuracy": acc, "ci95": [lo, hi]}, "min_class_share": share}
    res = {"gan": {"snapshots": [snap(5, 0.884, 0.863, 0.902, 0.034), snap(10, 0.883, 0.862, 0.901, 0.053),
                                 snap(15, 0.80, 0.77, 0.82, 0.09)]}}
    assert budget.choose_generator(res) == 10          # 15 is the most balanced but significantly worse
