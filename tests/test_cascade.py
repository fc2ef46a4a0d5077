"""The cascade of attacks (egan_lib.eval.cascade): each attack only on the images the ones before it left,
the same worst case as running every attack on every image, and later pieces recomputed when an earlier
one changes."""
import pytest
import torch

from conftest import LinearClassifier
from egan_lib.defenses import Original
from egan_lib.eval import adaptive, campaign, cascade, parts
from egan_lib.eval import campaign_report as report
from egan_lib.eval.campaign_report import per_attack_table


def _setup():
    torch.manual_seed(5)
    C = LinearClassifier().eval()
    x = torch.rand(9, 1, 28, 28)
    return C, x, C(x).argmax(1)


def _counted_setup(monkeypatch, with_seed=False):
    """A two-attack cascade on ``_setup``'s images whose white-box calls are recorded: (loss, [seed,] n)."""
    C, x, y = _setup()
    calls = []
    real = adaptive.whitebox_accuracy

    def counted(d, c, xs, ys, *a, **k):
        calls.append((k.get("loss"), *((k.get("seed"),) if with_seed else ()), len(ys)))
        return real(d, c, xs, ys, *a, **k)
    monkeypatch.setattr(campaign, "whitebox_accuracy", counted)
    return C, x, y, {"Original": Original()}, ["pgd:ce:2x1", "pgd:cw:3x1"], calls


def test_on_survivors_scatters_the_outcomes_and_marks_the_rest_broken():
    mask = torch.tensor([True, False, True, False])
    seen = []

    def attack(rows):
        seen.append(rows.tolist())
        return {"threat_model": "adaptive-pgd", "accuracy": {0.3: 0.5}, "ci95": {0.3: (0, 1)}, "n": 2,
                "correct": {0.3: torch.tensor([False, True])}, "attack": {"attack": "pgd"}, "defense": "D",
                "correct_after_restart": {0.3: torch.tensor([[True, True], [False, True]])}}
    r = cascade.on_survivors(attack, mask, 0.3, threat_model="unused", after=["first"])
    assert seen == [[0, 2]]
    assert r["correct"][0.3].tolist() == [False, False, True, False] and r["accuracy"][0.3] == 0.25
    assert r["correct_after_restart"][0.3].tolist() == [[True, False, True, False], [False, False, True, False]]
    assert r["attacked"][0.3].tolist() == mask.tolist() and r["attack"]["cascade_after"] == ["first"]
    none = cascade.on_survivors(attack, torch.zeros(3, dtype=torch.bool), 0.3, threat_model="not run", after=[],
                                defense="D", attack={"attack": "pgd"})
    assert len(seen) == 1 and none["accuracy"][0.3] == 0.0 and none["threat_model"] == "not run"
    with pytest.raises(ValueError, match="mask"):
        cascade.on_survivors(attack, torch.ones(3), 0.3, threat_model="x", after=[])
    with pytest.raises(ValueError, match="mask"):
        cascade.mask_sha256([True])
    assert cascade.mask_sha256(mask) != cascade.mask_sha256(~mask)


def test_a_cascade_attacks_only_the_survivors_and_keeps_the_worst_case(tmp_path, monkeypatch):
    C, x, y, defs, attacks, calls = _counted_setup(monkeypatch)
    res = campaign.run(C, defs, x, y, attacks, [0.005], tmp_path, cascade=True, chunk=4, log=lambda m: None)
    first, second = (res["Original"][a][0.005] for a in attacks)
    left = first["correct"][0.005]
    assert 0 < int(left.sum()) < 9, "the test needs an eps where the first attack breaks some images, not all"
    # the second attack ran only on what the first left, part by part (images 0-3, 4-7, 8)
    assert [n for loss, n in calls if loss == "cw"] == [int(left[lo:hi].sum()) for lo, hi in parts.bounds(9, 4)
                                                        if left[lo:hi].any()]
    assert torch.equal(second["attacked"][0.005], left) and not (second["correct"][0.005] & ~left).any()
    assert second["attack"]["cascade_after"] == ["pgd:ce:2x1"]
    w = campaign.summary(res)["Original"]["worst"]
    assert torch.equal(w["correct"][0.005], second["correct"][0.005]) and w["cascaded"] == attacks
    assert w["decisive"][0.005]["pgd:cw:3x1"] == int((left & ~second["correct"][0.005]).sum())
    assert "on what the rows above left" in per_attack_table({"robust": res}, "Original")
    # everything is reused; when the first piece changes (recomputed with another outcome), so does the second
    calls[:] = []
    campaign.run(C, defs, x, y, attacks, [0.005], tmp_path, cascade=True, chunk=4, log=lambda m: None)
    assert calls == []
    piece = campaign.piece_path(tmp_path, "Original", campaign.parse_attack(attacks[0]), 0.005)
    st = torch.load(piece, weights_only=False)
    st_result = st["result"]
    flip = int(left.nonzero()[0])
    st_result["correct"][0.005][flip] = False          # pretend a stronger first attack broke one more image
    torch.save(st, piece)
    logs = []
    res2 = campaign.run(C, defs, x, y, attacks, [0.005], tmp_path, cascade=True, chunk=4, log=logs.append)
    assert not res2["Original"][attacks[1]][0.005]["attacked"][0.005][flip]
    assert any(loss == "cw" for loss, _ in calls)


