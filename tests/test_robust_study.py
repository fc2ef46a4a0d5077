"""The robust-encoder study (chapter 08's choices): one knob at a time around the profile's choice, each
candidate a stored piece, and a selection rule that weighs white-box accuracy against clean accuracy."""
from __future__ import annotations

import pytest
import torch

from egan_lib.config import get_profile
from egan_lib.studies import robust_choices as rc


def test_candidates_vary_one_knob_at_a_time_around_the_studys_centre():
    p = get_profile("cpu")
    cs = rc.candidates(p)
    base = cs[0]
    assert base == dict(zip(rc.KNOBS, p.robust_study_centre)) == rc.centre(p)
    assert rc.chosen(p) in cs                        # what the profile trains is one of the candidates
    moved = rc.candidates(p.replace(robust_study_centre=(0.2, 1, 0.0, "latent")))
    assert moved[0] == {"eps": 0.2, "inner_steps": 1, "clean_fraction": 0.0, "objective": "latent"}
    assert rc.candidates(p.replace(robust_inner_steps=1)) == cs   # the pick does not move the design
    assert len(cs) == len({tuple(sorted(c.items())) for c in cs})            # no duplicates
    assert all(sum(c[k] != base[k] for k in rc.KNOBS) == 1 for c in cs[1:])  # one knob changed
    assert {c["eps"] for c in cs} == set(p.robust_study_train_eps) | {p.robust_eps}
    with pytest.raises(ValueError, match="robust_study_objectives"):
        get_profile("smoke", robust_study_objectives=("labels",))
    with pytest.raises(ValueError, match="robust_study_centre"):
        get_profile("smoke", robust_study_centre=(0.3, 5, 0.5, "labels"))
    with pytest.raises(ValueError, match=r"robust_study_centre\[1\]"):
        get_profile("smoke", robust_study_centre=(0.3, 0, 0.5, "latent"))


def test_the_rule_prefers_white_box_accuracy_within_the_clean_tolerance():
    def row(k, clean, wb):
        return ({"eps": 0.3, "inner_steps": k, "clean_fraction": 0.5, "objective": "reconstruction"},
                {"clean": (clean, [0, 1]), "whitebox": {0.1: wb, 0.3: wb}, "ci95": {0.1: [0, 1], 0.3: [0, 1]},
                 "train_seconds": 60.0}, {})
    rows = [row(5, 0.95, 0.30), row(1, 0.96, 0.10), row(3, 0.80, 0.60)]
    c, _ = rc.best(rows)
    assert c["inner_steps"] == 5                   # 0.60 is bought with 16 points of clean accuracy: excluded
    assert rc.best([row(5, 0.95, 0.3), row(1, 0.95, 0.3)])[0]["inner_steps"] == 1   # a tie: the cheaper
    assert rc.best([]) is None
    assert "| reconstruction | 0.3 | 5 |" in rc.markdown(rows)


def test_the_smoke_study_runs_stores_and_is_reused(tmp_path):
    from egan_lib.workflow import setup
    prof = get_profile("smoke", train_size=256, clf_epochs=1, n_test=16, gan_epochs=1, enc_latents=64,
                       robust_latents=64, robust_batch=32, robust_study_image_steps=32, robust_study_n=4)
    ws = setup(prof, device="cpu", artifacts_dir=tmp_path / "a", progress=False, use_shipped_weights=False,
               threads=torch.get_num_threads())
    logs = []
    rows = rc.run(ws, tmp_path / "r", log=logs.append)
    assert len(rows) == len(rc.candidates(prof)) and all(i["status"] == "computed" for _, _, i in rows)
    r = rows[0][1]
    assert r["n"] == 4 and set(r["whitebox"]) == set(prof.robust_study_eps) and r["train_seconds"] > 0
    again = rc.run(ws, tmp_path / "r", compute_missing=False, log=logs.append)
    assert all(i["status"] == "reused" for _, _, i in again)
    gone = []
    assert rc.run(ws, tmp_path / "other", compute_missing=False, missing=gone, log=logs.append) == [] and gone
    base = rc.baseline(ws, tmp_path / "r", log=logs.append)
    assert base["n"] == 4 and set(base["whitebox"]) == set(prof.robust_study_eps)
    assert rc.baseline(ws, tmp_path / "other", compute_missing=False) is None
    table = rc.markdown(rows, base)
    assert table.splitlines()[2].startswith("| EGAN, no fine-tune |") and len(table.splitlines()) == 3 + len(rows)
