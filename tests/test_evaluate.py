"""The evaluation harness on tiny cases whose answers are known in advance (synthetic tensors, no MNIST)."""
from __future__ import annotations

import copy
import json
import time

import pytest
import torch
from torch import nn

import egan_lib.eval.protocol as protocol_mod
import egan_lib.eval.results as results_mod
from egan_lib.attacks import accuracy as clf_accuracy
from egan_lib.attacks import fgsm
from egan_lib.eval.protocol import evaluate
from egan_lib.eval.results import Results, merge_results, read_results, select_results, write_results
from egan_lib.eval.schema import validate_results_json
from egan_lib.eval.stats import eps_key, wilson_interval

EPS = [0.0, 0.25, 0.75, 1.0]


# ------------------------------------------------------------------------------------ tiny known cases
def pattern_data(n: int = 30, seed: int = 0):
    """Images whose label is written in row 0: pixel (0, c) = 1 for class c, pixels (0, 0..9) else 0."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    x = torch.rand(n, 1, 28, 28, generator=g) * 0.4
    x[:, 0, 0, :10] = 0.0
    x[torch.arange(n), 0, 0, y] = 1.0
    return x, y


class PatternClassifier(nn.Module):
    """Reads the label off row 0 (logit c = 10 * pixel (0, c)): perfect on clean pattern images.
    FGSM raises the nine wrong pixels by eps and lowers the right one: right for eps < 0.5, wrong above."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 10)
        with torch.no_grad():
            self.lin.weight.zero_()
            self.lin.bias.zero_()
            for c in range(10):
                self.lin.weight[c, c] = 10.0

    def forward(self, x):
        return self.lin(x.flatten(1))


class ConstantClassifier(nn.Module):
    """Always predicts class c (its gradient w.r.t. x is 0, so FGSM leaves x unchanged)."""

    def __init__(self, c: int = 3):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(10))
        with torch.no_grad():
            self.bias[c] = 5.0

    def forward(self, x):
        return self.bias + 0.0 * x.flatten(1).sum(1, keepdim=True)


class Identity:
    differentiable = True
    device = torch.device("cpu")

    def __init__(self, name="Original"):
        self.name = name
        self.calls = []

    def purify(self, x, batch_size=None):
        self.calls.append(x.clone())
        return x.clone()


class Zeros(Identity):
    def purify(self, x, batch_size=None):
        self.calls.append(x.clone())
        return torch.zeros_like(x)


class Sleepy(Identity):
    def __init__(self, name="Sleepy", seconds=0.004):
        super().__init__(name)
        self.seconds = seconds

    def purify(self, x, batch_size=None):
        self.calls.append(x.shape[0])
        time.sleep(self.seconds)
        return x.clone()


def small_eval(**kw):
    x, y = pattern_data()
    kw.setdefault("timing_batch", 4)
    kw.setdefault("timing_repeats", 1)
    return evaluate(PatternClassifier(), kw.pop("defenses", [Identity(), Zeros("Zeros")]), x, y,
                    kw.pop("eps_values", EPS), **kw)


# ------------------------------------------------------------------------------------ Wilson
def test_wilson_known_values():
    lo, hi = wilson_interval(81, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.7222, 0.8749)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.27754, abs=1e-5)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.72246, abs=1e-5)
    lo, hi = wilson_interval(5, 10)
    assert lo + hi == pytest.approx(1.0) and lo == pytest.approx(0.23659, abs=1e-5)
    for k in range(0, 21):  # always a proper sub-interval of [0, 1] that contains k / n
        lo, hi = wilson_interval(k, 20)
        assert 0.0 <= lo <= k / 20 <= hi <= 1.0
    assert wilson_interval(5, 10, z=2.576)[1] > wilson_interval(5, 10)[1]  # 99% is wider


@pytest.mark.parametrize("k, n, z, err", [(0, 0, 1.96, ValueError), (11, 10, 1.96, ValueError),
                                          (-1, 10, 1.96, ValueError), (1.5, 10, 1.96, TypeError),
                                          (True, 10, 1.96, TypeError), (1, 10, 0.0, ValueError)])