def test_a_cascade_with_a_missing_earlier_piece_lists_the_later_ones_as_missing(tmp_path):
    C, x, y = _setup()
    missing = []
    res = campaign.run(C, {"Original": Original()}, x, y, ["pgd:ce:2x1", "pgd:cw:2x1"], [0.005], tmp_path,
                       cascade=True, compute_missing=False, missing=missing, log=lambda m: None)
    assert res == {} and [m[1] for m in missing] == ["pgd:ce:2x1", "pgd:cw:2x1"]
    with pytest.raises(TypeError, match="cascade"):
        campaign.run(C, {"Original": Original()}, x, y, ["pgd:ce:2x1"], [0.005], tmp_path, cascade=1)


def test_part_major_order_computes_the_parts_the_full_run_reuses(tmp_path, monkeypatch):
    """run_plan_by_part runs the plan on the first 1, 2, ... parts of images: every part it stores is the
    one the plain, attack-major run would store (same images, seed, cascade mask), so the full run then
    attacks nothing and gets the same outcomes."""
    C, x, y, defs, attacks, calls = _counted_setup(monkeypatch, with_seed=True)
    quiet = {"cascade": True, "chunk": 4, "log": lambda m: None}
    for k in (4, 8):                                         # part-major: what run_plan(first_n=k) does per job
        campaign.run(C, defs, x[:k], y[:k], attacks, [0.005], tmp_path / "by_part", **quiet)
    assert [s for _, s, _ in calls][:2] == [0, 0]            # the first part, through every attack, comes first
    # read only (a chapter): the first 4 images' pieces were overwritten by the first 8's, yet they are
    # assembled in memory from the stored parts, with the parts' provenance; nothing is attacked or written
    n_calls, files = len(calls), {f: f.stat().st_mtime_ns for f in (tmp_path / "by_part").rglob("*.pt")}
    first4 = campaign.run(C, defs, x[:4], y[:4], attacks, [0.005], tmp_path / "by_part", compute_missing=False,
                          missing=[], **quiet)
    r4 = first4["Original"][attacks[1]][0.005]
    assert r4["info"]["status"] == "assembled from parts" and r4["n"] == 4 and len(r4["part_provenance"]) == 1
    assert len(calls) == n_calls and files == {f: f.stat().st_mtime_ns for f in (tmp_path / "by_part").rglob("*.pt")}
    gone = []                                                # all 9: the last part is not stored yet
    assert campaign.run(C, defs, x, y, attacks, [0.005], tmp_path / "by_part", compute_missing=False, missing=gone,
                        **quiet) == {} and [a for _, a, _, _ in gone] == attacks
    campaign.run(C, defs, x, y, attacks, [0.005], tmp_path / "by_part", **quiet)   # the last step: all 9
    by_part = list(calls)
    calls[:] = []
    full = campaign.run(C, defs, x, y, attacks, [0.005], tmp_path / "by_part", **quiet)
    assert calls == []                                       # every part reused: nothing attacked again
    ref = campaign.run(C, defs, x, y, attacks, [0.005], tmp_path / "attack_major", **quiet)
    assert sorted(calls) == sorted(by_part)                  # the same attacks on the same images and seeds
    for a in attacks:
        assert torch.equal(full["Original"][a][0.005]["correct"][0.005], ref["Original"][a][0.005]["correct"][0.005])
    # the compute time of a piece in parts is its parts' (computed in earlier calls), not the merge's
    piece = full["Original"][attacks[0]][0.005]
    assert len(piece["part_provenance"]) == 3 and all(i["seconds"] >= 0 and i["machine"] for i in piece["part_provenance"])
    info = {"machine": "m", "device": "cpu", "threads": 2, "date": "2026-12-05 10:00 UTC"}
    fake = {"robust": {"R": {"a": {0.3: {"info": {**info, "status": "computed", "seconds": 1.0}, "part_provenance": [
        {**info, "status": "computed", "seconds": 120.0}, {**info, "machine": "gpu", "status": "reused", "seconds": 180.0}]}}}}}
    text = report.provenance(fake)
    assert "1 pieces (1 computed)" in text and "5 min of compute" in text and "gpu" in text


def test_run_plan_by_part_steps_through_the_ends_of_the_stored_parts(monkeypatch):
    from types import SimpleNamespace
    from egan_lib.config import get_profile
    from egan_lib.eval import plan_progress
    ws = SimpleNamespace(profile=get_profile("cpu"))
    assert plan_progress.part_prefixes(ws, chapter=8) == [100, 200, 300, 400, 500]       # chunks of 100 of 500
    assert plan_progress.part_prefixes(ws, chapter=7, jobs=["main"]) == [500]            # one file per piece
    small = SimpleNamespace(profile=get_profile("cpu").replace(n_test=252, expensive_n_test=252))
    assert plan_progress.part_prefixes(small, chapter=8) == [100, 200, 252]
    seen = []
    monkeypatch.setattr(campaign, "run_plan", lambda ws, rd, **kw: seen.append((kw["first_n"], kw["chapter"])) or {})
    plan_progress.run_plan_by_part(ws, "unused", chapter=8, log=lambda m: None)
    assert seen == [(k, 8) for k in (100, 200, 300, 400, 500)]
    with pytest.raises(ValueError, match="chapter"):
        plan_progress.part_prefixes(ws, chapter=9)
