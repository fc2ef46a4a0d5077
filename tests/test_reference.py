"""The reference evaluation: disjoint parts, stored per (method, part), resumed, pooled with the per-part spread."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import LinearClassifier
from egan_lib.defenses import DefenseGAN, Original
from egan_lib.eval import reference
from egan_lib.eval.protocol import evaluate
from egan_lib.eval.schema import validate_results_json
from egan_lib.models import Generator


def _setup():
    torch.manual_seed(1)
    x, y = torch.rand(24, 1, 28, 28), torch.arange(24) % 10
    C = LinearClassifier().eval()
    defs = [Original(), DefenseGAN(Generator(width=4).eval(), steps=2, restarts=1)]
    return C, defs, x, y


def test_split_parts_are_disjoint_and_cover_the_subset():
    x, y = torch.arange(12.0).view(12, 1, 1, 1).expand(12, 1, 28, 28) / 12, torch.arange(12) % 10
    parts = reference.split_parts(x, y, 3)
    assert [(12 * p[0][:, 0, 0, 0]).round().long().tolist() for p in parts] == [[0, 3, 6, 9], [1, 4, 7, 10],
                                                                                 [2, 5, 8, 11]]
    with pytest.raises(ValueError, match="equal parts"):
        reference.split_parts(x, y, 5)
    # the labels a method on 6 of the 12 images uses: the first 2 of each part
    assert reference.evaluated_labels(torch.arange(12) % 10, 3, 6).tolist() == [0, 3, 1, 4, 2, 5]


def test_pieces_are_stored_resumed_and_pooled(tmp_path):
    C, defs, x, y = _setup()
    kw = dict(parts=3, store_dir=tmp_path, prefix="t", n_per_method={"Defense-GAN": 12}, batch_size=8,
              log=lambda m: None, seed=0)
    # a run that only does Defense-GAN (say, in the background) stores its pieces and pools nothing
    res, infos = reference.reference_evaluation(C, defs, x, y, [0.0, 0.3], only=["Defense-GAN"], **kw)
    assert res is None and [i["status"] for i in infos] == ["computed"] * 3
    assert len(list((tmp_path / "t").glob("defense-gan-part*.pt"))) == 3
    # the full run reuses them and computes the rest
    res, infos = reference.reference_evaluation(C, defs, x, y, [0.0, 0.3], **kw)
    status = {(i["method"], i["part"]): i["status"] for i in infos}
    assert all(status[("Defense-GAN", k)] == "reused" for k in range(3))
    assert all(status[("Original", k)] == "computed" for k in range(3))
    assert res.n == {"Original": 24, "Defense-GAN": 12}
    # pooled k / n equals one evaluation of the union of the images each part used
    idx = torch.cat([torch.arange(k, 24, 3)[:4] for k in range(3)])
    one = evaluate(C, [defs[1]], x[idx], y[idx], [0.0, 0.3], timing_repeats=1, timing_batch=4)
    for e in (0.0, 0.3):
        assert res.correct["Defense-GAN"][e] == one.correct["Defense-GAN"][e]
        parts = res.parts["Defense-GAN"]["accuracy"][e]
        assert len(parts) == 3 and min(parts) <= res.accuracy["Defense-GAN"][e] <= max(parts)
    assert res.parts["Original"]["n"] == [8, 8, 8]
    assert res.examples is not None and set(res.examples.outputs) == {"Original", "Defense-GAN"}
    # the results file carries the parts, and they round-trip
    obj = res.to_json_dict("mnist", "test", git_commit="x")
    validate_results_json(obj)
    assert obj["methods"]["Defense-GAN"]["parts"]["n"] == [4, 4, 4]
    back = type(res).from_json_dict(json.loads(json.dumps(obj)))
    assert back.parts["Original"]["accuracy"][0.3] == res.parts["Original"]["accuracy"][0.3]
    assert "reused" in reference.summary(infos)


def test_bad_arguments_fail_clearly(tmp_path):
    C, defs, x, y = _setup()
    with pytest.raises(ValueError, match="multiple of parts"):
        reference.reference_evaluation(C, defs, x, y, [0.0], parts=3, store_dir=tmp_path, prefix="t",
                                       n_per_method={"Defense-GAN": 10})
    with pytest.raises(ValueError, match="unknown method"):
        reference.reference_evaluation(C, defs, x, y, [0.0], parts=3, store_dir=tmp_path, prefix="t",
                                       only=["EGAN"])


def test_schema_rejects_parts_that_do_not_add_up():
    obj = {"dataset": "mnist", "profile": "t", "device": "cpu", "n_test": 10, "threat_model": "oblivious",
           "git_commit": "x", "methods": {"A": {"accuracy": {"0.00": 0.5}, "ci95": {"0.00": [0.2, 0.8]},
                                                "seconds_per_image": 0.1, "n": 10,
                                                "parts": {"n": [5, 4], "accuracy": {"0.00": [0.4, 0.6]}}}}}
    with pytest.raises(ValueError, match="sums to 9"):
        validate_results_json(obj)
    obj["methods"]["A"]["parts"]["n"] = [5, 5]
    validate_results_json(obj)
    obj["methods"]["A"]["parts"]["accuracy"]["0.00"] = [0.4]
    with pytest.raises(ValueError, match="must list 2"):
        validate_results_json(obj)


def test_subset_and_join_keep_the_measurements_and_refuse_mismatches(tmp_path):
    from egan_lib.eval.results import join_results, subset_results
    C, defs, x, y = _setup()
    kw = dict(parts=3, store_dir=tmp_path, prefix="t", batch_size=8, log=lambda m: None)
    a, _ = reference.reference_evaluation(C, defs[:1], x, y, [0.0, 0.3, 0.5], **kw)
    b, _ = reference.reference_evaluation(C, defs[1:], x, y, [0.0, 0.5], **kw)
    sub = subset_results(a, eps=[0.0, 0.5])
    assert sub.eps == [0.0, 0.5] and sub.correct["Original"][0.5] == a.correct["Original"][0.5]
    assert sub.parts["Original"]["accuracy"][0.5] == a.parts["Original"]["accuracy"][0.5]
    j = join_results(sub, b)
    assert j.methods == ["Original", "Defense-GAN"] and j.accuracy["Defense-GAN"] == b.accuracy["Defense-GAN"]
    assert j.ci95["Original"][0.0] == a.ci95["Original"][0.0] and j.n == {"Original": 24, "Defense-GAN": 24}
    assert "| Defense-GAN |" in j.table()
    with pytest.raises(ValueError, match="eps grids differ"):
        join_results(a, b)
    with pytest.raises(ValueError, match="more than one"):
        join_results(b, b)
    with pytest.raises(ValueError, match="not in the evaluated grid"):
        subset_results(b, eps=[0.3])
    with pytest.raises(ValueError, match="not evaluated"):
        subset_results(b, methods=["EGAN"])


class _Workspace:
    """What hybrid_evaluation uses of a Workspace: the profile, the test subset, the classifier."""
    def __init__(self, profile, C, x, y):
        self.profile, self._C, self._x, self._y, self.seed, self.progress = profile, C, x, y, 0, False

    def test_set(self):
        return self._x, self._y

    def classifier(self):
        return self._C, {}


def test_hybrid_evaluation_reuses_defense_gan_and_stores_its_own_pieces(tmp_path, tiny_encoder):
    from egan_lib.config import get_profile
    from egan_lib.defenses import EGAN, HybridDefense
    C, defs, x, y = _setup()
    G, E = defs[1].generator, tiny_encoder.eval()
    prof = get_profile("smoke", n_test=24, eval_parts=3, expensive_n_test=12, eval_batch=8)
    ws = _Workspace(prof, C, x, y)
    dgan = [d for d in defs if d.name == "Defense-GAN"]
    ref, _ = reference.reference_evaluation(C, dgan, x, y, [0.0, 0.3, 0.5], parts=3, store_dir=tmp_path / "evaluations",
                                            prefix="ch06", n_per_method={"Defense-GAN": 12}, batch_size=8,
                                            log=lambda m: None)
    hy = [HybridDefense(E, G, steps=2)]
    res, infos = reference.hybrid_evaluation(ws, tmp_path, hy, egan=EGAN(E, G), reference=ref, log=lambda m: None)
    assert res.methods == ["EGAN", hy[0].name, "Defense-GAN"] and res.eps == [0.0, 0.5]
    assert set(res.n.values()) == {12}
    assert res.correct["Defense-GAN"][0.5] == ref.correct["Defense-GAN"][0.5]      # taken, not recomputed
    assert {i["status"] for i in infos} == {"computed"} and len(infos) == 6
    assert len(list((tmp_path / "evaluations" / "mnist-smoke-hybrid").glob("*.pt"))) == 6
    again, infos = reference.hybrid_evaluation(ws, tmp_path, hy, egan=EGAN(E, G), reference=ref, log=lambda m: None)
    assert {i["status"] for i in infos} == {"reused"} and again.correct == res.correct
    # a reference evaluated on another number of images is refused
    other, _ = reference.reference_evaluation(C, dgan, x, y, [0.0, 0.5], parts=3, store_dir=tmp_path / "o",
                                              prefix="o", n_per_method={"Defense-GAN": 6}, batch_size=8,
                                              log=lambda m: None)
    with pytest.raises(ValueError, match="expensive_n_test is 12"):
        reference.hybrid_evaluation(ws, tmp_path, hy, egan=EGAN(E, G), reference=other, log=lambda m: None)
    with pytest.raises(ValueError, match="at least one"):
        reference.hybrid_evaluation(ws, tmp_path, [], egan=EGAN(E, G), reference=ref, log=lambda m: None)