def test_wilson_rejects_bad_input(k, n, z, err):
    with pytest.raises(err):
        wilson_interval(k, n, z)


def test_eps_key_two_decimals():
    assert [eps_key(e) for e in (0, 0.3, 0.05, 1)] == ["0.00", "0.30", "0.05", "1.00"]
    with pytest.raises(ValueError, match="two decimals"):
        eps_key(0.125)
    with pytest.raises(ValueError):
        eps_key(-0.1)


# ------------------------------------------------------------------------------------ known answers
def test_perfect_classifier_known_curve_and_clean_accuracy():
    x, y = pattern_data()
    C = PatternClassifier()
    r = small_eval()
    assert r.accuracy["Original"] == {0.0: 1.0, 0.25: 1.0, 0.75: 0.0, 1.0: 0.0}
    assert r.accuracy["Original"][0.0] == clf_accuracy(C, x, y) == 1.0  # eps = 0 is the clean accuracy
    assert r.n == {"Original": 30, "Zeros": 30} and r.n_test == 30
    for e in EPS:  # the interval is the Wilson interval of the counted hits
        k = r.correct["Original"][e]
        assert r.ci95["Original"][e] == wilson_interval(k, 30)
        assert (r.predictions["Original"][e] == y).sum() == k


def test_constant_classifier_gives_class_frequency():
    x, y = pattern_data(n=23)
    freq3 = float((y == 3).float().mean())
    r = evaluate(ConstantClassifier(3), [Identity(), Zeros("Zeros")], x, y, EPS, timing_batch=4, timing_repeats=1)
    for m in ("Original", "Zeros"):
        assert all(r.accuracy[m][e] == pytest.approx(freq3) for e in EPS), r.accuracy[m]
    # a defense that erases the image: the pattern classifier then always says 0 (a tie, argmax 0)
    r = small_eval()
    freq0 = float((pattern_data()[1] == 0).float().mean())
    assert all(r.accuracy["Zeros"][e] == pytest.approx(freq0) for e in EPS)


def test_identity_defense_equals_undefended_accuracy():
    x, y = pattern_data(n=40, seed=3)
    C = PatternClassifier()
    with torch.no_grad():  # a less trivial classifier: noisy weights give intermediate accuracies
        C.lin.weight.add_(torch.randn(10, 784, generator=torch.Generator().manual_seed(1)) * 0.3)
    eps = [0.0, 0.05, 0.1, 0.2, 0.3]
    r = evaluate(C, [Identity()], x, y, eps, timing_batch=4, timing_repeats=1)
    direct = [clf_accuracy(C, fgsm(C, x, y, e), y) for e in eps]
    assert [r.accuracy["Original"][e] for e in eps] == pytest.approx(direct)
    assert len(set(direct)) > 1  # the case is not degenerate


def test_fgsm_computed_once_and_shared_by_every_method(monkeypatch):
    calls = []
    real = protocol_mod.fgsm_grid

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(protocol_mod, "fgsm_grid", counting)
    x, y = pattern_data()
    a, b = Identity("A"), Identity("B")
    evaluate(PatternClassifier(), [a, b], x, y, EPS, timing_batch=4, timing_repeats=1, timing_warmup=0)
    assert len(calls) == 1
    seen_a, seen_b = a.calls[:len(EPS)], b.calls[:len(EPS)]  # the evaluation calls, before the timing ones
    for e, xa, xb in zip(EPS, seen_a, seen_b):
        assert torch.equal(xa, xb)
        assert torch.equal(xa, fgsm(PatternClassifier(), x, y, e))


def test_n_per_method_uses_the_first_n_of_the_same_subset():
    full, part = Identity("Full"), Zeros("Part")
    x, y = pattern_data()
    r = small_eval(defenses=[full, part], n_per_method={"Part": 7}, timing_warmup=0)
    assert r.n == {"Full": 30, "Part": 7}
    for i in range(len(EPS)):
        assert torch.equal(part.calls[i], full.calls[i][:7])  # nested: the same x_adv, first 7 images
    assert r.accuracy["Part"][0.25] == pytest.approx(float((y[:7] == 0).float().mean()))
    # examples of classes beyond the first 7 images still exist for Part (purified separately)
    assert r.examples.labels.tolist() == list(range(10))
    assert all(torch.equal(r.examples.outputs["Part"][e], torch.zeros(10, 1, 28, 28)) for e in EPS)
    obj = r.to_json_dict("synthetic", "test", "cpu", "abc1234")
    assert obj["methods"]["Part"]["n"] == 7 and obj["n_test"] == 30


def test_precomputed_adv_shared_and_per_method():
    x, y = pattern_data()
    C = PatternClassifier()
    adv = {0.0: x, 0.6: (1 - x)}  # any attack's output
    r = evaluate(C, [Identity()], x, y, adv=adv, attack="inverse", threat_model="custom",
                 timing_batch=4, timing_repeats=1)
    assert r.eps == [0.0, 0.6] and r.threat_model == "custom" and r.attack == "inverse"
    assert r.accuracy["Original"][0.6] == clf_accuracy(C, 1 - x, y)
    per = {"A": {0.5: x}, "B": {0.5: torch.zeros_like(x)}}
    r = evaluate(C, [Identity("A"), Identity("B")], x, y, adv=per, threat_model="adaptive-pgd",
                 timing_batch=4, timing_repeats=1)
    assert r.accuracy["A"][0.5] == 1.0 and r.accuracy["B"][0.5] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="oblivious"):
        evaluate(C, [Identity()], x, y, EPS, threat_model="adaptive-pgd")
    with pytest.raises(ValueError, match="fgsm"):
        evaluate(C, [Identity()], x, y, EPS, attack="pgd")
    with pytest.raises(ValueError, match="no adversarial examples"):
        evaluate(C, [Identity("A"), Identity("C")], x, y, adv=per)


def test_timing_warmup_then_median_of_repeats():
    s = Sleepy(seconds=0.004)
    r = small_eval(defenses=[s], timing_batch=5, timing_repeats=3, timing_warmup=1)
    assert s.calls[len(EPS):] == [5, 5, 5, 5]  # after the evaluation: 1 warm-up + 3 timed calls, same batch
    assert 0.004 / 5 <= r.seconds_per_image["Sleepy"] < 0.2 / 5
    assert r.timing["batch_size"] == 5 and r.timing["repeats"] == 3 and r.timing["device"] == "cpu"
    assert r.timing["threads"] == torch.get_num_threads()
    assert len(r.timing["per_method"]["Sleepy"]["times"]) == 3


def test_examples_one_per_class_with_predictions():
    x, y = pattern_data(n=40)
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(5))
    x, y = x[perm], y[perm]  # classes in a shuffled order
    r = evaluate(PatternClassifier(), [Identity(), Zeros("Zeros")], x, y, EPS, timing_batch=4, timing_repeats=1)
    ex = r.examples
    first = [int(torch.nonzero(y == c)[0]) for c in range(10)]
    assert ex.index.tolist() == first and first != list(range(10))
    assert ex.labels.tolist() == list(range(10))
    assert torch.equal(ex.clean, x[ex.index])
    for e in EPS:
        assert ex.attacked[e].shape == (10, 1, 28, 28)
        assert torch.equal(ex.preds["Original"][e], r.predictions["Original"][e][ex.index])
        assert torch.equal(ex.attacked_preds[e], ex.preds["Original"][e])
    imgs, preds = ex.columns(0.75)
    assert list(imgs) == ["clean", "attacked", "Original", "Zeros"] and list(preds) == list(imgs)


class WrongShape(Identity):
    def purify(self, x, batch_size=None):
        return x[:, :, :14]


@pytest.mark.parametrize("change, match", [
    (dict(x=torch.rand(4, 28, 28)), "shape"),
    (dict(x=torch.full((30, 1, 28, 28), 1.5)), r"\[0, 1\]"),
    (dict(y=torch.zeros(29, dtype=torch.long)), "labels"),
    (dict(eps_values=[0.1, -0.1]), ">= 0"),
    (dict(eps_values=[]), "non-empty"),
    (dict(eps_values=[0.1, 0.1]), "duplicate"),
    (dict(defenses=[Identity(), Identity()]), "duplicate names"),
    (dict(defenses=[]), "at least one"),
    (dict(defenses=Identity()), "single object"),
    (dict(n_per_method={"Nope": 3}), "unknown method"),
    (dict(n_per_method={"Original": 31}), "31"),
    (dict(defenses=[WrongShape()]), "shape"),
    (dict(batch_size=0), "batch_size"),
])
def test_evaluate_rejects_bad_input(change, match):
    x, y = pattern_data()
    args = dict(classifier=PatternClassifier(), defenses=[Identity()], x=x, y=y, eps_values=EPS)
    args.update(change)
    with pytest.raises((ValueError, TypeError), match=match):
        evaluate(args.pop("classifier"), args.pop("defenses"), args.pop("x"), args.pop("y"), args.pop("eps_values"),
                 timing_batch=4, timing_repeats=1, **args)


# ------------------------------------------------------------------------------------ JSON schema
@pytest.fixture(scope="module")
def valid_obj():
    return small_eval(eps_values=[0.0, 0.3, 1.0]).to_json_dict("MNIST", "smoke", "cpu", "abc1234")


def test_to_json_dict_is_exactly_the_schema(valid_obj):
    validate_results_json(valid_obj)
    required = {"dataset", "profile", "device", "n_test", "threat_model", "git_commit", "methods"}
    assert required <= set(valid_obj) <= required | {"runtime", "extra"}
    m = valid_obj["methods"]["Original"]
    assert set(m) == {"accuracy", "ci95", "seconds_per_image", "n"}
    assert list(m["accuracy"]) == ["0.00", "0.30", "1.00"] and list(m["ci95"]) == ["0.00", "0.30", "1.00"]
    assert m["accuracy"]["0.30"] == 1.0 and m["ci95"]["1.00"][0] == 0.0
    assert valid_obj["threat_model"] == "oblivious" and valid_obj["git_commit"] == "abc1234"
    json.dumps(valid_obj, allow_nan=False)
    back = Results.from_json_dict(valid_obj)
    assert back.accuracy["Original"] == {0.0: 1.0, 0.3: 1.0, 1.0: 0.0} and back.n["Original"] == 30


def _set(path, value):
    def f(o):
        *head, last = path
        for k in head:
            o = o[k]
        if value is KeyError:
            del o[last]
        else:
            o[last] = value
    return f


def _rename_eps(o):
    m = o["methods"]["Original"]
    m["accuracy"]["0.3"] = m["accuracy"].pop("0.30")
    m["ci95"]["0.3"] = m["ci95"].pop("0.30")


@pytest.mark.parametrize("mutate, match", [
    (_set(["git_commit"], KeyError), "missing key 'git_commit'"),
    (_set(["methods", "Original", "seconds_per_image"], KeyError), "missing key 'seconds_per_image'"),
    (_rename_eps, "two decimals"),
    (_set(["methods", "Original", "ci95", "0.30"], [0.5, 1.2]), r"must lie in \[0, 1\]"),
    (_set(["methods", "Original", "ci95", "0.30"], [-0.1, 1.0]), r"must lie in \[0, 1\]"),
    (_set(["methods", "Original", "ci95", "0.30"], [1.0, 0.9]), "lo 1.0 > hi 0.9"),
    (_set(["methods", "Original", "ci95", "0.30"], [0.1, 0.2]), "outside its interval"),
    (_set(["methods", "Original", "accuracy", "0.30"], 1.5), r"number in \[0, 1\]"),
    (_set(["methods", "Original", "seconds_per_image"], float("nan")), "seconds_per_image"),
    (_set(["methods", "Original", "n"], 31), "n_test"),
    (_set(["methods", "Original", "color"], "red"), "unknown key"),
    (_set(["surprise"], 1), "unknown key"),
    (_set(["n_test"], "30"), "n_test"),
    (_set(["methods"], {}), "non-empty"),
    (_set(["methods", "Zeros", "accuracy", "0.50"], 0.1), "ci95 eps keys"),
])
def test_schema_validator_rejects(valid_obj, mutate, match):
    bad = copy.deepcopy(valid_obj)
    mutate(bad)
    with pytest.raises(ValueError, match=match):
        validate_results_json(bad)


def test_schema_requires_same_eps_for_every_method(valid_obj):
    bad = copy.deepcopy(valid_obj)
    for part in ("accuracy", "ci95"):
        bad["methods"]["Zeros"][part].pop("1.00")
    with pytest.raises(ValueError, match="same eps"):
        validate_results_json(bad)


def test_write_read_roundtrip_is_atomic_and_validated(valid_obj, tmp_path):
    path = tmp_path / "results" / "MNIST-smoke.json"
    write_results(valid_obj, path)
    assert read_results(path) == valid_obj
    before = path.read_text()
    bad = copy.deepcopy(valid_obj)
    del bad["methods"]
    with pytest.raises(ValueError, match="methods"):
        write_results(bad, path)
    assert path.read_text() == before  # an invalid object never touches the file
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_results(path)
    with pytest.raises(FileNotFoundError):
        read_results(tmp_path / "missing.json")


def test_merge_results_one_entry_per_threat_model(valid_obj, tmp_path):
    adaptive = copy.deepcopy(valid_obj)
    adaptive["threat_model"] = "adaptive-pgd"
    merged = merge_results(valid_obj, adaptive)
    assert [o["threat_model"] for o in merged] == ["oblivious", "adaptive-pgd"]
    rerun = copy.deepcopy(adaptive)
    rerun["git_commit"] = "def5678"
    merged2 = merge_results(merged, rerun)  # a rerun replaces its own entry
    assert len(merged2) == 2 and merged2[1]["git_commit"] == "def5678"
    path = write_results(merged2, tmp_path / "all.json")
    assert read_results(path, threat_model="adaptive-pgd")["git_commit"] == "def5678"
    assert select_results(valid_obj) is valid_obj
    with pytest.raises(ValueError, match="already appears"):
        validate_results_json([valid_obj, valid_obj])
    with pytest.raises(ValueError, match="no results for"):
        select_results(merged2, "on-manifold")


def test_git_commit_never_fails(tmp_path, monkeypatch):
    monkeypatch.delenv(results_mod.GIT_COMMIT_ENV, raising=False)
    c = results_mod.git_commit()
    base = c.removesuffix("-dirty")
    assert c == "unknown" or (base.isalnum() and 4 <= len(base) <= 40)
    assert results_mod.git_commit(cwd=tmp_path) == "unknown"  # not a repository
    assert results_mod.git_commit(cwd=tmp_path / "missing") == "unknown"


def test_git_commit_is_the_pipeline_stamp_when_set(monkeypatch):
    # one stamp per run: the pipeline sets it once, so the results file and the notebooks agree
    monkeypatch.setenv(results_mod.GIT_COMMIT_ENV, "abc1234-dirty")
    assert results_mod.git_commit() == "abc1234-dirty"


def test_git_commit_marks_changed_sources_dirty(tmp_path, monkeypatch):
    import subprocess
    monkeypatch.delenv(results_mod.GIT_COMMIT_ENV, raising=False)
    run = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)
    run("init", "-q"); (tmp_path / "egan_lib").mkdir(); (tmp_path / "egan_lib" / "m.py").write_text("a = 1\n")
    (tmp_path / "book").mkdir(); (tmp_path / "book" / "out.txt").write_text("x\n")
    run("add", "."); run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    clean = results_mod.git_commit(cwd=tmp_path)
    assert len(clean) >= 4 and not clean.endswith("-dirty")
    (tmp_path / "book" / "out.txt").write_text("y\n")           # outputs do not make it dirty
    assert results_mod.git_commit(cwd=tmp_path) == clean
    (tmp_path / "egan_lib" / "m.py").write_text("a = 2\n")      # the library does
    assert results_mod.git_commit(cwd=tmp_path) == clean + "-dirty"


def test_table_lists_every_method_and_eps():
    t = small_eval().table()
    lines = t.splitlines()
    assert len(lines) == 4 and "eps 0.75" in lines[0] and lines[2].startswith("| Original | 30 |")
    assert "100.0 [" in lines[2]
